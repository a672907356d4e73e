/* test_util.c: removing trees without following symlinks, the sweep of dead klpqs' folders
 * (owner, lock, age), the private temporary parent, and the descriptors a child inherits. */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"
#include "util.h"

static char *mkfile(const char *dir, const char *name, const char *text)
{
	char *p = path_join(dir, name);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static void make_old(const char *path)
{
	struct timespec t[2] = { { time(NULL) - 7200, 0 }, { time(NULL) - 7200, 0 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW), 0);
}

START_TEST(test_rm_rf_does_not_follow_symlinks)
{
	char top[] = "/tmp/klpq-test-util-XXXXXX";
	char *victim, *precious, *tree, *sub, *link, *flink;

	ck_assert_ptr_nonnull(mkdtemp(top));
	victim = path_join(top, "victim");
	tree = path_join(top, "tree");
	sub = path_join(tree, "sub");
	ck_assert_int_eq(mkdir(victim, 0755), 0);
	precious = mkfile(victim, "precious", "keep me");
	ck_assert_int_eq(mkdir(tree, 0755), 0);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	free(mkfile(sub, "f", "x"));
	link = path_join(tree, "to-victim");
	flink = path_join(sub, "to-precious");
	ck_assert_int_eq(symlink(victim, link), 0);
	ck_assert_int_eq(symlink(precious, flink), 0);

	ck_assert_int_eq(rm_rf(tree), 0);
	ck_assert(!path_exists(tree));
	ck_assert(path_exists(precious));
	/* a symlink given as the path itself: the link goes, not its target */
	ck_assert_int_eq(symlink(victim, link = xasprintf("%s/l2", top)), 0);
	ck_assert_int_eq(rm_rf(link), 0);
	ck_assert(path_exists(precious));
	ck_assert_int_eq(rm_rf("/nonexistent/klpq/nothing"), 0);

	rm_rf(top);
	free(victim);
	free(precious);
	free(tree);
	free(sub);
	free(link);
	free(flink);
}
END_TEST

START_TEST(test_sweep_dead)
{
	char top[] = "/tmp/klpq-test-util-XXXXXX";
	char *dead_locked, *dead_old, *dead_young, *live_locked, *alive_pid, *other, *lock;
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(top));
	/* a pid that has just ended (a child reaped), and our own, alive */
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	ck_assert_int_gt(dead, 0);
	waitpid(dead, NULL, 0);
	dead_locked = xasprintf("%s/cell-%ld-a", top, (long)dead);
	dead_old = xasprintf("%s/cell-%ld-b", top, (long)dead);
	dead_young = xasprintf("%s/cell-%ld-c", top, (long)dead);
	live_locked = xasprintf("%s/cell-%ld-d", top, (long)dead);
	alive_pid = xasprintf("%s/cell-%ld-e", top, (long)getpid());
	other = xasprintf("%s/cell-%ld-f", top, (long)dead);
	ck_assert_int_eq(mkdir(dead_locked, 0700), 0);
	ck_assert_int_eq(mkdir(dead_old, 0700), 0);
	ck_assert_int_eq(mkdir(dead_young, 0700), 0);
	ck_assert_int_eq(mkdir(live_locked, 0700), 0);
	ck_assert_int_eq(mkdir(alive_pid, 0700), 0);
	ck_assert_int_eq(mkdir(other, 0700), 0);
	free(mkfile(dead_locked, ".lock", ""));   /* lock file, nobody holds it: dead */
	lock = mkfile(live_locked, ".lock", "");  /* held below: alive, in any PID namespace */
	fd = open(lock, O_RDWR | O_CLOEXEC);
	ck_assert_int_eq(flock(fd, LOCK_EX), 0);
	make_old(dead_old);                       /* no lock, dead pid, old: swept */
	make_old(alive_pid);                      /* no lock, live pid: kept */
	make_old(live_locked);
	if (geteuid() == 0) {                     /* another user's: never touched */
		make_old(other);
		ck_assert_int_eq(chown(other, 65534, 65534), 0);
	}

	sweep_dead(top, "cell-");
	ck_assert(!path_exists(dead_locked));
	ck_assert(!path_exists(dead_old));
	ck_assert(path_exists(dead_young));       /* too young to judge without a lock */
	ck_assert(path_exists(live_locked));
	ck_assert(path_exists(alive_pid));
	if (geteuid() == 0)
		ck_assert(path_exists(other));
	close(fd);
	sweep_dead(top, "cell-");                 /* the lock is free now */
	ck_assert(!path_exists(live_locked));

	rm_rf(top);
	free(dead_locked);
	free(dead_old);
	free(dead_young);
	free(live_locked);
	free(alive_pid);
	free(other);
	free(lock);
}
END_TEST

