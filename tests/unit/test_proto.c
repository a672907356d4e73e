/* test_proto.c: unit tests for the agent protocol codec (harness/proto.c). */
#define _GNU_SOURCE
#include "proto.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* Regression (found by tests/fuzz/fuzz_proto.c): a member whose value is JSON null made every
 * builder return NULL, as if the line were too long, so such a message could never be sent. */
START_TEST(test_build_null_member)
{
	const char line[] = "{\"v\":1,\"id\":1,\"op\":\"x\",\"eventue,vent\":null}";
	struct proto_msg m;
	char err[128];
	size_t len = 0;
	char *built;
	json_object *res = json_object_new_object();

	ck_assert_int_eq(proto_parse(line, strlen(line), &m, err, sizeof(err)), 0);
	built = proto_request(m.id, m.op, json_object_get(m.obj), &len);
	ck_assert_ptr_nonnull(built);
	ck_assert_ptr_nonnull(strstr(built, "\"eventue,vent\":null"));
	free(built);
	proto_msg_release(&m);

	json_object_object_add(res, "stack_order", NULL);
	built = proto_reply_ok(7, res, &len);
	ck_assert_ptr_nonnull(built);
	ck_assert_ptr_nonnull(strstr(built, "\"stack_order\":null"));
	free(built);
}
END_TEST

Suite *proto_suite(void);

#define MAX KLPQ_PROTO_MAX_LINE

/* Lines taken out of a reader, concatenated with '\n' after each, for easy comparison. */
struct collected {
	char *buf;
	size_t len, alloc;
	size_t lines;
};

static void collect_add(struct collected *c, const char *line, size_t len)
{
	if (c->len + len + 2 > c->alloc) {
		c->alloc = (c->len + len + 2) * 2;
		c->buf = realloc(c->buf, c->alloc);
		ck_assert_ptr_nonnull(c->buf);
	}
	memcpy(c->buf + c->len, line, len);
	c->len += len;
	c->buf[c->len++] = '\n';
	c->buf[c->len] = '\0';
	c->lines++;
}

static void drain(struct proto_reader *r, struct collected *c)
{
	const char *line;
	size_t len;

	while (proto_reader_next(r, &line, &len) == 1) {
		ck_assert_uint_eq(strlen(line), len); /* NUL-terminated, no newline */
		ck_assert_ptr_null(memchr(line, '\n', len));
		collect_add(c, line, len);
	}
}

/* Feeds data in chunks of the given size (0: pseudo-random sizes), the way callers do:
 * feed, take every line, feed the rest. Checks the memory bound after every call. */
static void feed_chunked(struct proto_reader *r, const char *data, size_t len, size_t chunk,
			 struct collected *c)
{
	unsigned seed = 12345;
	size_t off = 0;

	while (off < len) {
		size_t n = chunk;
		if (!n) {
			seed = seed * 1103515245 + 12345;
			n = 1 + (seed >> 8) % 9000;
		}
		if (n > len - off)
			n = len - off;
		size_t end = off + n;
		while (off < end) {
			size_t took = proto_reader_feed(r, data + off, end - off);
			ck_assert_uint_le(r->len, MAX);
			ck_assert_uint_le(r->start, r->len);
			off += took;
			drain(r, c);
			if (!took) {
				/* feed may take nothing only while complete lines wait */
				ck_assert_uint_lt(off, end);
				ck_assert_uint_le(r->len, MAX);
			}
		}
	}
}

/* A stream of lines of assorted lengths, up to the largest allowed. */
static char *make_stream(size_t *len, size_t *nlines)
{
	static const size_t sizes[] = { 0, 1, 2, 17, 100, 4095, 4096, 4097, 30000,
					MAX - 1, 3, MAX - 2, 0, 5 };
	size_t total = 0, off = 0;
	char *s;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		total += sizes[i] + 1;
	s = malloc(total + 1);
	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (size_t j = 0; j < sizes[i]; j++)
			s[off++] = (char)('a' + (i + j) % 26);
		s[off++] = '\n';
	}
	s[off] = '\0';
	*len = total;
	*nlines = sizeof(sizes) / sizeof(sizes[0]);
	return s;
}

