/* test_spawn.c: child processes (spawn.c): the program found before the fork, the failing
 * set-up step named, the environment merged by key, an empty signal mask in the child, and how
 * run_capture says a child ended. */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "spawn.h"
#include "util.h"

START_TEST(test_not_in_path)
{
	const char *argv[] = { "klpq-no-such-program", NULL };
	struct child c = CHILD_INIT;
	struct kerr e = KERR_INIT;

	c.argv = argv;
	ck_assert_int_eq(child_start(&c, &e), -1);
	ck_assert_msg(strstr(e.msg, "cannot run klpq-no-such-program: not found in PATH"),
		      "got: %s", e.msg);
	ck_assert_int_le(c.pid, 0);
}
END_TEST

START_TEST(test_chdir_named)
{
	const char *argv[] = { "true", NULL };
	struct child c = CHILD_INIT;
	struct kerr e = KERR_INIT;

	c.argv = argv;
	c.cwd = "/nonexistent/klpq";
	ck_assert_int_eq(child_start(&c, &e), -1);
	ck_assert_msg(strstr(e.msg, "cannot run true: chdir /nonexistent/klpq: No such file"),
		      "got: %s", e.msg);
}
END_TEST

START_TEST(test_env_merged)
{
	const char *argv[] = { "sh", "-c", "echo \"$KLPQ_T\"; env | grep -c '^KLPQ_T='", NULL };
	const char *env[] = { "KLPQ_T=inner", NULL };
	struct run_opts o = RUN_OPTS_INIT;
	struct sb out = SB_INIT;
	struct kerr e = KERR_INIT;

	setenv("KLPQ_T", "outer", 1);
	o.env = env;
	ck_assert_int_eq(run_capture(argv, &o, &out, &e), 0);
	ck_assert_str_eq(out.buf, "inner\n1\n");
	unsetenv("KLPQ_T");
	sb_release(&out);
}
END_TEST

START_TEST(test_signal_mask_empty)
{
	/* grep, not sh: dash clears its signal mask itself */
	const char *argv[] = { "grep", "^SigBlk", "/proc/self/status", NULL };
	struct run_opts o = RUN_OPTS_INIT;
	struct sb out = SB_INIT;
	struct kerr e = KERR_INIT;
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigaddset(&s, SIGTERM);
	sigprocmask(SIG_BLOCK, &s, NULL);
	ck_assert_int_eq(run_capture(argv, &o, &out, &e), 0);
	ck_assert_str_eq(out.buf, "SigBlk:\t0000000000000000\n");
	sigprocmask(SIG_UNBLOCK, &s, NULL);
	sb_release(&out);
}
END_TEST

/* child_fork: a function as the child (a cell's process), its return as the exit code, the
 * caller's signal mask restored in the child even though every signal is blocked across the
 * fork, and pdeathsig set. */
static int forked(void *ctx)
{
	sigset_t now;
	int pdeath = 0;

	sigprocmask(SIG_SETMASK, NULL, &now);
	if (sigismember(&now, SIGTERM) || !sigismember(&now, SIGUSR2))
		return 3; /* the mask is not the caller's */
	if (prctl(PR_GET_PDEATHSIG, &pdeath) < 0 || pdeath != SIGTERM)
		return 4;
	return *(int *)ctx;
}

START_TEST(test_child_fork)
{
	struct child c = CHILD_INIT;
	struct kerr e = KERR_INIT;
	sigset_t usr2, old;
	int code = 7, status;

	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr2, &old);
	c.pdeathsig = SIGTERM;
	ck_assert_msg(child_fork(&c, forked, &code, &e) == 0, "%s", e.msg);
	sigprocmask(SIG_SETMASK, &old, NULL);
	ck_assert_int_gt(c.pid, 0);
	status = child_wait(&c);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 7);
}
END_TEST

START_TEST(test_run_ends)
{
	const char *fail[] = { "sh", "-c", "echo why; exit 3", NULL };
	const char *slow[] = { "sh", "-c", "sleep 30 & sleep 30", NULL };
	struct run_opts o = RUN_OPTS_INIT;
	struct sb out = SB_INIT;
	struct kerr e = KERR_INIT;
	uint64_t t0;

	ck_assert_int_eq(run_capture(fail, &o, &out, &e), -1);
	ck_assert_int_eq(o.end, RUN_FAILED);
	ck_assert_msg(strstr(e.msg, "exited with 3") && strstr(e.msg, "why"), "got: %s", e.msg);
	sb_reset(&out);
	kerr_clear(&e);
	o = (struct run_opts)RUN_OPTS_INIT;
	o.timeout_ms = 300;
	t0 = now_ms();
	ck_assert_int_eq(run_capture(slow, &o, &out, &e), -1);
	ck_assert_int_eq(o.end, RUN_TIMED_OUT);
	ck_assert_uint_lt(now_ms() - t0, 10000);
	sb_release(&out);
}
END_TEST

Suite *spawn_suite(void)
{
	Suite *s = suite_create("spawn");
	TCase *tc = tcase_create("child");

	tcase_add_test(tc, test_not_in_path);
	tcase_add_test(tc, test_chdir_named);
	tcase_add_test(tc, test_env_merged);
	tcase_add_test(tc, test_signal_mask_empty);
	tcase_add_test(tc, test_run_ends);
	tcase_add_test(tc, test_child_fork);
	suite_add_tcase(s, tc);
	return s;
}