START_TEST(test_private_parent_and_locked_tmp)
{
	char top[] = "/tmp/klpq-test-util-XXXXXX";
	struct kerr e = KERR_INIT;
	char *parent, *want, *dir, *lock, *bad;
	struct stat st;
	int fd, probe;

	ck_assert_ptr_nonnull(mkdtemp(top));
	want = xasprintf("%s/klpq-%ld", top, (long)geteuid());
	parent = private_tmp_parent(top, &e);
	ck_assert_msg(parent != NULL, "%s", e.msg);
	ck_assert_str_eq(parent, want);
	ck_assert_int_eq(lstat(parent, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);

	dir = make_locked_tmp(top, "vm-", &fd, &e);
	ck_assert_msg(dir != NULL, "%s", e.msg);
	ck_assert_int_eq(strncmp(dir, want, strlen(want)), 0);
	lock = path_join(dir, ".lock");
	probe = open(lock, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(probe, 0);
	ck_assert_int_lt(flock(probe, LOCK_EX | LOCK_NB), 0); /* held by fd */
	close(probe);
	close(fd);
	rm_rf(dir);

	/* a group-writable parent, then a symlink in its place: refused, naming it */
	ck_assert_int_eq(chmod(parent, 0770), 0);
	kerr_clear(&e);
	ck_assert_ptr_null(private_tmp_parent(top, &e));
	ck_assert_ptr_nonnull(strstr(e.msg, "must be a folder of user"));
	ck_assert_ptr_nonnull(strstr(e.msg, "mode 0770"));
	rm_rf(parent);
	bad = path_join(top, "elsewhere");
	ck_assert_int_eq(mkdir(bad, 0700), 0);
	ck_assert_int_eq(symlink(bad, parent), 0);
	kerr_clear(&e);
	ck_assert_ptr_null(private_tmp_parent(top, &e));
	ck_assert_ptr_nonnull(strstr(e.msg, "it is a symlink"));

	rm_rf(top);
	free(want);
	free(parent);
	free(dir);
	free(lock);
	free(bad);
}
END_TEST

START_TEST(test_child_inherits_only_stdio)
{
	char top[] = "/tmp/klpq-test-util-XXXXXX";
	const char *argv[] = { "sh", "-c", "ls /proc/self/fd", NULL };
	struct child c = CHILD_INIT;
	struct kerr e = KERR_INIT;
	char *out;
	struct sb text = SB_INIT;
	int fd, leak, status;

	ck_assert_ptr_nonnull(mkdtemp(top));
	out = path_join(top, "out");
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: what a careless caller leaves open */
	ck_assert_int_ge(leak, 3);
	c.argv = argv;
	c.out_fd = fd;
	ck_assert_msg(child_start(&c, &e) == 0, "%s", e.msg);
	status = child_wait(&c);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
	ck_assert_int_eq(read_file(out, &text, 0, &e), 0);
	/* 0, 1, 2 and the descriptor ls opens for /proc/self/fd: nothing else */
	ck_assert_msg(!strcmp(text.buf, "0\n1\n2\n3\n"), "child saw: %s", text.buf);
	close(leak);
	sb_release(&text);
	rm_rf(top);
	free(out);
}
END_TEST

Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("files");

	tcase_add_test(tc, test_rm_rf_does_not_follow_symlinks);
	tcase_add_test(tc, test_sweep_dead);
	tcase_add_test(tc, test_private_parent_and_locked_tmp);
	tcase_add_test(tc, test_child_inherits_only_stdio);
	suite_add_tcase(s, tc);
	return s;
}
