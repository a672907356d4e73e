/* vm-qemu.c: the QEMU backend (vm.h's interface, vm-qemu.h's QEMU-only helpers).
 *
 * It spawns qemu-system-x86_64 itself (the embedded default: no daemon) with direct kernel
 * boot, the serial console, the agent's virtio-serial port and QMP each on a unix socket that
 * klpq listens on and QEMU connects to. QEMU gets PR_SET_PDEATHSIG(SIGKILL), so it dies with
 * klpq, and its own process group, so Ctrl-C reaches klpq only (which then stops it). The
 * accelerator and CPU model come from accel.c (a trial boot), through this backend's
 * decide_accel.
 *
 * The VM's one loop is vm-chan.c's (the console, the agent channel, the stop descriptor, the
 * timers); this backend adds QMP (events, and the reply of the one command in flight: qvm_qmp
 * waits in that loop) and QEMU's pidfd, so its exit wakes the loop at once. */
#define _GNU_SOURCE
#include "vm-qemu.h"
#include "accel.h"
#include "vm-chan.h"
#include "qmp.h"
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

enum { CH_CONSOLE, CH_AGENT, CH_QMP, NR_CH };

struct qvm {
	struct vm base;           /* first: a struct vm * is a struct qvm * */
	struct vm_config cfg;
	struct child qemu;
	char *sockdir;
	int sockdir_lock;          /* flock held on sockdir/.lock while the folder lives */
	int pidfd;                 /* QEMU's pidfd (readable once it exited), or -1 */
	int listen_fd[NR_CH];
	int fd[NR_CH];             /* accepted; the console and agent pass to ch */
	struct vmchan ch;          /* the console and agent channels, the loop */
	int ch_ready;              /* ch initialised (its logs open) */
	struct qmp qmp;
	int qemu_log_fd;
	int exited;
	int exit_status;
	int guest_reset, guest_shutdown, guest_panicked;
	int host_shutdown;         /* QEMU told to end by its host (a signal, a QMP quit) */
	char reason[256];
	char accel[8];
	char version[64];
};

static int listen_unix(const char *path, struct kerr *e)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path))
		return kerr_set(e, "socket path too long: %s", path);
	strcpy(sa.sun_path, path); /* length checked above */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kerr_errno(e, "socket");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		kerr_errno(e, "cannot listen on %s", path);
		close(fd);
		return -1;
	}
	return fd;
}

static void on_qmp_event(void *ctx, const char *event, json_object *data)
{
	struct qvm *vm = ctx;
	char line[512];

	if (!strcmp(event, "SHUTDOWN")) {
		const char *reason = proto_get_str(data, "reason", "");
		if (!strcmp(reason, "guest-reset"))
			vm->guest_reset = 1;
		else if (!strcmp(reason, "guest-panic"))
			vm->guest_panicked = 1;
		else if (!strcmp(reason, "guest-shutdown"))
			vm->guest_shutdown = 1;
		else if (!strncmp(reason, "host-", 5))
			vm->host_shutdown = 1;
	} else if (!strcmp(event, "RESET")) {
		vm->guest_reset = 1;
	} else if (!strcmp(event, "GUEST_PANICKED")) {
		vm->guest_panicked = 1;
	}
	snprintf(line, sizeof(line), "QMP event %s %s", event,
		 data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN) : "");
	vmchan_log(&vm->ch, "qmp", line, strlen(line));
}

static void set_exit_reason(struct qvm *vm)
{
	char how[128];

	describe_status(vm->exit_status, how, sizeof(how));
	if (vm->guest_panicked)
		snprintf(vm->reason, sizeof(vm->reason), "guest panicked (QEMU %s)", how);
	else if (vm->guest_reset)
		snprintf(vm->reason, sizeof(vm->reason), "guest reset, QEMU %s (-no-reboot)", how);
	else if (vm->guest_shutdown)
		snprintf(vm->reason, sizeof(vm->reason), "guest powered off (QEMU %s)", how);
	else
		snprintf(vm->reason, sizeof(vm->reason), "QEMU %s", how);
}

