/* test_pool.c: the hosts file and the pool's rules (pool.h). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool.h"

/* A hosts file with text in a temporary folder; its path (free it; the file is removed by
 * rm_file). */
static char *hosts_file(const char *text)
{
	char tmpl[] = "/tmp/klpq-pool-XXXXXX";
	int fd = mkstemp(tmpl);

	ck_assert(fd >= 0);
	ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	return xstrdup(tmpl);
}

static int load(const char *text, struct pool *p, struct kerr *e)
{
	char *f = hosts_file(text);
	int r = pool_load(f, p, e);

	unlink(f);
	free(f);
	return r;
}

START_TEST(test_uri_remote)
{
	char h[64];

	ck_assert_int_eq(pool_uri_remote("qemu+ssh://root@10.77.1.2/system?keyfile=/k", h,
					 sizeof(h)), 1);
	ck_assert_str_eq(h, "10.77.1.2");
	ck_assert_int_eq(pool_uri_remote("qemu+tls://hv3.example.com:16514/system", h,
					 sizeof(h)), 1);
	ck_assert_str_eq(h, "hv3.example.com");
	ck_assert_int_eq(pool_uri_remote("qemu:///system", h, sizeof(h)), 0);
	ck_assert_str_eq(h, "");
	ck_assert_int_eq(pool_uri_remote("qemu:///embed?root=/tmp/x", NULL, 0), 0);
	ck_assert_int_eq(pool_uri_remote(NULL, NULL, 0), 0);
	ck_assert_int_eq(pool_uri_remote("not a uri", h, sizeof(h)), 0);
}
END_TEST