START_TEST(test_framing_chunkings)
{
	static const size_t chunks[] = { 1, 2, 3, 7, 64, 1000, 4096, 65535, 65536, 65537,
					 1 << 20, 0 };
	size_t len, nlines;
	char *stream = make_stream(&len, &nlines);

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct proto_reader r;
		struct collected c = { 0 };

		proto_reader_init(&r);
		feed_chunked(&r, stream, len, chunks[i], &c);
		ck_assert_uint_eq(c.lines, nlines);
		ck_assert_uint_eq(c.len, len);
		ck_assert_msg(!memcmp(c.buf, stream, len), "chunk size %zu mangled lines",
			      chunks[i]);
		ck_assert_uint_eq(r.oversized, 0);
		proto_reader_release(&r);
		free(c.buf);
	}
	free(stream);
}
END_TEST

START_TEST(test_line_split_across_feeds)
{
	struct proto_reader r;
	const char *line;
	size_t len;
	const char *a = "{\"v\":1,\"id\":7,", *b = "\"op\":\"hello\"}\n{\"v\":1,";

	proto_reader_init(&r);
	ck_assert_uint_eq(proto_reader_feed(&r, a, strlen(a)), strlen(a));
	ck_assert_int_eq(proto_reader_next(&r, &line, &len), 0);
	ck_assert_uint_eq(proto_reader_feed(&r, b, strlen(b)), strlen(b));
	ck_assert_int_eq(proto_reader_next(&r, &line, &len), 1);
	ck_assert_str_eq(line, "{\"v\":1,\"id\":7,\"op\":\"hello\"}");
	ck_assert_uint_eq(len, strlen(line));
	ck_assert_int_eq(proto_reader_next(&r, &line, &len), 0);
	ck_assert_uint_eq(proto_reader_feed(&r, "\"event\":\"x\"}\n", 13), 13);
	ck_assert_int_eq(proto_reader_next(&r, &line, &len), 1);
	ck_assert_str_eq(line, "{\"v\":1,\"event\":\"x\"}");
	ck_assert_int_eq(proto_reader_next(&r, &line, &len), 0);
	proto_reader_release(&r);
}
END_TEST

/* A line one byte over the bound is dropped, counted, and the next line still comes out;
 * the same in every chunking. */
START_TEST(test_oversized_dropped)
{
	static const size_t chunks[] = { 1, 13, 4096, 65536, 1 << 20, 0 };
	const char *good = "{\"v\":1,\"id\":1,\"op\":\"hello\"}";
	size_t over = MAX; /* MAX bytes plus the newline: one too many */
	size_t len = over + 1 + strlen(good) + 1;
	char *s = malloc(len);

	ck_assert_ptr_nonnull(s);
	memset(s, 'x', over);
	s[over] = '\n';
	memcpy(s + over + 1, good, strlen(good));
	s[len - 1] = '\n';

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct proto_reader r;
		struct collected c = { 0 };
		struct proto_msg m;
		char err[128];

		proto_reader_init(&r);
		feed_chunked(&r, s, len, chunks[i], &c);
		ck_assert_uint_eq(r.oversized, 1);
		ck_assert_uint_eq(c.lines, 1);
		c.buf[c.len - 1] = '\0';
		ck_assert_str_eq(c.buf, good);
		ck_assert_int_eq(proto_parse(c.buf, c.len - 1, &m, err, sizeof(err)), 0);
		ck_assert_int_eq(m.kind, PROTO_REQUEST);
		ck_assert_str_eq(m.op, "hello");
		proto_msg_release(&m);
		proto_reader_release(&r);
		free(c.buf);
	}
	free(s);
}
END_TEST

