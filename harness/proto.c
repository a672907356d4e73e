/* proto.c: see proto.h.
 *
 * Links against libc and json-c only: the guest agent builds this file statically on its own,
 * without util.c.
 */
#define _GNU_SOURCE
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Serialised form of every message: one line, no pretty-printing, '/' left alone. */
#define PROTO_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

void proto_reader_init(struct proto_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->buf = malloc(KLPQ_PROTO_MAX_LINE);
	if (!r->buf) {
		/* init cannot report failure and a reader without a buffer could only spin;
		 * 64 KiB not being available means the process is done anyway. */
		fprintf(stderr, "klpq: out of memory allocating the protocol line buffer\n");
		abort();
	}
}

void proto_reader_release(struct proto_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

size_t proto_reader_feed(struct proto_reader *r, const char *data, size_t len)
{
	size_t taken = 0;

	while (taken < len) {
		if (r->discarding) {
			const char *nl = memchr(data + taken, '\n', len - taken);

			if (!nl)
				return len;
			taken = (size_t)(nl - data) + 1;
			r->discarding = 0;
			continue;
		}
		/* Lines already handed out are dead: make room at the end. */
		if (r->start > 0) {
			memmove(r->buf, r->buf + r->start, r->len - r->start);
			r->len -= r->start;
			r->start = 0;
		}
		if (r->len == KLPQ_PROTO_MAX_LINE) {
			/* Full. With a newline inside, complete lines wait to be taken; without
			 * one, the pending line has KLPQ_PROTO_MAX_LINE bytes and no end yet,
			 * so it cannot fit: drop it and skip the rest of it as it arrives. */
			if (memchr(r->buf, '\n', r->len))
				return taken;
			r->len = 0;
			r->discarding = 1;
			r->oversized++;
			continue;
		}

		size_t n = KLPQ_PROTO_MAX_LINE - r->len;
		if (n > len - taken)
			n = len - taken;
		memcpy(r->buf + r->len, data + taken, n);
		r->len += n;
		taken += n;
	}
	return taken;
}

int proto_reader_next(struct proto_reader *r, const char **line, size_t *len)
{
	char *p, *nl;

	if (r->start >= r->len) {
		r->start = r->len = 0;
		return 0;
	}
	p = r->buf + r->start;
	nl = memchr(p, '\n', r->len - r->start);
	if (!nl)
		return 0;
	*nl = '\0';
	*line = p;
	*len = (size_t)(nl - p);
	r->start = (size_t)(nl - r->buf) + 1;
	return 1;
}

static int parse_fail(struct proto_msg *out, json_object *obj, char *err, size_t err_len,
		      const char *why)
{
	json_object_put(obj);
	memset(out, 0, sizeof(*out));
	if (err_len > 0)
		snprintf(err, err_len, "%s", why);
	return -1;
}

static int is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A positive integer "id", as requests and replies need. */
static int get_id(json_object *obj, int64_t *id)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, "id", &v) || !json_object_is_type(v, json_type_int))
		return -1;
	*id = json_object_get_int64(v);
	return *id > 0 ? 0 : -1;
}

/* A string member that must be present and not empty. */
static const char *get_name(json_object *obj, const char *key)
{
	json_object *v;
	const char *s;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	return s && *s ? s : NULL;
}

