/* qmp.h: a small QEMU Machine Protocol client over a connected socket.
 *
 * Keeps replies and asynchronous events apart, so an event is never taken for a reply: events
 * are handed to a callback as they are read, replies are matched by the "id" klpq sets.
 * Lines are framed by the same bounded reader as the agent protocol.
 */
#ifndef KLPQ_QMP_H
#define KLPQ_QMP_H

#include <json-c/json.h>
#include "proto.h"
#include "util.h"

struct qmp {
	int fd;
	struct proto_reader rd;
	int64_t next_id;
	int closed;
	void (*on_event)(void *ctx, const char *event, json_object *data);
	void *ctx;
};

void qmp_init(struct qmp *q, int fd, void (*on_event)(void *, const char *, json_object *),
	      void *ctx);
void qmp_release(struct qmp *q); /* closes fd */
/* Reads the greeting and negotiates capabilities (blocking up to timeout_ms). */
int qmp_handshake(struct qmp *q, unsigned timeout_ms, struct kerr *e);
/* Sends {"execute":cmd,"arguments":args,"id":N} and waits up to timeout_ms for its reply.
 * Takes args. *reply (may be NULL) gets the "return" object (caller puts it). */
int qmp_command(struct qmp *q, const char *cmd, json_object *args, unsigned timeout_ms,
		json_object **reply, struct kerr *e);
/* Reads what is available without blocking and dispatches events. -1 on EOF/error. */
int qmp_read_available(struct qmp *q);

#endif
