/* test_report.c: the CI formats from an in-memory run with hostile text. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "report.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), n);
	fclose(f);
	return buf;
}

START_TEST(test_xml_escape)
{
	struct sb o = SB_INIT;

	report_xml_escape(&o, "a<b>&\"c'\x01\x7f\tz\n\xff\xc3\xa9\xed\xa0\x80");
	/* markup escaped, control characters shown, tab/newline kept, invalid UTF-8 (0xff, a
	 * surrogate) replaced, valid UTF-8 (e-acute) kept */
	ck_assert_str_eq(o.buf, "a&lt;b&gt;&amp;&quot;c&#39;\\x01\\x7f\tz\n\xef\xbf\xbd\xc3\xa9"
				"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	sb_release(&o);
}
END_TEST

static void make_run(struct run_result *r, char *dir)
{
	struct cell_result *c;
	struct check_result *k;

	memset(r, 0, sizeof(*r));
	r->id = xstrdup("run1");
	r->dir = xstrdup(dir);
	r->scenario = xstrdup("/x/s.yaml");
	r->scenario_name = xstrdup("s");
	r->cells = xcalloc(2, sizeof(*r->cells));
	r->nr_cells = 2;
	c = &r->cells[0];
	cell_init(c, "6.1.0-56-rt-amd64_demo", "/nonexistent", "debian:6.1.0-56-rt-amd64", "demo");
	free(c->release);
	c->release = xstrdup("6.1.0-56-rt-amd64");
	free(c->accel);
	c->accel = xstrdup("tcg");
	free(c->accel_reason);
	c->accel_reason = xstrdup("KVM unusable: QEMU aborted: failed to set MSR 0x10a to 0x69");
	c->finished = 1;
	cell_add(c, "step1", "load", V_PASS, 100, "loaded");
	k = cell_add(c, "step1", "crash", V_FAIL, 0, "BUG: <oops> & \"quote\" # not a directive");
	check_evidence(k, "RIP: 0010:lp_cmdline_show+0x1d/0x40 [klpq\x01]");
	cell_add(c, "perf", "perf:gaming.frame_p99", V_SKIP, 0, "inconclusive: noise");
	c = &r->cells[1];
	cell_init(c, "6.12.111+deb12-cloud-amd64_demo", "/nonexistent",
		  "debian:6.12.111+deb12-cloud-amd64", "demo");
	free(c->release);
	c->release = xstrdup("6.12.111+deb12-cloud-amd64");
	c->finished = 1;
	cell_add(c, "prepare", "kernel", V_ERROR, 0, "apt-get failed\nsecond line");
}

