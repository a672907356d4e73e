/* vm-libvirt.c: the libvirt backend (vm.h's interface, vm-libvirt.h's helpers).
 *
 * A cell's guest is a transient libvirt domain made from generated XML (vm-libvirt-xml.c):
 * direct kernel boot, ACPI on, every end of the guest ends the domain. The URI is the
 * scenario's vm.uri; without one, libvirt's embedded QEMU driver (qemu:///embed) runs inside
 * the cell's klpq process on a root folder of its own, so no daemon is started and parallel
 * cells do not share a root (the embedded driver takes the root's pid file; one process per
 * root). The console and the agent's port are streams over the connection
 * (virDomainOpenConsole, virDomainOpenChannel); the hang dump uses the QEMU monitor
 * passthrough and virDomainSendKey.
 *
 * Files: this one is the VM; vm-libvirt-stream.c the event thread and the stream bridges;
 * vm-libvirt-host.c the owner record, the embedded root, its watchdog and the sweeps;
 * vm-libvirt-xml.c the domain XML.
 *
 * Threads: libvirt delivers stream data and domain events on its event loop, run by one
 * thread of this process (event_thread). That thread only moves bytes: each stream is bridged
 * to a socketpair whose other end goes to vm-chan.c's loop, and each domain event becomes a
 * small record on a pipe the loop also polls. Everything else runs on the cell's thread.
 *
 * Leftovers: the embedded driver's QEMU outlives a cell process that is killed (libvirt
 * daemonizes it, and autodestroy is not supported for embedded drivers), so a watchdog (a
 * shell, started with the domain) kills the root's QEMU and removes the root when the cell's
 * end of its pipe closes without "done"; the next run sweeps any root whose lock is free. A domain on another
 * host carries its owner (pid, start time, boot id, host name) in its metadata, and every
 * connect destroys klpq domains whose owner is gone.
 */
#define _GNU_SOURCE
#include "vm-libvirt-priv.h"
#include "accel.h"
#include "pool.h"
#include "vm-chan.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the VM ---------------------------------------------------------------------------- */

enum { REC_LIFECYCLE = 1, REC_SHUTDOWN_REASON, REC_PANIC, REC_CLOSED };
enum { WHY_NONE, WHY_GUEST_SHUTDOWN, WHY_GUEST_RESET, WHY_GUEST_PANIC, WHY_HOST };

struct record {
	int kind, a, b;
};

struct lvm {
	struct vm base;            /* first: a struct vm * is a struct lvm * */
	struct vm_config cfg;
	struct vmchan ch;
	int ch_ready;
	char *uri;
	char *root;                /* the embedded driver's root this VM made, or NULL */
	int root_lock;
	char *name;
	virConnectPtr conn;
	virDomainPtr dom;
	int lifecycle_id, monitor_id;
	int evpipe[2];             /* event thread -> loop: struct record */
	struct lv_bridge bridge[2];   /* console, agent */
	struct child watchdog;
	int watchdog_fd;           /* its stdin: "done" when klpq cleaned up itself */
	int teardown_fd[2];        /* the event thread says the bridges are closed */
	int exited, we_destroyed, shutdown_why, stopped_detail;
	int remote;                /* the URI names a host over the network: files uploaded */
	int close_cb;              /* the connection's close callback is registered */
	char lost[256];            /* "" or why the connection to the host was lost */
	char reason[256];
	char accel[8];
	char version[96];
};

/* event thread: a domain event becomes a record for the loop */
static void put_record(struct lvm *vm, int kind, int a, int b)
{
	struct record r = { kind, a, b };

	if (write(vm->evpipe[1], &r, sizeof(r)) < 0) {
		/* the pipe holds thousands of records: a full one means the loop is gone */
	}
}

static int on_lifecycle(virConnectPtr c, virDomainPtr d, int event, int detail, void *opaque)
{
	struct lvm *vm = opaque;

	(void)c;
	/* by name, set before the callback was registered: events may come before
	 * virDomainCreateXML returns */
	if (!strcmp(virDomainGetName(d), vm->name))
		put_record(vm, REC_LIFECYCLE, event, detail);
	return 0;
}