static void check_exit(struct qvm *vm)
{
	int status;

	if (vm->exited || vm->qemu.pid <= 0)
		return;
	if (child_wait_timeout(&vm->qemu, 0, &status) == 1) {
		vm->exited = 1;
		vm->exit_status = status;
		/* drain QMP: the SHUTDOWN event may still be buffered */
		for (int i = 0; i < 64 && vm->qmp.fd >= 0 && !vm->qmp.closed; i++)
			if (qmp_read_available(&vm->qmp) < 0)
				break;
		set_exit_reason(vm);
	}
}

/* QEMU closes its sockets during its own cleanup, a moment before it can be reaped: a closed
 * channel is given that moment so it is reported as the guest's end, not a harness error. */
static void settle_exit(struct qvm *vm)
{
	for (uint64_t end = now_ms() + 2000; !vm->exited && now_ms() < end;) {
		check_exit(vm);
		if (vm->exited)
			break;
		if (vm->pidfd >= 0) {
			struct pollfd p = { vm->pidfd, POLLIN, 0 };
			uint64_t now = now_ms();

			poll(&p, 1, now < end ? (int)(end - now) : 0);
		} else {
			sleep_ms(20);
		}
	}
}

/* vm-chan.c's loop asks this backend for QMP and QEMU's pidfd */
static int hook_fds(void *be, struct pollfd *p, int max, unsigned *cap_ms)
{
	struct qvm *vm = be;
	int n = 0;

	if (vm->qmp.fd >= 0 && !vm->qmp.closed && n < max)
		p[n++] = (struct pollfd){ vm->qmp.fd, POLLIN, 0 };
	if (vm->pidfd >= 0 && !vm->exited && n < max)
		p[n++] = (struct pollfd){ vm->pidfd, POLLIN, 0 };
	else if (*cap_ms > 100)
		*cap_ms = 100; /* no pidfd: look for QEMU's exit every 100 ms */
	return n;
}

static void hook_event(void *be, const struct pollfd *p)
{
	struct qvm *vm = be;

	if (p->fd != vm->qmp.fd)
		return; /* the pidfd: QEMU exited, hook_ended reaps it */
	if ((p->revents & POLLNVAL) || qmp_read_available(&vm->qmp) < 0)
		vm->qmp.closed = 1; /* never polled again */
}

static int hook_ended(void *be)
{
	struct qvm *vm = be;

	check_exit(vm);
	return vm->exited;
}

static void hook_settle(void *be)
{
	settle_exit(be);
}

static const char *hook_reason(void *be)
{
	return ((struct qvm *)be)->reason;
}

static const struct vmchan_hooks qemu_hooks = {
	.fds = hook_fds, .event = hook_event, .ended = hook_ended, .settle = hook_settle,
	.reason = hook_reason,
};

static enum vm_wait_result wait_until(struct qvm *vm, unsigned timeout_ms, int (*done)(void *),
				      struct kerr *e, const char *what)
{
	return vmchan_wait(&vm->ch, timeout_ms, done, vm, e, what);
}

static int have_greeting(void *vm)
{
	return ((struct qvm *)vm)->qmp.greeted;
}

static int have_qmp_reply(void *vm)
{
	return qmp_have_reply(&((struct qvm *)vm)->qmp);
}

/* One QMP command through the VM's own loop: the console, the agent channel and QEMU's exit
 * are served while the reply is awaited. Takes args. 0 with *ret (may be NULL) its return,
 * or -1 with e set. */
static int qvm_qmp(struct qvm *vm, const char *cmd, json_object *args, unsigned timeout_ms,
		   json_object **ret, struct kerr *e)
{
	char what[64];

	if (ret)
		*ret = NULL;
	if (qmp_send_command(&vm->qmp, cmd, args, e) < 0)
		return -1;
	snprintf(what, sizeof(what), "QMP %s", cmd);
	if (wait_until(vm, timeout_ms, have_qmp_reply, e, what) != VM_OK) {
		qmp_forget(&vm->qmp);
		return -1;
	}
	return qmp_take_reply(&vm->qmp, cmd, ret, e);
}

