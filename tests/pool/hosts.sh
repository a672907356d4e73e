#!/usr/bin/env bash
# tests/pool/hosts.sh - N fake "libvirt hypervisor hosts" on this one machine,
# for the pool test.  Must run as root (Linux namespaces, libvirtd, sshd).
#
# Usage:
#   hosts.sh up STATE N           make/heal hosts 1..N; prints one URI a line
#   hosts.sh down STATE           destroy domains, kill everything, remove
#                                 netns, mounts and STATE (safe to run twice)
#   hosts.sh kill-daemon STATE N  SIGKILL host N's libvirtd only (its qemu
#                                 processes and sshd stay, as on a real host);
#                                 a later "up STATE N" restarts it
#   hosts.sh domains STATE N      names of all domains on host N, one a line
#   hosts.sh volumes STATE N      "POOL<TAB>VOLUME<TAB>PATH" for every volume
#                                 in every pool of host N
#   hosts.sh uri STATE N          print host N's qemu+ssh URI
#   hosts.sh local-uri STATE N    print host N's URI over its own unix socket
#
# Each host N (1..250):
#   * network namespace klpq-hN; veth klpq-hN-r (root side, 10.77.N.1/24) <->
#     eth0 (inside, 10.77.N.2/24); no default route, no other addresses;
#   * its own UTS namespace (hostname klpq-hN) and a private mount
#     namespace in which a tmpfs replaces /run and binds from
#     STATE/hN/ replace /run/libvirt, /var/lib/libvirt, /var/log/libvirt,
#     /var/cache/libvirt and /etc/libvirt (qemu.conf: root, no security
#     driver, no dynamic ownership, no virtlogd, no cgroups, no namespaces);
#   * a monolithic libvirtd (unix socket only, no TCP), pid in
#     STATE/hN/libvirtd.pid, log in STATE/hN/var-log-libvirt/libvirtd.log;
#   * an sshd on 10.77.N.2:22 only (key auth only, PermitRootLogin
#     prohibit-password), pid STATE/hN/sshd.pid, log STATE/hN/sshd.log.
#
# URI printed by "up" for host N (STATE is made absolute; it must not contain
# characters that need URI escaping, and must not lie under /run):
#
#   qemu+ssh://root@10.77.N.2/system?command=STATE/ssh&keyfile=STATE/id_ed25519
#
# STATE/ssh is a wrapper: exec ssh -F STATE/ssh_config "$@".  That config
# pins the known hosts to STATE/known_hosts (filled in by "up" with the
# generated host keys, StrictHostKeyChecking yes) and sets BatchMode, so
# nothing under ~/.ssh is read or written and no_verify=1 is not needed
# (adding it is harmless).  On the host side libvirt's ssh transport runs
# virt-ssh-helper (package libvirt-clients), so netcat is not needed.
#
# From the root namespace each host's libvirtd is also reachable directly:
#   qemu+unix:///system?socket=STATE/hN/run-libvirt/libvirt-sock
#
# Missing packages are installed with apt-get (libvirt-daemon,
# libvirt-clients, openssh-server) under a policy-rc.d that exits 101, so no
# service is started in the root namespace.

set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH=$SYS_PATH:$PATH
export LC_ALL=C
unset LIBVIRT_DEFAULT_URI VIRSH_DEFAULT_CONNECT_URI || true

MOUNT_DIRS=(/var/lib/libvirt /var/log/libvirt /var/cache/libvirt /etc/libvirt)

die() { echo "hosts.sh: $*" >&2; exit 1; }
log() { echo "hosts.sh: $*" >&2; }

