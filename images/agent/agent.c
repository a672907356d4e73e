/* agent.c: klpq-agent, the guest side of the agent protocol (docs/protocol.md).
 *
 * Runs as PID 1 (/init) of the initramfs klpq builds: mounts the basic file systems, loads the
 * modules listed in /klpq/boot-modules, finds the virtio-serial port "org.klpq.agent" and serves
 * requests from it one at a time, in a single poll loop that also sends heartbeats and reaps
 * orphans. `klpq-agent --device /dev/virtio-ports/org.klpq.agent` runs the same loop as an
 * ordinary service of a guest with its own init (a disk image): no boot duties, the port device
 * opened and reopened as PID 1 does, poweroff powering the machine off. `klpq-agent --port
 * SOCKET` runs it as an ordinary process connected to a unix socket, so it can be exercised on
 * the host.
 *
 * Being init shapes the code: PID 1 must never exit (the kernel would panic), so a fatal error
 * powers the machine off; a lost port is reopened; and every child the kernel re-parents to us
 * must be reaped. Messages are built and parsed by harness/proto.c only. Everything the agent
 * holds is bounded: the line reader, probe output, kmsg and task listings.
 */
#define _GNU_SOURCE
#include "agent.h"

/* a disk guest's busybox applets (switch_to_disk) */
#define DISK_BB_DIR "/klpq/busybox-bin"

/* --- boot (PID 1 only) --- */

/* The kernel gives init /dev/console as fds 0-2 only if the initramfs has that node; a closed
 * standard fd would be handed out by the next open() and confuse every child. */
static void ensure_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int nfd;

		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		nfd = open("/dev/console", O_RDWR | O_NOCTTY);
		if (nfd < 0)
			nfd = open("/dev/null", O_RDWR);
		if (nfd >= 0 && nfd != fd) {
			dup2(nfd, fd);
			close(nfd);
		}
	}
}

static void mount_basics(struct agent *a)
{
	static const struct {
		const char *source, *target, *type;
		unsigned long flags;
		const char *data;
	} mounts[] = {
		{ "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
		{ "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
		{ "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755" },
		{ "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
		{ "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755" },
	};

	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
		if (mkdir(mounts[i].target, 0755) < 0 && errno != EEXIST)
			diag(a, "mkdir %s: %s", mounts[i].target, strerror(errno));
		/* EBUSY: already mounted (the kernel may mount devtmpfs itself) */
		if (mount(mounts[i].source, mounts[i].target, mounts[i].type, mounts[i].flags,
			  mounts[i].data) < 0 && errno != EBUSY)
			diag(a, "mount %s on %s: %s", mounts[i].type, mounts[i].target,
			     strerror(errno));
	}
}

static void load_boot_modules(struct agent *a)
{
	char *list = malloc(BOOT_LIST_MAX), *line, *next;
	size_t len;
	int loaded = 0;

	if (!list) {
		note(a, "out of memory reading " BOOT_MODULES);
		return;
	}
	if (read_text_file(BOOT_MODULES, list, BOOT_LIST_MAX, &len) < 0) {
		note(a, BOOT_MODULES ": %s; no boot modules loaded", strerror(errno));
		free(list);
		return;
	}
	if (len == BOOT_LIST_MAX - 1)
		note(a, BOOT_MODULES " is longer than %d bytes; the rest is ignored",
		     BOOT_LIST_MAX - 1);
	for (line = list; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		strip_newline(line);
		if (!*line || *line == '#')
			continue;
		if (load_module(line, "") == 0)
			loaded++;
		else if (errno != EEXIST) /* built in, or loaded as a dependency already */
			note(a, "boot module %s: %s", line, strerror(errno));
	}
	diag(a, "loaded %d boot modules", loaded);
	free(list);
}

/* The device of the port named PORT_NAME, from sysfs; 0 when found. */
static int port_lookup(struct agent *a)
{
	char path[PATH_MAX], name[128];
	struct dirent *de;
	DIR *d = opendir(VIRTIO_PORTS_DIR);
	int ret = -1;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' ||
		    path_fmt(path, sizeof(path), VIRTIO_PORTS_DIR "/%s/name", de->d_name) < 0 ||
		    read_text_file(path, name, sizeof(name), NULL) < 0)
			continue;
		strip_newline(name);
		if (!strcmp(name, PORT_NAME) &&
		    path_fmt(a->port_dev, sizeof(a->port_dev), "/dev/%s", de->d_name) == 0) {
			ret = 0;
			break;
		}
	}
	closedir(d);
	return ret;
}