static void on_monitor(virConnectPtr c, virDomainPtr d, const char *event, long long secs,
		       unsigned int micros, const char *details, void *opaque)
{
	struct lvm *vm = opaque;

	(void)c;
	(void)secs;
	(void)micros;
	if (strcmp(virDomainGetName(d), vm->name))
		return;
	if (!strcmp(event, "SHUTDOWN") && details) {
		/* QEMU's own reason: libvirt's SHUTDOWN event says guest or host, not reset */
		int why = strstr(details, "guest-reset") ? WHY_GUEST_RESET :
			  strstr(details, "guest-panic") ? WHY_GUEST_PANIC :
			  strstr(details, "guest-shutdown") ? WHY_GUEST_SHUTDOWN :
			  strstr(details, "\"host-") ? WHY_HOST : WHY_NONE;
		put_record(vm, REC_SHUTDOWN_REASON, why, 0);
	} else if (!strcmp(event, "GUEST_PANICKED")) {
		put_record(vm, REC_PANIC, 0, 0);
	}
}

/* event thread: the connection closed (the host's daemon died, the network or the keepalive
 * broke) */
static void on_close(virConnectPtr c, int reason, void *opaque)
{
	(void)c;
	if (reason != VIR_CONNECT_CLOSE_REASON_CLIENT)
		put_record(opaque, REC_CLOSED, reason, 0);
}

static void set_reason(struct lvm *vm)
{
	static const char *const stopped[] = {
		"shut down", "destroyed", "crashed", "migrated", "saved", "failed (QEMU ended)",
		"restored from a snapshot",
	};
	const char *how = vm->stopped_detail >= 0 && vm->stopped_detail < 7 ?
			  stopped[vm->stopped_detail] : "stopped";

	switch (vm->shutdown_why) {
	case WHY_GUEST_PANIC:
		snprintf(vm->reason, sizeof(vm->reason), "guest panicked (domain %s)", how);
		break;
	case WHY_GUEST_RESET:
		snprintf(vm->reason, sizeof(vm->reason), "guest reset, domain %s (on_reboot "
			 "destroy)", how);
		break;
	case WHY_GUEST_SHUTDOWN:
		snprintf(vm->reason, sizeof(vm->reason), "guest powered off (domain %s)", how);
		break;
	default:
		snprintf(vm->reason, sizeof(vm->reason), "domain %s%s", how,
			 vm->we_destroyed ? " by klpq" : vm->stopped_detail == 1 ?
			 " from outside klpq" : "");
	}
}

