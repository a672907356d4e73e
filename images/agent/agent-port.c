/* agent-port.c: the port to the host: open, send, events, heartbeats, reaping children
 * (agent.h).
 */
#define _GNU_SOURCE
#include "agent.h"

/* --- the port --- */

void port_close(struct agent *a, const char *why)
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
int port_send(struct agent *a, const char *line, size_t len)
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
int send_line(struct agent *a, char *line, size_t len, const char *what)
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
void AGENT_FMT(2, 3) send_log(struct agent *a, const char *fmt, ...)
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
void AGENT_FMT(2, 3) note(struct agent *a, const char *fmt, ...)
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
void add_identity(json_object *o)
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
int port_open(struct agent *a)
{
	int fd;

	if (a->is_init || a->is_service)
		fd = open(a->port_dev, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	else
		fd = open_socket(a->sock_path);
	if (fd < 0 || (!a->is_init && !a->is_service && set_nonblock(fd) < 0)) {
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

void heartbeat_if_due(struct agent *a)
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

int ms_until(uint64_t when)
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
void reap(struct agent *a, struct probe *pr)
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
