/* agent.c: klpq-agent, the guest side of the agent protocol (docs/protocol.md).
 *
 * Runs as PID 1 (/init) of the initramfs klpq builds: mounts the basic file systems, loads the
 * modules listed in /klpq/boot-modules, finds the virtio-serial port "org.klpq.agent" and serves
 * requests from it one at a time, in a single poll loop that also sends heartbeats and reaps
 * orphans. `klpq-agent --port SOCKET` runs the same loop as an ordinary process connected to a
 * unix socket, so it can be exercised on the host.
 *
 * Being init shapes the code: PID 1 must never exit (the kernel would panic), so a fatal error
 * powers the machine off; a lost port is reopened; and every child the kernel re-parents to us
 * must be reaped. Messages are built and parsed by harness/proto.c only. Everything the agent
 * holds is bounded: the line reader, probe output, kmsg and task listings.
 */
#define _GNU_SOURCE
#include "proto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AGENT_VERSION "klpq-agent 1"
#define PORT_NAME "org.klpq.agent"
#define VIRTIO_PORTS_DIR "/sys/class/virtio-ports"
#define BOOT_MODULES "/klpq/boot-modules"
#define LIVEPATCH_DIR "/sys/kernel/livepatch"
#define AGENT_PATH "/bin:/sbin:/usr/bin:/usr/sbin"

#define HEARTBEAT_MS 2000
#define PORT_WAIT_MS 15000     /* for the port to show up at boot */
#define REOPEN_MS 500          /* between attempts to reopen a lost port */
#define SEND_TIMEOUT_MS 5000   /* a host that stops reading must not freeze init */
#define KILL_GRACE_MS 5000     /* a probe stuck in D state may outlive SIGKILL */
#define MARK_WAIT_MS 1000

#define BOOT_LIST_MAX (64 * 1024)
#define EXEC_MAX_ARGS 256
#define EXEC_MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define EXEC_OUTPUT_MAX (16 * 1024)
#define MARK_TEXT_MAX 256
#define KMSG_RECORD_MAX 8192   /* the kernel's CONSOLE_EXT_LOG_MAX: a read never needs more */
#define KMSG_MAX_RECORDS 512
#define KMSG_MAX_TEXT (48 * 1024)
#define TASKS_MAX 64
#define STACK_MAX_LINES 32
#define PENDING_LOGS 16

/*
 * The protocol's own limits (16 KiB of output, 48 KiB of kmsg text, 64 tasks of 32 stack lines)
 * can add up to more than one KLPQ_PROTO_MAX_LINE once JSON escaping and the other members are
 * counted. These budgets bound the escaped size of what a reply carries, leaving room for the
 * envelope; hitting one sets "truncated" like the protocol's limits do.
 */
#define EXEC_OUTPUT_BUDGET (48 * 1024)
#define REPLY_BUDGET (KLPQ_PROTO_MAX_LINE - 1024)
#define KMSG_RECORD_OVERHEAD 40  /* {"seq":,"level":N,"ts_us":,"text":}, plus a comma */
#define TASK_OVERHEAD 160        /* {"pid":N,"tid":N,"comm":,"patch_state":N,"stack":[]} */

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

#define AGENT_FMT(a, b) __attribute__((format(printf, a, b)))

struct agent {
	int is_init;             /* PID 1 in the guest (not the host test mode) */
	const char *sock_path;   /* host test mode: unix socket to connect to */
	char port_dev[PATH_MAX]; /* guest: /dev/vportNpM */
	int console_fd;          /* diagnostics; -1: stderr */
	int port_fd;             /* -1 while the port is closed */
	int port_up;             /* "ready" went out on the current port */
	int said_waiting;        /* "host not connected" printed once per outage */
	int sig_fd;              /* signalfd for SIGCHLD: reaping happens in the poll loop */
	struct proto_reader rd;
	uint64_t next_beat;      /* CLOCK_MONOTONIC ms */
	uint64_t reopen_at;
	int poweroff;            /* set by do_poweroff: power off once its reply is out */
	/* Diagnostics from before the port opened, sent as "log" events once it has. */
	char pending[PENDING_LOGS][256];
	int npending;
};

/* One request being served: do_<op>() fills result or calls fail() once. */
struct req {
	struct agent *a;
	const char *op;
	json_object *args;   /* the whole request, borrowed */
	json_object *result; /* owned until the reply is built */
	int failed;
	int err_no;
	char error[512];     /* longer messages are cut: they are for people */
};

/* A child started by exec. */
struct probe {
	pid_t pid;
	int out_fd;          /* read end of the stdout+stderr pipe; -1 once closed */
	int exited;
	int status;
	int timed_out;
	int truncated;
	size_t out_len;
	char out[EXEC_OUTPUT_MAX];
};