static void read_records(struct lvm *vm)
{
	struct record r;

	static const char *const events[] = { "defined", "undefined", "started", "suspended",
					      "resumed", "stopped", "shutdown", "pmsuspended",
					      "crashed" };
	static const char *const whys[] = { "?", "guest-shutdown", "guest-reset", "guest-panic",
					    "host" };

	while (read(vm->evpipe[0], &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		char line[160];
		int n = r.kind == REC_LIFECYCLE ?
			snprintf(line, sizeof(line), "domain event %s, detail %d",
				 r.a >= 0 && r.a < 9 ? events[r.a] : "?", r.b) :
			r.kind == REC_SHUTDOWN_REASON ?
			snprintf(line, sizeof(line), "QEMU SHUTDOWN, reason %s",
				 r.a >= 0 && r.a < 5 ? whys[r.a] : "?") :
			r.kind == REC_CLOSED ?
			snprintf(line, sizeof(line), "the connection closed, reason %d", r.a) :
			snprintf(line, sizeof(line), "QEMU GUEST_PANICKED");

		vmchan_log(&vm->ch, "libvirt", line, (size_t)n);
		if (r.kind == REC_SHUTDOWN_REASON && !vm->shutdown_why)
			vm->shutdown_why = r.a;
		else if (r.kind == REC_PANIC)
			vm->shutdown_why = WHY_GUEST_PANIC;
		else if (r.kind == REC_LIFECYCLE && r.a == VIR_DOMAIN_EVENT_SHUTDOWN &&
			 !vm->shutdown_why)
			vm->shutdown_why = r.b == VIR_DOMAIN_EVENT_SHUTDOWN_GUEST ?
					   WHY_GUEST_SHUTDOWN : r.b == VIR_DOMAIN_EVENT_SHUTDOWN_HOST ?
					   WHY_HOST : WHY_NONE;
		else if (r.kind == REC_CLOSED && !vm->exited) {
			/* whatever the domain does now, this cell cannot see it: the host's fault */
			snprintf(vm->lost, sizeof(vm->lost), "the connection to the libvirt host "
				 "closed (%s)", r.a == VIR_CONNECT_CLOSE_REASON_EOF ? "end of file: "
				 "its daemon or the transport ended" : r.a ==
				 VIR_CONNECT_CLOSE_REASON_KEEPALIVE ? "keepalive: no answer for 20 s" :
				 "an error on the connection");
			vm->exited = 1;
			snprintf(vm->reason, sizeof(vm->reason), "%s", vm->lost);
		} else if (r.kind == REC_LIFECYCLE && r.a == VIR_DOMAIN_EVENT_STOPPED && !vm->exited) {
			vm->exited = 1;
			vm->stopped_detail = r.b;
			set_reason(vm);
		}
	}
}

static int hook_fds(void *be, struct pollfd *p, int max, unsigned *cap_ms)
{
	struct lvm *vm = be;

	(void)cap_ms; /* the domain's end arrives as a record: no polling for it */
	if (max < 1 || vm->evpipe[0] < 0)
		return 0;
	p[0] = (struct pollfd){ vm->evpipe[0], POLLIN, 0 };
	return 1;
}

static void hook_event(void *be, const struct pollfd *p)
{
	(void)p;
	read_records(be);
}

static int hook_ended(void *be)
{
	struct lvm *vm = be;

	read_records(vm);
	return vm->exited;
}

/* a channel broke: the domain's STOPPED event follows within a moment when it is ending */
static void hook_settle(void *be)
{
	struct lvm *vm = be;

	for (uint64_t end = now_ms() + 3000; !vm->exited && now_ms() < end;) {
		struct pollfd p = { vm->evpipe[0], POLLIN, 0 };

		poll(&p, 1, 100);
		read_records(vm);
	}
}

static const char *hook_reason(void *be)
{
	return ((struct lvm *)be)->reason;
}

static const struct vmchan_hooks libvirt_hooks = {
	.fds = hook_fds, .event = hook_event, .ended = hook_ended, .settle = hook_settle,
	.reason = hook_reason,
};

/* ---- start, stop --------------------------------------------------------------------- */

static void lvm_destroy(struct lvm *vm);

static int lvm_start(const struct vm_config *cfg, struct lvm **out, struct kerr *e)
{
	struct lvm *vm = xcalloc(1, sizeof(*vm));
	struct vm_libvirt_owner owner;
	struct sb xml = SB_INIT;
	int ret = -1, con_fd = -1, agent_fd = -1;

	*out = NULL;
	vm->base.be = &vm_backend_libvirt;
	vm->cfg = *cfg;
	vm->root_lock = vm->watchdog_fd = -1;
	vm->evpipe[0] = vm->evpipe[1] = -1;
	vm->lifecycle_id = vm->monitor_id = -1;
	vm->watchdog = (struct child)CHILD_INIT;
	for (int i = 0; i < 2; i++)
		vm->bridge[i] = (struct lv_bridge){ .fd = -1, .watch = -1 };
	vm->ch.console_fd = vm->ch.agent_fd = -1;
	snprintf(vm->accel, sizeof(vm->accel), "%s", cfg->accel && *cfg->accel ? cfg->accel : "tcg");
	if (lv_init_once(e) < 0)
		goto fail;
	vm->ch_ready = 1;
	if (vmchan_init(&vm->ch, &vm->cfg, &libvirt_hooks, vm, "the domain", e) < 0)
		goto fail;
	if (pipe2(vm->evpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		kerr_errno(e, "pipe");
		goto fail;
	}
	if (cfg->uri && *cfg->uri) {
		vm->uri = xstrdup(cfg->uri);
	} else {
		/* an embedded driver's root of this process, short enough for the unix sockets
		 * libvirt makes in it (108 bytes), locked while it lives */
		char *conf;

		lv_sweep_roots();
		vm->root = make_locked_tmp("/tmp", "lv-", &vm->root_lock, e);
		if (!vm->root)
			goto fail;
		conf = path_join(vm->root, "etc/qemu.conf");
		{
			char *etc = path_join(vm->root, "etc");
			int bad = mkdir_p(etc, 0700, e) < 0 ||
				  write_file_atomic(conf, lv_qemu_conf, strlen(lv_qemu_conf), e) < 0;
			free(etc);
			free(conf);
			if (bad)
				goto fail;
		}
		lv_caps_cache(cfg->cache_dir, vm->root, 0);
		if (lv_watchdog_start(vm->root, &vm->watchdog, &vm->watchdog_fd, e) < 0)
			goto fail;
		vm->uri = xasprintf("qemu:///embed?root=%s", vm->root);
	}
	vm->remote = pool_uri_remote(vm->uri, NULL, 0);
	vm->conn = virConnectOpen(vm->uri);
	if (!vm->conn) {
		virErrorPtr err = virGetLastError();
		const char *m = err && err->message ? err->message : "no message";

		kerr_set(e, "libvirt: cannot connect to %s: %s%s", vm->uri, m,
			 strstr(m, "libvirt-qemu") ? " (the embedded driver needs the system user "
			 "libvirt-qemu: ci/install-deps.sh makes it)" : "");
		ret = vm->root ? -1 : VM_START_NO_HOST;
		goto fail;
	}
	if (!vm->root) {
		/* a daemon's connection: a host that stops answering is seen within about 20 s
		 * (an answer due every 5 s, given up after 3 more), and a
		 * closed connection ends the cell's wait at once */
		virConnectSetKeepAlive(vm->conn, 5, 3);
		vm->close_cb = virConnectRegisterCloseCallback(vm->conn, on_close, vm, NULL) == 0;
	}
	lv_sweep_domains(vm->conn);
	vm_libvirt_owner_self(&owner);
	vm->name = xasprintf(VM_LIBVIRT_PREFIX "%ld-%.40s", (long)getpid(), cfg->name);
	for (char *p = vm->name; *p; p++)
		if (!name_char_ok(*p))
			*p = '_';
	vm->lifecycle_id = virConnectDomainEventRegisterAny(vm->conn, NULL,
		VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), vm, NULL);
	/* QEMU's own SHUTDOWN reason (reset or power-off), where the host allows passthrough */
	vm->monitor_id = virConnectDomainQemuMonitorEventRegister(vm->conn, NULL, NULL,
								  on_monitor, vm, NULL, 0);
	if (vm->remote) {
		/* no shared file system: the host gets the files over the connection */
		struct vm_config rc = *cfg;
		int up = 0;
		uint64_t t0 = now_ms();
		char *k = lv_upload(vm->conn, cfg->kernel, cfg->stop_fd, &up, e), *i = NULL;
		int up2 = 0;

		if (k)
			i = lv_upload(vm->conn, cfg->initrd, cfg->stop_fd, &up2, e);
		if (!k || !i) {
			free(k);
			free(i);
			goto fail;
		}
		{
			char line[256];
			int n = snprintf(line, sizeof(line), "kernel %s, initramfs %s on the host in "
					 "%.1f s", up ? "uploaded" : "cached", up2 ? "uploaded" :
					 "cached", (now_ms() - t0) / 1000.0);
			vmchan_log(&vm->ch, "libvirt", line, (size_t)n);
		}
		rc.kernel = k;
		rc.initrd = i;
		vm_libvirt_domain_xml(&rc, vm->accel, vm->name, &owner, &xml);
		free(k);
		free(i);
	} else {
		vm_libvirt_domain_xml(cfg, vm->accel, vm->name, &owner, &xml);
	}
	{
		int fd = open(cfg->qemu_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			write_all(fd, xml.buf, xml.len);
			close(fd);
		}
	}
	/* the domain's name first: events may arrive before virDomainCreateXML returns */
	/* a daemon destroys the domain itself when this connection closes (klpq killed); the
	 * embedded driver cannot, its watchdog does */
	vm->dom = virDomainCreateXML(vm->conn, xml.buf, vm->root || strstr(vm->uri, ":///embed") ?
				     0 : VIR_DOMAIN_START_AUTODESTROY);
	if (!vm->dom) {
		virErrorPtr err = virGetLastError();

		lv_error(e, "the domain would not start");
		/* a definition libvirt rejects: the same next time. libvirt's internal error is
		 * also a QEMU that refuses its options, deterministic on this machine; on a
		 * remote host it is as often the host's trouble ("QEMU unexpectedly closed the
		 * monitor"), which another host may not have */
		if (err && (err->code == VIR_ERR_XML_ERROR || err->code == VIR_ERR_CONFIG_UNSUPPORTED ||
			    err->code == VIR_ERR_XML_DETAIL ||
			    (err->code == VIR_ERR_INTERNAL_ERROR && !vm->remote)))
			ret = VM_START_REFUSED;
		goto fail;
	}
	if (vm->root)
		lv_caps_cache(cfg->cache_dir, vm->root, 1); /* the first root's probe, for the next */
	if (lv_bridge_open(vm->conn, vm->dom, &vm->bridge[0], 1, &con_fd, e) < 0 ||
	    lv_bridge_open(vm->conn, vm->dom, &vm->bridge[1], 0, &agent_fd, e) < 0) {
		if (con_fd >= 0)
			close(con_fd);
		goto fail;
	}
	vmchan_attach(&vm->ch, con_fd, agent_fd);
	{
		unsigned long lib = 0, hv = 0;

		virConnectGetLibVersion(vm->conn, &lib);
		virConnectGetVersion(vm->conn, &hv);
		snprintf(vm->version, sizeof(vm->version), "%lu.%lu.%lu (libvirt %lu.%lu.%lu)",
			 hv / 1000000, hv / 1000 % 1000, hv % 1000, lib / 1000000, lib / 1000 % 1000,
			 lib % 1000);
	}
	*out = vm;
	ret = 0;
fail:
	sb_release(&xml);
	/* the connection died while the domain was being made: the host is gone */
	if (ret == -1 && vm->conn && !vm->root && virConnectIsAlive(vm->conn) != 1)
		ret = VM_START_NO_HOST;
	if (ret < 0)
		lvm_destroy(vm);
	return ret;
}

/* One QEMU monitor command with a deadline: libvirt's call waits for QEMU without one, and a
 * frozen QEMU must not freeze the cell. The call runs on a thread of its own; given up on, it
 * finishes (and frees its job) whenever QEMU answers or ends. 0 with *reply (free it), or -1. */
struct mon_job {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	virDomainPtr dom;
	char *cmd;
	unsigned flags;
	char *reply;
	int done, ok, abandoned;
	char err[256];
};

static void mon_job_free(struct mon_job *j)
{
	virDomainFree(j->dom);
	free(j->cmd);
	free(j->reply);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j);
}