/* Exactly KLPQ_PROTO_MAX_LINE bytes with the newline is still a line. */
START_TEST(test_max_line_accepted)
{
	struct proto_reader r;
	struct collected c = { 0 };
	char *s = malloc(MAX + 2);

	ck_assert_ptr_nonnull(s);
	memset(s, 'y', MAX - 1);
	s[MAX - 1] = '\n';
	s[MAX] = 'z';
	s[MAX + 1] = '\n';
	proto_reader_init(&r);
	feed_chunked(&r, s, MAX + 2, 0, &c);
	ck_assert_uint_eq(r.oversized, 0);
	ck_assert_uint_eq(c.lines, 2);
	ck_assert_uint_eq(c.len, MAX + 2);
	ck_assert(!memcmp(c.buf, s, MAX + 2));
	proto_reader_release(&r);
	free(c.buf);
	free(s);
}
END_TEST

/* Megabytes without a newline never grow the reader; each MAX-sized run is one drop. */
START_TEST(test_memory_bounded)
{
	size_t len = 4 * 1024 * 1024 + 3;
	char *s = malloc(len + 16);
	struct proto_reader r;
	struct collected c = { 0 };

	ck_assert_ptr_nonnull(s);
	memset(s, 'q', len);
	memcpy(s + len, "\n{}\n", 4);
	proto_reader_init(&r);
	feed_chunked(&r, s, len + 4, 0, &c);
	ck_assert_uint_le(r.len, MAX);
	ck_assert_uint_eq(r.oversized, 1); /* one long line, dropped once */
	ck_assert_uint_eq(c.lines, 1);
	ck_assert_str_eq(c.buf, "{}\n");
	proto_reader_release(&r);
	free(c.buf);
	free(s);
}
END_TEST

/* A buffer full of complete lines makes feed take less; the rest goes in afterwards. */
START_TEST(test_feed_partial_take)
{
	size_t n = 3 * MAX / 10, len = n * 10;
	char *s = malloc(len);
	struct proto_reader r;
	size_t took, off = 0, lines = 0;
	const char *line;
	size_t llen;

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * 10, "012345678\n", 10);
	proto_reader_init(&r);
	took = proto_reader_feed(&r, s, len);
	ck_assert_uint_eq(took, MAX);
	ck_assert_uint_eq(r.len, MAX);
	ck_assert_uint_eq(proto_reader_feed(&r, s + took, len - took), 0);
	off = took;
	while (off < len) {
		off += proto_reader_feed(&r, s + off, len - off);
		ck_assert_uint_le(r.len, MAX);
		while (proto_reader_next(&r, &line, &llen) == 1) {
			ck_assert_str_eq(line, "012345678");
			lines++;
		}
	}
	ck_assert_uint_eq(lines, n);
	ck_assert_uint_eq(r.oversized, 0);
	proto_reader_release(&r);
	free(s);
}
END_TEST

static int parse(const char *line, struct proto_msg *m, char *err, size_t err_len)
{
	return proto_parse(line, strlen(line), m, err, err_len);
}

START_TEST(test_parse_request)
{
	struct proto_msg m;
	char err[128] = "stale";

	ck_assert_int_eq(parse("{\"v\":1,\"id\":42,\"op\":\"exec\",\"argv\":[\"/bin/true\"],"
			       "\"timeout_ms\":500}", &m, err, sizeof(err)), 0);
	ck_assert_int_eq(m.kind, PROTO_REQUEST);
	ck_assert_int_eq(m.id, 42);
	ck_assert_str_eq(m.op, "exec");
	ck_assert_ptr_null(m.event);
	ck_assert_ptr_nonnull(m.obj);
	ck_assert_int_eq(proto_get_int(m.obj, "timeout_ms", -1), 500);
	ck_assert_str_eq(err, "");
	proto_msg_release(&m);
	ck_assert_ptr_null(m.obj);
}
END_TEST

START_TEST(test_parse_reply_ok)
{
	struct proto_msg m;
	char err[128];

	ck_assert_int_eq(parse("{\"v\":1,\"id\":3,\"ok\":true,\"result\":{\"taint\":4096}}", &m,
			       err, sizeof(err)), 0);
	ck_assert_int_eq(m.kind, PROTO_REPLY);
	ck_assert_int_eq(m.id, 3);
	ck_assert_int_eq(m.ok, 1);
	ck_assert_ptr_null(m.error);
	ck_assert_ptr_nonnull(m.result);
	ck_assert_int_eq(proto_get_int(m.result, "taint", -1), 4096);
	proto_msg_release(&m);
}
END_TEST

