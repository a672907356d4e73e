/* test_plan.c: matrix expansion (scenario axes, ranges, exclude/include) and sharding. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan.h"

#define PS KLPQ_SRCDIR "/scenarios/patchsets"

/* Writes text to a temporary scenario file; caller unlinks and frees. */
static char *write_scenario(const char *text)
{
	char *path = xstrdup("/tmp/klpq-test-plan-XXXXXX.yaml");
	int fd = mkstemps(path, 5);
	FILE *f;

	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

/* Loads and expands; returns 0 or -1 with the message in e. */
static int expand(const char *text, struct scenario *sc, struct plan *p, struct kerr *e)
{
	char *path = write_scenario(text);
	int r = scenario_load(path, sc, e);

	if (r == 0 && (r = plan_build(sc, p, e)) < 0)
		scenario_release(sc);
	unlink(path);
	free(path);
	return r;
}

static void expect_error(const char *text, const char *line_col, const char *needle)
{
	struct scenario sc;
	struct plan p;
	struct kerr e = KERR_INIT;

	ck_assert_int_eq(expand(text, &sc, &p, &e), -1);
	ck_assert_msg(strstr(e.msg, line_col) != NULL, "want '%s' in: %s", line_col, e.msg);
	ck_assert_msg(strstr(e.msg, needle) != NULL, "want '%s' in: %s", needle, e.msg);
}

START_TEST(test_range_and_flavors)
{
	struct scenario sc;
	struct plan p;
	struct kerr e = KERR_INIT;

	ck_assert_int_eq(expand("kernels:\n"
				"  - debian: 6.1.0-50..52\n"
				"    flavors: [amd64, rt-amd64]\n"
				"  - debian: [6.12.111+deb12, 6.12.100..101+deb12]\n"
				"    flavors: [cloud-amd64]\n"
				"  - debian:6.1.0-56-amd64\n"
				"patchset: " PS "/demo-cumulative\n", &sc, &p, &e), 0);
	ck_assert_uint_eq(sc.nr_kernels, 10);
	ck_assert_str_eq(sc.kernels[0].label, "debian:6.1.0-50-amd64");
	ck_assert_str_eq(sc.kernels[1].label, "debian:6.1.0-50-rt-amd64");
	ck_assert_str_eq(sc.kernels[5].label, "debian:6.1.0-52-rt-amd64");
	ck_assert_str_eq(sc.kernels[6].label, "debian:6.12.111+deb12-cloud-amd64");
	ck_assert_str_eq(sc.kernels[7].label, "debian:6.12.100+deb12-cloud-amd64");
	ck_assert_str_eq(sc.kernels[8].label, "debian:6.12.101+deb12-cloud-amd64");
	ck_assert_str_eq(sc.kernels[8].deb.series, "6.12");
	ck_assert_uint_eq(p.nr, 10);
	ck_assert_str_eq(p.cells[0].id, "6.1.0-50-amd64_demo-cumulative");
	ck_assert_str_eq(p.cells[9].id, "6.1.0-56-amd64_demo-cumulative");
	plan_release(&p);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_axes_exclude_include)
{
	struct scenario sc;
	struct plan p;
	struct kerr e = KERR_INIT;
	size_t i;

	ck_assert_int_eq(expand("kernels:\n"
				"  - debian: 6.1.0-55..56\n"
				"    flavors: [amd64, cloud-amd64, rt-amd64]\n"
				"patchsets:\n"
				"  - " PS "/demo-cumulative\n"
				"  - " PS "/faulty-oops\n"
				"vms:\n"
				"  - {name: small, memory_mb: 512, cpus: 1}\n"
				"  - {name: big, memory_mb: 2048}\n"
				"exclude:\n"
				"  - {flavor: rt-amd64, vm: big}\n"
				"  - {patchset: faulty-*, abi: 6.1.0-55}\n"
				"include:\n"
				"  - {kernel: debian:6.12.117+deb12-amd64, patchset: faulty-oops, vm: small}\n",
				&sc, &p, &e), 0);
	/* 6 kernels x 2 patch sets x 2 vms = 24; minus rt+big (2 abis x 2 ps = 4), minus
	 * faulty on 6.1.0-55 (3 flavors x 2 vms = 6, one of them (rt,big) already out) = 5;
	 * plus 1 */
	ck_assert_uint_eq(p.nr, 24 - 4 - 5 + 1);
	for (i = 0; i < p.nr; i++) {
		const struct plan_cell *c = &p.cells[i];
		ck_assert(!(!strcmp(c->kernel->deb.flavor, "rt-amd64") && !strcmp(c->vm->name, "big")));
		ck_assert(!(!strcmp(c->patchset->name, "faulty-oops") &&
			    !strcmp(c->kernel->deb.abi, "6.1.0-55")));
		ck_assert_uint_eq(c->index, i);
	}
	ck_assert_str_eq(p.cells[0].id, "6.1.0-55-amd64_demo-cumulative_small");
	ck_assert_str_eq(p.cells[p.nr - 1].id, "6.12.117+deb12-amd64_faulty-oops_small");
	ck_assert_uint_eq(p.cells[0].vm->memory_mb, 512);
	ck_assert_uint_eq(p.cells[1].vm->memory_mb, 2048);
	ck_assert_uint_eq(p.cells[1].vm->cpus, 2);
	plan_release(&p);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_shards_partition)
{
	struct scenario sc;
	struct plan p, s;
	struct kerr e = KERR_INIT;
	unsigned si, sn, n;
	size_t seen = 0;
	char *hit;

	ck_assert_int_eq(expand("kernels:\n  - debian: 6.1.0-1..37\n    flavors: [amd64]\n"
				"patchset: " PS "/demo-cumulative\n", &sc, &p, &e), 0);
	hit = xcalloc(p.nr, 1);
	ck_assert_int_eq(plan_parse_shard("3/4", &si, &sn, &e), 0);
	ck_assert_uint_eq(si, 3);
	ck_assert_uint_eq(sn, 4);
	for (n = 1; n <= 4; n++) {
		ck_assert_int_eq(plan_build(&sc, &s, &e), 0);
		plan_shard(&s, n, 4);
		ck_assert_uint_eq(s.total, 37);
		ck_assert(s.nr == 9 || s.nr == 10);
		for (size_t i = 0; i < s.nr; i++) {
			ck_assert_int_eq(hit[s.cells[i].index], 0);
			hit[s.cells[i].index] = 1;
			ck_assert_str_eq(s.cells[i].id, p.cells[s.cells[i].index].id);
			seen++;
		}
		plan_release(&s);
	}
	ck_assert_uint_eq(seen, 37);
	ck_assert_int_eq(plan_parse_shard("0/4", &si, &sn, &e), -1);
	ck_assert_int_eq(plan_parse_shard("5/4", &si, &sn, &e), -1);
	ck_assert_int_eq(plan_parse_shard("1/", &si, &sn, &e), -1);
	ck_assert_int_eq(plan_parse_shard("-1/4", &si, &sn, &e), -1);
	ck_assert_int_eq(plan_parse_shard("1/4x", &si, &sn, &e), -1);
	free(hit);
	plan_release(&p);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_duplicate_ids_numbered)
{
	struct scenario sc;
	struct plan p;
	struct kerr e = KERR_INIT;

	ck_assert_int_eq(expand("kernels:\n  - debian:6.1.0-56-amd64\n"
				"  - local:\n      vmlinuz: /nonexistent/vmlinuz\n"
				"      modules: /nonexistent/lib/modules/6.1.0-56-amd64\n"
				"patchset: " PS "/demo-cumulative\n", &sc, &p, &e), 0);
	ck_assert_uint_eq(p.nr, 2);
	ck_assert_str_eq(p.cells[0].id, "6.1.0-56-amd64_demo-cumulative");
	ck_assert_str_eq(p.cells[1].id, "6.1.0-56-amd64_demo-cumulative-2");
	plan_release(&p);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_bad_matrices)
{
	expect_error("kernels:\n  - debian: 6.1.0-56..50\n    flavors: [amd64]\n"
		     "patchset: " PS "/demo-cumulative\n", ":2:13:", "ascending");
	expect_error("kernels:\n  - debian: 6.1.0-50..56\n    flavors: [amd65]\n"
		     "patchset: " PS "/demo-cumulative\n", ":3:15:", "flavor");
	expect_error("kernels:\n  - debian: 6.1.0-1..200000\n    flavors: [amd64]\n"
		     "patchset: " PS "/demo-cumulative\n", ":2:13:", "more than");
	expect_error("kernels:\n  - debian: 6.1.0-50..51\n    flavors: [amd64]\n"
		     "  - debian:6.1.0-51-amd64\n"
		     "patchset: " PS "/demo-cumulative\n", ":4:5:", "listed twice");
	expect_error("kernels:\n  - debian:6.1.0-51-amd64\n"
		     "patchset: " PS "/demo-cumulative\n"
		     "exclude:\n  - {flavor: rt-amd64}\n", ":5:5:", "matches no cell");
	expect_error("kernels:\n  - debian:6.1.0-51-amd64\n"
		     "patchset: " PS "/demo-cumulative\n"
		     "exclude:\n  - {flavour: rt-amd64}\n", ":5:6:", "unknown key 'flavour'");
	expect_error("kernels:\n  - debian:6.1.0-51-amd64\n"
		     "patchset: " PS "/demo-cumulative\n"
		     "include:\n  - {kernel: debian:6.1.0-51-amd64}\n", ":5:5:", "already");
	expect_error("kernels:\n  - debian:6.1.0-51-amd64\n"
		     "patchset: " PS "/demo-cumulative\n"
		     "include:\n  - {kernel: debian:6.1.0-52-amd64, patchset: nope}\n", ":5:5:",
		     "not in patchsets");
	expect_error("kernels:\n  - debian:6.1.0-51-amd64\n"
		     "patchsets: [" PS "/demo-cumulative, " PS "/demo-cumulative]\n", ":3:",
		     "used twice");
	expect_error("kernels:\n  - debian:6.1.0-51-amd64\n"
		     "patchset: " PS "/demo-cumulative\n"
		     "vms:\n  - {memory_mb: 512}\n", ":5:5:", "'name'");
	expect_error("kernels:\n  - debian:6.1.0-51-amd64\n"
		     "patchset: " PS "/demo-cumulative\n"
		     "vm: {}\nvms:\n  - {name: a}\n", ":6:", "not both");
	expect_error("kernels:\n  - debian:6.1.0-51-amd64\n"
		     "patchset: " PS "/demo-cumulative\n"
		     "exclude:\n  - {kernel: '*'}\n", ":5:5:", "no cells left");
}
END_TEST

Suite *plan_suite(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = tcase_create("matrix");

	tcase_add_test(tc, test_range_and_flavors);
	tcase_add_test(tc, test_axes_exclude_include);
	tcase_add_test(tc, test_shards_partition);
	tcase_add_test(tc, test_duplicate_ids_numbered);
	tcase_add_test(tc, test_bad_matrices);
	suite_add_tcase(s, tc);
	return s;
}