static void *mon_thread(void *arg)
{
	struct mon_job *j = arg;
	char *reply = NULL;
	int ok = virDomainQemuMonitorCommand(j->dom, j->cmd, &reply, j->flags) == 0;
	int abandoned;

	pthread_mutex_lock(&j->mu);
	if (!ok) {
		virErrorPtr err = virGetLastError();
		snprintf(j->err, sizeof(j->err), "%s", err && err->message ? err->message : "?");
	}
	j->ok = ok;
	j->reply = reply;
	j->done = 1;
	abandoned = j->abandoned;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	if (abandoned)
		mon_job_free(j);
	return NULL;
}

static int monitor(struct lvm *vm, const char *cmd, int hmp, unsigned timeout_ms, char **reply,
		   struct kerr *e)
{
	struct mon_job *j = xcalloc(1, sizeof(*j));
	pthread_t t;
	pthread_attr_t a;
	struct timespec ts;
	int ret;

	*reply = NULL;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	virDomainRef(vm->dom);
	j->dom = vm->dom;
	j->cmd = xstrdup(cmd);
	j->flags = hmp ? VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP : 0;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, mon_thread, j)) {
		pthread_attr_destroy(&a);
		mon_job_free(j);
		return kerr_set(e, "cannot start a thread for the QEMU monitor");
	}
	pthread_attr_destroy(&a);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&j->mu);
	while (!j->done && pthread_cond_timedwait(&j->cv, &j->mu, &ts) == 0)
		;
	if (!j->done) {
		j->abandoned = 1; /* mon_thread frees it */
		pthread_mutex_unlock(&j->mu);
		return kerr_set(e, "QEMU monitor '%s': no answer within %.1f s", cmd,
				timeout_ms / 1000.0);
	}
	pthread_mutex_unlock(&j->mu);
	if (j->ok) {
		*reply = j->reply;
		j->reply = NULL;
		ret = 0;
	} else {
		ret = kerr_set(e, "QEMU monitor '%s': %s", cmd, j->err);
	}
	mon_job_free(j);
	return ret;
}

