/* agent-kmsg.c: the kernel log: marks, records since a mark, taint (agent.h). */
#define _GNU_SOURCE
#include "agent.h"

/* One /dev/kmsg record: "prefix,seq,ts_us,flags[,...];text\n" then optional continuation
 * lines " KEY=VALUE\n" that belong to no text. */
struct kmsg_rec {
	int level;
	uint64_t seq;
	uint64_t ts_us;
	const char *text;
	size_t text_len;
};

static int kmsg_parse(char *buf, size_t len, struct kmsg_rec *rec)
{
	char *semi = memchr(buf, ';', len), *p = buf, *end;
	unsigned long long v[3];
	const char *nl;

	if (!semi)
		return -1;
	*semi = '\0';
	for (int i = 0; i < 3; i++) {
		errno = 0;
		v[i] = strtoull(p, &end, 10);
		if (errno || end == p || (*end != ',' && *end != '\0'))
			return -1;
		p = *end ? end + 1 : end;
	}
	/* The prefix is the syslog priority: facility << 3 | level. */
	rec->level = (int)(v[0] & 7);
	rec->seq = v[1];
	rec->ts_us = v[2];
	rec->text = semi + 1;
	nl = memchr(rec->text, '\n', (size_t)(buf + len - rec->text));
	rec->text_len = nl ? (size_t)(nl - rec->text) : (size_t)(buf + len - rec->text);
	return 0;
}

/* Reads the next record; 1 with rec filled, 0 at the end, -1 with errno on error. Records
 * overwritten before we got to them (EPIPE) are skipped: the next read continues with the
 * oldest still present. */
static int kmsg_next(int fd, char *buf, size_t size, struct kmsg_rec *rec)
{
	for (;;) {
		ssize_t n = read(fd, buf, size - 1);

		if (n < 0 && (errno == EINTR || errno == EPIPE))
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		buf[n] = '\0';
		if (kmsg_parse(buf, (size_t)n, rec) == 0)
			return 1;
	}
}

/* How /dev/kmsg shows text: non-printable bytes and '\' as \xNN. */
static void kmsg_escape(const char *s, char *out, size_t size)
{
	size_t o = 0;

	for (; *s && o + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < ' ' || c >= 127 || c == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

int do_mark(struct req *rq)
{
	const char *text = arg_str(rq, "text");
	char rec_text[MARK_TEXT_MAX + 16], want[4 * (MARK_TEXT_MAX + 16) + 1];
	char buf[KMSG_RECORD_MAX + 1];
	struct kmsg_rec rec;
	uint64_t deadline;
	int fd, n, r;

	if (!text)
		return -1;
	if (strlen(text) > MARK_TEXT_MAX || strchr(text, '\n') ||
	    strlen(text) != (size_t)json_object_get_string_len(
				    json_object_object_get(rq->args, "text")))
		return fail(rq, EINVAL, "mark: text must be one line of at most %d bytes",
			    MARK_TEXT_MAX);
	n = snprintf(rec_text, sizeof(rec_text), "klpq-mark: %s", text);
	kmsg_escape(rec_text, want, sizeof(want));
	/* The newline finalises the record: without it printk keeps the record open for a
	 * continuation and readers see it only once the next message arrives. */
	rec_text[n++] = '\n';

	/* A fresh open per mark: /dev/kmsg rate-limits writers per open file. */
	fd = open("/dev/kmsg", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(rq, "mark: open /dev/kmsg");
	/* Read only what comes after our own write. */
	if (lseek(fd, 0, SEEK_END) < 0) {
		fail_errno(rq, "mark: seek /dev/kmsg");
		goto out;
	}
	if (write(fd, rec_text, (size_t)n) != n) {
		fail_errno(rq, "mark: write /dev/kmsg");
		goto out;
	}
	deadline = mono_ms() + MARK_WAIT_MS;
	for (;;) {
		r = kmsg_next(fd, buf, sizeof(buf), &rec);
		if (r < 0) {
			fail_errno(rq, "mark: read /dev/kmsg");
			goto out;
		}
		if (r > 0) {
			if (rec.text_len == strlen(want) && !memcmp(rec.text, want, rec.text_len)) {
				put_int(rq->result, "seq", (int64_t)rec.seq);
				goto out;
			}
			continue;
		}
		if (mono_ms() >= deadline) {
			fail(rq, ENOENT, "mark: record not found in /dev/kmsg (rate limited?)");
			goto out;
		}
		struct pollfd p = { fd, POLLIN, 0 };
		poll(&p, 1, ms_until(deadline)); /* errors end up in the deadline check */
	}
out:
	close(fd);
	return rq->failed ? -1 : 0;
}

int do_kmsg(struct req *rq)
{
	char buf[KMSG_RECORD_MAX + 1];
	struct kmsg_rec rec;
	json_object *records;
	int64_t after, last;
	size_t count = 0, text = 0, cost = 0;
	int fd, r, truncated = 0;

	/* -1 asks for everything: sequence numbers start at 0 */
	if (arg_int(rq, "after", -1, INT64_MAX, 1, -1, &after) < 0)
		return -1;
	last = after;
	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(rq, "kmsg: open /dev/kmsg");
	records = json_object_new_array();
	if (!records) {
		close(fd);
		return fail(rq, ENOMEM, "kmsg: out of memory");
	}
	while ((r = kmsg_next(fd, buf, sizeof(buf), &rec)) > 0) {
		size_t c = json_cost(rec.text, rec.text_len) + KMSG_RECORD_OVERHEAD +
			   digits(rec.seq) + digits(rec.ts_us);
		json_object *o;

		if ((int64_t)rec.seq <= after)
			continue;
		if (count == KMSG_MAX_RECORDS || text + rec.text_len > KMSG_MAX_TEXT ||
		    cost + c > REPLY_BUDGET) {
			truncated = 1;
			break;
		}
		o = json_object_new_object();
		if (!o)
			break;
		put_int(o, "seq", (int64_t)rec.seq);
		put_int(o, "level", rec.level);
		put_int(o, "ts_us", (int64_t)rec.ts_us);
		put(o, "text", json_object_new_string_len(rec.text, (int)rec.text_len));
		append(records, o);
		count++;
		text += rec.text_len;
		cost += c;
		last = (int64_t)rec.seq;
	}
	if (r < 0) {
		fail_errno(rq, "kmsg: read /dev/kmsg");
		json_object_put(records);
		close(fd);
		return -1;
	}
	close(fd);
	put(rq->result, "records", records);
	put_bool(rq->result, "truncated", truncated);
	put_int(rq->result, "last", last);
	return 0;
}

int do_taint(struct req *rq)
{
	int64_t taint;

	if (read_int_file("/proc/sys/kernel/tainted", &taint) < 0)
		return fail_errno(rq, "taint: /proc/sys/kernel/tainted");
	put_int(rq->result, "taint", taint);
	return 0;
}
