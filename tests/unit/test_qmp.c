/* test_qmp.c: the QMP client (qmp.c) against a fake QEMU at the other end of a socketpair: the
 * greeting, a command and its reply matched by id with events in between handed to the
 * callback, an error reply, a late reply to a command given up on, and the end of the
 * connection. The client has no loop of its own: each read is one qmp_read_available, as the
 * VM's event loop does it. */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp.h"

struct seen {
	char events[8][32];
	int n;
};

static void on_event(void *ctx, const char *event, json_object *data)
{
	struct seen *s = ctx;

	(void)data;
	if (s->n < 8)
		snprintf(s->events[s->n++], sizeof(s->events[0]), "%s", event);
}

static void say(int fd, const char *text)
{
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* The request QEMU received: its "execute" and "id". */
static int64_t heard(int fd, const char *cmd)
{
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	json_object *o, *v;
	int64_t id;

	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(buf[n - 1] == '\n', "a request is one line: %s", buf);
	o = json_tokener_parse(buf);
	ck_assert_ptr_nonnull(o);
	ck_assert(json_object_object_get_ex(o, "execute", &v));
	ck_assert_str_eq(json_object_get_string(v), cmd);
	ck_assert(json_object_object_get_ex(o, "id", &v));
	id = json_object_get_int64(v);
	json_object_put(o);
	return id;
}

START_TEST(test_qmp_exchange)
{
	int sv[2];
	struct qmp q;
	struct seen s = { .n = 0 };
	struct kerr e = KERR_INIT;
	json_object *ret = NULL;
	char line[256];
	int64_t id;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	qmp_init(&q, sv[0], on_event, &s);

	/* nothing there: a read that does not block, and nothing changes */
	ck_assert_int_eq(qmp_read_available(&q), 0);
	ck_assert_int_eq(q.greeted, 0);
	say(sv[1], "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, \"capabilities\": []}}\n");
	ck_assert_int_eq(qmp_read_available(&q), 0);
	ck_assert_int_eq(q.greeted, 1);

	/* a command; an event and a reply to another id first, then its own reply in two
	 * pieces */
	id = qmp_send_command(&q, "query-status", NULL, &e);
	ck_assert_int_gt(id, 0);
	ck_assert_int_eq(heard(sv[1], "query-status"), id);
	snprintf(line, sizeof(line), "{\"event\": \"STOP\", \"data\": {}}\n"
		 "{\"return\": {}, \"id\": %lld}\n{\"return\": {\"status\": \"run",
		 (long long)id + 100);
	say(sv[1], line);
	ck_assert_int_eq(qmp_read_available(&q), 0);
	ck_assert_int_eq(qmp_have_reply(&q), 0);
	ck_assert_int_eq(s.n, 1);
	ck_assert_str_eq(s.events[0], "STOP");
	snprintf(line, sizeof(line), "ning\"}, \"id\": %lld}\n", (long long)id);
	say(sv[1], line);
	ck_assert_int_eq(qmp_read_available(&q), 0);
	ck_assert_int_eq(qmp_have_reply(&q), 1);
	ck_assert_int_eq(qmp_take_reply(&q, "query-status", &ret, &e), 0);
	ck_assert_str_eq(proto_get_str(ret, "status", ""), "running");
	json_object_put(ret);
	ck_assert_int_eq(qmp_have_reply(&q), 0);

	/* an error reply is the command's error, with QEMU's words */
	id = qmp_send_command(&q, "human-monitor-command", NULL, &e);
	ck_assert_int_eq(heard(sv[1], "human-monitor-command"), id);
	snprintf(line, sizeof(line), "{\"error\": {\"class\": \"GenericError\", \"desc\": "
		 "\"Parameter 'command-line' is missing\"}, \"id\": %lld}\n", (long long)id);
	say(sv[1], line);
	ck_assert_int_eq(qmp_read_available(&q), 0);
	ck_assert_int_eq(qmp_take_reply(&q, "human-monitor-command", NULL, &e), -1);
	ck_assert_msg(strstr(e.msg, "QMP human-monitor-command: Parameter 'command-line' is "
			       "missing"), "%s", e.msg);
	kerr_clear(&e);

	/* a command given up on: its late reply is dropped, not taken for the next one's */
	id = qmp_send_command(&q, "query-kvm", NULL, &e);
	ck_assert_int_eq(heard(sv[1], "query-kvm"), id);
	qmp_forget(&q);
	snprintf(line, sizeof(line), "{\"return\": {\"enabled\": true}, \"id\": %lld}\n",
		 (long long)id);
	say(sv[1], line);
	ck_assert_int_eq(qmp_read_available(&q), 0);
	ck_assert_int_eq(qmp_have_reply(&q), 0);
	ck_assert_int_eq(qmp_take_reply(&q, "query-kvm", NULL, &e), -1);
	ck_assert_msg(strstr(e.msg, "no reply"), "%s", e.msg);
	kerr_clear(&e);

	/* QEMU gone: the read says so, and a command after it is refused */
	say(sv[1], "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true}}\n");
	close(sv[1]);
	ck_assert_int_eq(qmp_read_available(&q), 0);
	ck_assert_str_eq(s.events[1], "SHUTDOWN");
	ck_assert_int_eq(qmp_read_available(&q), -1);
	ck_assert_int_eq(q.closed, 1);
	ck_assert_int_eq(qmp_send_command(&q, "quit", NULL, &e), -1);
	ck_assert_msg(strstr(e.msg, "connection closed"), "%s", e.msg);
	qmp_release(&q);
}
END_TEST

Suite *qmp_suite(void)
{
	Suite *s = suite_create("qmp");
	TCase *tc = tcase_create("socketpair");

	tcase_add_test(tc, test_qmp_exchange);
	suite_add_tcase(s, tc);
	return s;
}