static enum vm_wait_result lvm_wait_ready(struct lvm *vm, unsigned timeout_ms,
					  json_object **ready, struct kerr *e)
{
	enum vm_wait_result r = vmchan_wait_ready(&vm->ch, timeout_ms, ready, e);
	char *reply = NULL;
	struct kerr ignore = KERR_INIT;

	/* what the domain runs on, not what it was asked for */
	if (r == VM_OK && monitor(vm, "{\"execute\":\"query-kvm\"}", 0, 10000, &reply,
				  &ignore) == 0) {
		json_object *o = json_tokener_parse(reply), *ret, *en;

		if (o && json_object_object_get_ex(o, "return", &ret) &&
		    json_object_object_get_ex(ret, "enabled", &en))
			snprintf(vm->accel, sizeof(vm->accel), "%s",
				 json_object_get_boolean(en) ? "kvm" : "tcg");
		json_object_put(o);
		free(reply);
	}
	return r;
}

static int lvm_alive(struct lvm *vm, unsigned timeout_ms)
{
	char *reply = NULL;
	struct kerr e = KERR_INIT;

	read_records(vm);
	if (vm->exited || !vm->dom)
		return 0;
	if (monitor(vm, "{\"execute\":\"query-status\"}", 0, timeout_ms, &reply, &e) < 0)
		return 0;
	free(reply);
	return 1;
}

