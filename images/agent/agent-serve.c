/* agent-serve.c: the request loop: framing, the dispatch table and its single reply path
 * (agent.h).
 */
#define _GNU_SOURCE
#include "agent.h"

/* --- requests --- */

/* Fails the request once (the first, most specific cause wins); returns -1. */
int AGENT_FMT(3, 4) fail(struct req *rq, int err_no, const char *fmt, ...)
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
int AGENT_FMT(2, 3) fail_errno(struct req *rq, const char *fmt, ...)
{
	int e = errno;
	char what[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return fail(rq, e, "%s: %s", what, strerror(e));
}

const char *arg_str(struct req *rq, const char *key)
{
	const char *s = proto_get_str(rq->args, key, NULL);

	if (!s)
		fail(rq, EINVAL, "%s: argument \"%s\" missing or not a string", rq->op, key);
	return s;
}

/* An integer argument in [min, max]; absent means def when def_ok. */
int arg_int(struct req *rq, const char *key, int64_t min, int64_t max, int def_ok,
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
	{ "upload", do_upload },
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
void __attribute__((noreturn)) serve(struct agent *a)
{
	for (;;) {
		struct pollfd p[2] = { { a->sig_fd, POLLIN, 0 }, { a->port_fd, POLLIN, 0 } };
		uint64_t wake;
		int r;

		if (a->port_fd < 0 && mono_ms() >= a->reopen_at && port_open(a) < 0) {
			if (!a->is_init && !a->is_service)
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