/* Waits for the port in sysfs and then for devtmpfs to create its node. */
static void find_port(struct agent *a)
{
	uint64_t deadline = mono_ms() + PORT_WAIT_MS;
	int in_sysfs = 0;

	for (;;) {
		if (!in_sysfs)
			in_sysfs = port_lookup(a) == 0;
		if (in_sysfs && access(a->port_dev, F_OK) == 0)
			return;
		if (mono_ms() >= deadline)
			break;
		sleep_ms(100);
	}
	if (in_sysfs)
		die(a, "virtio port %s found but %s did not appear within %d s", PORT_NAME,
		    a->port_dev, PORT_WAIT_MS / 1000);
	die(a, "no virtio-serial port named %s within %d s (is virtio_console among the boot "
	    "modules, and does QEMU have -device virtserialport,name=%s?)", PORT_NAME,
	    PORT_WAIT_MS / 1000, PORT_NAME);
}

/* The value of WORD=value on the kernel's command line, into out; 0 when present. (Words with
 * a dot are never handed to init as arguments: the kernel takes them for module options.) */
static int cmdline_value(const char *word, char *out, size_t len)
{
	char cmd[4096], *p;
	size_t n = strlen(word);

	if (read_text_file("/proc/cmdline", cmd, sizeof(cmd), NULL) < 0)
		return -1;
	strip_newline(cmd);
	for (p = strtok(cmd, " "); p; p = strtok(NULL, " "))
		if (!strncmp(p, word, n) && p[n] == '=') {
			snprintf(out, len, "%s", p + n + 1);
			return 0;
		}
	return -1;
}

/* Copies the initramfs file from to to (under /klpq, which the disk's root gets bound). */
static void copy_to_klpq(struct agent *a, const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);

	if (in < 0 || out < 0)
		die(a, "copying %s to %s: %s", from, to, strerror(errno));
	for (;;) {
		char buf[65536];
		ssize_t r = read(in, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die(a, "copying %s to %s: %s", from, to, strerror(errno));
		if (r == 0)
			break;
		if (write(out, buf, (size_t)r) != r)
			die(a, "copying %s to %s: %s", from, to, strerror(errno));
	}
	close(in);
	if (close(out) < 0)
		die(a, "copying %s to %s: %s", from, to, strerror(errno));
}

/* DISK_BB_DIR/APPLET -> /klpq/busybox for each applet link of the initramfs (the disk guest's
 * last PATH entry). */
static void busybox_applets(struct agent *a)
{
	static const char *const dirs[] = { "/bin", "/sbin", "/usr/bin", "/usr/sbin" };
	char target[64], link[300];

	if (mkdir(DISK_BB_DIR, 0755) < 0 && errno != EEXIST)
		die(a, "mkdir %s: %s", DISK_BB_DIR, strerror(errno));
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;

		while (d && (de = readdir(d))) {
			char path[300];
			ssize_t n;

			if (path_fmt(path, sizeof(path), "%s/%s", dirs[i], de->d_name) < 0 ||
			    (n = readlink(path, target, sizeof(target) - 1)) < 0)
				continue;
			target[n] = 0;
			if (strcmp(target, "/bin/busybox") ||
			    path_fmt(link, sizeof(link), "%s/%s", DISK_BB_DIR, de->d_name) < 0)
				continue;
			if (symlink("/klpq/busybox", link) < 0 && errno != EEXIST)
				die(a, "linking %s: %s", link, strerror(errno));
		}
		if (d)
			closedir(d);
	}
}