START_TEST(test_parse_reply_error)
{
	struct proto_msg m;
	char err[128];

	ck_assert_int_eq(parse("{\"v\":1,\"id\":9,\"ok\":false,\"error\":\"load: Invalid argument\","
			       "\"errno\":22}", &m, err, sizeof(err)), 0);
	ck_assert_int_eq(m.kind, PROTO_REPLY);
	ck_assert_int_eq(m.id, 9);
	ck_assert_int_eq(m.ok, 0);
	ck_assert_str_eq(m.error, "load: Invalid argument");
	ck_assert_int_eq(m.err_no, 22);
	ck_assert_ptr_null(m.result);
	proto_msg_release(&m);

	/* errno is optional */
	ck_assert_int_eq(parse("{\"v\":1,\"id\":9,\"ok\":false,\"error\":\"unknown op\"}", &m,
			       err, sizeof(err)), 0);
	ck_assert_int_eq(m.err_no, 0);
	ck_assert_str_eq(m.error, "unknown op");
	proto_msg_release(&m);
}
END_TEST

START_TEST(test_parse_event)
{
	struct proto_msg m;
	char err[128];
	const char *line = "{\"v\":1,\"event\":\"ready\",\"kernel\":\"6.1.0-56-amd64\","
			   "\"uptime_ms\":1834,\"agent\":\"klpq-agent 1\"}\r";

	/* trailing whitespace (QMP ends lines with \r\n) is fine */
	ck_assert_int_eq(parse(line, &m, err, sizeof(err)), 0);
	ck_assert_int_eq(m.kind, PROTO_EVENT);
	ck_assert_int_eq(m.id, 0);
	ck_assert_str_eq(m.event, "ready");
	ck_assert_str_eq(proto_get_str(m.obj, "kernel", ""), "6.1.0-56-amd64");
	ck_assert_int_eq(proto_get_int(m.obj, "uptime_ms", 0), 1834);
	proto_msg_release(&m);
}
END_TEST