static uint64_t clock_ms(clockid_t clock)
{
	struct timespec ts;

	/* Fails only for an invalid clock id or pointer. */
	if (clock_gettime(clock, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* Time since boot, suspend included: what the host compares with the guest's kernel log. */
static uint64_t uptime_ms(void)
{
	return clock_ms(CLOCK_BOOTTIME);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

static void vdiag(struct agent *a, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "klpq-agent: ");
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);

	/* A cut diagnostic is still worth printing. */
	if (m < 0)
		m = 0;
	n = n + m < (int)sizeof(buf) - 1 ? n + m : (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	write_all(a->console_fd >= 0 ? a->console_fd : STDERR_FILENO, buf, (size_t)n);
}

/* A line on the console (stderr in host mode). */
static void AGENT_FMT(2, 3) diag(struct agent *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(a, fmt, ap);
	va_end(ap);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	/* An early wake-up only shortens a wait every caller loops around. */
	nanosleep(&ts, NULL);
}

static void __attribute__((noreturn)) power_off(struct agent *a)
{
	sync();
	if (!a->is_init)
		exit(0);
	reboot(RB_POWER_OFF);
	/* Returning from here would kill init and panic the kernel: wait for the host instead. */
	diag(a, "power off failed: %s; halting", strerror(errno));
	for (;;)
		pause();
}

static void __attribute__((noreturn)) AGENT_FMT(2, 3) die(struct agent *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(a, fmt, ap);
	va_end(ap);
	if (!a->is_init)
		exit(1);
	diag(a, "fatal error; powering off");
	power_off(a);
}

/* snprintf that reports truncation as ENAMETOOLONG instead of using a cut path. */
static int AGENT_FMT(3, 4) path_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Reads at most size - 1 bytes of a (small, usually virtual) file, NUL-terminated. */
static int read_text_file(const char *path, char *buf, size_t size, size_t *len)
{
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), saved;

	if (fd < 0)
		return -1;
	while (got < size - 1) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	if (len)
		*len = got;
	return 0;
}

/* A file holding one decimal integer, as sysfs and procfs files do. */
static int read_int_file(const char *path, int64_t *out)
{
	char buf[64], *end;
	long long v;

	if (read_text_file(path, buf, sizeof(buf), NULL) < 0)
		return -1;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n')) {
		errno = EINVAL;
		return -1;
	}
	*out = v;
	return 0;
}

static void strip_newline(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static int is_number(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* A name used as one path component under sysfs: no '/', not "", "." or "..". */
static int name_is_component(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

/* Escaped size of a JSON string, quotes included: what json-c emits, or a little more. */
static size_t json_cost(const char *s, size_t len)
{
	size_t cost = 2;

	for (size_t i = 0; i < len; i++) {
		switch (s[i]) {
		case '\b': case '\f': case '\n': case '\r': case '\t':
		case '"': case '\\': case '/':
			cost += 2;
			break;
		default:
			cost += (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? 6 : 1;
		}
	}
	return cost;
}

static size_t digits(uint64_t v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* The longest prefix of s whose escaped form fits budget; a cut never splits a UTF-8
 * sequence, so strict JSON readers on the host still accept the text. */
static size_t json_fit(const char *s, size_t len, size_t budget)
{
	size_t cost = 2, i;

	for (i = 0; i < len; i++) {
		size_t c = json_cost(s + i, 1) - 2;
		if (cost + c > budget)
			break;
		cost += c;
	}
	if (i < len)
		while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
			i--;
	return i;
}

/* json-c's allocation failures leave a member out, which the host reports as a missing
 * field; not worth failing a probe over. */
static void put(json_object *o, const char *key, json_object *val)
{
	if (val && json_object_object_add(o, key, val) < 0)
		json_object_put(val);
}

static void put_int(json_object *o, const char *key, int64_t v)
{
	put(o, key, json_object_new_int64(v));
}

static void put_str(json_object *o, const char *key, const char *s)
{
	put(o, key, json_object_new_string(s));
}

static void put_bool(json_object *o, const char *key, int v)
{
	put(o, key, json_object_new_boolean(v));
}

static void append(json_object *array, json_object *val)
{
	if (val && json_object_array_add(array, val) < 0)
		json_object_put(val);
}

/* --- the port --- */

static void port_close(struct agent *a, const char *why)
{
	if (a->port_fd < 0)
		return;
	if (a->port_up)
		diag(a, "port closed (%s); reopening", why);
	close(a->port_fd);
	a->port_fd = -1;
	a->port_up = 0;
	a->reopen_at = mono_ms() + REOPEN_MS;
}

/*
 * Sends one line. The port is non-blocking so that a host that stops reading costs at most
 * SEND_TIMEOUT_MS; then the line is dropped and the port closed. A line cut short that way
 * reaches the host as one malformed line, which its reader drops.
 */
static int port_send(struct agent *a, const char *line, size_t len)
{
	uint64_t deadline = mono_ms() + SEND_TIMEOUT_MS;
	size_t off = 0;

	if (a->port_fd < 0)
		return -1;
	while (off < len) {
		ssize_t n = write(a->port_fd, line + off, len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { a->port_fd, POLLOUT, 0 };
			uint64_t now = mono_ms();
			int r;

			if (now >= deadline) {
				port_close(a, "host stopped reading");
				return -1;
			}
			r = poll(&p, 1, (int)(deadline - now));
			if (r < 0 && errno != EINTR) {
				port_close(a, strerror(errno));
				return -1;
			}
			/* virtio-serial reports a host that is not connected as POLLHUP */
			if (r > 0 && !(p.revents & POLLOUT)) {
				port_close(a, "hangup");
				return -1;
			}
			continue;
		}
		port_close(a, n < 0 ? strerror(errno) : "write returned 0");
		return -1;
	}
	return 0;
}

/* Sends a built line (consumed); NULL means the builder found it too large. */
static int send_line(struct agent *a, char *line, size_t len, const char *what)
{
	int ret;

	if (!line) {
		diag(a, "%s larger than the protocol allows; not sent", what);
		return -1;
	}
	ret = port_send(a, line, len);
	free(line);
	return ret;
}

static int send_event(struct agent *a, const char *event, json_object *fields)
{
	size_t len;
	char *line = proto_event(event, fields, &len);

	return send_line(a, line, len, event);
}

/* A diagnostic for the console and, as a "log" event, for the host. */
static void AGENT_FMT(2, 3) send_log(struct agent *a, const char *fmt, ...)
{
	char text[512];
	json_object *f;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	diag(a, "%s", text);
	f = json_object_new_object();
	if (f) {
		put_str(f, "text", text);
		send_event(a, "log", f);
	}
}

/* A diagnostic from before the port exists: console now, host later (a few are kept). */
static void AGENT_FMT(2, 3) note(struct agent *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(a, fmt, ap);
	va_end(ap);
	if (a->npending < PENDING_LOGS) {
		va_start(ap, fmt);
		vsnprintf(a->pending[a->npending++], sizeof(a->pending[0]), fmt, ap);
		va_end(ap);
	}
}

/* kernel, uptime_ms, agent: the "ready" event and the hello reply. */
static void add_identity(json_object *o)
{
	struct utsname u;

	put_str(o, "kernel", uname(&u) == 0 ? u.release : "unknown");
	put_int(o, "uptime_ms", (int64_t)uptime_ms());
	put_str(o, "agent", AGENT_VERSION);
}

static void send_ready(struct agent *a)
{
	json_object *f = json_object_new_object();

	if (!f)
		return;
	add_identity(f);
	if (send_event(a, "ready", f) < 0)
		return;
	a->port_up = 1;
	for (int i = 0; i < a->npending && a->port_fd >= 0; i++) {
		json_object *l = json_object_new_object();
		if (!l)
			break;
		put_str(l, "text", a->pending[i]);
		send_event(a, "log", l);
	}
	if (a->port_fd >= 0)
		a->npending = 0;
}

static int open_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, saved;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Opens the port (guest device or host socket), starts a fresh reader and sends "ready". */
static int port_open(struct agent *a)
{
	int fd;

	if (a->is_init)
		fd = open(a->port_dev, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	else
		fd = open_socket(a->sock_path);
	if (fd < 0 || (!a->is_init && set_nonblock(fd) < 0)) {
		int saved = errno;
		if (fd >= 0)
			close(fd);
		errno = saved;
		return -1;
	}
	a->port_fd = fd;
	/* Half a line left from the previous connection must not prefix the next request. */
	proto_reader_release(&a->rd);
	proto_reader_init(&a->rd);
	send_ready(a);
	if (a->port_up) {
		a->said_waiting = 0;
	} else if (!a->said_waiting) {
		/* Opened, but nobody listens on the host side yet: retried quietly. */
		diag(a, "host side of the port not connected; retrying every %d ms", REOPEN_MS);
		a->said_waiting = 1;
	}
	return 0;
}

static void heartbeat_if_due(struct agent *a)
{
	uint64_t now = mono_ms();
	json_object *f;

	if (now < a->next_beat)
		return;
	/* From now, not from the missed deadline: no burst after a long blocking call. */
	a->next_beat = now + HEARTBEAT_MS;
	if (a->port_fd < 0 || !a->port_up)
		return;
	f = json_object_new_object();
	if (!f)
		return;
	put_int(f, "uptime_ms", (int64_t)uptime_ms());
	send_event(a, "heartbeat", f);
}

static int ms_until(uint64_t when)
{
	uint64_t now = mono_ms();

	if (when <= now)
		return 0;
	return when - now > INT_MAX ? INT_MAX : (int)(when - now);
}

/*
 * Reaps every child that has ended. The one the agent waits for itself (pr, may be NULL) gets
 * its status recorded; any other is an orphan re-parented to init, or a probe given up on
 * after SIGKILL, and is just collected.
 */
static void reap(struct agent *a, struct probe *pr)
{
	struct signalfd_siginfo si;

	/* SIGCHLD coalesces: one pending signal may stand for many children. */
	while (read(a->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		if (pr && pid == pr->pid) {
			pr->status = status;
			pr->exited = 1;
		}
	}
}

/* --- module helpers --- */

static int load_module(const char *path, const char *params)
{
	size_t n = strlen(path);
	unsigned flags = 0;
	int fd, ret, saved;

	/* Kernels with CONFIG_MODULE_DECOMPRESS take compressed modules as they are. */
	if ((n > 3 && !strcmp(path + n - 3, ".xz")) || (n > 4 && !strcmp(path + n - 4, ".zst")) ||
	    (n > 3 && !strcmp(path + n - 3, ".gz")))
		flags |= MODULE_INIT_COMPRESSED_FILE;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = (int)syscall(SYS_finit_module, fd, params, flags);
	saved = errno;
	close(fd);
	errno = saved;
	return ret < 0 ? -1 : 0;
}

/* --- requests --- */

/* Fails the request once (the first, most specific cause wins); returns -1. */
static int AGENT_FMT(3, 4) fail(struct req *rq, int err_no, const char *fmt, ...)
{
	va_list ap;

	if (rq->failed)
		return -1;
	va_start(ap, fmt);
	vsnprintf(rq->error, sizeof(rq->error), fmt, ap);
	va_end(ap);
	rq->err_no = err_no;
	rq->failed = 1;
	return -1;
}

/* Like fail(), with errno and its text. */
static int AGENT_FMT(2, 3) fail_errno(struct req *rq, const char *fmt, ...)
{
	int e = errno;
	char what[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return fail(rq, e, "%s: %s", what, strerror(e));
}

static const char *arg_str(struct req *rq, const char *key)
{
	const char *s = proto_get_str(rq->args, key, NULL);

	if (!s)
		fail(rq, EINVAL, "%s: argument \"%s\" missing or not a string", rq->op, key);
	return s;
}

/* An integer argument in [min, max]; absent means def when def_ok. */
static int arg_int(struct req *rq, const char *key, int64_t min, int64_t max, int def_ok,
		   int64_t def, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(rq->args, key, &v)) {
		if (!def_ok)
			return fail(rq, EINVAL, "%s: argument \"%s\" missing", rq->op, key);
		*out = def;
		return 0;
	}
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < min ||
	    json_object_get_int64(v) > max)
		return fail(rq, EINVAL, "%s: argument \"%s\" must be an integer from %lld to %lld",
			    rq->op, key, (long long)min, (long long)max);
	*out = json_object_get_int64(v);
	return 0;
}

static int do_hello(struct req *rq)
{
	add_identity(rq->result);
	return 0;
}

static int do_load(struct req *rq)
{
	const char *path = arg_str(rq, "path");
	const char *params = "";

	if (!path)
		return -1;
	if (json_object_object_get_ex(rq->args, "params", NULL) &&
	    !(params = arg_str(rq, "params")))
		return -1;
	if (load_module(path, params) < 0)
		return fail_errno(rq, "load %s", path);
	return 0;
}

static int do_unload(struct req *rq)
{
	const char *name = arg_str(rq, "name");
	char mod[64];

	if (!name)
		return -1;
	if (!name_is_component(name) || strlen(name) >= sizeof(mod))
		return fail(rq, EINVAL, "unload: bad module name \"%s\"", name);
	/* The kernel knows modules by their underscore spelling, as rmmod normalises. */
	for (size_t i = 0; ; i++) {
		mod[i] = name[i] == '-' ? '_' : name[i];
		if (!name[i])
			break;
	}
	if (syscall(SYS_delete_module, mod, O_NONBLOCK) < 0)
		return fail_errno(rq, "unload %s", mod);
	return 0;
}

static int skip_dots(const struct dirent *de)
{
	return de->d_name[0] != '.';
}

/* One object of a patch: a subdirectory with a "patched" file. NULL when it is not one. */
static json_object *lp_object(const char *patch_dir, const char *name)
{
	char path[PATH_MAX];
	int64_t patched;
	json_object *o;

	if (path_fmt(path, sizeof(path), "%s/%s/patched", patch_dir, name) < 0 ||
	    read_int_file(path, &patched) < 0)
		return NULL;
	o = json_object_new_object();
	if (o) {
		/* livepatch lists every object of a patch; one for a module is patched only while
		 * that module is loaded (vmlinux always is): say which */
		char state[32] = "";
		int loaded = !strcmp(name, "vmlinux");

		if (!loaded && path_fmt(path, sizeof(path), "/sys/module/%s/initstate", name) == 0) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				ssize_t got = read(fd, state, sizeof(state) - 1);
				close(fd);
				if (got > 0)
					state[got] = '\0';
				loaded = !strncmp(state, "live", 4) || !strncmp(state, "coming", 6);
			}
		}
		put_str(o, "name", name);
		put_int(o, "patched", patched);
		put_int(o, "loaded", loaded);
	}
	return o;
}

/* A state file of a patch, or -1 where this kernel lacks it (or it vanished meanwhile). */
static int64_t lp_value(const char *patch_dir, const char *file)
{
	char path[PATH_MAX];
	int64_t v;

	if (path_fmt(path, sizeof(path), "%s/%s", patch_dir, file) < 0 ||
	    read_int_file(path, &v) < 0)
		return -1;
	return v;
}

static json_object *lp_patch(const char *name)
{
	char dir[PATH_MAX];
	struct dirent **ents = NULL;
	json_object *p, *objs;
	int n;

	if (path_fmt(dir, sizeof(dir), LIVEPATCH_DIR "/%s", name) < 0)
		return NULL;
	p = json_object_new_object();
	objs = json_object_new_array();
	if (!p || !objs) {
		json_object_put(p);
		json_object_put(objs);
		return NULL;
	}
	put_str(p, "name", name);
	put_int(p, "enabled", lp_value(dir, "enabled"));
	put_int(p, "transition", lp_value(dir, "transition"));
	put_int(p, "replace", lp_value(dir, "replace"));
	put_int(p, "stack_order", lp_value(dir, "stack_order"));
	n = scandir(dir, &ents, skip_dots, alphasort);
	for (int i = 0; i < n; i++) {
		append(objs, lp_object(dir, ents[i]->d_name));
		free(ents[i]);
	}
	free(ents);
	put(p, "objects", objs);
	return p;
}

static int do_lp_state(struct req *rq)
{
	struct dirent **ents = NULL;
	json_object *patches = json_object_new_array();
	int n;

	if (!patches)
		return fail(rq, ENOMEM, "lp_state: out of memory");
	n = scandir(LIVEPATCH_DIR, &ents, skip_dots, alphasort);
	if (n < 0 && errno != ENOENT) { /* no directory: no patch ever loaded */
		json_object_put(patches);
		return fail_errno(rq, "lp_state: " LIVEPATCH_DIR);
	}
	for (int i = 0; i < n; i++) {
		append(patches, lp_patch(ents[i]->d_name));
		free(ents[i]);
	}
	free(ents);
	put(rq->result, "patches", patches);
	return 0;
}

static int do_lp_enable(struct req *rq)
{
	const char *name = arg_str(rq, "name");
	json_object *v;
	char path[PATH_MAX];
	int enabled, fd, ret;

	if (!name)
		return -1;
	if (!name_is_component(name))
		return fail(rq, EINVAL, "lp_enable: bad patch name \"%s\"", name);
	/* Booleans are accepted too: "enabled" reads naturally as one. */
	if (json_object_object_get_ex(rq->args, "enabled", &v) &&
	    json_object_is_type(v, json_type_boolean)) {
		enabled = json_object_get_boolean(v) ? 1 : 0;
	} else {
		int64_t e;
		if (arg_int(rq, "enabled", 0, 1, 0, 0, &e) < 0)
			return -1;
		enabled = (int)e;
	}
	if (path_fmt(path, sizeof(path), LIVEPATCH_DIR "/%s/enabled", name) < 0)
		return fail_errno(rq, "lp_enable %s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(rq, "lp_enable %s: open %s", name, path);
	ret = write_all(fd, enabled ? "1" : "0", 1);
	if (ret < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return fail_errno(rq, "lp_enable %s: write %d", name, enabled);
	}
	/* sysfs stores on write; close reports nothing new, but check it anyway */
	if (close(fd) < 0)
		return fail_errno(rq, "lp_enable %s: close", name);
	return 0;
}

/* Writes one value to a sysctl, /proc/sys/<key with dots as slashes>, as sysctl(8) does; the
 * kernel's refusal comes back as the errno. */
static int do_sysctl(struct req *rq)
{
	const char *key = arg_str(rq, "key"), *value = arg_str(rq, "value");
	char path[PATH_MAX], line[272];
	int fd, n;

	if (!key || !value)
		return -1;
	if (!*key || *key == '.' || strstr(key, "..") || strlen(value) > 256 ||
	    strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(key))
		return fail(rq, EINVAL, "sysctl: bad key \"%s\" or value", key);
	if (path_fmt(path, sizeof(path), "/proc/sys/%s", key) < 0)
		return fail_errno(rq, "sysctl %s", key);
	for (char *c = path + strlen("/proc/sys/"); *c; c++)
		if (*c == '.')
			*c = '/';
	n = snprintf(line, sizeof(line), "%s\n", value);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(rq, "sysctl %s: open %s", key, path);
	if (write_all(fd, line, (size_t)n) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return fail_errno(rq, "sysctl %s = %s", key, value);
	}
	if (close(fd) < 0)
		return fail_errno(rq, "sysctl %s: close", key);
	return 0;
}

/* Runs in the forked child: only async-signal-safe calls until execvp. Never returns. */
static void __attribute__((noreturn)) probe_child(char *const argv[], int out_fd, int err_fd)
{
	sigset_t none;
	int null_fd, e;
	ssize_t ignored;

	/* The agent blocks SIGCHLD (for its signalfd) and ignores SIGPIPE; masks and ignored
	 * signals survive exec, and a probe expects the defaults. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	/* Its own process group, so a timeout kills whatever it started too. */
	setsid();
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd >= 0 && dup2(null_fd, STDIN_FILENO) >= 0 && dup2(out_fd, STDOUT_FILENO) >= 0 &&
	    dup2(out_fd, STDERR_FILENO) >= 0)
		execvp(argv[0], argv);
	e = errno;
	ignored = write(err_fd, &e, sizeof(e));
	(void)ignored;
	_exit(127);
}

/*
 * Forks and execs argv with stdout and stderr on one pipe. A close-on-exec pipe carries the
 * child's errno back when exec fails, so that becomes an error reply rather than a probe that
 * "exited 127". -1 with errno on failure.
 */
static int probe_start(struct probe *pr, char *const argv[])
{
	int out[2], ep[2], child_errno, saved;
	ssize_t n;
	pid_t pid;

	if (pipe2(out, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(ep, O_CLOEXEC) < 0)
		goto fail_out;
	pid = fork();
	if (pid < 0)
		goto fail_ep;
	if (pid == 0)
		probe_child(argv, out[1], ep[1]);
	close(out[1]);
	close(ep[1]);
	do
		n = read(ep[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n == (ssize_t)sizeof(child_errno)) {
		/* The child is about to _exit(127): waiting for this one pid is short and
		 * cannot take another child's status. */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(out[0]);
		errno = child_errno;
		return -1;
	}
	if (set_nonblock(out[0]) < 0) {
		/* Blocking reads would stall the loop; a probe we cannot watch is killed. */
		saved = errno;
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(out[0]);
		errno = saved;
		return -1;
	}
	pr->pid = pid;
	pr->out_fd = out[0];
	return 0;

fail_ep:
	saved = errno;
	close(ep[0]);
	close(ep[1]);
	errno = saved;
fail_out:
	saved = errno;
	close(out[0]);
	close(out[1]);
	errno = saved;
	return -1;
}

/* Reads what the pipe holds, at most max bytes this call so a chatty probe cannot starve the
 * loop; keeps EXEC_OUTPUT_MAX bytes and counts the rest as truncation. */
static void probe_read(struct probe *pr, size_t max)
{
	char scratch[4096];
	size_t done = 0;

	while (pr->out_fd >= 0 && done < max) {
		size_t room = sizeof(pr->out) - pr->out_len;
		char *dst = room ? pr->out + pr->out_len : scratch;
		ssize_t n = read(pr->out_fd, dst, room ? room : sizeof(scratch));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) { /* EOF, or an error that ends the output all the same */
			close(pr->out_fd);
			pr->out_fd = -1;
			return;
		}
		if (room)
			pr->out_len += (size_t)n;
		else
			pr->truncated = 1;
		done += (size_t)n;
	}
}

static void probe_kill(struct probe *pr)
{
	/* The group first (setsid made the probe its leader); the pid too, in case the child
	 * had not reached setsid yet. */
	kill(-pr->pid, SIGKILL);
	kill(pr->pid, SIGKILL);
}

/*
 * Waits for the probe: collects output, sends heartbeats, reaps, and kills the process group
 * at the timeout. Output is collected until the probe itself exits, not until EOF: a
 * background child keeping the pipe open must not turn a finished probe into a timeout.
 */
static void probe_wait(struct agent *a, struct probe *pr, uint64_t timeout_ms)
{
	uint64_t deadline = mono_ms() + timeout_ms, kill_deadline = 0;

	while (!pr->exited) {
		struct pollfd p[2] = { { a->sig_fd, POLLIN, 0 }, { pr->out_fd, POLLIN, 0 } };
		uint64_t now = mono_ms(), wake;
		int r;

		if (!pr->timed_out && now >= deadline) {
			probe_kill(pr);
			pr->timed_out = 1;
			kill_deadline = now + KILL_GRACE_MS;
		}
		if (pr->timed_out && now >= kill_deadline) {
			/* Stuck in the kernel (D state). reap() collects it whenever it ends. */
			send_log(a, "probe %d still alive %d ms after SIGKILL; not waiting longer",
				 (int)pr->pid, KILL_GRACE_MS);
			break;
		}
		heartbeat_if_due(a);
		wake = pr->timed_out ? kill_deadline : deadline;
		if (a->next_beat < wake)
			wake = a->next_beat;
		r = poll(p, pr->out_fd >= 0 ? 2 : 1, ms_until(wake));
		if (r < 0 && errno != EINTR) {
			send_log(a, "exec: poll: %s; killing probe %d", strerror(errno),
				 (int)pr->pid);
			probe_kill(pr);
			pr->timed_out = 1;
			kill_deadline = mono_ms() + KILL_GRACE_MS;
			sleep_ms(100); /* do not spin if poll keeps failing */
			continue;
		}
		if (r <= 0)
			continue;
		if (pr->out_fd >= 0 && p[1].revents)
			probe_read(pr, 64 * 1024);
		if (p[0].revents)
			reap(a, pr);
	}
	/* What the probe wrote before it exited is in the pipe already. */
	probe_read(pr, 256 * 1024);
	if (pr->out_fd >= 0) {
		close(pr->out_fd);
		pr->out_fd = -1;
	}
}

#ifdef KLPQ_AGENT_FAULTS
/*
 * Test builds only (build/klpq-agent-faults; the images klpq builds use the plain agent): a
 * probe whose text contains "klpq-agent-fault" makes the agent itself abuse the channel before
 * it runs the probe, as a corrupted or hostile guest could. A guest process cannot do this on
 * its own: the port admits one opener, and the agent holds it.
 */
static void inject_faults(struct agent *a)
{
	static char chunk[65536];
	static const char stray_reply[] = "{\"v\":1,\"id\":99999,\"ok\":true,\"result\":{}}\n";
	static const char other_version[] = "{\"v\":2,\"event\":\"ready\"}\n";
	unsigned seed = 12345;

	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 48; i++) /* one 3 MiB line: over the 64 KiB bound */
		port_send(a, chunk, sizeof(chunk));
	port_send(a, "\n", 1);
	for (int line = 0; line < 200; line++) { /* binary garbage, one short line each */
		char g[128];
		for (size_t i = 0; i < sizeof(g) - 1; i++) {
			seed = seed * 1103515245u + 12345u;
			g[i] = (char)((seed >> 16) & 0xff);
			if (g[i] == '\n')
				g[i] = '?';
		}
		g[sizeof(g) - 1] = '\n';
		port_send(a, g, sizeof(g));
	}
	port_send(a, stray_reply, sizeof(stray_reply) - 1);
	port_send(a, other_version, sizeof(other_version) - 1);
}
#endif

static int do_exec(struct req *rq)
{
	struct agent *a = rq->a;
	char *argv[EXEC_MAX_ARGS + 1];
	json_object *jargv;
	struct probe *pr;
	int64_t timeout_ms;
	uint64_t start;
	size_t argc, out_len;

	if (!json_object_object_get_ex(rq->args, "argv", &jargv) ||
	    !json_object_is_type(jargv, json_type_array))
		return fail(rq, EINVAL, "exec: argument \"argv\" missing or not an array");
	argc = json_object_array_length(jargv);
	if (argc == 0 || argc > EXEC_MAX_ARGS)
		return fail(rq, EINVAL, "exec: argv must have 1 to %d strings", EXEC_MAX_ARGS);
	for (size_t i = 0; i < argc; i++) {
		json_object *s = json_object_array_get_idx(jargv, i);
		if (!json_object_is_type(s, json_type_string))
			return fail(rq, EINVAL, "exec: argv[%zu] is not a string", i);
		/* execvp does not write to argv; its prototype just predates const */
		argv[i] = (char *)json_object_get_string(s);
	}
	argv[argc] = NULL;
	if (arg_int(rq, "timeout_ms", 1, EXEC_MAX_TIMEOUT_MS, 0, 0, &timeout_ms) < 0)
		return -1;
#ifdef KLPQ_AGENT_FAULTS
	for (size_t i = 0; i < argc; i++)
		if (strstr(argv[i], "klpq-agent-fault")) {
			inject_faults(a);
			break;
		}
#endif

	pr = calloc(1, sizeof(*pr)); /* holds the 16 KiB of output */
	if (!pr)
		return fail(rq, ENOMEM, "exec: out of memory");
	pr->out_fd = -1;
	start = mono_ms();
	if (probe_start(pr, argv) < 0) {
		free(pr);
		return fail_errno(rq, "exec %s", argv[0]);
	}
	probe_wait(a, pr, (uint64_t)timeout_ms);

	out_len = json_fit(pr->out, pr->out_len, EXEC_OUTPUT_BUDGET);
	if (out_len < pr->out_len)
		pr->truncated = 1;
	put_int(rq->result, "exit",
		pr->exited && WIFEXITED(pr->status) ? WEXITSTATUS(pr->status) : -1);
	put_int(rq->result, "signal",
		pr->exited && WIFSIGNALED(pr->status) ? WTERMSIG(pr->status) : 0);
	put_bool(rq->result, "timed_out", pr->timed_out);
	put(rq->result, "output", json_object_new_string_len(pr->out, (int)out_len));
	put_bool(rq->result, "truncated", pr->truncated);
	put_int(rq->result, "duration_ms", (int64_t)(mono_ms() - start));
	free(pr);
	return 0;
}

/* One /dev/kmsg record: "prefix,seq,ts_us,flags[,...];text\n" then optional continuation
 * lines " KEY=VALUE\n" that belong to no text. */
struct kmsg_rec {
	int level;
	uint64_t seq;
	uint64_t ts_us;
	const char *text;
	size_t text_len;
};

static int kmsg_parse(char *buf, size_t len, struct kmsg_rec *rec)
{
	char *semi = memchr(buf, ';', len), *p = buf, *end;
	unsigned long long v[3];
	const char *nl;

	if (!semi)
		return -1;
	*semi = '\0';
	for (int i = 0; i < 3; i++) {
		errno = 0;
		v[i] = strtoull(p, &end, 10);
		if (errno || end == p || (*end != ',' && *end != '\0'))
			return -1;
		p = *end ? end + 1 : end;
	}
	/* The prefix is the syslog priority: facility << 3 | level. */
	rec->level = (int)(v[0] & 7);
	rec->seq = v[1];
	rec->ts_us = v[2];
	rec->text = semi + 1;
	nl = memchr(rec->text, '\n', (size_t)(buf + len - rec->text));
	rec->text_len = nl ? (size_t)(nl - rec->text) : (size_t)(buf + len - rec->text);
	return 0;
}

/* Reads the next record; 1 with rec filled, 0 at the end, -1 with errno on error. Records
 * overwritten before we got to them (EPIPE) are skipped: the next read continues with the
 * oldest still present. */
static int kmsg_next(int fd, char *buf, size_t size, struct kmsg_rec *rec)
{
	for (;;) {
		ssize_t n = read(fd, buf, size - 1);

		if (n < 0 && (errno == EINTR || errno == EPIPE))
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		buf[n] = '\0';
		if (kmsg_parse(buf, (size_t)n, rec) == 0)
			return 1;
	}
}

/* How /dev/kmsg shows text: non-printable bytes and '\' as \xNN. */
static void kmsg_escape(const char *s, char *out, size_t size)
{
	size_t o = 0;

	for (; *s && o + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < ' ' || c >= 127 || c == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

static int do_mark(struct req *rq)
{
	const char *text = arg_str(rq, "text");
	char rec_text[MARK_TEXT_MAX + 16], want[4 * (MARK_TEXT_MAX + 16) + 1];
	char buf[KMSG_RECORD_MAX + 1];
	struct kmsg_rec rec;
	uint64_t deadline;
	int fd, n, r;

	if (!text)
		return -1;
	if (strlen(text) > MARK_TEXT_MAX || strchr(text, '\n') ||
	    strlen(text) != (size_t)json_object_get_string_len(
				    json_object_object_get(rq->args, "text")))
		return fail(rq, EINVAL, "mark: text must be one line of at most %d bytes",
			    MARK_TEXT_MAX);
	n = snprintf(rec_text, sizeof(rec_text), "klpq-mark: %s", text);
	kmsg_escape(rec_text, want, sizeof(want));
	/* The newline finalises the record: without it printk keeps the record open for a
	 * continuation and readers see it only once the next message arrives. */
	rec_text[n++] = '\n';

	/* A fresh open per mark: /dev/kmsg rate-limits writers per open file. */
	fd = open("/dev/kmsg", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(rq, "mark: open /dev/kmsg");
	/* Read only what comes after our own write. */
	if (lseek(fd, 0, SEEK_END) < 0) {
		fail_errno(rq, "mark: seek /dev/kmsg");
		goto out;
	}
	if (write(fd, rec_text, (size_t)n) != n) {
		fail_errno(rq, "mark: write /dev/kmsg");
		goto out;
	}
	deadline = mono_ms() + MARK_WAIT_MS;
	for (;;) {
		r = kmsg_next(fd, buf, sizeof(buf), &rec);
		if (r < 0) {
			fail_errno(rq, "mark: read /dev/kmsg");
			goto out;
		}
		if (r > 0) {
			if (rec.text_len == strlen(want) && !memcmp(rec.text, want, rec.text_len)) {
				put_int(rq->result, "seq", (int64_t)rec.seq);
				goto out;
			}
			continue;
		}
		if (mono_ms() >= deadline) {
			fail(rq, ENOENT, "mark: record not found in /dev/kmsg (rate limited?)");
			goto out;
		}
		struct pollfd p = { fd, POLLIN, 0 };
		poll(&p, 1, ms_until(deadline)); /* errors end up in the deadline check */
	}
out:
	close(fd);
	return rq->failed ? -1 : 0;
}

static int do_kmsg(struct req *rq)
{
	char buf[KMSG_RECORD_MAX + 1];
	struct kmsg_rec rec;
	json_object *records;
	int64_t after, last;
	size_t count = 0, text = 0, cost = 0;
	int fd, r, truncated = 0;

	/* -1 asks for everything: sequence numbers start at 0 */
	if (arg_int(rq, "after", -1, INT64_MAX, 1, -1, &after) < 0)
		return -1;
	last = after;
	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(rq, "kmsg: open /dev/kmsg");
	records = json_object_new_array();
	if (!records) {
		close(fd);
		return fail(rq, ENOMEM, "kmsg: out of memory");
	}
	while ((r = kmsg_next(fd, buf, sizeof(buf), &rec)) > 0) {
		size_t c = json_cost(rec.text, rec.text_len) + KMSG_RECORD_OVERHEAD +
			   digits(rec.seq) + digits(rec.ts_us);
		json_object *o;

		if ((int64_t)rec.seq <= after)
			continue;
		if (count == KMSG_MAX_RECORDS || text + rec.text_len > KMSG_MAX_TEXT ||
		    cost + c > REPLY_BUDGET) {
			truncated = 1;
			break;
		}
		o = json_object_new_object();
		if (!o)
			break;
		put_int(o, "seq", (int64_t)rec.seq);
		put_int(o, "level", rec.level);
		put_int(o, "ts_us", (int64_t)rec.ts_us);
		put(o, "text", json_object_new_string_len(rec.text, (int)rec.text_len));
		append(records, o);
		count++;
		text += rec.text_len;
		cost += c;
		last = (int64_t)rec.seq;
	}
	if (r < 0) {
		fail_errno(rq, "kmsg: read /dev/kmsg");
		json_object_put(records);
		close(fd);
		return -1;
	}
	close(fd);
	put(rq->result, "records", records);
	put_bool(rq->result, "truncated", truncated);
	put_int(rq->result, "last", last);
	return 0;
}

static int do_taint(struct req *rq)
{
	int64_t taint;

	if (read_int_file("/proc/sys/kernel/tainted", &taint) < 0)
		return fail_errno(rq, "taint: /proc/sys/kernel/tainted");
	put_int(rq->result, "taint", taint);
	return 0;
}

/* Up to STACK_MAX_LINES lines of a task's kernel stack; [] when unreadable (it needs
 * CAP_SYS_ADMIN, and the task may be gone). Adds the escaped size to *cost. */
static json_object *task_stack(const char *dir, size_t *cost)
{
	char path[PATH_MAX], buf[8192], *p, *nl;
	json_object *lines = json_object_new_array();
	int n = 0;

	if (!lines || path_fmt(path, sizeof(path), "%s/stack", dir) < 0 ||
	    read_text_file(path, buf, sizeof(buf), NULL) < 0)
		return lines;
	for (p = buf; *p && n < STACK_MAX_LINES; p = nl + 1, n++) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		append(lines, json_object_new_string_len(p, (int)(nl - p)));
		*cost += json_cost(p, (size_t)(nl - p)) + 1;
		if (!*nl)
			break;
	}
	return lines;
}

/* Adds the tasks of one process; returns -1 once the listing is full. */
static int tasks_of(const char *pid, int64_t target, json_object *tasks, size_t *count,
		    size_t *cost)
{
	char dir[PATH_MAX], tdir[PATH_MAX], path[PATH_MAX], comm[64];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	if (path_fmt(dir, sizeof(dir), "/proc/%s/task", pid) < 0)
		return 0;
	d = opendir(dir);
	if (!d) /* the process is gone */
		return 0;
	while ((de = readdir(d))) {
		size_t tcost;
		int64_t state;
		json_object *t;

		if (!is_number(de->d_name) ||
		    path_fmt(tdir, sizeof(tdir), "%s/%s", dir, de->d_name) < 0 ||
		    path_fmt(path, sizeof(path), "%s/patch_state", tdir) < 0 ||
		    read_int_file(path, &state) < 0)
			continue;
		if (state == -1 || state == target)
			continue;
		if (*count == TASKS_MAX) {
			ret = -1;
			break;
		}
		if (path_fmt(path, sizeof(path), "%s/comm", tdir) < 0 ||
		    read_text_file(path, comm, sizeof(comm), NULL) < 0)
			comm[0] = '\0';
		strip_newline(comm);
		t = json_object_new_object();
		if (!t)
			continue;
		tcost = TASK_OVERHEAD + json_cost(comm, strlen(comm));
		put_int(t, "pid", strtoll(pid, NULL, 10));
		put_int(t, "tid", strtoll(de->d_name, NULL, 10));
		put_str(t, "comm", comm);
		put_int(t, "patch_state", state);
		put(t, "stack", task_stack(tdir, &tcost));
		/* Only a stack read tells a task's size: one that does not fit is left out. */
		if (*cost + tcost > REPLY_BUDGET) {
			json_object_put(t);
			ret = -1;
			break;
		}
		append(tasks, t);
		*cost += tcost;
		(*count)++;
	}
	closedir(d);
	return ret;
}

static int do_tasks(struct req *rq)
{
	json_object *tasks;
	struct dirent *de;
	size_t count = 0, cost = 0;
	int64_t target;
	int truncated = 0;
	DIR *proc;

	if (arg_int(rq, "target", 0, 1, 0, 0, &target) < 0)
		return -1;
	proc = opendir("/proc");
	if (!proc)
		return fail_errno(rq, "tasks: /proc");
	tasks = json_object_new_array();
	if (!tasks) {
		closedir(proc);
		return fail(rq, ENOMEM, "tasks: out of memory");
	}
	while ((de = readdir(proc))) {
		if (is_number(de->d_name) &&
		    tasks_of(de->d_name, target, tasks, &count, &cost) < 0) {
			truncated = 1;
			break;
		}
	}
	closedir(proc);
	put(rq->result, "tasks", tasks);
	/* Not in the protocol table, but the host must know the list is incomplete. */
	put_bool(rq->result, "truncated", truncated);
	return 0;
}

/* Part of a file (workload samples in the guest's tmpfs): `path`, `offset`, `max` (at most
 * READ_MAX bytes). Replies `data`, `size` (the file's size now) and `eof`. A reader that
 * tails a growing file passes offset = what it has so far. */
#define READ_MAX (48 * 1024)
static int do_read(struct req *rq)
{
	const char *path = arg_str(rq, "path");
	int64_t off, max;
	struct stat st;
	char *buf;
	ssize_t n;
	int fd;

	if (!path || arg_int(rq, "offset", 0, INT64_MAX, 1, 0, &off) < 0 ||
	    arg_int(rq, "max", 1, READ_MAX, 1, READ_MAX, &max) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(rq, "read: open %s", path);
	if (fstat(fd, &st) < 0) {
		close(fd);
		return fail_errno(rq, "read: stat %s", path);
	}
	buf = malloc((size_t)max);
	if (!buf) {
		close(fd);
		return fail(rq, ENOMEM, "read: out of memory");
	}
	do
		n = pread(fd, buf, (size_t)max, (off_t)off);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0) {
		free(buf);
		return fail_errno(rq, "read: %s", path);
	}
	put(rq->result, "data", json_object_new_string_len(buf, (int)n));
	put_int(rq->result, "size", (int64_t)st.st_size);
	put_bool(rq->result, "eof", off + n >= st.st_size);
	free(buf);
	return 0;
}

/* The guest's CLOCK_MONOTONIC, the clock workload samples are stamped with. */
static int do_now(struct req *rq)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	put_int(rq->result, "mono_ns", (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
	return 0;
}

static int do_poweroff(struct req *rq)
{
	rq->a->poweroff = 1;
	return 0;
}

static const struct agent_op {
	const char *name;
	int (*fn)(struct req *rq);
} agent_ops[] = {
	{ "hello", do_hello },
	{ "load", do_load },
	{ "unload", do_unload },
	{ "lp_state", do_lp_state },
	{ "lp_enable", do_lp_enable },
	{ "sysctl", do_sysctl },
	{ "exec", do_exec },
	{ "mark", do_mark },
	{ "kmsg", do_kmsg },
	{ "taint", do_taint },
	{ "tasks", do_tasks },
	{ "read", do_read },
	{ "now", do_now },
	{ "poweroff", do_poweroff },
};

/* Runs one request and sends its one reply: every error goes out through the same path. */
static void serve_request(struct agent *a, const struct proto_msg *m)
{
	struct req rq = { .a = a, .op = m->op, .args = m->obj };
	const struct agent_op *op = NULL;
	char *line = NULL;
	size_t len = 0;

	for (size_t i = 0; i < sizeof(agent_ops) / sizeof(agent_ops[0]); i++)
		if (!strcmp(agent_ops[i].name, m->op))
			op = &agent_ops[i];
	if (!op)
		fail(&rq, EOPNOTSUPP, "unknown op");
	else if (!(rq.result = json_object_new_object()))
		fail(&rq, ENOMEM, "%s: out of memory", m->op);
	else
		op->fn(&rq);

	if (!rq.failed) {
		line = proto_reply_ok(m->id, rq.result, &len); /* consumes result */
		rq.result = NULL;
		if (!line)
			fail(&rq, E2BIG, "%s: reply larger than the protocol allows", m->op);
	}
	json_object_put(rq.result);
	if (rq.failed)
		line = proto_reply_error(m->id, rq.error, rq.err_no, &len);
	send_line(a, line, len, "reply");
	if (a->poweroff)
		power_off(a);
}

/* The id of a line that is not a valid request, if it has one, so the host still gets the
 * one reply it waits for. */
static int64_t salvage_id(const char *line)
{
	json_object *o = json_tokener_parse(line);
	int64_t id = proto_get_int(o, "id", 0);

	json_object_put(o);
	return id > 0 ? id : 0;
}

static void handle_line(struct agent *a, const char *line, size_t len)
{
	struct proto_msg m;
	char err[128];

	if (proto_parse(line, len, &m, err, sizeof(err)) < 0) {
		int64_t id = salvage_id(line);

		send_log(a, "malformed request dropped: %s", err);
		if (id) {
			size_t rlen;
			char *reply = proto_reply_error(id, err, EINVAL, &rlen);
			send_line(a, reply, rlen, "reply");
		}
		return;
	}
	if (m.kind != PROTO_REQUEST)
		send_log(a, "ignored a message that is not a request");
	else
		serve_request(a, &m);
	proto_msg_release(&m);
}

static void port_readable(struct agent *a)
{
	char buf[16384];
	uint64_t oversized = a->rd.oversized;
	ssize_t n = read(a->port_fd, buf, sizeof(buf));
	const char *line;
	size_t off = 0, len;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* virtio-serial reads 0 while the host side is disconnected */
		port_close(a, n == 0 ? "end of file" : strerror(errno));
		return;
	}
	while (off < (size_t)n) {
		off += proto_reader_feed(&a->rd, buf + off, (size_t)n - off);
		if (a->rd.oversized != oversized) {
			send_log(a, "request longer than %d bytes dropped", KLPQ_PROTO_MAX_LINE);
			oversized = a->rd.oversized;
		}
		while (a->port_fd >= 0 && proto_reader_next(&a->rd, &line, &len) == 1)
			handle_line(a, line, len);
		/* A reply that could not be sent closed the port: the rest is stale. */
		if (a->port_fd < 0)
			return;
	}
}

/* The main loop. Never returns. */
static void __attribute__((noreturn)) serve(struct agent *a)
{
	for (;;) {
		struct pollfd p[2] = { { a->sig_fd, POLLIN, 0 }, { a->port_fd, POLLIN, 0 } };
		uint64_t wake;
		int r;

		if (a->port_fd < 0 && mono_ms() >= a->reopen_at && port_open(a) < 0) {
			if (!a->is_init)
				die(a, "cannot reconnect to %s: %s", a->sock_path, strerror(errno));
			a->reopen_at = mono_ms() + REOPEN_MS;
		}
		heartbeat_if_due(a);
		wake = a->next_beat;
		if (a->port_fd < 0 && a->reopen_at < wake)
			wake = a->reopen_at;
		p[1].fd = a->port_fd;
		r = poll(p, a->port_fd >= 0 ? 2 : 1, ms_until(wake));
		if (r < 0 && errno != EINTR)
			die(a, "poll: %s", strerror(errno));
		if (r <= 0)
			continue;
		if (p[0].revents)
			reap(a, NULL);
		if (a->port_fd >= 0 && p[1].revents)
			port_readable(a);
	}
}

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

static void boot(struct agent *a)
{
	mount_basics(a);
	ensure_std_fds();
	a->console_fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (setenv("PATH", AGENT_PATH, 1) < 0)
		diag(a, "setenv PATH: %s", strerror(errno));
	diag(a, "%s starting", AGENT_VERSION);
	load_boot_modules(a);
	find_port(a);
	diag(a, "using %s", a->port_dev);
}

int main(int argc, char **argv)
{
	struct agent a = { .console_fd = -1, .port_fd = -1, .sig_fd = -1 };
	sigset_t chld;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			a.sock_path = argv[++i];
		/* PID 1 also receives unknown kernel command-line words: ignore them there */
	}
	a.is_init = !a.sock_path && getpid() == 1;
	if (!a.is_init && !a.sock_path) {
		fprintf(stderr, "usage: klpq-agent --port SOCKET  (or run as PID 1)\n");
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
	if (port_open(&a) < 0) {
		if (!a.is_init)
			die(&a, "cannot connect to %s: %s", a.sock_path, strerror(errno));
		diag(&a, "open %s: %s; retrying", a.port_dev, strerror(errno));
		a.reopen_at = mono_ms() + REOPEN_MS;
	}
	serve(&a);
}