/* A disk guest (klpq.root=DEVICE on the command line): this initramfs is its first stage. The
 * boot modules are loaded (the disk's driver and file system among them); the disk is mounted
 * on /newroot; the agent is copied to /klpq/klpq-agent and /klpq (patch modules, programs,
 * workload runner: the same guest paths as without a disk) is bound into the new root; /dev,
 * /proc, /sys and /run move there; then the disk's own init (systemd) runs as PID 1, and its
 * klpq-agent.service runs `/klpq/klpq-agent --device auto` (docs/scenario.md, "guest").
 * Returns only when there is no klpq.root. */
static void switch_to_disk(struct agent *a)
{
	static const char *const moved[] = { "/dev", "/proc", "/sys", "/run" };
	char dev[256], fstype[32] = "ext4", init[256] = "/sbin/init", target[300];
	uint64_t deadline;

	if (cmdline_value("klpq.root", dev, sizeof(dev)) < 0)
		return;
	cmdline_value("klpq.rootfstype", fstype, sizeof(fstype));
	cmdline_value("klpq.init", init, sizeof(init));
	diag(a, "disk guest: root %s (%s), init %s", dev, fstype, init);
	for (deadline = mono_ms() + PORT_WAIT_MS; access(dev, F_OK) < 0;) {
		if (mono_ms() >= deadline)
			die(a, "the disk %s did not appear within %d s (is virtio_blk among the boot "
			    "modules?)", dev, PORT_WAIT_MS / 1000);
		sleep_ms(50);
	}
	if (mkdir("/newroot", 0755) < 0 && errno != EEXIST)
		die(a, "mkdir /newroot: %s", strerror(errno));
	if (mount(dev, "/newroot", fstype, 0, NULL) < 0)
		die(a, "mount %s (%s) on /newroot: %s", dev, fstype, strerror(errno));
	if (!strcmp(init, "/sbin/init")) {
		/* the disk's systemd starts the agent: its unit goes into this cell's overlay */
		static const char unit[] =
			"# written by klpq's first stage into this cell's overlay\n"
			"[Unit]\nDescription=klpq guest agent\nDefaultDependencies=no\n"
			/* not in a kdump capture boot (Debian's kdump-tools appends reset_devices):
			 * the harness is not talking to that kernel */
			"ConditionKernelCommandLine=!reset_devices\n"
			"[Service]\nExecStart=/klpq/klpq-agent --device auto\n"
			/* the disk's tools first; busybox's applets where it has none, so probes
			 * written for the initramfs guest (ip, nc, ...) run here too */
			"Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:"
			"/bin:" DISK_BB_DIR "\n"
			"Restart=always\nRestartSec=1\n"
			"[Install]\nWantedBy=sysinit.target\n";
		const char *dir = "/newroot/etc/systemd/system";
		int fd;

		if (access("/newroot/lib/systemd/systemd", X_OK) < 0 &&
		    access("/newroot/usr/lib/systemd/systemd", X_OK) < 0)
			die(a, "the disk's root %s has no systemd (/lib/systemd/systemd): klpq starts "
			    "its agent as a systemd service", dev);
		if ((mkdir("/newroot/etc/systemd", 0755) < 0 && errno != EEXIST) ||
		    (mkdir(dir, 0755) < 0 && errno != EEXIST) ||
		    (mkdir("/newroot/etc/systemd/system/sysinit.target.wants", 0755) < 0 &&
		     errno != EEXIST))
			die(a, "mkdir %s: %s", dir, strerror(errno));
		fd = open("/newroot/etc/systemd/system/klpq-agent.service",
			  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, unit, sizeof(unit) - 1) != (ssize_t)(sizeof(unit) - 1))
			die(a, "writing klpq-agent.service on the disk: %s", strerror(errno));
		close(fd);
		unlink("/newroot/etc/systemd/system/sysinit.target.wants/klpq-agent.service");
		if (symlink("../klpq-agent.service",
			    "/newroot/etc/systemd/system/sysinit.target.wants/klpq-agent.service") < 0)
			die(a, "enabling klpq-agent.service on the disk: %s", strerror(errno));
	}
	/* the agent for the disk's service: this very binary; and busybox with its applets */
	copy_to_klpq(a, "/init", "/klpq/klpq-agent");
	copy_to_klpq(a, "/bin/busybox", "/klpq/busybox");
	busybox_applets(a);
	if ((mkdir("/newroot/klpq", 0755) < 0 && errno != EEXIST) ||
	    mount("/klpq", "/newroot/klpq", NULL, MS_BIND, NULL) < 0)
		die(a, "binding /klpq into the disk's root: %s", strerror(errno));
	umount("/tmp"); /* the disk's own /tmp */
	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		if (path_fmt(target, sizeof(target), "/newroot%s", moved[i]) < 0)
			continue;
		if ((mkdir(target, 0755) < 0 && errno != EEXIST) ||
		    mount(moved[i], target, NULL, MS_MOVE, NULL) < 0)
			die(a, "moving %s into the disk's root: %s", moved[i], strerror(errno));
	}
	if (chdir("/newroot") < 0 || mount("/newroot", "/", NULL, MS_MOVE, NULL) < 0 ||
	    chroot(".") < 0 || chdir("/") < 0)
		die(a, "switching to the disk's root: %s", strerror(errno));
	if (a->console_fd >= 0)
		close(a->console_fd);
	execl(init, init, (char *)NULL);
	/* the old root is gone: nothing to go back to */
	a->console_fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	die(a, "exec %s on the disk: %s", init, strerror(errno));
}

