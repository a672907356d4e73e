/* qmp.c: see qmp.h. */
#define _GNU_SOURCE
#include "qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void qmp_init(struct qmp *q, int fd, void (*on_event)(void *, const char *, json_object *),
	      void *ctx)
{
	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->next_id = 1;
	q->on_event = on_event;
	q->ctx = ctx;
	proto_reader_init(&q->rd);
}

void qmp_release(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	proto_reader_release(&q->rd);
}

/* Handles one line: an event goes to the callback; a reply with want_id is returned (owned). */
static json_object *qmp_line(struct qmp *q, const char *line, int64_t want_id)
{
	json_object *o = json_tokener_parse(line), *v;

	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	if (json_object_object_get_ex(o, "event", &v)) {
		json_object *data = NULL;
		json_object_object_get_ex(o, "data", &data);
		if (q->on_event)
			q->on_event(q->ctx, json_object_get_string(v), data);
		json_object_put(o);
		return NULL;
	}
	if (want_id && json_object_object_get_ex(o, "id", &v) && json_object_get_int64(v) == want_id)
		return o;
	if (want_id == -1 && json_object_object_get_ex(o, "QMP", &v))
		return o; /* the greeting */
	json_object_put(o);
	return NULL;
}

/* Reads once (poll up to ms) and processes complete lines; returns a matching reply or NULL.
 * *eof set when the peer closed. */
static json_object *qmp_pump(struct qmp *q, int ms, int64_t want_id, int *eof)
{
	struct pollfd p = { q->fd, POLLIN, 0 };
	char buf[8192];
	json_object *found = NULL;
	const char *line;
	size_t len;

	if (q->closed) {
		*eof = 1;
		return NULL;
	}
	if (ms >= 0) {
		int r = poll(&p, 1, ms);
		if (r <= 0)
			return NULL;
	}
	ssize_t n = read(q->fd, buf, sizeof(buf));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		q->closed = 1;
		*eof = 1;
		return NULL;
	}
	if (n < 0)
		return NULL;
	size_t off = 0;
	while (off < (size_t)n) {
		off += proto_reader_feed(&q->rd, buf + off, (size_t)n - off);
		while (proto_reader_next(&q->rd, &line, &len) == 1) {
			json_object *o = qmp_line(q, line, want_id);
			if (o && !found)
				found = o;
			else
				json_object_put(o);
		}
	}
	return found;
}

static json_object *qmp_wait(struct qmp *q, int64_t want_id, unsigned timeout_ms, struct kerr *e,
			     const char *what)
{
	uint64_t deadline = now_ms() + timeout_ms;
	int eof = 0;

	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline) {
			kerr_set(e, "QMP: no answer to %s within %u ms", what, timeout_ms);
			return NULL;
		}
		json_object *o = qmp_pump(q, (int)(deadline - now), want_id, &eof);
		if (o)
			return o;
		if (eof) {
			kerr_set(e, "QMP: connection closed while waiting for %s", what);
			return NULL;
		}
	}
}

static int qmp_send(struct qmp *q, json_object *msg, struct kerr *e)
{
	size_t len;
	const char *s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);

	if (send_all(q->fd, s, len, 5000) < 0 || send_all(q->fd, "\n", 1, 5000) < 0)
		return kerr_errno(e, "QMP: cannot send");
	return 0;
}

int qmp_handshake(struct qmp *q, unsigned timeout_ms, struct kerr *e)
{
	json_object *g = qmp_wait(q, -1, timeout_ms, e, "the greeting");

	if (!g)
		return -1;
	json_object_put(g);
	return qmp_command(q, "qmp_capabilities", NULL, timeout_ms, NULL, e);
}

int qmp_command(struct qmp *q, const char *cmd, json_object *args, unsigned timeout_ms,
		json_object **reply, struct kerr *e)
{
	json_object *msg = json_object_new_object(), *r, *v;
	int64_t id = q->next_id++;

	json_object_object_add(msg, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(msg, "arguments", args);
	json_object_object_add(msg, "id", json_object_new_int64(id));
	if (qmp_send(q, msg, e) < 0) {
		json_object_put(msg);
		return -1;
	}
	json_object_put(msg);
	r = qmp_wait(q, id, timeout_ms, e, cmd);
	if (!r)
		return -1;
	if (json_object_object_get_ex(r, "error", &v)) {
		kerr_set(e, "QMP %s: %s", cmd, proto_get_str(v, "desc", "error"));
		json_object_put(r);
		return -1;
	}
	if (reply) {
		*reply = NULL;
		if (json_object_object_get_ex(r, "return", &v))
			*reply = json_object_get(v);
	}
	json_object_put(r);
	return 0;
}

int qmp_read_available(struct qmp *q)
{
	int eof = 0;
	json_object *o = qmp_pump(q, 0, 0, &eof);

	json_object_put(o);
	return eof ? -1 : 0;
}