static int accept_one(struct qvm *vm, int ch, unsigned timeout_ms, struct kerr *e)
{
	uint64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = { vm->listen_fd[ch], POLLIN, 0 };
		int r = poll(&p, 1, 50);
		if (r > 0) {
			int fd = accept4(vm->listen_fd[ch], NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				return kerr_errno(e, "accept");
			set_nonblock(fd);
			if (ch == CH_CONSOLE) {
				/* Room for many one-byte writes from the serial port while klpq
				 * lets them gather (see pump_once); FORCE works as root. */
				int sz = 8 << 20;
				if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
					setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
			}
			vm->fd[ch] = fd;
			return 0;
		}
		check_exit(vm);
		if (vm->exited)
			return kerr_set(e, "QEMU failed to start: %s (see %s)", vm->reason,
					vm->cfg.qemu_log);
		if (now_ms() > deadline)
			return kerr_set(e, "QEMU did not connect its sockets within %u s",
					timeout_ms / 1000);
	}
}

/* QEMU's first message in qemu.log (whose first line is the command line). */
static void qemu_first_error(const char *log, char *out, size_t len)
{
	struct sb text = SB_INIT;
	struct kerr e = KERR_INIT;
	const char *body;

	snprintf(out, len, "no message from QEMU");
	if (read_file(log, &text, 1 << 20, &e) == 0 && (body = strchr(text.buf, '\n')) &&
	    body[strspn(body, "\n")])
		vm_qemu_message(body, out, len);
	sb_release(&text);
}


static void qvm_destroy(struct qvm *vm);