static int lvm_dump(struct lvm *vm, struct sb *out, struct kerr *e)
{
	/* magic SysRq t, w, l (tasks, blocked tasks, every CPU's backtrace) as key presses:
	 * Alt+SysRq+key on the guest's keyboard (the kernel command line has
	 * sysrq_always_enabled); the dumps land in console.log */
	static const unsigned keys[] = { 20 /* t */, 17 /* w */, 38 /* l */ };
	char *reply = NULL;

	read_records(vm);
	if (vm->exited)
		return kerr_set(e, "the domain ended: %s", vm->reason);
	if (monitor(vm, "{\"execute\":\"query-status\"}", 0, 5000, &reply, e) < 0)
		return -1;
	sb_addf(out, "== QEMU monitor query-status (libvirt passthrough)\n%s\n", reply);
	free(reply);
	if (monitor(vm, "info registers -a", 1, 10000, &reply, e) < 0)
		return -1;
	sb_addf(out, "== QEMU monitor info registers -a\n%s\n", reply);
	free(reply);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		unsigned int combo[3] = { 56 /* left Alt */, 99 /* SysRq */, keys[i] };
		struct kerr ignore = KERR_INIT;

		if (virDomainSendKey(vm->dom, VIR_KEYCODE_SET_LINUX, 100, combo, 3, 0) < 0)
			return lv_error(e, "virDomainSendKey");
		sb_addf(out, "== sysrq %c sent (Alt+SysRq+key by virDomainSendKey)\n",
			"twl"[i]);
		vmchan_wait(&vm->ch, 2000, NULL, NULL, &ignore, "dump");
		if (vm->exited)
			break;
	}
	return 0;
}

static enum vm_wait_result lvm_pump(struct lvm *vm, unsigned ms, struct kerr *e)
{
	read_records(vm);
	if (vm->exited) {
		kerr_set(e, "the domain ended: %s", vm->reason);
		return VM_GONE;
	}
	return vmchan_wait(&vm->ch, ms, NULL, NULL, e, "pump");
}

static int lvm_host_ended(const struct lvm *vm)
{
	if (!vm->exited || vm->we_destroyed)
		return 0;
	if (vm->shutdown_why == WHY_GUEST_RESET || vm->shutdown_why == WHY_GUEST_SHUTDOWN ||
	    vm->shutdown_why == WHY_GUEST_PANIC)
		return 0;
	/* destroyed from outside, QEMU failed (killed), told to shut down by its host */
	return 1;
}

/* The bridges and the event callbacks are the event thread's: it closes and deregisters them
 * itself, so none of them runs after (or while) the VM is freed. */