/* Every malformed line fails with a reason and a zeroed message. */
START_TEST(test_parse_rejects)
{
	static const struct {
		const char *line;
		const char *reason; /* substring of the error */
	} bad[] = {
		{ "{\"v\":2,\"id\":1,\"op\":\"hello\"}", "version" },
		{ "{\"v\":\"1\",\"id\":1,\"op\":\"hello\"}", "version" },
		{ "{\"v\":1.0,\"id\":1,\"op\":\"hello\"}", "version" },
		{ "{\"id\":1,\"op\":\"hello\"}", "version" },
		{ "{\"v\":1,\"op\":\"hello\"}", "id" },
		{ "{\"v\":1,\"id\":\"1\",\"op\":\"hello\"}", "id" },
		{ "{\"v\":1,\"id\":1.5,\"op\":\"hello\"}", "id" },
		{ "{\"v\":1,\"id\":0,\"op\":\"hello\"}", "id" },
		{ "{\"v\":1,\"id\":-4,\"op\":\"hello\"}", "id" },
		{ "{\"v\":1,\"id\":1,\"op\":7}", "op" },
		{ "{\"v\":1,\"id\":1,\"op\":\"\"}", "op" },
		{ "{\"v\":1,\"id\":1,\"op\":\"hello\",\"ok\":true,\"result\":{}}", "more than one" },
		{ "{\"v\":1,\"id\":1,\"op\":\"hello\",\"event\":\"x\"}", "more than one" },
		{ "{\"v\":1,\"id\":1}", "none of" },
		{ "{\"v\":1,\"ok\":true,\"result\":{}}", "id" },
		{ "{\"v\":1,\"id\":1,\"ok\":1,\"result\":{}}", "boolean" },
		{ "{\"v\":1,\"id\":1,\"ok\":true}", "result" },
		{ "{\"v\":1,\"id\":1,\"ok\":true,\"result\":[]}", "result" },
		{ "{\"v\":1,\"id\":1,\"ok\":false}", "error" },
		{ "{\"v\":1,\"id\":1,\"ok\":false,\"error\":5}", "error" },
		{ "{\"v\":1,\"id\":1,\"ok\":false,\"error\":\"x\",\"errno\":\"22\"}", "errno" },
		{ "{\"v\":1,\"event\":3}", "event" },
		{ "[1,2,3]", "object" },
		{ "\"hello\"", "object" },
		{ "null", "object" },
		{ "{\"v\":1,\"id\":1,\"op\":\"hello\"} x", "trailing" },
		{ "{\"v\":1,\"id\":1,\"op\":\"hello\"}{}", "trailing" },
		{ "{\"v\":1,\"id\":1,\"op\":", "JSON" },
		{ "{v:1}", "JSON" },
		{ "\x01\x02garbage", "JSON" },
		{ "", "JSON" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct proto_msg m;
		char err[128] = "";

		memset(&m, 0x5a, sizeof(m));
		ck_assert_msg(parse(bad[i].line, &m, err, sizeof(err)) == -1,
			      "accepted: %s", bad[i].line);
		ck_assert_msg(strstr(err, bad[i].reason), "line %s: reason '%s' lacks '%s'",
			      bad[i].line, err, bad[i].reason);
		ck_assert_ptr_null(m.obj);
		ck_assert_ptr_null(m.op);
		ck_assert_ptr_null(m.event);
		ck_assert_int_eq(m.id, 0);
		proto_msg_release(&m); /* harmless on a zeroed message */
	}
}
END_TEST

/* An embedded NUL or an over-long length is refused, and err may be omitted. */
START_TEST(test_parse_odd_input)
{
	static const char withnul[] = "{\"v\":1,\"id\":1,\"op\":\"hello\"}\0{}";
	struct proto_msg m;
	char *big;
	char err[8];

	ck_assert_int_eq(proto_parse(withnul, sizeof(withnul) - 1, &m, NULL, 0), -1);
	ck_assert_ptr_null(m.obj);
	big = malloc(MAX + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, ' ', MAX);
	big[MAX] = '\0';
	ck_assert_int_eq(proto_parse(big, MAX, &m, err, sizeof(err)), -1);
	ck_assert_uint_lt(strlen(err), sizeof(err)); /* reason truncated, still terminated */
	free(big);
}
END_TEST

/* Builds, checks the framing, parses back. */
static void roundtrip(char *line, size_t len, struct proto_msg *m)
{
	/* callers pass len by value: build the line in its own statement first */
	char err[128];

	ck_assert_ptr_nonnull(line);
	ck_assert_uint_eq(strlen(line), len);
	ck_assert_uint_le(len, MAX);
	ck_assert_int_eq(line[len - 1], '\n');
	ck_assert_ptr_eq(memchr(line, '\n', len), line + len - 1);
	ck_assert_msg(proto_parse(line, len - 1, m, err, sizeof(err)) == 0, "%s: %s", line, err);
	free(line);
}

START_TEST(test_build_request)
{
	json_object *args = json_object_new_object();
	json_object *argv = json_object_new_array();
	struct proto_msg m;
	char *line;
	size_t len;

	json_object_array_add(argv, json_object_new_string("/bin/echo"));
	json_object_array_add(argv, json_object_new_string("a \"quoted\"\nline/x"));
	json_object_object_add(args, "argv", argv);
	json_object_object_add(args, "timeout_ms", json_object_new_int(500));
	json_object_object_add(args, "v", json_object_new_int(7)); /* must not win */
	json_object_object_add(args, "id", json_object_new_int(99));
	line = proto_request(5, "exec", args, &len);
	roundtrip(line, len, &m);
	ck_assert_int_eq(m.kind, PROTO_REQUEST);
	ck_assert_int_eq(m.id, 5);
	ck_assert_str_eq(m.op, "exec");
	ck_assert_int_eq(proto_get_int(m.obj, "v", 0), 1);
	ck_assert_int_eq(proto_get_int(m.obj, "timeout_ms", 0), 500);
	json_object *a;
	ck_assert(json_object_object_get_ex(m.obj, "argv", &a));
	ck_assert_int_eq(json_object_array_length(a), 2);
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(a, 1)),
			 "a \"quoted\"\nline/x");
	proto_msg_release(&m);

	/* no arguments */
	line = proto_request(1, "hello", NULL, &len);
	roundtrip(line, len, &m);
	ck_assert_str_eq(m.op, "hello");
	proto_msg_release(&m);

	/* arguments that are not an object, or a bad id: no message */
	ck_assert_ptr_null(proto_request(1, "hello", json_object_new_int(3), &len));
	ck_assert_uint_eq(len, 0);
	ck_assert_ptr_null(proto_request(0, "hello", NULL, &len));
	ck_assert_ptr_null(proto_request(1, "", NULL, &len));
}
END_TEST

