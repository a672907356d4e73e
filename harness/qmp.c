/* qmp.c: see qmp.h. */
#define _GNU_SOURCE
#include "qmp.h"

#include <errno.h>
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
	qmp_forget(q);
	proto_reader_release(&q->rd);
}

/* Handles one line: an event goes to the callback, the greeting sets greeted, the reply to the
 * command in flight is kept; anything else (a late reply to a command given up on) is dropped. */
static void qmp_line(struct qmp *q, const char *line)
{
	json_object *o = json_tokener_parse(line), *v;

	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return;
	}
	if (json_object_object_get_ex(o, "event", &v)) {
		json_object *data = NULL;
		json_object_object_get_ex(o, "data", &data);
		if (q->on_event)
			q->on_event(q->ctx, json_object_get_string(v), data);
	} else if (json_object_object_get_ex(o, "QMP", &v)) {
		q->greeted = 1;
	} else if (q->want_id && !q->reply && json_object_object_get_ex(o, "id", &v) &&
		   json_object_get_int64(v) == q->want_id) {
		q->reply = o;
		return;
	}
	json_object_put(o);
}

int qmp_read_available(struct qmp *q)
{
	char buf[8192];
	const char *line;
	size_t len, off = 0;
	ssize_t n;

	if (q->closed || q->fd < 0)
		return -1;
	n = read(q->fd, buf, sizeof(buf));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		q->closed = 1;
		return -1;
	}
	while (n > 0 && off < (size_t)n) {
		off += proto_reader_feed(&q->rd, buf + off, (size_t)n - off);
		while (proto_reader_next(&q->rd, &line, &len) == 1)
			qmp_line(q, line);
	}
	return 0;
}

int64_t qmp_send_command(struct qmp *q, const char *cmd, json_object *args, struct kerr *e)
{
	json_object *msg = json_object_new_object();
	int64_t id = q->next_id++;
	const char *s;
	size_t len;
	int ret;

	qmp_forget(q);
	json_object_object_add(msg, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(msg, "arguments", args);
	json_object_object_add(msg, "id", json_object_new_int64(id));
	s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
	if (q->closed || q->fd < 0)
		ret = kerr_set(e, "QMP %s: connection closed", cmd);
	else if (send_all(q->fd, s, len, 5000) < 0 || send_all(q->fd, "\n", 1, 5000) < 0)
		ret = kerr_errno(e, "QMP %s: cannot send", cmd);
	else
		ret = 0;
	json_object_put(msg);
	if (ret < 0)
		return -1;
	q->want_id = id;
	return id;
}

int qmp_have_reply(const struct qmp *q)
{
	return q->reply != NULL;
}

int qmp_take_reply(struct qmp *q, const char *cmd, json_object **ret, struct kerr *e)
{
	json_object *r = q->reply, *v;
	int rc = 0;

	if (ret)
		*ret = NULL;
	q->reply = NULL;
	q->want_id = 0;
	if (!r)
		return kerr_set(e, "QMP %s: no reply", cmd);
	if (json_object_object_get_ex(r, "error", &v))
		rc = kerr_set(e, "QMP %s: %s", cmd, proto_get_str(v, "desc", "error"));
	else if (ret && json_object_object_get_ex(r, "return", &v))
		*ret = json_object_get(v);
	json_object_put(r);
	return rc;
}

void qmp_forget(struct qmp *q)
{
	json_object_put(q->reply);
	q->reply = NULL;
	q->want_id = 0;
}
