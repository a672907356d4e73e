/* fuzz_proto.c: libFuzzer target for the agent protocol codec (harness/proto.c).
 *
 * The input is a byte stream as it would arrive on the agent port. It is fed to a
 * struct proto_reader in chunks whose sizes come from a rolling hash of the bytes fed so far
 * (so the same input always splits the same way, and mutating it changes the split). Every
 * complete line is parsed with proto_parse(); a message that parses is rebuilt with the
 * matching builder and the built line must parse again to the same kind, id and op / event /
 * ok / error. Invariants: the reader never holds more than KLPQ_PROTO_MAX_LINE bytes, always
 * makes progress, and a handed-out line never contains its newline.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "fuzz_proto: check failed at line %d: %s\n",        \
				__LINE__, #cond);                                          \
			abort();                                                           \
		}                                                                          \
	} while (0)

static const size_t chunk_sizes[8] = { 1, 2, 3, 7, 64, 1000, 4096, KLPQ_PROTO_MAX_LINE + 7 };

static void check_reader(const struct proto_reader *r)
{
	CHECK(r->buf != NULL);
	CHECK(r->len <= KLPQ_PROTO_MAX_LINE);
	CHECK(r->start <= r->len);
}

/* Parses a built line (with its newline) and returns the message, which must be valid. */
static void reparse(const char *built, size_t blen, struct proto_msg *m2)
{
	char err[128];

	CHECK(blen > 0 && blen <= KLPQ_PROTO_MAX_LINE);
	CHECK(built[blen - 1] == '\n');
	CHECK(memchr(built, '\n', blen - 1) == NULL); /* one line */
	if (proto_parse(built, blen - 1, m2, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_proto: built line does not parse (%s): %.*s\n", err,
			(int)(blen > 400 ? 400 : blen), built);
		abort();
	}
}

/* A built line may only be missing when escaping could have grown the line past the bound
 * (json-c writes a control character as \u00XX: at most 6 bytes for 1). */
static void check_missing(const char *built, size_t line_len)
{
	if (!built)
		CHECK(line_len * 6 + 64 > KLPQ_PROTO_MAX_LINE);
}

static void round_trip(const struct proto_msg *m, size_t line_len)
{
	struct proto_msg m2;
	char *built = NULL;
	size_t blen = 0;

	switch (m->kind) {
	case PROTO_REQUEST:
		CHECK(m->id > 0 && m->op && *m->op);
		built = proto_request(m->id, m->op, json_object_get(m->obj), &blen);
		check_missing(built, line_len);
		if (!built)
			return;
		reparse(built, blen, &m2);
		CHECK(m2.kind == PROTO_REQUEST);
		CHECK(m2.id == m->id);
		CHECK(!strcmp(m2.op, m->op));
		/* Every member but the envelope survives. */
		json_object_object_foreach(m->obj, key, val) {
			json_object *v2;

			(void)val;
			CHECK(json_object_object_get_ex(m2.obj, key, &v2));
		}
		break;
	case PROTO_REPLY:
		CHECK(m->id > 0);
		if (m->ok) {
			CHECK(m->result && json_object_is_type(m->result, json_type_object));
			built = proto_reply_ok(m->id, json_object_get(m->result), &blen);
		} else {
			CHECK(m->error != NULL);
			built = proto_reply_error(m->id, m->error, m->err_no, &blen);
		}
		check_missing(built, line_len);
		if (!built)
			return;
		reparse(built, blen, &m2);
		CHECK(m2.kind == PROTO_REPLY);
		CHECK(m2.id == m->id);
		CHECK(m2.ok == m->ok);
		if (!m->ok) {
			CHECK(!strcmp(m2.error, m->error));
			CHECK(m2.err_no == m->err_no);
		} else {
			CHECK(json_object_object_length(m2.result) ==
			      json_object_object_length(m->result));
		}
		break;
	case PROTO_EVENT:
		CHECK(m->id == 0 && m->event && *m->event);
		built = proto_event(m->event, json_object_get(m->obj), &blen);
		check_missing(built, line_len);
		if (!built)
			return;
		reparse(built, blen, &m2);
		CHECK(m2.kind == PROTO_EVENT);
		CHECK(!strcmp(m2.event, m->event));
		break;
	default:
		CHECK(!"unknown kind");
	}
	proto_msg_release(&m2);
	free(built);
}

static void handle_line(const char *line, size_t len)
{
	struct proto_msg m;
	char err[96];
	int ret;

	CHECK(len < KLPQ_PROTO_MAX_LINE);
	CHECK(line[len] == '\0');
	CHECK(memchr(line, '\n', len) == NULL);

	memset(err, 'x', sizeof(err));
	ret = proto_parse(line, len, &m, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (ret != 0) {
		CHECK(ret == -1);
		CHECK(err[0] != '\0');
		CHECK(m.obj == NULL && m.op == NULL && m.event == NULL && m.result == NULL);
		return;
	}
	CHECK(err[0] == '\0');
	CHECK(m.obj != NULL && json_object_is_type(m.obj, json_type_object));
	round_trip(&m, len);

	/* Getters on whatever came in, with absent and present keys. */
	(void)proto_get_int(m.obj, "id", -1);
	(void)proto_get_str(m.obj, "op", NULL);
	(void)proto_get_bool(m.obj, "ok", -1);
	(void)proto_get_int(m.result, "uptime_ms", 0);
	(void)proto_get_str(m.result, "kernel", NULL);
	proto_msg_release(&m);
	CHECK(m.obj == NULL);

	/* A zero-length err buffer must be left alone. */
	ret = proto_parse(line, len, &m, NULL, 0);
	if (ret == 0)
		proto_msg_release(&m);
}

static size_t drain(struct proto_reader *r)
{
	const char *line;
	size_t len, n = 0;

	while (proto_reader_next(r, &line, &len)) {
		check_reader(r);
		handle_line(line, len);
		n++;
	}
	check_reader(r);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_reader r;
	uint32_t h = 2166136261u;
	size_t pos = 0;

	proto_reader_init(&r);
	check_reader(&r);
	while (pos < size) {
		size_t chunk = chunk_sizes[h & 7], i;

		if (chunk > size - pos)
			chunk = size - pos;
		for (i = 0; i < chunk && i < 16; i++)
			h = (h ^ data[pos + i]) * 16777619u;
		h ^= h >> 13;

		while (chunk) {
			size_t taken = proto_reader_feed(&r, (const char *)data + pos, chunk);
			size_t lines;

			CHECK(taken <= chunk);
			check_reader(&r);
			pos += taken;
			chunk -= taken;
			lines = drain(&r);
			/* Taking nothing is only allowed while complete lines wait. */
			CHECK(taken > 0 || lines > 0);
		}
	}
	drain(&r);
	proto_reader_release(&r);
	return 0;
}
