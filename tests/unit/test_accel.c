/* test_accel.c: the accelerator decision (accel.c) against fake QEMU binaries: one that aborts
 * like QEMU 7.2 on a paravirtual KVM host, one that aborts on MSR 0x10a unless the CPU model
 * drops arch-capabilities (a nested-KVM CI runner), one that starts but never writes to the
 * console, one that works, one that fails for another reason; the cache and its key. */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accel.h"
#include "util.h"

struct fx {
	char dir[64];
	char *dev, *kernel, *qemu, *calls;
};

/* A folder with a stand-in /dev/kvm (a file that opens read-write), a kernel image, and a fake
 * QEMU whose script body is given; every call appends its -cpu model to calls.log. */
static void fx_init(struct fx *f, const char *body)
{
	FILE *o;
	char *script;

	snprintf(f->dir, sizeof(f->dir), "/tmp/klpq-test-accel-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	f->dev = path_join(f->dir, "kvm");
	f->kernel = path_join(f->dir, "vmlinuz");
	f->qemu = path_join(f->dir, "qemu");
	f->calls = path_join(f->dir, "calls.log");
	o = fopen(f->dev, "w");
	fclose(o);
	o = fopen(f->kernel, "w");
	fputs("not really a kernel", o);
	fclose(o);
	script = xasprintf("#!/bin/sh\n"
			   "cpu=; prev=\n"
			   "for a in \"$@\"; do [ \"$prev\" = -cpu ] && cpu=$a; prev=$a; done\n"
			   "echo \"$cpu\" >> %s\n%s\n", f->calls, body);
	o = fopen(f->qemu, "w");
	fputs(script, o);
	fclose(o);
	free(script);
	chmod(f->qemu, 0755);
}

static void fx_release(struct fx *f)
{
	rm_rf(f->dir);
	free(f->dev);
	free(f->kernel);
	free(f->qemu);
	free(f->calls);
}

static int nr_calls(const struct fx *f)
{
	struct sb s = SB_INIT;
	struct kerr e = KERR_INIT;
	int n = 0;

	if (read_file(f->calls, &s, 0, &e) == 0)
		for (size_t i = 0; i < s.len; i++)
			n += s.buf[i] == '\n';
	sb_release(&s);
	return n;
}

static int decide(struct fx *f, enum accel_kind want, int cache, unsigned trial_ms,
		  struct accel_choice *c, struct kerr *e)
{
	struct accel_opts o = { f->qemu, f->dev, cache ? f->dir : NULL, trial_ms, -1, NULL, NULL, 0 };
	return accel_decide(want, f->kernel, &o, c, e);
}

/* QEMU 7.2 here: any -cpu with KVM aborts on MSR 0x10a, except host,-arch-capabilities, with
 * which the guest starts and never prints. */
static const char pvm_qemu[] =
	"case \"$cpu\" in\n"
	"*-arch-capabilities*) exec sleep 30 ;;\n"
	"*) echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2\n"
	"   echo \"qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: "
	"Assertion 'ret == cpu->kvm_msr_buf->nmsrs' failed.\" >&2\n"
	"   kill -ABRT $$ ;;\n"
	"esac";

START_TEST(test_pvm_host_falls_back_to_tcg)
{
	struct fx f;
	struct accel_choice c;
	struct kerr e = KERR_INIT;
	uint64_t t0;

	fx_init(&f, pvm_qemu);
	t0 = now_ms();
	ck_assert_int_eq(decide(&f, ACCEL_AUTO, 0, 1500, &c, &e), 0);
	ck_assert_str_eq(c.accel, "tcg");
	ck_assert_str_eq(c.cpu, "max");
	ck_assert_str_eq(c.reason, "KVM unusable: QEMU aborted: failed to set MSR 0x10a to 0x69; "
			 "with -cpu host,-arch-capabilities the kernel printed nothing on the console "
			 "in 1.5 s");
	/* the silent second trial is given up on at its deadline, not later */
	ck_assert_uint_lt(now_ms() - t0, 4000);
	ck_assert_int_eq(nr_calls(&f), 2);
	fx_release(&f);
}
END_TEST

START_TEST(test_pvm_host_kvm_is_an_error_naming_kvm)
{
	struct fx f;
	struct accel_choice c;
	struct kerr e = KERR_INIT;

	fx_init(&f, pvm_qemu);
	ck_assert_int_eq(decide(&f, ACCEL_KVM, 0, 1000, &c, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msg, "asks for accel kvm"));
	ck_assert_ptr_nonnull(strstr(e.msg, "KVM unusable: QEMU aborted: failed to set MSR 0x10a"));
	fx_release(&f);
}
END_TEST

START_TEST(test_nested_runner_uses_the_workaround)
{
	struct fx f;
	struct accel_choice c;
	struct kerr e = KERR_INIT;

	fx_init(&f, "case \"$cpu\" in\n"
		    "*-arch-capabilities*) echo '[    0.000000] Linux version 6.1.0-56-amd64 "
		    "(debian-kernel@lists.debian.org)'; exec sleep 30 ;;\n"
		    "*) echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2; "
		    "kill -ABRT $$ ;;\nesac");
	ck_assert_int_eq(decide(&f, ACCEL_KVM, 0, 3000, &c, &e), 0);
	ck_assert_str_eq(c.accel, "kvm");
	ck_assert_str_eq(c.cpu, "host,-arch-capabilities");
	ck_assert_str_eq(c.reason, "KVM works with -cpu host,-arch-capabilities (with -cpu host "
			 "QEMU aborted: failed to set MSR 0x10a to 0x69)");
	fx_release(&f);
}
END_TEST

START_TEST(test_silent_guest_given_up_at_the_deadline)
{
	struct fx f;
	struct accel_choice c;
	struct kerr e = KERR_INIT;
	uint64_t t0;

	fx_init(&f, "exec sleep 30");
	t0 = now_ms();
	ck_assert_int_eq(decide(&f, ACCEL_AUTO, 0, 1000, &c, &e), 0);
	ck_assert_uint_lt(now_ms() - t0, 2500);
	ck_assert_str_eq(c.accel, "tcg");
	ck_assert_str_eq(c.reason, "KVM unusable: the kernel printed nothing on the console in 1 s");
	/* no MSR abort: the work-around is not tried */
	ck_assert_int_eq(nr_calls(&f), 1);
	fx_release(&f);
}
END_TEST

START_TEST(test_working_kvm)
{
	struct fx f;
	struct accel_choice c;
	struct kerr e = KERR_INIT;
	uint64_t t0;

	/* the banner arrives in pieces, after other output */
	fx_init(&f, "printf 'SeaBIOS\\r\\n'; sleep 0.2; printf 'Linux ver'; sleep 0.2; "
		    "printf 'sion 6.1.0-56-amd64\\n'; exec sleep 30");
	t0 = now_ms();
	ck_assert_int_eq(decide(&f, ACCEL_AUTO, 0, 5000, &c, &e), 0);
	ck_assert_str_eq(c.accel, "kvm");
	ck_assert_str_eq(c.cpu, "host");
	ck_assert_ptr_nonnull(strstr(c.reason, "KVM works: the kernel's banner came"));
	ck_assert_uint_lt(now_ms() - t0, 3000); /* ends at the banner, kills the fake */
	fx_release(&f);
}
END_TEST

START_TEST(test_other_exit_reported_without_workaround)
{
	struct fx f;
	struct accel_choice c;
	struct kerr e = KERR_INIT;

	fx_init(&f, "echo 'qemu-system-x86_64: -machine q35,accel=kvm: failed to initialize kvm: "
		    "Permission denied' >&2; exit 1");
	ck_assert_int_eq(decide(&f, ACCEL_AUTO, 0, 1000, &c, &e), 0);
	ck_assert_str_eq(c.accel, "tcg");
	ck_assert_str_eq(c.reason, "KVM unusable: QEMU exited with 1: -machine q35,accel=kvm: "
			 "failed to initialize kvm: Permission denied");
	ck_assert_int_eq(nr_calls(&f), 1);
	fx_release(&f);
}
END_TEST

START_TEST(test_no_device_no_trial)
{
	struct fx f;
	struct accel_choice c;
	struct kerr e = KERR_INIT;
	struct accel_opts o;

	fx_init(&f, "exit 0");
	o = (struct accel_opts){ f.qemu, "/nonexistent/kvm", NULL, 1000, -1, NULL, NULL, 0 };
	ck_assert_int_eq(accel_decide(ACCEL_AUTO, f.kernel, &o, &c, &e), 0);
	ck_assert_str_eq(c.accel, "tcg");
	ck_assert_str_eq(c.reason, "KVM unusable: cannot open /nonexistent/kvm: No such file or "
			 "directory");
	ck_assert_int_eq(accel_decide(ACCEL_TCG, f.kernel, &o, &c, &e), 0);
	ck_assert_str_eq(c.reason, "the scenario asks for tcg");
	ck_assert_int_eq(nr_calls(&f), 0);
	fx_release(&f);
}
END_TEST

START_TEST(test_cache_once_per_kernel)
{
	struct fx f;
	struct accel_choice c;
	struct kerr e = KERR_INIT;
	FILE *o;

	fx_init(&f, pvm_qemu);
	ck_assert_int_eq(decide(&f, ACCEL_AUTO, 1, 1000, &c, &e), 0);
	ck_assert_int_eq(c.cached, 0);
	ck_assert_uint_gt(c.trial_ms, 900);
	ck_assert_int_eq(nr_calls(&f), 2);
	/* the same kernel: from the cache, no QEMU run, the same reason */
	ck_assert_int_eq(decide(&f, ACCEL_AUTO, 1, 1000, &c, &e), 0);
	ck_assert_int_eq(c.cached, 1);
	ck_assert_uint_eq(c.trial_ms, 0);
	ck_assert_str_eq(c.accel, "tcg");
	ck_assert_ptr_nonnull(strstr(c.reason, "MSR 0x10a"));
	ck_assert_int_eq(nr_calls(&f), 2);
	/* accel kvm on the cached answer: the error at once */
	ck_assert_int_eq(decide(&f, ACCEL_KVM, 1, 1000, &c, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msg, "MSR 0x10a"));
	ck_assert_int_eq(nr_calls(&f), 2);
	/* another kernel image: a new trial */
	o = fopen(f.kernel, "w");
	fputs("another kernel", o);
	fclose(o);
	ck_assert_int_eq(decide(&f, ACCEL_AUTO, 1, 1000, &c, &e), 0);
	ck_assert_int_eq(c.cached, 0);
	ck_assert_int_eq(nr_calls(&f), 4);
	fx_release(&f);
}
END_TEST

/* A cache that cannot be written: the decision stands, the choice carries the warning (the
 * library prints nothing; the runner shows it). */
START_TEST(test_cache_unwritable_warns)
{
	struct fx f;
	struct accel_choice c;
	struct kerr e = KERR_INIT;
	struct accel_opts o;

	fx_init(&f, pvm_qemu);
	o = (struct accel_opts){ f.qemu, f.dev, f.kernel /* a file, not a folder */, 1000, -1,
				 NULL, NULL, 0 };
	ck_assert_int_eq(accel_decide(ACCEL_AUTO, f.kernel, &o, &c, &e), 0);
	ck_assert_str_eq(c.accel, "tcg");
	ck_assert_int_eq(c.cached, 0);
	ck_assert_msg(strstr(c.warning, "cannot cache the accelerator decision"), "%s", c.warning);
	/* a writable cache: no warning */
	ck_assert_int_eq(decide(&f, ACCEL_AUTO, 1, 1000, &c, &e), 0);
	ck_assert_str_eq(c.warning, "");
	fx_release(&f);
}
END_TEST

START_TEST(test_qemu_missing)
{
	struct fx f;
	struct accel_choice c;
	struct kerr e = KERR_INIT;
	struct accel_opts o;

	fx_init(&f, "exit 0");
	o = (struct accel_opts){ "/nonexistent/qemu-system-x86_64", f.dev, NULL, 1000, -1, NULL, NULL, 0 };
	ck_assert_int_eq(accel_decide(ACCEL_AUTO, f.kernel, &o, &c, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msg, "cannot run QEMU"));
	fx_release(&f);
}
END_TEST

Suite *accel_suite(void)
{
	Suite *s = suite_create("accel");
	TCase *tc = tcase_create("decide");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_pvm_host_falls_back_to_tcg);
	tcase_add_test(tc, test_pvm_host_kvm_is_an_error_naming_kvm);
	tcase_add_test(tc, test_nested_runner_uses_the_workaround);
	tcase_add_test(tc, test_silent_guest_given_up_at_the_deadline);
	tcase_add_test(tc, test_working_kvm);
	tcase_add_test(tc, test_other_exit_reported_without_workaround);
	tcase_add_test(tc, test_no_device_no_trial);
	tcase_add_test(tc, test_cache_once_per_kernel);
	tcase_add_test(tc, test_cache_unwritable_warns);
	tcase_add_test(tc, test_qemu_missing);
	suite_add_tcase(s, tc);
	return s;
}