START_TEST(test_build_replies)
{
	json_object *res = json_object_new_object();
	struct proto_msg m;
	char *line;
	size_t len;

	json_object_object_add(res, "taint", json_object_new_int64(1ll << 40));
	line = proto_reply_ok(12, res, &len);
	roundtrip(line, len, &m);
	ck_assert_int_eq(m.kind, PROTO_REPLY);
	ck_assert_int_eq(m.id, 12);
	ck_assert_int_eq(m.ok, 1);
	ck_assert_int_eq(proto_get_int(m.result, "taint", 0), 1ll << 40);
	proto_msg_release(&m);

	line = proto_reply_ok(13, NULL, &len);
	roundtrip(line, len, &m);
	ck_assert_int_eq(m.ok, 1);
	ck_assert_int_eq(json_object_object_length(m.result), 0);
	proto_msg_release(&m);

	line = proto_reply_error(14, "unknown op", 0, &len);
	roundtrip(line, len, &m);
	ck_assert_int_eq(m.ok, 0);
	ck_assert_int_eq(m.id, 14);
	ck_assert_str_eq(m.error, "unknown op");
	ck_assert_int_eq(m.err_no, 0);
	proto_msg_release(&m);

	line = proto_reply_error(15, "load /klpq/patches/p.ko: Invalid argument", 22, &len);
	roundtrip(line, len, &m);
	ck_assert_str_eq(m.error, "load /klpq/patches/p.ko: Invalid argument");
	ck_assert_int_eq(m.err_no, 22);
	proto_msg_release(&m);

	ck_assert_ptr_null(proto_reply_ok(16, json_object_new_array(), &len));
	ck_assert_ptr_null(proto_reply_ok(0, NULL, &len));
}
END_TEST

START_TEST(test_build_event)
{
	json_object *f = json_object_new_object();
	struct proto_msg m;
	char *line;
	size_t len;

	json_object_object_add(f, "uptime_ms", json_object_new_int64(2000));
	json_object_object_add(f, "ok", json_object_new_boolean(1)); /* would make it a reply */
	line = proto_event("heartbeat", f, &len);
	roundtrip(line, len, &m);
	ck_assert_int_eq(m.kind, PROTO_EVENT);
	ck_assert_str_eq(m.event, "heartbeat");
	ck_assert_int_eq(proto_get_int(m.obj, "uptime_ms", 0), 2000);
	ck_assert(!json_object_object_get_ex(m.obj, "ok", NULL));
	proto_msg_release(&m);

	line = proto_event("log", NULL, &len);
	roundtrip(line, len, &m);
	ck_assert_str_eq(m.event, "log");
	proto_msg_release(&m);
}
END_TEST

/* An event carrying a text of n bytes, built. */
static char *event_with_text(size_t n, size_t *len)
{
	json_object *f = json_object_new_object();
	char *text = malloc(n + 1);

	ck_assert_ptr_nonnull(text);
	memset(text, 't', n);
	text[n] = '\0';
	json_object_object_add(f, "text", json_object_new_string(text));
	free(text);
	return proto_event("log", f, len);
}

