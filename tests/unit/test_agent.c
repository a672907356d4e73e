/* test_agent.c: the guest agent (build/klpq-agent) in its host mode, `--port SOCKET`, against a
 * unix socket: the ready event, replies to good and bad requests through the one reply path,
 * and a malformed line dropped with a log event without losing the channel. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"
#include "spawn.h"
#include "util.h"

struct conn {
	char dir[64];
	struct child c;
	FILE *f;
	int fd;
};

static void conn_open(struct conn *k)
{
	const char *agent = getenv("KLPQ_AGENT") ? getenv("KLPQ_AGENT") : "build/klpq-agent";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct kerr e = KERR_INIT;
	static const char *argv[4];
	int l;

	snprintf(k->dir, sizeof(k->dir), "/tmp/klpq-test-agent-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(k->dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/port.sock", k->dir);
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(l, 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	argv[0] = agent;
	argv[1] = "--port";
	argv[2] = sa.sun_path;
	argv[3] = NULL;
	k->c = (struct child)CHILD_INIT;
	k->c.argv = argv;
	ck_assert_msg(child_start(&k->c, &e) == 0, "%s (make builds the agent first)", e.msg);
	k->fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(k->fd, 0);
	close(l);
	k->f = fdopen(k->fd, "r+");
	ck_assert_ptr_nonnull(k->f);
}

static void conn_close(struct conn *k)
{
	char p[96];

	fclose(k->f);
	kill(k->c.pid, SIGKILL);
	child_wait(&k->c);
	snprintf(p, sizeof(p), "%s/port.sock", k->dir);
	unlink(p);
	rmdir(k->dir);
}

/* The next message that is not a heartbeat (nor, with skip_logs, a log event), parsed into m. */
static void next_of(struct conn *k, struct proto_msg *m, int skip_logs)
{
	char *line = NULL, err[128];
	size_t cap = 0;
	ssize_t n;

	for (;;) {
		n = getline(&line, &cap, k->f);
		ck_assert_int_gt(n, 0);
		ck_assert_msg(proto_parse(line, (size_t)n, m, err, sizeof(err)) == 0, "%s: %s", err,
			      line);
		if (!m->event || (strcmp(m->event, "heartbeat") &&
				   (!skip_logs || strcmp(m->event, "log"))))
			break;
		proto_msg_release(m);
	}
	free(line);
}

static void next_msg(struct conn *k, struct proto_msg *m)
{
	next_of(k, m, 1);
}

static void send_raw(struct conn *k, const char *line)
{
	ck_assert_int_ge(fputs(line, k->f), 0);
	fflush(k->f);
}

START_TEST(test_agent_host_mode)
{
	struct conn k;
	struct proto_msg m;

	conn_open(&k);
	next_msg(&k, &m);
	ck_assert_str_eq(m.event, "ready");
	ck_assert_str_eq(proto_get_str(m.obj, "agent", ""), "klpq-agent 1");
	proto_msg_release(&m);

	send_raw(&k, "{\"v\":1,\"id\":1,\"op\":\"exec\",\"argv\":[\"/bin/sh\",\"-c\",\"echo hi; exit 3\"],"
		 "\"timeout_ms\":5000}\n");
	next_msg(&k, &m);
	ck_assert_int_eq(proto_get_int(m.obj, "id", 0), 1);
	ck_assert(m.ok);
	ck_assert_int_eq(proto_get_int(m.result, "exit", -1), 3);
	ck_assert_str_eq(proto_get_str(m.result, "output", ""), "hi\n");
	proto_msg_release(&m);

	send_raw(&k, "{\"v\":1,\"id\":2,\"op\":\"sysctl\",\"key\":\"kernel/../x\",\"value\":\"1\"}\n");
	next_msg(&k, &m);
	ck_assert(!m.ok);
	ck_assert_int_eq(m.err_no, EINVAL);
	proto_msg_release(&m);

	send_raw(&k, "{\"v\":1,\"id\":3,\"op\":\"no_such_op\"}\n");
	next_msg(&k, &m);
	ck_assert(!m.ok);
	ck_assert_int_eq(m.err_no, EOPNOTSUPP);
	proto_msg_release(&m);

	/* a line that is not JSON: dropped with a log event saying so, the channel kept */
	send_raw(&k, "{\"v\":1,\"id\":4,\"op\":\n");
	next_of(&k, &m, 0);
	ck_assert_str_eq(m.event, "log");
	ck_assert_msg(strstr(proto_get_str(m.obj, "text", ""), "malformed request dropped"),
		      "%s", proto_get_str(m.obj, "text", ""));
	proto_msg_release(&m);
	send_raw(&k, "{\"v\":1,\"id\":5,\"op\":\"now\"}\n");
	next_msg(&k, &m);
	ck_assert_int_eq(proto_get_int(m.obj, "id", 0), 5);
	ck_assert(m.ok);
	ck_assert_int_gt(proto_get_int(m.result, "mono_ns", 0), 0);
	proto_msg_release(&m);
	conn_close(&k);
}
END_TEST

Suite *agent_suite(void)
{
	Suite *s = suite_create("agent");
	TCase *tc = tcase_create("host-mode");

	tcase_add_test(tc, test_agent_host_mode);
	suite_add_tcase(s, tc);
	return s;
}