static void teardown_cb(int timer, void *opaque)
{
	struct lvm *vm = opaque;

	virEventRemoveTimeout(timer);
	for (int i = 0; i < 2; i++)
		lv_bridge_close(&vm->bridge[i]);
	if (vm->lifecycle_id >= 0)
		virConnectDomainEventDeregisterAny(vm->conn, vm->lifecycle_id);
	if (vm->monitor_id >= 0)
		virConnectDomainQemuMonitorEventDeregister(vm->conn, vm->monitor_id);
	vm->lifecycle_id = vm->monitor_id = -1;
	if (write(vm->teardown_fd[1], "x", 1) < 0) {
		/* the waiter gives up after its own deadline */
	}
}

static void teardown(struct lvm *vm)
{
	if (!vm->conn)
		return;
	if (pipe2(vm->teardown_fd, O_CLOEXEC) == 0) {
		if (virEventAddTimeout(0, teardown_cb, vm, NULL) >= 0) {
			struct pollfd p = { vm->teardown_fd[0], POLLIN, 0 };

			poll(&p, 1, 5000);
		}
		close(vm->teardown_fd[0]);
		close(vm->teardown_fd[1]);
	}
}

static void copy_qemu_log(struct lvm *vm)
{
	/* the embedded driver's log of the domain's QEMU: its command line and messages */
	char *log;
	struct sb text = SB_INIT;
	struct kerr e = KERR_INIT;

	if (!vm->root || !vm->name)
		return;
	log = xasprintf("%s/log/qemu/%s.log", vm->root, vm->name);
	if (read_file(log, &text, 4 << 20, &e) == 0) {
		int fd = open(vm->cfg.qemu_log, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd >= 0) {
			write_all(fd, "\n", 1);
			write_all(fd, text.buf, text.len);
			close(fd);
		}
	}
	sb_release(&text);
	free(log);
}

static void lvm_stop(struct lvm *vm, unsigned grace_ms)
{
	struct kerr ignore = KERR_INIT;
	struct proto_msg m;

	vm->cfg.stop_fd = -1; /* already stopping: a pending Ctrl-C must not cut this short */
	if (!vm->dom)
		return;
	read_records(vm);
	if (!vm->exited && vm->ch.agent_fd >= 0 && vm->ch.ready &&
	    vmchan_agent_call(&vm->ch, "poweroff", NULL, grace_ms, &m, &ignore) == VM_OK) {
		proto_msg_release(&m);
		vmchan_wait(&vm->ch, grace_ms, NULL, NULL, &ignore, "poweroff");
	}
	read_records(vm);
	if (!vm->exited) {
		vm->we_destroyed = 1;
		virDomainDestroy(vm->dom);
		hook_settle(vm);
		if (!vm->exited) {
			vm->exited = 1;
			vm->stopped_detail = 1;
			set_reason(vm);
		}
	}
}

static void lvm_destroy(struct lvm *vm)
{
	if (!vm)
		return;
	lvm_stop(vm, 5000);
	teardown(vm);
	if (vm->dom)
		virDomainFree(vm->dom);
	copy_qemu_log(vm);
	if (vm->conn && vm->close_cb)
		virConnectUnregisterCloseCallback(vm->conn, on_close);
	if (vm->conn)
		virConnectClose(vm->conn);
	if (vm->ch_ready)
		vmchan_release(&vm->ch);
	for (int i = 0; i < 2; i++)
		lv_bridge_release(&vm->bridge[i]);
	if (vm->evpipe[0] >= 0)
		close(vm->evpipe[0]);
	if (vm->evpipe[1] >= 0)
		close(vm->evpipe[1]);
	if (vm->root)
		rm_rf(vm->root);
	lv_watchdog_stop(&vm->watchdog, &vm->watchdog_fd); /* after the root is gone: "done" */
	if (vm->root_lock >= 0)
		close(vm->root_lock);
	free(vm->root);
	free(vm->uri);
	free(vm->name);
	free(vm);
}

/* vm.h's interface: each operation takes the struct vm that heads a struct lvm */
#define LVM(v) ((struct lvm *)(v))
#define LVM_C(v) ((const struct lvm *)(v))

static int op_start(const struct vm_config *cfg, struct vm **out, struct kerr *e)
{
	struct lvm *vm = NULL;
	int ret = lvm_start(cfg, &vm, e);

	*out = vm ? &vm->base : NULL;
	return ret;
}

