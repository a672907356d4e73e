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
#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "proto.h"
#include "spawn.h"
#include "util.h"
#include "vm.h"

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
	rm_rf(k->dir);
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

/* A backend with nothing but an agent channel: the agent in host mode at the other end. It
 * drives vm.h's generic vm_upload against the real agent. */
struct sockvm {
	struct vm base;
	struct conn *k;
	int64_t id;
};

static enum vm_wait_result sock_call(struct vm *v, const char *op, json_object *args,
				     unsigned timeout_ms, struct proto_msg *reply, struct kerr *e)
{
	struct sockvm *s = (struct sockvm *)v;
	size_t len;
	char *line = proto_request(++s->id, op, args, &len);

	(void)timeout_ms;
	if (!line)
		return kerr_set(e, "request too long"), VM_BROKEN;
	ck_assert_int_eq(fwrite(line, 1, len, s->k->f), len);
	fflush(s->k->f);
	free(line);
	next_msg(s->k, reply);
	ck_assert_int_eq(reply->id, s->id);
	return VM_OK;
}

static const struct vm_backend sock_backend = { .name = "socket", .agent_call = sock_call };

/* One raw upload request for DIR/y, its reply in m. */
static void upload_chunk(struct conn *k, int id, int size, int offset, const char *data,
			 struct proto_msg *m)
{
	char *line = xasprintf("{\"v\":1,\"id\":%d,\"op\":\"upload\",\"path\":\"%s/y\","
			       "\"size\":%d,\"offset\":%d,\"data\":\"%s\"}\n", id, k->dir, size,
			       offset, data);

	send_raw(k, line);
	free(line);
	next_msg(k, m);
}

START_TEST(test_agent_upload)
{
	struct conn k;
	struct proto_msg m;
	struct sockvm sv = { { &sock_backend }, &k, 100 };
	struct kerr e = KERR_INIT;
	char *src, *dst, *empty;
	struct sb back = SB_INIT;
	unsigned char *data;
	size_t n = 3 * KLPQ_UPLOAD_CHUNK + 123; /* four chunks, the last one short */
	struct stat st;

	conn_open(&k);
	next_msg(&k, &m);
	ck_assert_str_eq(m.event, "ready");
	proto_msg_release(&m);
	src = path_join(k.dir, "src.ko");
	dst = path_join(k.dir, "guest/klpq/patches/x.ko");
	empty = path_join(k.dir, "guest/empty");
	data = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (unsigned char)(i * 7 + (i >> 9)); /* every byte value, NULs too */
	ck_assert_int_eq(write_file_atomic(src, data, n, &e), 0);

	ck_assert_msg(vm_upload(&sv.base, src, dst, 0600, 5000, &e) == VM_OK, "%s", e.msg);
	ck_assert_int_eq(read_file(dst, &back, 0, &e), 0);
	ck_assert_uint_eq(back.len, n);
	ck_assert(!memcmp(back.buf, data, n));
	ck_assert_int_eq(stat(dst, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	sb_release(&back);
	ck_assert_int_eq(write_file_atomic(src, "", 0, &e), 0);
	ck_assert_msg(vm_upload(&sv.base, src, empty, 0644, 5000, &e) == VM_OK, "%s", e.msg);
	ck_assert_int_eq(stat(empty, &st), 0);
	ck_assert_int_eq(st.st_size, 0);

	/* refusals: a relative path, a "..", a chunk past the size, a chunk out of order, text
	 * that is not base64 */
	ck_assert_int_eq(vm_upload(&sv.base, src, "klpq/x.ko", 0644, 5000, &e), VM_BROKEN);
	ck_assert_msg(strstr(e.msg, "absolute file path"), "%s", e.msg);
	kerr_clear(&e);
	ck_assert_int_eq(vm_upload(&sv.base, src, "/tmp/../etc/x", 0644, 5000, &e), VM_BROKEN);
	kerr_clear(&e);
	upload_chunk(&k, 1, 2, 0, "QUJD", &m);
	ck_assert(!m.ok);
	ck_assert_int_eq(m.err_no, EFBIG);
	proto_msg_release(&m);
	upload_chunk(&k, 2, 9, 3, "QUJD", &m);
	ck_assert(!m.ok);
	ck_assert_int_eq(m.err_no, ENOENT); /* no chunk at 0 came first */
	proto_msg_release(&m);
	upload_chunk(&k, 3, 9, 0, "QU=D", &m);
	ck_assert(!m.ok);
	ck_assert_int_eq(m.err_no, EINVAL);
	proto_msg_release(&m);
	upload_chunk(&k, 4, 9, 0, "QUJD", &m);
	ck_assert(m.ok);
	ck_assert_int_eq(proto_get_int(m.result, "written", -1), 3);
	ck_assert(!proto_get_bool(m.result, "done", 1));
	proto_msg_release(&m);
	upload_chunk(&k, 5, 9, 6, "QUJD", &m);
	ck_assert(!m.ok);
	ck_assert_int_eq(m.err_no, EINVAL); /* 3 bytes so far, not 6 */
	ck_assert_msg(strstr(m.error, "but 3 bytes so far"), "%s", m.error);
	proto_msg_release(&m);

	conn_close(&k);
	free(data);
	free(src);
	free(dst);
	free(empty);
}
END_TEST

/* The agent as an ordinary service on a port device (`--device`, as on a disk image's
 * /dev/virtio-ports/org.klpq.agent): here the device is a pseudo-terminal in raw mode. Only
 * harmless requests: poweroff would power off the host. */
START_TEST(test_agent_device_mode)
{
	const char *agent = getenv("KLPQ_AGENT") ? getenv("KLPQ_AGENT") : "build/klpq-agent";
	struct kerr e = KERR_INIT;
	struct termios t;
	struct child c = CHILD_INIT;
	struct conn k;
	struct proto_msg m;
	const char *argv[4];
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), slave;

	ck_assert_int_ge(master, 0);
	ck_assert_int_eq(grantpt(master), 0);
	ck_assert_int_eq(unlockpt(master), 0);
	slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
	ck_assert_int_ge(slave, 0);
	ck_assert_int_eq(tcgetattr(slave, &t), 0);
	cfmakeraw(&t);
	ck_assert_int_eq(tcsetattr(slave, TCSANOW, &t), 0);
	argv[0] = agent;
	argv[1] = "--device";
	argv[2] = ptsname(master);
	argv[3] = NULL;
	c.argv = argv;
	ck_assert_msg(child_start(&c, &e) == 0, "%s", e.msg);
	memset(&k, 0, sizeof(k));
	k.fd = master;
	k.f = fdopen(master, "r+");
	ck_assert_ptr_nonnull(k.f);
	next_msg(&k, &m);
	ck_assert_str_eq(m.event, "ready");
	proto_msg_release(&m);
	send_raw(&k, "{\"v\":1,\"id\":7,\"op\":\"now\"}\n");
	next_msg(&k, &m);
	ck_assert_int_eq(proto_get_int(m.obj, "id", 0), 7);
	ck_assert(m.ok);
	ck_assert_int_gt(proto_get_int(m.result, "mono_ns", 0), 0);
	proto_msg_release(&m);
	kill(c.pid, SIGKILL);
	child_wait(&c);
	fclose(k.f);
	close(slave);
}
END_TEST

Suite *agent_suite(void)
{
	Suite *s = suite_create("agent");
	TCase *tc = tcase_create("host-mode");

	tcase_add_test(tc, test_agent_host_mode);
	tcase_add_test(tc, test_agent_upload);
	tcase_add_test(tc, test_agent_device_mode);
	suite_add_tcase(s, tc);
	return s;
}