usage() {
    sed -n '3,16p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- helpers
abs_state() {
    local s=$1
    [ -n "$s" ] || die "STATE must not be empty"
    s=$(readlink -m -- "$s")
    case "$s" in
        /|/run|/run/*|/var/run|/var/run/*) die "STATE ($s) must not be / or under /run" ;;
    esac
    local d
    for d in "${MOUNT_DIRS[@]}"; do
        case "$s/" in "$d"/*) die "STATE ($s) must not be under $d" ;; esac
    done
    case "$s" in
        *[!A-Za-z0-9._/+-]*) die "STATE ($s) may only hold [A-Za-z0-9._/+-] (it goes into URIs)" ;;
    esac
    printf '%s\n' "$s"
}

check_n() {
    case "$1" in ''|*[!0-9]*) die "N must be a number 1..250, not '$1'" ;; esac
    [ "$1" -ge 1 ] && [ "$1" -le 250 ] || die "N must be 1..250, not $1"
}

ns_name()  { echo "klpq-h$1"; }
veth_root() { echo "klpq-h$1-r"; }
host_ip()  { echo "10.77.$1.2"; }

ssh_uri()   { echo "qemu+ssh://root@$(host_ip "$2")/system?command=$1/ssh&keyfile=$1/id_ed25519"; }
local_uri() { echo "qemu+unix:///system?socket=$1/h$2/run-libvirt/libvirt-sock"; }

# pid from a pid file if that process is alive and runs binary $2
pid_alive() {
    local f=$1 exe=$2 pid
    [ -s "$f" ] || return 1
    pid=$(tr -dc 0-9 < "$f")
    [ -n "$pid" ] || return 1
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] || return 1
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
    echo "$pid"
}

ns_exists() { [ -e "/run/netns/$(ns_name "$1")" ]; }

# live pids in host N's network namespace
ns_pids() {
    ns_exists "$1" || return 0
    ip netns pids "$(ns_name "$1")" 2>/dev/null || true
}

virsh_local() { # STATE N args...
    local s=$1 n=$2; shift 2
    timeout 30 virsh -q -c "$(local_uri "$s" "$n")" "$@"
}

# ---------------------------------------------------------------- packages
ensure_packages() {
    local need=()
    command -v libvirtd >/dev/null || need+=(libvirt-daemon)
    { command -v virsh >/dev/null && command -v virt-ssh-helper >/dev/null; } || need+=(libvirt-clients)
    command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
    command -v ssh >/dev/null || need+=(openssh-client)
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    command -v ip >/dev/null || need+=(iproute2)
    { command -v unshare >/dev/null && command -v nsenter >/dev/null; } || need+=(util-linux)
    [ ${#need[@]} -eq 0 ] && return 0

    log "installing: ${need[*]}"
    local before made_policy=0
    before=$(pgrep -x 'sshd|libvirtd|virtlogd|virtlockd|dnsmasq' || true)
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" ||
      { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"; }
    } >&2 || rc=$?
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    # nothing may have been started in the root namespace by postinst
    local p
    for p in $(pgrep -x 'sshd|libvirtd|virtlogd|virtlockd|dnsmasq' || true); do
        if ! grep -qx "$p" <<<"$before"; then
            log "killing $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) (pid $p) started by postinst"
            kill -9 "$p" 2>/dev/null || true
        fi
    done
    [ $rc = 0 ] || die "apt-get install ${need[*]} failed"
}

# ---------------------------------------------------------------- files
write_common() { # STATE
    local s=$1
    umask 077
    mkdir -p "$s"
    [ -s "$s/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C klpq-pool -f "$s/id_ed25519"
    cat > "$s/ssh_config" <<EOF
Host *
    User root
    IdentityFile $s/id_ed25519
    IdentitiesOnly yes
    IdentityAgent none
    UserKnownHostsFile $s/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    CheckHostIP no
    HashKnownHosts no
    BatchMode yes
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    ConnectTimeout 5
    ConnectionAttempts 1
    ServerAliveInterval 5
    ServerAliveCountMax 3
    ControlMaster no
    ControlPath none
    ForwardAgent no
    ForwardX11 no
    LogLevel ERROR
EOF
    printf '#!/bin/sh\nexec ssh -F %s/ssh_config "$@"\n' "$s" > "$s/ssh"
    chmod 700 "$s/ssh"
    chmod 755 "$s"   # sshd (StrictModes no) and libvirt need only root anyway
}

write_host() { # STATE N
    local s=$1 n=$2 h=$1/h$2 ip
    ip=$(host_ip "$n")
    umask 022
    mkdir -p "$h"/{run-libvirt,var-lib-libvirt,var-log-libvirt,var-cache-libvirt,etc-libvirt/qemu}
    [ -s "$h/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "klpq-h$n" -f "$h/ssh_host_ed25519_key"
    chmod 600 "$h/ssh_host_ed25519_key"
    install -m 600 "$s/id_ed25519.pub" "$h/authorized_keys"
    [ -s "$h/host_uuid" ] || cat /proc/sys/kernel/random/uuid > "$h/host_uuid"

    cat > "$h/sshd_config" <<EOF
# fake pool host $n
ListenAddress $ip:22
AddressFamily inet
HostKey $h/ssh_host_ed25519_key
PidFile $h/sshd.pid
AuthorizedKeysFile $h/authorized_keys
AuthorizedPrincipalsFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
PermitTunnel no
PermitUserEnvironment no
MaxStartups 200:30:400
MaxSessions 50
LoginGraceTime 30
ClientAliveInterval 10
ClientAliveCountMax 3
LogLevel INFO
EOF

    cat > "$h/etc-libvirt/libvirtd.conf" <<EOF
# fake pool host $n: unix socket only
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "$(cat "$h/host_uuid")"
max_clients = 500
max_anonymous_clients = 100
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
    cat > "$h/etc-libvirt/qemu.conf" <<EOF
# fake pool host $n: no systemd, no virtlogd, no ownership games
user = "root"
group = "root"
security_driver = "none"
dynamic_ownership = 0
remember_owner = 0
stdio_handler = "file"
namespaces = [ ]
cgroup_controllers = [ ]
EOF
    : > "$h/etc-libvirt/libvirt.conf"
    printf '%s\n' "$n" > "$h/id"
}

# ---------------------------------------------------------------- inside
# Runs inside host N's net+mount namespace: start whatever is not running.
inside_start() { # STATE N
    local s=$1 n=$2 h=$1/h$2
    if ! pid_alive "$h/libvirtd.pid" /usr/sbin/libvirtd >/dev/null; then
        rm -f "$h/libvirtd.pid"
        (cd / && exec env -i PATH=$SYS_PATH HOME=/root LC_ALL=C \
            /usr/sbin/libvirtd --daemon --pid-file "$h/libvirtd.pid" \
            --config /etc/libvirt/libvirtd.conf) \
            >>"$h/libvirtd.stdout" 2>&1 </dev/null || { echo "libvirtd failed to start" >&2; return 1; }
    fi
    if ! pid_alive "$h/sshd.pid" /usr/sbin/sshd >/dev/null; then
        rm -f "$h/sshd.pid"
        (cd / && exec env -i PATH=$SYS_PATH HOME=/root LC_ALL=C \
            /usr/sbin/sshd -f "$h/sshd_config" -E "$h/sshd.log") \
            </dev/null || { echo "sshd failed to start" >&2; return 1; }
    fi
}

# Runs in fresh mount (private propagation) and UTS namespaces inside netns N.
inside_mount_and_start() { # STATE N
    local s=$1 n=$2 h=$1/h$2
    mount --make-rprivate /
    hostname "klpq-h$n"
    mount -t tmpfs -o mode=755,size=64m klpq-h"$n"-run /run
    mkdir -p /run/libvirt /run/sshd /run/lock
    chmod 755 /run/sshd
    mount --bind "$h/run-libvirt" /run/libvirt
    mount --bind "$h/var-lib-libvirt" /var/lib/libvirt
    mount --bind "$h/var-log-libvirt" /var/log/libvirt
    mount --bind "$h/var-cache-libvirt" /var/cache/libvirt
    mount --bind "$h/etc-libvirt" /etc/libvirt
    ip link set lo up
    inside_start "$s" "$n"
}

# ---------------------------------------------------------------- host up
setup_net() { # N
    local n=$1 ns vr
    ns=$(ns_name "$n"); vr=$(veth_root "$n")
    if ! ns_exists "$n"; then
        # a stale root-side veth or route would make the address clash
        ip link del "$vr" 2>/dev/null || true
        if ip -4 route show | grep -q "^10\.77\.$n\.0/24 "; then
            die "10.77.$n.0/24 is already routed in the root namespace ($(ip -4 route show | grep "^10\.77\.$n\.0/24 "))"
        fi
        ip netns add "$ns"
        ip link add "$vr" type veth peer name eth0 netns "$ns"
        # IPv4 test addresses only: no IPv6 link-local chatter on the veth
        echo 1 > "/proc/sys/net/ipv6/conf/$vr/disable_ipv6" 2>/dev/null || true
        ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6' 2>/dev/null || true
        ip addr add "10.77.$n.1/24" dev "$vr"
        ip link set "$vr" up
        ip -n "$ns" addr add "10.77.$n.2/24" dev eth0
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
    fi
}

start_host() { # STATE N
    local s=$1 n=$2 h=$1/h$2 anchor
    setup_net "$n"
    anchor=$(pid_alive "$h/sshd.pid" /usr/sbin/sshd || pid_alive "$h/libvirtd.pid" /usr/sbin/libvirtd || true)
    if [ -z "$anchor" ]; then
        # orphaned qemu left after both daemons died share the old mount ns
        local p
        for p in $(ns_pids "$n"); do
            [ -d "/proc/$p" ] && { anchor=$p; break; }
        done
    fi
    if [ -n "$anchor" ]; then
        nsenter --target "$anchor" --mount --net --uts "$SELF" __inside-start "$s" "$n"
    else
        ip netns exec "$(ns_name "$n")" unshare --mount --uts --propagation private \
            "$SELF" __inside-mount "$s" "$n"
    fi
}

wait_host() { # STATE N  -> 0 when libvirtd answers locally and over ssh
    local s=$1 n=$2 i
    for i in $(seq 1 300); do
        if timeout 10 virsh -q -c "$(local_uri "$s" "$n")" uri >/dev/null 2>&1; then break; fi
        pid_alive "$s/h$n/libvirtd.pid" /usr/sbin/libvirtd >/dev/null || [ "$i" -lt 20 ] ||
            { log "host $n: libvirtd died; see $s/h$n/var-log-libvirt/libvirtd.log"; return 1; }
        sleep 0.1
    done
    [ "$i" -lt 300 ] || { log "host $n: libvirtd does not answer on its socket"; return 1; }
    for i in $(seq 1 100); do
        if timeout 10 virsh -q -c "$(ssh_uri "$s" "$n")" uri >/dev/null 2>"$s/h$n/last-ssh-error"; then
            return 0
        fi
        sleep 0.1
    done
    log "host $n: qemu+ssh does not work: $(cat "$s/h$n/last-ssh-error")"
    return 1
}

refresh_known_hosts() { # STATE
    local s=$1 f tmp
    tmp=$(mktemp "$s/known_hosts.XXXXXX")
    for f in "$s"/h*/id; do
        [ -e "$f" ] || continue
        local n; n=$(cat "$f")
        printf '%s %s\n' "$(host_ip "$n")" "$(cut -d' ' -f1,2 "$s/h$n/ssh_host_ed25519_key.pub")" >> "$tmp"
    done
    chmod 600 "$tmp"
    mv -f "$tmp" "$s/known_hosts"
}

make_mount_points() { # STATE
    local d
    for d in "${MOUNT_DIRS[@]}"; do
        if [ ! -d "$d" ]; then
            mkdir -p "$d"
            echo "$d" >> "$1/created-dirs"
        fi
    done
}

cmd_up() {
    [ $# -eq 2 ] || usage
    [ "$(id -u)" = 0 ] || die "must run as root"
    local s n i failed=0
    check_n "$2"
    s=$(abs_state "$1"); n=$2
    ensure_packages
    # refuse to take over a netns that belongs to another STATE
    for i in $(seq 1 "$n"); do
        if ns_exists "$i" && [ ! -e "$s/h$i/id" ]; then
            die "netns $(ns_name "$i") exists but is not part of $s (another STATE is up? run its down)"
        fi
    done
    write_common "$s"
    make_mount_points "$s"
    # "ip netns add" makes /run/netns a mount point; note if we made it
    [ -d /run/netns ] || [ -e "$s/created-run-netns" ] || : > "$s/created-run-netns"
    for i in $(seq 1 "$n"); do write_host "$s" "$i"; done
    refresh_known_hosts "$s"
    for i in $(seq 1 "$n"); do
        start_host "$s" "$i" || { log "host $i: start failed"; failed=1; }
    done
    if [ $failed = 0 ]; then
        for i in $(seq 1 "$n"); do
            wait_host "$s" "$i" || failed=1
        done
    fi
    [ $failed = 0 ] || die "up failed (state kept in $s for inspection; run: $SELF down $s)"
    for i in $(seq 1 "$n"); do ssh_uri "$s" "$i"; done
}

# ---------------------------------------------------------------- down
kill_wait() { # signal pids...
    local sig=$1; shift
    [ $# -gt 0 ] || return 0
    kill "-$sig" "$@" 2>/dev/null || true
}

down_host() { # STATE N
    local s=$1 n=$2 h=$1/h$2 p pids i
    # 1. leftover domains, while the daemon still lives
    if pid_alive "$h/libvirtd.pid" /usr/sbin/libvirtd >/dev/null; then
        for p in $(virsh_local "$s" "$n" list --name 2>/dev/null || true); do
            virsh_local "$s" "$n" destroy "$p" >/dev/null 2>&1 || true
        done
        for p in $(virsh_local "$s" "$n" list --all --name 2>/dev/null || true); do
            virsh_local "$s" "$n" undefine --nvram "$p" >/dev/null 2>&1 ||
                virsh_local "$s" "$n" undefine "$p" >/dev/null 2>&1 || true
        done
    fi
    # 2. qemu processes (also those orphaned by a killed daemon)
    pids=""
    for p in "$h"/run-libvirt/qemu/*.pid; do
        [ -e "$p" ] || continue
        p=$(tr -dc 0-9 < "$p")
        [ -n "$p" ] && [ -d "/proc/$p" ] && case "$(readlink "/proc/$p/exe")" in */qemu-system-*) pids="$pids $p" ;; esac
    done
    # 3. daemons
    p=$(pid_alive "$h/libvirtd.pid" /usr/sbin/libvirtd || true); pids="$pids $p"
    p=$(pid_alive "$h/sshd.pid" /usr/sbin/sshd || true); pids="$pids $p"
    # shellcheck disable=SC2086
    kill_wait TERM $pids
    # 4. everything else in the netns (ssh sessions, helpers, stragglers)
    for i in $(seq 1 30); do
        pids="$pids $(ns_pids "$n")"
        ALL_KILLED="$ALL_KILLED $pids"
        local alive=""
        for p in $pids; do [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && alive="$alive $p"; done
        [ -z "$alive" ] && break
        # shellcheck disable=SC2086
        if [ "$i" -ge 10 ]; then kill_wait KILL $alive; else kill_wait TERM $alive; fi
        pids=$alive
        sleep 0.1
    done
    [ -z "$(ns_pids "$n")" ] || log "host $n: processes still in netns: $(ns_pids "$n" | tr '\n' ' ')"
    # 5. network
    if ns_exists "$n"; then ip netns del "$(ns_name "$n")" 2>/dev/null || true; fi
    ip link del "$(veth_root "$n")" 2>/dev/null || true
}

cmd_down() {
    [ $# -eq 1 ] || usage
    [ "$(id -u)" = 0 ] || die "must run as root"
    local s f n p i
    s=$(readlink -m -- "$1")
    [ -d "$s" ] || return 0
    [ "$s" != / ] || die "refusing STATE=/"
    ALL_KILLED=""
    for f in "$s"/h*/id; do
        [ -e "$f" ] || continue
        n=$(tr -dc 0-9 < "$f")
        [ -n "$n" ] && down_host "$s" "$n"
    done
    # the killed daemons were re-parented to PID 1: wait until it has reaped
    # them, so that no zombie "libvirtd"/"sshd"/"qemu" is left for pgrep
    for i in $(seq 1 100); do
        f=""
        for p in $ALL_KILLED; do [ -d "/proc/$p" ] && f="$f $p"; done
        [ -z "$f" ] && break
        ALL_KILLED=$f
        sleep 0.1
    done
    [ -z "$f" ] || log "not yet reaped by PID 1:$f"
    # mounts under STATE in this namespace (should be none)
    local m
    for m in $(awk -v s="$s" '$2 == s || index($2, s "/") == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    # mount points made by up, if no other fake host still uses them
    if [ -s "$s/created-dirs" ] && ! ip netns list 2>/dev/null | grep -q '^klpq-h'; then
        while read -r m; do rmdir "$m" 2>/dev/null || true; done < "$s/created-dirs"
    fi
    if [ -e "$s/created-run-netns" ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
        while awk '$2 == "/run/netns" {f=1} END {exit !f}' /proc/mounts; do
            umount /run/netns 2>/dev/null || umount -l /run/netns 2>/dev/null || break
        done
        rmdir /run/netns 2>/dev/null || true
    fi
    rm -rf -- "$s"
    [ ! -e "$s" ] || die "could not remove $s"
}

# ---------------------------------------------------------------- others
host_dir() { # STATE N -> abs STATE, checks
    local s
    check_n "$2"
    s=$(readlink -m -- "$1")
    [ -e "$s/h$2/id" ] || die "no host $2 in $s"
    echo "$s"
}

cmd_kill_daemon() {
    [ $# -eq 2 ] || usage
    local s p
    s=$(host_dir "$1" "$2")
    p=$(pid_alive "$s/h$2/libvirtd.pid" /usr/sbin/libvirtd) || die "host $2: libvirtd is not running"
    kill -KILL "$p"
    while [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; do sleep 0.05; done
}

cmd_domains() {
    [ $# -eq 2 ] || usage
    local s
    s=$(host_dir "$1" "$2")
    virsh_local "$s" "$2" list --all --name | sed '/^$/d'
}

cmd_volumes() {
    [ $# -eq 2 ] || usage
    local s pool
    s=$(host_dir "$1" "$2")
    for pool in $(virsh_local "$s" "$2" pool-list --all --name); do
        virsh_local "$s" "$2" pool-refresh "$pool" >/dev/null 2>&1 || true
        virsh_local "$s" "$2" vol-list --pool "$pool" 2>/dev/null |
            awk -v p="$pool" 'NF >= 2 {print p "\t" $1 "\t" $2}'
    done
}

case "${1:-}" in
    up)             shift; cmd_up "$@" ;;
    down)           shift; cmd_down "$@" ;;
    kill-daemon)    shift; cmd_kill_daemon "$@" ;;
    domains)        shift; cmd_domains "$@" ;;
    volumes)        shift; cmd_volumes "$@" ;;
    uri)            shift; [ $# -eq 2 ] || usage; ssh_uri "$(host_dir "$1" "$2")" "$2" ;;
    local-uri)      shift; [ $# -eq 2 ] || usage; local_uri "$(host_dir "$1" "$2")" "$2" ;;
    __inside-start) shift; inside_start "$@" ;;
    __inside-mount) shift; inside_mount_and_start "$@" ;;
    *)              usage ;;
esac
