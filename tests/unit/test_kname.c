/* test_kname.c: kname_parse_debian. */
#include <check.h>
#include <string.h>

#include "kname.h"

struct good_case {
	const char *text;
	const char *abi, *flavor, *release, *series;
};

static const struct good_case good[] = {
	{ "debian:6.1.0-56-amd64", "6.1.0-56", "amd64", "6.1.0-56-amd64", "6.1" },
	{ "debian:6.1.0-56-cloud-amd64", "6.1.0-56", "cloud-amd64", "6.1.0-56-cloud-amd64", "6.1" },
	{ "debian:6.1.0-56-rt-amd64", "6.1.0-56", "rt-amd64", "6.1.0-56-rt-amd64", "6.1" },
	{ "debian:6.1.0-47-arm64", "6.1.0-47", "arm64", "6.1.0-47-arm64", "6.1" },
	{ "debian:6.1.0-47-rt-arm64", "6.1.0-47", "rt-arm64", "6.1.0-47-rt-arm64", "6.1" },
	{ "debian:6.1.0-47-cloud-arm64", "6.1.0-47", "cloud-arm64", "6.1.0-47-cloud-arm64", "6.1" },
	{ "debian:6.12.117+deb12-amd64", "6.12.117+deb12", "amd64", "6.12.117+deb12-amd64",
	  "6.12" },
	{ "debian:6.12.117+deb12-cloud-amd64", "6.12.117+deb12", "cloud-amd64",
	  "6.12.117+deb12-cloud-amd64", "6.12" },
	{ "debian:6.12.38+deb13-rt-amd64", "6.12.38+deb13", "rt-amd64",
	  "6.12.38+deb13-rt-amd64", "6.12" },
	{ "debian:5.10.0-30-amd64", "5.10.0-30", "amd64", "5.10.0-30-amd64", "5.10" },
};

START_TEST(test_good)
{
	const struct good_case *c = &good[_i];
	struct kname k;
	struct kerr e = KERR_INIT;

	ck_assert_msg(kname_parse_debian(c->text, &k, &e) == 0, "%s: %s", c->text, e.msg);
	ck_assert_int_eq(e.set, 0);
	ck_assert_str_eq(k.abi, c->abi);
	ck_assert_str_eq(k.flavor, c->flavor);
	ck_assert_str_eq(k.release, c->release);
	ck_assert_str_eq(k.series, c->series);
}
END_TEST

struct bad_case {
	const char *text;
	const char *word; /* must appear in the message */
};

static const struct bad_case bad[] = {
	{ "6.1.0-56-amd64", "prefix" },
	{ "Debian:6.1.0-56-amd64", "prefix" },
	{ "local:6.1.0-56-amd64", "prefix" },
	{ "", "prefix" },
	{ "debian:", "no kernel" },
	{ "debian:6.1.0-56-i386", "flavor" },
	{ "debian:6.1.0-56-686-pae", "flavor" },
	{ "debian:6.1.0-56", "flavor" },
	{ "debian:amd64", "flavor" },
	{ "debian:-amd64", "flavor" },
	{ "debian:6.1.0-56_amd64", "flavor" },
	{ "debian:6.1.0-56-amd64-", "flavor" },
	{ "debian:6.1.0-56-AMD64", "flavor" },
	{ "debian:6.1-56-amd64", "ABI" },
	{ "debian:6.1.0-amd64", "ABI" },
	{ "debian:6.1.0--amd64", "ABI" },
	{ "debian:6.1.0-5a-amd64", "ABI" },
	{ "debian:6.1.0-56-rt-rt-amd64", "ABI" },
	{ "debian:6.1.0.1-56-amd64", "ABI" },
	{ "debian:v6.1.0-56-amd64", "ABI" },
	{ "debian: 6.1.0-56-amd64", "ABI" },
	{ "debian:6..0-56-amd64", "ABI" },
	{ "debian:6.12.117+deb-amd64", "ABI" },
	{ "debian:6.12.117+bpo12-amd64", "ABI" },
	{ "debian:6.12.117+deb12x-amd64", "ABI" },
	{ "debian:6.12.117-deb12-amd64", "ABI" },
	{ "debian:6.1.0-56-1-amd64", "ABI" },
	{ "debian:12345678901234567890.1.0-56-amd64", "ABI" },
	{ "debian:6.1.0-1234567890123456789012345678901234567890123456789012345678901234-amd64",
	  "ABI" },
};

START_TEST(test_bad)
{
	const struct bad_case *c = &bad[_i];
	struct kname k;
	struct kerr e = KERR_INIT;

	memset(&k, 'x', sizeof(k));
	ck_assert_msg(kname_parse_debian(c->text, &k, &e) == -1, "'%s' was accepted", c->text);
	ck_assert_int_eq(e.set, 1);
	ck_assert_msg(strstr(e.msg, c->word) != NULL, "'%s': want '%s' in '%s'", c->text, c->word,
		      e.msg);
	/* Nothing half-parsed is left behind. */
	ck_assert_str_eq(k.abi, "");
	ck_assert_str_eq(k.release, "");
}
END_TEST

/* The first message wins: a later failure does not overwrite it. */
START_TEST(test_error_set_once)
{
	struct kname k;
	struct kerr e = KERR_INIT;

	ck_assert_int_eq(kname_parse_debian("debian:6.1.0-56-i386", &k, &e), -1);
	ck_assert_int_eq(kname_parse_debian("nope", &k, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msg, "flavor"));
}
END_TEST

Suite *kname_suite(void); /* called by the shared unit-test runner */

Suite *kname_suite(void)
{
	Suite *s = suite_create("kname");
	TCase *tc = tcase_create("debian");

	tcase_add_loop_test(tc, test_good, 0, (int)ARRAY_SIZE(good));
	tcase_add_loop_test(tc, test_bad, 0, (int)ARRAY_SIZE(bad));
	tcase_add_test(tc, test_error_set_once);
	suite_add_tcase(s, tc);
	return s;
}