START_TEST(test_load)
{
	struct pool p;
	struct kerr e = KERR_INIT;

	ck_assert_msg(load("health_s: 5\nhosts:\n"
			   "  - qemu+ssh://root@10.0.0.1/system\n"
			   "  - uri: qemu+ssh://root@10.0.0.2/system\n"
			   "    capacity: 4\n    labels: [kvm, big]\n"
			   "  - uri: qemu:///system\n    name: here\n", &p, &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(p.nr, 3);
	ck_assert_uint_eq(p.health_s, 5);
	ck_assert_str_eq(p.hosts[0].name, "10.0.0.1");
	ck_assert_uint_eq(p.hosts[0].capacity, 1);
	ck_assert_uint_eq(p.hosts[1].capacity, 4);
	ck_assert_uint_eq(p.hosts[1].nr_labels, 2);
	ck_assert_str_eq(p.hosts[2].name, "here");
	ck_assert_uint_eq(pool_capacity(&p), 6);
	pool_release(&p);

	/* a bare list is a hosts file too */
	ck_assert_msg(load("- qemu+ssh://a/system\n- qemu+ssh://b/system\n", &p, &e) == 0,
		      "%s", e.msg);
	ck_assert_uint_eq(p.nr, 2);
	ck_assert_uint_eq(p.health_s, POOL_HEALTH_S);
	pool_release(&p);
}
END_TEST

/* Bad input names the file's line and the field. */
START_TEST(test_load_errors)
{
	static const struct { const char *text, *want; } bad[] = {
		{ "hosts:\n  - uri: qemu+ssh://a/system\n    capacity: 0\n", ":3:15: hosts[0].capacity" },
		{ "hosts:\n  - uri: qemu+ssh://a/system\n    colour: red\n", ":3:5:" },
		{ "hosts:\n  - name: x\n", "missing required key 'uri'" },
		{ "hosts:\n  - nouri\n", "must be a libvirt URI" },
		{ "- qemu+ssh://a/system\n- qemu+ssh://a/system\n", "listed twice (first at line 1)" },
		{ "- qemu+ssh://a/system\n- uri: qemu+ssh://b/system\n  name: a\n", "name 'a' is used twice" },
		{ "hosts: []\n", "must not be empty" },
		{ "- uri: qemu+ssh://a/system\n  labels: [\"no spaces\"]\n", "labels[0]" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pool p;
		struct kerr e = KERR_INIT;

		ck_assert_msg(load(bad[i].text, &p, &e) < 0, "case %zu loaded", i);
		ck_assert_msg(strstr(e.msg, bad[i].want) && strstr(e.msg, "/tmp/klpq-pool-"),
			      "case %zu: '%s' lacks '%s'", i, e.msg, bad[i].want);
	}
}
END_TEST

/* The most free capacity first, labels required, avoided hosts skipped. */
START_TEST(test_pick)
{
	struct pool p;
	struct kerr e = KERR_INIT;
	const char *kvm[] = { "kvm" }, *gpu[] = { "gpu" };

	ck_assert_msg(load("- uri: qemu+ssh://a/system\n  capacity: 2\n"
			   "- uri: qemu+ssh://b/system\n  capacity: 3\n  labels: [kvm]\n", &p, &e) == 0,
		      "%s", e.msg);
	ck_assert_int_eq(pool_pick(&p, NULL, 0, 0), 1);
	p.hosts[1].running = 1; /* 2 free on each: the one given fewer cells */
	p.hosts[1].started = 1;
	ck_assert_int_eq(pool_pick(&p, NULL, 0, 0), 0);
	ck_assert_int_eq(pool_pick(&p, kvm, 1, 0), 1);
	ck_assert_int_eq(pool_pick(&p, gpu, 1, 0), -1);
	ck_assert_int_eq(pool_any_has(&p, gpu, 1), 0);
	ck_assert_int_eq(pool_pick(&p, kvm, 1, 1u << 1), -1);
	ck_assert_int_eq(pool_can(&p, kvm, 1, 1u << 1), 0);
	p.hosts[1].running = 3; /* full: busy, not gone */
	ck_assert_int_eq(pool_pick(&p, kvm, 1, 0), -1);
	ck_assert_int_eq(pool_can(&p, kvm, 1, 0), 1);
	pool_release(&p);
}
END_TEST

/* Refused or lost: out at once; a failed start: out the second time. */
START_TEST(test_fault_rules)
{
	struct pool p;
	struct kerr e = KERR_INIT;
	char *why;

	ck_assert_msg(load("health_s: 7\nhosts: [qemu+ssh://a/system, qemu+ssh://b/system, "
			   "qemu+ssh://c/system]\n", &p, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(pool_fault(&p, 0, "start", "QEMU would not start", 1000), 0);
	ck_assert_int_eq(p.hosts[0].down, 0);
	ck_assert_int_eq(pool_fault(&p, 0, "start", "QEMU would not start", 1000), 1);
	ck_assert_int_eq(p.hosts[0].down, 1);
	ck_assert_uint_eq(p.hosts[0].probe_at_ms, 8000);
	ck_assert_int_eq(pool_fault(&p, 1, "connect", "Connection refused", 0), 1);
	ck_assert_uint_eq(pool_up(&p), 1);
	ck_assert_uint_eq(pool_capacity(&p), 1);
	ck_assert_int_eq(pool_pick(&p, NULL, 0, 0), 2);
	ck_assert_int_eq(pool_fault(&p, 2, "lost", "end of file", 0), 1);
	ck_assert_uint_eq(pool_up(&p), 0);
	ck_assert_int_eq(pool_pick(&p, NULL, 0, 0), -1);
	why = pool_down_reasons(&p);
	ck_assert_msg(strstr(why, "a: failed to start domains twice") &&
		      strstr(why, "b: refused the connection: Connection refused") &&
		      strstr(why, "c: lost the connection mid-cell"), "%s", why);
	free(why);
	pool_release(&p);
}
END_TEST

Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_uri_remote);
	tcase_add_test(tc, test_load);
	tcase_add_test(tc, test_load_errors);
	tcase_add_test(tc, test_pick);
	tcase_add_test(tc, test_fault_rules);
	suite_add_tcase(s, tc);
	return s;
}