void boot(struct agent *a)
{
	mount_basics(a);
	ensure_std_fds();
	a->console_fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (setenv("PATH", AGENT_PATH, 1) < 0)
		diag(a, "setenv PATH: %s", strerror(errno));
	diag(a, "%s starting", AGENT_VERSION);
	load_boot_modules(a);
	switch_to_disk(a);
	find_port(a);
	diag(a, "using %s", a->port_dev);
}

int main(int argc, char **argv)
{
	struct agent a = { .console_fd = -1, .port_fd = -1, .sig_fd = -1 };
	sigset_t chld;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			a.sock_path = argv[++i];
		} else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
			snprintf(a.port_dev, sizeof(a.port_dev), "%s", argv[++i]);
			a.is_service = 1;
			/* auto: found through sysfs, as PID 1 does, without waiting for udev's
			 * /dev/virtio-ports link */
			if (!strcmp(a.port_dev, "auto"))
				find_port(&a);
		}
		/* PID 1 also receives unknown kernel command-line words: ignore them there */
	}
	a.is_init = !a.sock_path && !a.is_service && getpid() == 1;
	if (!a.is_init && !a.sock_path && !a.is_service) {
		fprintf(stderr, "usage: klpq-agent --device /dev/virtio-ports/%s | --port SOCKET  "
			"(or run as PID 1)\n", PORT_NAME);
		return 2;
	}

	/* A closed port must surface as EPIPE from write, not kill the agent. */
	signal(SIGPIPE, SIG_IGN);
	/* Before any other open: boot() makes sure fds 0-2 exist first. */
	if (a.is_init)
		boot(&a);
	/* Children are reaped from the poll loop: SIGCHLD arrives through a signalfd. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0)
		die(&a, "sigprocmask: %s", strerror(errno));
	a.sig_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a.sig_fd < 0)
		die(&a, "signalfd: %s", strerror(errno));
	proto_reader_init(&a.rd);
	a.next_beat = mono_ms() + HEARTBEAT_MS;
	if (a.is_service)
		diag(&a, "%s starting as a service on %s", AGENT_VERSION, a.port_dev);
	if (port_open(&a) < 0) {
		if (!a.is_init && !a.is_service)
			die(&a, "cannot connect to %s: %s", a.sock_path, strerror(errno));
		diag(&a, "open %s: %s; retrying", a.port_dev, strerror(errno));
		a.reopen_at = mono_ms() + REOPEN_MS;
	}
	serve(&a);
}