static int op_decide_accel(enum accel_kind want, const char *kernel, const struct accel_opts *o,
			   struct accel_choice *c, struct kerr *e)
{
	if (o->remote) {
		/* a trial boot here says nothing about the host: its hosts-file label does */
		memset(c, 0, sizeof(*c));
		if (want == ACCEL_KVM && !o->remote_kvm)
			return kerr_set(e, "vm.accel is kvm, and host %s has no label kvm in the hosts "
					"file (docs/pool.md)", o->remote);
		if (want != ACCEL_TCG && o->remote_kvm) {
			snprintf(c->accel, sizeof(c->accel), "kvm");
			snprintf(c->cpu, sizeof(c->cpu), "host");
			snprintf(c->reason, sizeof(c->reason), "host %s has the label kvm in the "
				 "hosts file", o->remote);
		} else {
			snprintf(c->accel, sizeof(c->accel), "tcg");
			snprintf(c->cpu, sizeof(c->cpu), "max");
			snprintf(c->reason, sizeof(c->reason), want == ACCEL_TCG ? "vm.accel is tcg" :
				 "host %s has no label kvm in the hosts file", o->remote);
		}
		return 0;
	}
	/* the embedded driver runs the same QEMU binary on this host: its trial boot holds */
	return accel_decide(want, kernel, o, c, e);
}

static const char *op_accel(const struct vm *v)
{
	return LVM_C(v)->accel;
}

static const char *op_version(const struct vm *v)
{
	return LVM_C(v)->version;
}

static enum vm_wait_result op_wait_ready(struct vm *v, unsigned ms, json_object **ready,
					 struct kerr *e)
{
	return lvm_wait_ready(LVM(v), ms, ready, e);
}

static enum vm_wait_result op_agent_call(struct vm *v, const char *op, json_object *args,
					 unsigned ms, struct proto_msg *reply, struct kerr *e)
{
	return vmchan_agent_call(&LVM(v)->ch, op, args, ms, reply, e);
}

static int op_dump(struct vm *v, struct sb *out, struct kerr *e)
{
	return lvm_dump(LVM(v), out, e);
}

static int op_alive(struct vm *v, unsigned ms)
{
	return lvm_alive(LVM(v), ms);
}

static enum vm_wait_result op_pump(struct vm *v, unsigned ms, struct kerr *e)
{
	return lvm_pump(LVM(v), ms, e);
}

static const char *op_exit_reason(const struct vm *v)
{
	return LVM_C(v)->exited ? LVM_C(v)->reason : NULL;
}

static int op_guest_reset(const struct vm *v)
{
	return LVM_C(v)->shutdown_why == WHY_GUEST_RESET;
}

static int op_host_ended(const struct vm *v)
{
	return lvm_host_ended(LVM_C(v));
}

static int op_log_errno(const struct vm *v)
{
	return LVM_C(v)->ch.log_errno;
}

static void op_channel_stats(const struct vm *v, uint64_t *oversized, uint64_t *malformed)
{
	vmchan_stats(&LVM_C(v)->ch, oversized, malformed);
}

static const char *op_host_lost(const struct vm *v)
{
	return *LVM_C(v)->lost ? LVM_C(v)->lost : NULL;
}

static void op_stop(struct vm *v, unsigned ms)
{
	lvm_stop(LVM(v), ms);
}

static void op_destroy(struct vm *v)
{
	lvm_destroy(LVM(v));
}

static const char *const libvirt_boot_modules[] = { "virtio_pci", "virtio_console", NULL };

const struct vm_backend vm_backend_libvirt = {
	.name = "libvirt",
	.guest_cmdline = "console=ttyS0,115200",
	.boot_modules = libvirt_boot_modules,
	.decide_accel = op_decide_accel,
	.start = op_start,
	.accel = op_accel,
	.version = op_version,
	.wait_ready = op_wait_ready,
	.agent_call = op_agent_call,
	.dump = op_dump,
	.alive = op_alive,
	.pump = op_pump,
	.exit_reason = op_exit_reason,
	.host_lost = op_host_lost,
	.guest_reset = op_guest_reset,
	.host_ended = op_host_ended,
	.log_errno = op_log_errno,
	.channel_stats = op_channel_stats,
	.stop = op_stop,
	.destroy = op_destroy,
};
