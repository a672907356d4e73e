/* proto.h: the agent protocol codec (docs/protocol.md), shared by klpq and the guest agent.
 *
 * Owns line framing with a hard bound and the JSON shape of requests, replies and events.
 * JSON is built and parsed with json-c only; no message is pasted together as text.
 */
#ifndef KLPQ_PROTO_H
#define KLPQ_PROTO_H

#include <json-c/json.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#define KLPQ_PROTO_VERSION 1
#define KLPQ_PROTO_MAX_LINE 65536 /* bytes, newline included */

/* Line framer: feed bytes in any chunking, take complete lines out. Never holds more than
 * KLPQ_PROTO_MAX_LINE bytes; a longer line is dropped up to its newline and counted. */
struct proto_reader {
	char *buf;          /* KLPQ_PROTO_MAX_LINE bytes, allocated by init */
	size_t len;
	size_t start;       /* first unconsumed byte */
	int discarding;     /* inside an oversized line */
	uint64_t oversized; /* lines dropped for length */
};
void proto_reader_init(struct proto_reader *r);
void proto_reader_release(struct proto_reader *r);
/* Copies up to len bytes in; returns how many were taken (less than len when the buffer is
 * full of complete lines not yet taken: call proto_reader_next, then feed the rest). */
size_t proto_reader_feed(struct proto_reader *r, const char *data, size_t len);
/* 1: *line points at a NUL-terminated line (no newline) valid until the next call;
 * 0: no complete line yet. Oversized lines are skipped (counted in r->oversized). */
int proto_reader_next(struct proto_reader *r, const char **line, size_t *len);

enum proto_kind { PROTO_REQUEST, PROTO_REPLY, PROTO_EVENT };

struct proto_msg {
	enum proto_kind kind;
	int64_t id;             /* request/reply; 0 for events */
	const char *op;         /* request */
	const char *event;      /* event */
	int ok;                 /* reply */
	const char *error;      /* reply with ok == 0 */
	int err_no;             /* reply with ok == 0; 0 when absent */
	json_object *result;    /* reply with ok: the "result" object (borrowed from obj) */
	json_object *obj;       /* the whole message; owned, freed by proto_msg_release */
};

/* Parses and validates one line: JSON object, "v" == 1, exactly one of op/ok/event with the
 * fields its kind needs and the right types. 0, or -1 with a short reason in err
 * (err_len bytes; never NULL when err_len > 0) and *out zeroed. */
int proto_parse(const char *line, size_t len, struct proto_msg *out, char *err, size_t err_len);
void proto_msg_release(struct proto_msg *m);

/* Builders: each takes ownership of the json_object argument (may be NULL), adds "v", and
 * returns a malloc'd line ending in "\n" (its length in *len), or NULL when the line would
 * exceed KLPQ_PROTO_MAX_LINE. */
char *proto_request(int64_t id, const char *op, json_object *args, size_t *len);
char *proto_reply_ok(int64_t id, json_object *result, size_t *len);
char *proto_reply_error(int64_t id, const char *error, int err_no, size_t *len);
char *proto_event(const char *event, json_object *fields, size_t *len);

/* Base64 (RFC 4648, with padding) for the binary payload of `upload`: encode len bytes into a
 * new NUL-terminated string; decode text into out (at most cap bytes): the byte count, or -1
 * for text that is not base64 or does not fit. */
char *proto_b64_encode(const void *data, size_t len);
ssize_t proto_b64_decode(const char *text, size_t text_len, void *out, size_t cap);
/* upload: decoded bytes per request (fits one line encoded) and the bound on a whole file */
#define KLPQ_UPLOAD_CHUNK (32 * 1024)
#define KLPQ_UPLOAD_MAX (256u * 1024 * 1024)

/* Typed getters on an object that tolerate absence: return def when the key is missing or of
 * another type. */
int64_t proto_get_int(json_object *o, const char *key, int64_t def);
const char *proto_get_str(json_object *o, const char *key, const char *def);
int proto_get_bool(json_object *o, const char *key, int def);

#endif
