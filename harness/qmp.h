/* qmp.h: a small QEMU Machine Protocol client over a connected socket, without a loop of its
 * own: the VM's event loop (vm-qemu.c) reads the socket when poll says so and waits for a reply
 * with everything else (console, agent, QEMU's exit) still served.
 *
 * Keeps replies and asynchronous events apart, so an event is never taken for a reply: events
 * are handed to a callback as they are read, the reply to the one command in flight is matched
 * by the "id" klpq sets and kept until taken. Lines are framed by the same bounded reader as the
 * agent protocol.
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
	int greeted;          /* QEMU's greeting arrived */
	int64_t want_id;      /* the command in flight; 0: none */
	json_object *reply;   /* its reply, once read (owned) */
	void (*on_event)(void *ctx, const char *event, json_object *data);
	void *ctx;
};

void qmp_init(struct qmp *q, int fd, void (*on_event)(void *, const char *, json_object *),
	      void *ctx);
void qmp_release(struct qmp *q); /* closes fd */
/* Reads what is there (once, without blocking when fd is non-blocking): events to the callback,
 * the greeting into greeted, the reply of the command in flight kept. -1 on EOF or error. */
int qmp_read_available(struct qmp *q);
/* Sends {"execute":cmd,"arguments":args,"id":N}, one command at a time (an earlier one still
 * in flight is forgotten). Takes args. Its id, or -1 with e set. */
int64_t qmp_send_command(struct qmp *q, const char *cmd, json_object *args, struct kerr *e);
/* 1 once the reply of the command in flight was read. */
int qmp_have_reply(const struct qmp *q);
/* Takes that reply: 0 with *ret (may be NULL) its "return" (caller puts), or -1 with e set for
 * an error reply or none. The command is no longer in flight. */
int qmp_take_reply(struct qmp *q, const char *cmd, json_object **ret, struct kerr *e);
/* Gives up on the command in flight: its reply, should it come, is dropped. */
void qmp_forget(struct qmp *q);

#endif