START_TEST(test_formats)
{
	char dir[] = "/tmp/klpq-test-report-XXXXXX";
	struct run_result r;
	struct kerr e = KERR_INIT;
	char *p, *text;
	json_object *k, *tests, *t;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	make_run(&r, dir);
	ck_assert_msg(report_write_all(&r, 1, &e) == 0, "%s", e.msg);

	p = path_join(dir, "junit.xml");
	text = slurp(p);
	ck_assert(strstr(text, "<testsuites name=\"s\" tests=\"4\" failures=\"1\" errors=\"1\" "
			       "skipped=\"1\""));
	ck_assert(strstr(text, "<failure message=\"BUG: &lt;oops&gt; &amp; &quot;quote&quot; # "
			       "not a directive\" type=\"FAIL\">"));
	ck_assert(strstr(text, "[klpq\\x01]"));
	ck_assert(strstr(text, "<error message=\"apt-get failed\nsecond line\""));
	ck_assert(strstr(text, "<skipped message=\"inconclusive: noise\"/>"));
	ck_assert(strstr(text, "<property name=\"kernel\" value=\"debian:6.1.0-56-rt-amd64\"/>"));
	ck_assert(strstr(text, "<property name=\"accel_reason\" value=\"KVM unusable: QEMU aborted: "
			       "failed to set MSR 0x10a to 0x69\"/>"));
	ck_assert_ptr_null(strchr(text, '\x01'));
	/* a check that did not pass names its row in docs/checks.md (checks.c's table) */
	ck_assert(strstr(text, "<properties><property name=\"doc\" value=\"docs/checks.md#"
			       "check-crash\"/></properties>\n      <failure"));
	ck_assert(strstr(text, "value=\"docs/checks.md#check-kernel\"/></properties>\n      <error"));
	ck_assert(strstr(text, "value=\"docs/checks.md#check-perf\"/></properties>\n      <skipped"));
	free(text);
	free(p);

	p = path_join(dir, "results.tap");
	text = slurp(p);
	ck_assert(!strncmp(text, "TAP version 13\n1..4\n# 6.1.0-56-rt-amd64_demo: accel tcg: KVM "
				 "unusable: QEMU aborted: failed to set MSR 0x10a to 0x69\n"
				 "ok 1 - 6.1.0-56-rt-amd64_demo step1 load\n"
				 "not ok 2 - 6.1.0-56-rt-amd64_demo step1 crash\n  ---\n"
				 "  status: FAIL\n  title: \"BUG: <oops> & \\\"quote\\\" # not a "
				 "directive\"", 260));
	ck_assert(strstr(text, "ok 3 - 6.1.0-56-rt-amd64_demo perf perf:gaming.frame_p99 # SKIP "
			       "inconclusive: noise\n"));
	ck_assert(strstr(text, "not ok 4 - 6.12.111+deb12-cloud-amd64_demo prepare kernel\n"));
	ck_assert(strstr(text, "  title: \"apt-get failed\\x0asecond line\""));
	ck_assert(strstr(text, "  kernel: \"debian:6.1.0-56-rt-amd64\"\n  class: \"FAIL\"\n"
			       "  doc: \"docs/checks.md#check-crash\"\n"));
	ck_assert(strstr(text, "  class: \"ERROR\"\n  doc: \"docs/checks.md#check-kernel\"\n"));
	free(text);
	free(p);

	p = path_join(dir, "kcidb.json");
	k = json_object_from_file(p);
	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(json_object_get_int(json_object_object_get(
		json_object_object_get(k, "version"), "major")), 4);
	ck_assert_int_eq(json_object_array_length(json_object_object_get(k, "checkouts")), 1);
	ck_assert_int_eq(json_object_array_length(json_object_object_get(k, "builds")), 2);
	tests = json_object_object_get(k, "tests");
	ck_assert_int_eq(json_object_array_length(tests), 4);
	t = json_object_array_get_idx(tests, 1);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(t, "path")),
			 "klpq.demo.step1.crash");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(t, "status")), "FAIL");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(json_object_object_get(t,
			 "misc"), "doc")), "docs/checks.md#check-crash");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(t, "id")), "klpq:run1:"
			 "6.1.0-56-rt-amd64_demo:2");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(t, "build_id")),
			 "klpq:run1:6.1.0-56-rt-amd64_demo");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(json_object_object_get(t,
			 "environment"), "comment")), "accel tcg: KVM unusable: QEMU aborted: failed "
			 "to set MSR 0x10a to 0x69");
	t = json_object_array_get_idx(tests, 2);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(t, "path")),
			 "klpq.demo.perf.perf_gaming_frame_p99");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(
		json_object_array_get_idx(json_object_object_get(k, "builds"), 1), "config_name")),
		"cloud-amd64");
	json_object_put(k);
	free(p);

	p = path_join(dir, "report.html");
	text = slurp(p);
	ck_assert(strstr(text, "BUG: &lt;oops&gt;"));
	ck_assert(strstr(text, "<td class=\"FAIL\">FAIL</td>"));
	/* the check's name says on hover what it is, from the table of checks */
	ck_assert(strstr(text, "<td title=\"PASS when the module loads (or, with `expect: "
			       "load-fails`"));
	ck_assert(strstr(text, "(docs/checks.md#check-load)\">load</td>"));
	ck_assert(strstr(text, "<td>tcg (KVM unusable: QEMU aborted: failed to set MSR 0x10a to "
			       "0x69)</td>"));
	free(text);
	free(p);
	run_release(&r);
	{
		char *cmd = xasprintf("rm -rf %s", dir);
		ck_assert_int_eq(system(cmd), 0);
		free(cmd);
	}
}
END_TEST

Suite *report_suite(void)
{
	Suite *s = suite_create("report");
	TCase *tc = tcase_create("formats");

	tcase_add_test(tc, test_xml_escape);
	tcase_add_test(tc, test_formats);
	suite_add_tcase(s, tc);
	return s;
}