static int parse_reply(json_object *obj, struct proto_msg *out, const char **why)
{
	json_object *v;

	if (get_id(obj, &out->id) < 0) {
		*why = "reply id missing or not a positive integer";
		return -1;
	}
	json_object_object_get_ex(obj, "ok", &v);
	if (!json_object_is_type(v, json_type_boolean)) {
		*why = "reply \"ok\" is not a boolean";
		return -1;
	}
	out->ok = json_object_get_boolean(v) ? 1 : 0;
	if (out->ok) {
		if (!json_object_object_get_ex(obj, "result", &v) ||
		    !json_object_is_type(v, json_type_object)) {
			*why = "reply result missing or not an object";
			return -1;
		}
		out->result = v;
		return 0;
	}
	if (!json_object_object_get_ex(obj, "error", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		*why = "error reply without an error string";
		return -1;
	}
	out->error = json_object_get_string(v);
	if (json_object_object_get_ex(obj, "errno", &v)) {
		if (!json_object_is_type(v, json_type_int)) {
			*why = "reply errno is not an integer";
			return -1;
		}
		out->err_no = json_object_get_int(v);
	}
	return 0;
}

int proto_parse(const char *line, size_t len, struct proto_msg *out, char *err, size_t err_len)
{
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	json_object *obj, *v;
	const char *why = NULL;
	size_t end;
	int has_op, has_ok, has_event;

	memset(out, 0, sizeof(*out));
	if (len >= KLPQ_PROTO_MAX_LINE) /* also keeps len within json-c's int */
		return parse_fail(out, NULL, err, err_len, "line longer than the protocol allows");
	tok = json_tokener_new();
	if (!tok)
		return parse_fail(out, NULL, err, err_len, "out of memory");
	obj = json_tokener_parse_ex(tok, line, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!obj && jerr == json_tokener_continue) {
		/* A top-level scalar ("5", "null") is only complete once the tokener sees
		 * the end of the text, which a NUL tells it; "{..." stays incomplete. */
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	if (!obj) {
		if (jerr == json_tokener_success) /* the text was the JSON value null */
			return parse_fail(out, NULL, err, err_len, "not a JSON object");
		if (jerr == json_tokener_continue)
			return parse_fail(out, NULL, err, err_len, "not JSON: incomplete text");
		if (err_len > 0)
			snprintf(err, err_len, "not JSON: %s", json_tokener_error_desc(jerr));
		return -1;
	}
	for (; end < len; end++)
		if (!is_json_space(line[end]))
			return parse_fail(out, obj, err, err_len, "trailing data after the JSON value");
	if (!json_object_is_type(obj, json_type_object))
		return parse_fail(out, obj, err, err_len, "not a JSON object");

	if (!json_object_object_get_ex(obj, "v", &v))
		return parse_fail(out, obj, err, err_len, "protocol version \"v\" missing");
	if (!json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) != KLPQ_PROTO_VERSION)
		return parse_fail(out, obj, err, err_len, "unsupported protocol version");

	has_op = json_object_object_get_ex(obj, "op", NULL);
	has_ok = json_object_object_get_ex(obj, "ok", NULL);
	has_event = json_object_object_get_ex(obj, "event", NULL);
	if (has_op + has_ok + has_event != 1)
		return parse_fail(out, obj, err, err_len,
				  has_op + has_ok + has_event ?
				  "more than one of \"op\", \"ok\", \"event\"" :
				  "none of \"op\", \"ok\", \"event\"");

	if (has_op) {
		out->kind = PROTO_REQUEST;
		if (get_id(obj, &out->id) < 0)
			why = "request id missing or not a positive integer";
		else if (!(out->op = get_name(obj, "op")))
			why = "request \"op\" is not a non-empty string";
	} else if (has_ok) {
		out->kind = PROTO_REPLY;
		parse_reply(obj, out, &why);
	} else {
		out->kind = PROTO_EVENT;
		if (!(out->event = get_name(obj, "event")))
			why = "\"event\" is not a non-empty string";
	}
	if (why)
		return parse_fail(out, obj, err, err_len, why);
	out->obj = obj;
	if (err_len > 0)
		err[0] = '\0';
	return 0;
}

void proto_msg_release(struct proto_msg *m)
{
	json_object_put(m->obj);
	memset(m, 0, sizeof(*m));
}

/* Serialises o (consumed) into a malloc'd line with its newline. NULL when the line would be
 * longer than KLPQ_PROTO_MAX_LINE (or on out of memory). */
static char *finish(json_object *o, size_t *len)
{
	const char *s;
	char *line = NULL;
	size_t n = 0;

	if (len)
		*len = 0;
	if (!o)
		return NULL;
	s = json_object_to_json_string_length(o, PROTO_JSON_FLAGS, &n);
	if (s && n + 1 <= KLPQ_PROTO_MAX_LINE) {
		line = malloc(n + 2);
		if (line) {
			memcpy(line, s, n);
			line[n] = '\n';
			line[n + 1] = '\0';
			if (len)
				*len = n + 1;
		}
	}
	json_object_put(o);
	return line;
}

static int add(json_object *o, const char *key, json_object *val)
{
	if (!val)
		return -1;
	if (json_object_object_add(o, key, val) < 0) {
		json_object_put(val);
		return -1;
	}
	return 0;
}

/* A new message object with "v" first (json-c keeps insertion order, which keeps lines
 * readable in logs). */
static json_object *envelope(void)
{
	json_object *o = json_object_new_object();

	if (o && add(o, "v", json_object_new_int(KLPQ_PROTO_VERSION)) < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Members that say what a message is: a caller's fields must not override them. */
static const char *const reserved_keys[] = { "v", "id", "op", "ok", "event" };

static int is_reserved(const char *key)
{
	for (size_t i = 0; i < sizeof(reserved_keys) / sizeof(reserved_keys[0]); i++)
		if (!strcmp(key, reserved_keys[i]))
			return 1;
	return 0;
}

/* Moves src's members (src consumed; NULL is fine) into dst, skipping reserved keys.
 * src must be an object. */
static int merge(json_object *dst, json_object *src)
{
	int ret = 0;

	if (!src)
		return 0;
	if (!json_object_is_type(src, json_type_object)) {
		json_object_put(src);
		return -1;
	}
	json_object_object_foreach(src, key, val) {
		if (is_reserved(key))
			continue;
		/* JSON null is a NULL json_object in json-c: a value, not an allocation failure
		 * (found by tests/fuzz/fuzz_proto.c) */
		if (!val) {
			if (json_object_object_add(dst, key, NULL) < 0) {
				ret = -1;
				break;
			}
			continue;
		}
		if (add(dst, key, json_object_get(val)) < 0) {
			ret = -1;
			break;
		}
	}
	json_object_put(src);
	return ret;
}

/* All builders also return NULL for arguments that could not make a valid message (id not
 * positive, empty op/event, args or result not an object): the parser would reject them. */
char *proto_request(int64_t id, const char *op, json_object *args, size_t *len)
{
	json_object *o;

	if (id <= 0 || !op || !*op) {
		json_object_put(args);
		return finish(NULL, len);
	}
	o = envelope();
	if (!o || add(o, "id", json_object_new_int64(id)) < 0 ||
	    add(o, "op", json_object_new_string(op)) < 0) {
		json_object_put(args);
		json_object_put(o);
		return finish(NULL, len);
	}
	if (merge(o, args) < 0) { /* consumed args either way */
		json_object_put(o);
		return finish(NULL, len);
	}
	return finish(o, len);
}

char *proto_reply_ok(int64_t id, json_object *result, size_t *len)
{
	json_object *o;

	if (!result)
		result = json_object_new_object();
	if (id <= 0 || !result || !json_object_is_type(result, json_type_object)) {
		json_object_put(result);
		return finish(NULL, len);
	}
	o = envelope();
	if (!o || add(o, "id", json_object_new_int64(id)) < 0 ||
	    add(o, "ok", json_object_new_boolean(1)) < 0) {
		json_object_put(result);
		json_object_put(o);
		return finish(NULL, len);
	}
	if (add(o, "result", result) < 0) { /* consumed result either way */
		json_object_put(o);
		return finish(NULL, len);
	}
	return finish(o, len);
}

char *proto_reply_error(int64_t id, const char *error, int err_no, size_t *len)
{
	json_object *o;

	if (id <= 0)
		return finish(NULL, len);
	o = envelope();
	if (!o || add(o, "id", json_object_new_int64(id)) < 0 ||
	    add(o, "ok", json_object_new_boolean(0)) < 0 ||
	    add(o, "error", json_object_new_string(error ? error : "unknown error")) < 0 ||
	    add(o, "errno", json_object_new_int(err_no)) < 0) {
		json_object_put(o);
		return finish(NULL, len);
	}
	return finish(o, len);
}

char *proto_event(const char *event, json_object *fields, size_t *len)
{
	json_object *o;

	if (!event || !*event) {
		json_object_put(fields);
		return finish(NULL, len);
	}
	o = envelope();
	if (!o || add(o, "event", json_object_new_string(event)) < 0) {
		json_object_put(fields);
		json_object_put(o);
		return finish(NULL, len);
	}
	if (merge(o, fields) < 0) { /* consumed fields either way */
		json_object_put(o);
		return finish(NULL, len);
	}
	return finish(o, len);
}

int64_t proto_get_int(json_object *o, const char *key, int64_t def)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return def;
	return json_object_get_int64(v);
}

const char *proto_get_str(json_object *o, const char *key, const char *def)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return def;
	return json_object_get_string(v);
}

int proto_get_bool(json_object *o, const char *key, int def)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return def;
	return json_object_get_boolean(v) ? 1 : 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *proto_b64_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16;

		if (i + 1 < len)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? b64[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

ssize_t proto_b64_decode(const char *text, size_t text_len, void *out, size_t cap)
{
	unsigned char *o = out;
	size_t n = 0;

	if (text_len % 4)
		return -1;
	for (size_t i = 0; i < text_len; i += 4) {
		int v[4], pad = 0;
		unsigned w;

		for (int k = 0; k < 4; k++) {
			char c = text[i + k];

			/* '=' only at the very end: "x===" is never valid, "xx==" and "xxx=" are */
			if (c == '=' && i + 4 == text_len && k >= 2 && (k == 3 || text[i + 3] == '=')) {
				v[k] = 0;
				pad++;
			} else if ((v[k] = b64_value(c)) < 0) {
				return -1;
			}
		}
		w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
		if (n + 3 - (size_t)pad > cap)
			return -1;
		o[n++] = (unsigned char)(w >> 16);
		if (pad < 2)
			o[n++] = (unsigned char)(w >> 8);
		if (pad < 1)
			o[n++] = (unsigned char)w;
	}
	return (ssize_t)n;
}