START_TEST(test_build_bound)
{
	size_t len, base;
	char *line;
	struct proto_msg m;

	line = event_with_text(0, &base);
	ck_assert_ptr_nonnull(line);
	free(line);

	/* exactly the bound: accepted; one byte more: refused */
	line = event_with_text(MAX - base, &len);
	ck_assert_ptr_nonnull(line);
	ck_assert_uint_eq(len, MAX);
	roundtrip(line, len, &m);
	proto_msg_release(&m);

	ck_assert_ptr_null(event_with_text(MAX - base + 1, &len));
	ck_assert_uint_eq(len, 0);

	/* escaping counts: 20000 control characters become 120000 bytes */
	json_object *res = json_object_new_object();
	char *ctl = malloc(20001);
	ck_assert_ptr_nonnull(ctl);
	memset(ctl, 1, 20000);
	ctl[20000] = '\0';
	json_object_object_add(res, "output", json_object_new_string(ctl));
	free(ctl);
	ck_assert_ptr_null(proto_reply_ok(1, res, &len));

	json_object *args = json_object_new_object();
	char *big = malloc(MAX + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, 'b', MAX);
	big[MAX] = '\0';
	json_object_object_add(args, "text", json_object_new_string(big));
	ck_assert_ptr_null(proto_request(1, "mark", args, &len));
	ck_assert_ptr_null(proto_reply_error(1, big, 0, &len));
	free(big);
}
END_TEST

START_TEST(test_getters)
{
	json_object *o = json_tokener_parse("{\"i\":-5,\"s\":\"str\",\"b\":true,\"d\":1.5,"
					    "\"n\":null,\"f\":false}");

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(proto_get_int(o, "i", 0), -5);
	ck_assert_int_eq(proto_get_int(o, "s", 77), 77);
	ck_assert_int_eq(proto_get_int(o, "d", 77), 77);
	ck_assert_int_eq(proto_get_int(o, "b", 77), 77);
	ck_assert_int_eq(proto_get_int(o, "missing", 77), 77);
	ck_assert_str_eq(proto_get_str(o, "s", "def"), "str");
	ck_assert_str_eq(proto_get_str(o, "i", "def"), "def");
	ck_assert_str_eq(proto_get_str(o, "n", "def"), "def");
	ck_assert_ptr_null(proto_get_str(o, "missing", NULL));
	ck_assert_int_eq(proto_get_bool(o, "b", 0), 1);
	ck_assert_int_eq(proto_get_bool(o, "f", 1), 0);
	ck_assert_int_eq(proto_get_bool(o, "i", -1), -1);
	ck_assert_int_eq(proto_get_int(NULL, "i", 3), 3);
	json_object_put(o);
}
END_TEST

Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *framing = tcase_create("framing");
	TCase *parsing = tcase_create("parse");
	TCase *building = tcase_create("build");

	tcase_set_timeout(framing, 60);
	tcase_add_test(framing, test_framing_chunkings);
	tcase_add_test(framing, test_line_split_across_feeds);
	tcase_add_test(framing, test_oversized_dropped);
	tcase_add_test(framing, test_max_line_accepted);
	tcase_add_test(framing, test_memory_bounded);
	tcase_add_test(framing, test_feed_partial_take);
	suite_add_tcase(s, framing);

	tcase_add_test(parsing, test_parse_request);
	tcase_add_test(parsing, test_parse_reply_ok);
	tcase_add_test(parsing, test_parse_reply_error);
	tcase_add_test(parsing, test_parse_event);
	tcase_add_test(parsing, test_parse_rejects);
	tcase_add_test(parsing, test_parse_odd_input);
	tcase_add_test(parsing, test_getters);
	suite_add_tcase(s, parsing);

	tcase_add_test(building, test_build_request);
	tcase_add_test(building, test_build_replies);
	tcase_add_test(building, test_build_event);
	tcase_add_test(building, test_build_bound);
	tcase_add_test(building, test_build_null_member);
	suite_add_tcase(s, building);
	return s;
}