static int qvm_start(const struct vm_config *cfg, struct qvm **out, struct kerr *e)
{
	struct qvm *vm = xcalloc(1, sizeof(*vm));
	static const char *const sock_names[NR_CH] = { "console.sock", "agent.sock", "qmp.sock" };
	char *sock[NR_CH] = { NULL };
	struct qemu_argv qa = { { NULL }, 0 };
	const char **argv;
	int ret = -1;

	*out = NULL;
	vm->base.be = &vm_backend_qemu;
	vm->cfg = *cfg;
	vm->qemu = (struct child)CHILD_INIT;
	vm->qemu_log_fd = -1;
	vm->ch.console_fd = vm->ch.agent_fd = -1; /* until vmchan_init */
	vm->sockdir_lock = -1;
	vm->pidfd = -1;
	for (int ch = 0; ch < NR_CH; ch++)
		vm->listen_fd[ch] = vm->fd[ch] = -1;
	qmp_init(&vm->qmp, -1, on_qmp_event, vm);
	snprintf(vm->accel, sizeof(vm->accel), "%s", cfg->accel && *cfg->accel ? cfg->accel : "tcg");
	/* Unix socket paths are limited to 108 bytes: keep them in a short private folder,
	 * /tmp/klpq-<uid>/vm-<pid>-XXXXXX, locked while it lives so that only a folder of a dead
	 * klpq is swept (sweep_dead) */
	vm->sockdir = make_locked_tmp("/tmp", "vm-", &vm->sockdir_lock, e);
	if (!vm->sockdir)
		goto fail;
	for (int ch = 0; ch < NR_CH; ch++) {
		sock[ch] = path_join(vm->sockdir, sock_names[ch]);
		vm->listen_fd[ch] = listen_unix(sock[ch], e);
		if (vm->listen_fd[ch] < 0)
			goto fail;
	}
	vm->ch_ready = 1; /* released by qvm_destroy even when it failed half-way */
	if (vmchan_init(&vm->ch, &vm->cfg, &qemu_hooks, vm, "QEMU", e) < 0)
		goto fail;
	vm->qemu_log_fd = open(cfg->qemu_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (vm->qemu_log_fd < 0) {
		kerr_errno(e, "cannot create the logs of VM %s", cfg->name);
		goto fail;
	}
	{
		const char *paths[NR_CH] = { sock[CH_CONSOLE], sock[CH_AGENT], sock[CH_QMP] };

		vm_qemu_argv(cfg, vm->accel, paths, &qa);
	}
	argv = (const char **)qa.v;
	vm->qemu.argv = argv;
	vm->qemu.out_fd = vm->qemu_log_fd;
	vm->qemu.pdeathsig = SIGKILL;
	vm->qemu.new_pgroup = 1;
	{
		struct sb cmd = SB_INIT;
		for (int i = 0; argv[i]; i++)
			sb_addf(&cmd, "%s%s", i ? " " : "", argv[i]);
		sb_addch(&cmd, '\n');
		write_all(vm->qemu_log_fd, cmd.buf, cmd.len);
		sb_release(&cmd);
	}
	if (child_start(&vm->qemu, e) < 0) {
		ret = VM_START_REFUSED; /* no such binary, not executable: the same next time */
		goto fail;
	}
	vm->qemu.argv = NULL; /* argv lives in qa, released below */
	/* QEMU's exit wakes the loop at once: its pidfd is polled with the channels (Linux 5.3;
	 * without one the loop looks every 100 ms) */
	vm->pidfd = (int)syscall(SYS_pidfd_open, vm->qemu.pid, 0);
	for (int ch = 0; ch < NR_CH; ch++)
		if (accept_one(vm, ch, 30000, e) < 0)
			goto fail;
	vmchan_attach(&vm->ch, vm->fd[CH_CONSOLE], vm->fd[CH_AGENT]);
	vm->fd[CH_CONSOLE] = vm->fd[CH_AGENT] = -1; /* the channels own them now */
	qmp_release(&vm->qmp);
	qmp_init(&vm->qmp, vm->fd[CH_QMP], on_qmp_event, vm);
	if (wait_until(vm, 30000, have_greeting, e, "QMP greeting") != VM_OK ||
	    qvm_qmp(vm, "qmp_capabilities", NULL, 30000, NULL, e) < 0)
		goto fail;
	{
		json_object *ver = NULL, *q = NULL;
		if (qvm_qmp(vm, "query-version", NULL, 10000, &ver, e) < 0)
			goto fail;
		if (json_object_object_get_ex(ver, "qemu", &q))
			snprintf(vm->version, sizeof(vm->version), "%d.%d.%d",
				 (int)proto_get_int(q, "major", 0), (int)proto_get_int(q, "minor", 0),
				 (int)proto_get_int(q, "micro", 0));
		json_object_put(ver);
	}
	{
		/* what QEMU runs on, not what it was asked for */
		json_object *kvm = NULL, *en = NULL;
		if (qvm_qmp(vm, "query-kvm", NULL, 10000, &kvm, e) < 0)
			goto fail;
		if (json_object_object_get_ex(kvm, "enabled", &en))
			snprintf(vm->accel, sizeof(vm->accel), "%s",
				 json_object_get_boolean(en) ? "kvm" : "tcg");
		json_object_put(kvm);
	}
	*out = vm;
	ret = 0;
fail:
	if (ret < 0 && vm->qemu.pid > 0 && !fd_readable(cfg->stop_fd)) {
		/* QEMU that ended by itself while starting (an abort, an exit code) refuses the
		 * same command line every time; a kill from outside (SIGKILL, SIGTERM) may not.
		 * Not when klpq is being stopped: then QEMU is killed at once (below), without
		 * giving it the moment to end by itself. */
		settle_exit(vm);
		if (vm->exited && !(WIFSIGNALED(vm->exit_status) &&
				    (WTERMSIG(vm->exit_status) == SIGKILL ||
				     WTERMSIG(vm->exit_status) == SIGTERM))) {
			char how[128], first[256];

			if (WIFSIGNALED(vm->exit_status) && WTERMSIG(vm->exit_status) == SIGABRT)
				snprintf(how, sizeof(how), "aborted (signal 6)");
			else
				describe_status(vm->exit_status, how, sizeof(how));
			qemu_first_error(cfg->qemu_log, first, sizeof(first));
			kerr_clear(e);
			kerr_set(e, "QEMU %s during start-up: %s (see %s)", how, first, cfg->qemu_log);
			ret = VM_START_REFUSED;
		}
	}
	for (int ch = 0; ch < NR_CH; ch++)
		free(sock[ch]);
	vm_qemu_argv_release(&qa);
	if (ret < 0)
		qvm_destroy(vm);
	return ret;
}

static const char *qvm_accel(const struct qvm *vm)
{
	return vm->accel;
}

static const char *qvm_version(const struct qvm *vm)
{
	return vm->version;
}

static enum vm_wait_result qvm_wait_ready(struct qvm *vm, unsigned timeout_ms, json_object **ready,
				  struct kerr *e)
{
	return vmchan_wait_ready(&vm->ch, timeout_ms, ready, e);
}

static enum vm_wait_result qvm_agent_call(struct qvm *vm, const char *op, json_object *args,
				  unsigned timeout_ms, struct proto_msg *reply, struct kerr *e)
{
	return vmchan_agent_call(&vm->ch, op, args, timeout_ms, reply, e);
}

static int qvm_alive(struct qvm *vm, unsigned timeout_ms)
{
	json_object *r = NULL;
	struct kerr e = KERR_INIT;
	int ok;

	if (vm->exited || vm->qmp.fd < 0 || vm->qmp.closed)
		return 0;
	ok = qvm_qmp(vm, "query-status", NULL, timeout_ms, &r, &e) == 0;
	json_object_put(r);
	return ok;
}

static enum vm_wait_result qvm_pump(struct qvm *vm, unsigned ms, struct kerr *e)
{
	if (vm->exited) {
		kerr_set(e, "QEMU ended: %s", vm->reason);
		return VM_GONE;
	}
	return wait_until(vm, ms, NULL, e, "pump");
}


static int qvm_dump(struct qvm *vm, struct sb *out, struct kerr *e)
{
	static const char sysrq[] = "twl"; /* tasks, blocked tasks, backtrace of every CPU */
	json_object *r = NULL, *args;

	if (vm->exited)
		return kerr_set(e, "QEMU ended: %s", vm->reason);
	if (qvm_qmp(vm, "query-status", NULL, 5000, &r, e) < 0)
		return -1;
	sb_addf(out, "== QMP query-status\n%s\n", json_object_to_json_string(r));
	json_object_put(r);
	r = NULL;
	args = json_object_new_object();
	json_object_object_add(args, "command-line", json_object_new_string("info registers -a"));
	if (qvm_qmp(vm, "human-monitor-command", args, 10000, &r, e) < 0)
		return -1;
	sb_addf(out, "== QMP info registers -a\n%s\n",
		json_object_is_type(r, json_type_string) ? json_object_get_string(r) : "?");
	json_object_put(r);
	/* magic SysRq over the serial line: a break, then the key (the kernel command line has
	 * sysrq_always_enabled); the dumps land in console.log */
	for (size_t i = 0; i < sizeof(sysrq) - 1; i++) {
		struct kerr ignore = KERR_INIT;

		args = json_object_new_object();
		json_object_object_add(args, "id", json_object_new_string("con"));
		if (qvm_qmp(vm, "chardev-send-break", args, 5000, NULL, e) < 0)
			return -1;
		if (vmchan_console_send(&vm->ch, &sysrq[i], 1, 2000) < 0)
			return kerr_errno(e, "writing to the serial console");
		sb_addf(out, "== sysrq %c sent (break + key on ttyS0)\n", sysrq[i]);
		wait_until(vm, 2000, NULL, &ignore, "dump");
		if (vm->exited)
			break;
	}
	return 0;
}

static const char *qvm_exit_reason(const struct qvm *vm)
{
	return vm->exited ? vm->reason : NULL;
}

static int qvm_guest_reset(const struct qvm *vm)
{
	return vm->guest_reset;
}

static int qvm_log_errno(const struct qvm *vm)
{
	return vm->ch.log_errno;
}

static int qvm_host_ended(const struct qvm *vm)
{
	if (!vm->exited || vm->guest_reset || vm->guest_shutdown || vm->guest_panicked)
		return 0;
	return vm->host_shutdown || WIFSIGNALED(vm->exit_status);
}

static void qvm_channel_stats(const struct qvm *vm, uint64_t *oversized, uint64_t *malformed)
{
	vmchan_stats(&vm->ch, oversized, malformed);
}


static void qvm_stop(struct qvm *vm, unsigned grace_ms)
{
	struct kerr ignore = KERR_INIT;
	struct proto_msg m;

	vm->cfg.stop_fd = -1; /* already stopping: a pending Ctrl-C must not cut this short */
	if (vm->qemu.pid <= 0 || vm->exited)
		goto reap;
	if (vm->ch.agent_fd >= 0 && vm->ch.ready &&
	    qvm_agent_call(vm, "poweroff", NULL, grace_ms, &m, &ignore) == VM_OK) {
		proto_msg_release(&m);
		/* no predicate: returns when QEMU exits (console drained) or at the deadline */
		wait_until(vm, grace_ms, NULL, &ignore, "poweroff");
	}
	if (!vm->exited && !vm->qmp.closed && vm->qmp.fd >= 0) {
		kerr_clear(&ignore);
		qvm_qmp(vm, "quit", NULL, 2000, NULL, &ignore);
		wait_until(vm, 2000, NULL, &ignore, "quit");
	}
reap:
	if (vm->qemu.pid > 0 && !vm->exited) {
		kill(vm->qemu.pid, SIGKILL);
		vm->exit_status = child_wait(&vm->qemu);
		vm->exited = 1;
		set_exit_reason(vm);
	}
}

static void qvm_destroy(struct qvm *vm)
{
	if (!vm)
		return;
	qvm_stop(vm, 5000);
	for (int ch = 0; ch < NR_CH; ch++) {
		if (vm->listen_fd[ch] >= 0)
			close(vm->listen_fd[ch]);
		if (ch != CH_QMP && vm->fd[ch] >= 0)
			close(vm->fd[ch]);
	}
	qmp_release(&vm->qmp);
	if (vm->ch_ready)
		vmchan_release(&vm->ch);
	if (vm->qemu_log_fd >= 0)
		close(vm->qemu_log_fd);
	if (vm->sockdir)
		rm_rf(vm->sockdir);
	free(vm->sockdir);
	if (vm->sockdir_lock >= 0)
		close(vm->sockdir_lock);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	free(vm);
}

/* vm.h's interface: each operation takes the struct vm that heads a struct qvm */
#define QVM(v) ((struct qvm *)(v))
#define QVM_C(v) ((const struct qvm *)(v))

static int op_start(const struct vm_config *cfg, struct vm **out, struct kerr *e)
{
	struct qvm *vm = NULL;
	int ret = qvm_start(cfg, &vm, e);

	*out = vm ? &vm->base : NULL;
	return ret;
}

static int op_decide_accel(enum accel_kind want, const char *kernel, const struct accel_opts *o,
			   struct accel_choice *c, struct kerr *e)
{
	return accel_decide(want, kernel, o, c, e);
}

static const char *op_accel(const struct vm *v)
{
	return qvm_accel(QVM_C(v));
}

static const char *op_version(const struct vm *v)
{
	return qvm_version(QVM_C(v));
}

static const char *op_exit_reason(const struct vm *v)
{
	return qvm_exit_reason(QVM_C(v));
}

static int op_guest_reset(const struct vm *v)
{
	return qvm_guest_reset(QVM_C(v));
}

static int op_host_ended(const struct vm *v)
{
	return qvm_host_ended(QVM_C(v));
}

static int op_log_errno(const struct vm *v)
{
	return qvm_log_errno(QVM_C(v));
}

static int op_alive(struct vm *v, unsigned ms)
{
	return qvm_alive(QVM(v), ms);
}

static void op_stop(struct vm *v, unsigned ms)
{
	qvm_stop(QVM(v), ms);
}

static void op_destroy(struct vm *v)
{
	qvm_destroy(QVM(v));
}

static void op_channel_stats(const struct vm *v, uint64_t *oversized, uint64_t *malformed)
{
	qvm_channel_stats(QVM_C(v), oversized, malformed);
}

static enum vm_wait_result op_wait_ready(struct vm *v, unsigned ms, json_object **ready,
					 struct kerr *e)
{
	return qvm_wait_ready(QVM(v), ms, ready, e);
}

static enum vm_wait_result op_agent_call(struct vm *v, const char *op, json_object *args,
					 unsigned ms, struct proto_msg *reply, struct kerr *e)
{
	return qvm_agent_call(QVM(v), op, args, ms, reply, e);
}

static enum vm_wait_result op_pump(struct vm *v, unsigned ms, struct kerr *e)
{
	return qvm_pump(QVM(v), ms, e);
}

static int op_dump(struct vm *v, struct sb *out, struct kerr *e)
{
	return qvm_dump(QVM(v), out, e);
}

/* the virtio modules the guest loads before its agent can open the port */
static const char *const qemu_boot_modules[] = { "virtio_pci", "virtio_console", NULL };

const struct vm_backend vm_backend_qemu = {
	.name = "qemu",
	.guest_cmdline = "console=ttyS0,115200",
	.boot_modules = qemu_boot_modules,
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
	.guest_reset = op_guest_reset,
	.host_ended = op_host_ended,
	.log_errno = op_log_errno,
	.channel_stats = op_channel_stats,
	.stop = op_stop,
	.destroy = op_destroy,
};
