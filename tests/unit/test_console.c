/* test_console.c: unit tests for the crash-signature classifier (harness/console.c).
 *
 * Most cases run on real console output captured from Debian's 6.1.0-56-amd64 kernel under QEMU
 * (tests/fixtures/console/README.md says how); hand-written lines cover the families that a test
 * module cannot provoke cheaply (KASAN, UBSAN, hard lockup ...) and the input hazards (split
 * lines, prefixes, garbage, floods).
 */
#include <check.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "util.h"

#ifndef KLPQ_SRCDIR
#error "KLPQ_SRCDIR must name the source tree (the Makefile passes it)"
#endif
#define FIXTURE_DIR KLPQ_SRCDIR "/tests/fixtures/console/"

struct blob {
	char *buf;
	size_t len;
};

static struct blob load_fixture(const char *name)
{
	char path[4096];
	struct blob b = { NULL, 0 };
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s%s", FIXTURE_DIR, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open fixture %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 1);
	rewind(f);
	b.buf = malloc((size_t)n);
	ck_assert_ptr_nonnull(b.buf);
	b.len = fread(b.buf, 1, (size_t)n, f);
	ck_assert_uint_eq(b.len, (size_t)n);
	fclose(f);
	return b;
}

static struct cscan *scan_whole(const char *buf, size_t len)
{
	struct cscan *c = cscan_new();

	ck_assert_ptr_nonnull(c);
	cscan_feed(c, buf, len);
	cscan_finish(c);
	return c;
}

static struct cscan *scan_string(const char *s)
{
	return scan_whole(s, strlen(s));
}

static struct cscan *scan_fixture(const char *name)
{
	struct blob b = load_fixture(name);
	struct cscan *c = scan_whole(b.buf, b.len);

	free(b.buf);
	return c;
}

static void assert_report(const struct cscan *c, size_t i, enum crash_kind kind, const char *title)
{
	const struct crash_report *r = cscan_report(c, i);

	ck_assert_msg(r != NULL, "no report %zu (have %zu)", i, cscan_nr_reports(c));
	ck_assert_msg(r->kind == kind, "report %zu: kind %s, wanted %s (title \"%s\")", i,
		      crash_kind_name(r->kind), crash_kind_name(kind), r->title);
	ck_assert_str_eq(r->title, title);
}

static int reports_equal(const struct cscan *a, const struct cscan *b)
{
	size_t i, j;

	if (cscan_nr_reports(a) != cscan_nr_reports(b) ||
	    cscan_dropped_reports(a) != cscan_dropped_reports(b) ||
	    cscan_lines(a) != cscan_lines(b))
		return 0;
	for (i = 0; i < cscan_nr_reports(a); i++) {
		const struct crash_report *x = cscan_report(a, i), *y = cscan_report(b, i);

		if (x->kind != y->kind || strcmp(x->title, y->title) || x->line_no != y->line_no ||
		    x->nr_evidence != y->nr_evidence)
			return 0;
		for (j = 0; j < x->nr_evidence; j++)
			if (strcmp(x->evidence[j], y->evidence[j]))
				return 0;
	}
	return 1;
}

/* ---- real fixtures ---- */

struct fixture_case {
	const char *file;
	size_t nr;
	enum crash_kind kind[2];
	const char *title[2];
	uint64_t line_no[2];
};

static const struct fixture_case fixture_cases[] = {
	{ "oops-null-deref.log", 1, { CRASH_BUG }, { "BUG: NULL pointer dereference in klpq_null_deref" }, { 21 } },
	{ "warn-on.log", 1, { CRASH_WARNING }, { "WARNING in klpq_warn.constprop.0" }, { 22 } },
	{ "bug-on.log", 1, { CRASH_KERNEL_BUG_AT }, { "kernel BUG at /tmp/cons-work/mod/klpq_crash.c:28" }, { 21 } },
	{ "divide-error.log", 1, { CRASH_DIVIDE_ERROR }, { "divide error in klpq_divide.constprop.0" }, { 21 } },
	{ "general-protection.log", 1, { CRASH_GPF }, { "general protection fault in klpq_gpf" }, { 21 } },
	{ "invalid-opcode.log", 1, { CRASH_INVALID_OPCODE }, { "invalid opcode in klpq_ud2" }, { 21 } },
	{ "panic-after-oops.log", 2, { CRASH_BUG, CRASH_PANIC },
	  { "BUG: NULL pointer dereference in klpq_null_deref", "Kernel panic: Fatal exception" }, { 21, 86 } },
	{ "soft-lockup.log", 1, { CRASH_SOFT_LOCKUP }, { "soft lockup in klpq_spin.constprop.0" }, { 21 } },
	{ "rcu-stall.log", 1, { CRASH_RCU_STALL }, { "RCU stall in klpq_spin.constprop.0" }, { 21 } },
	{ "hung-task.log", 1, { CRASH_HUNG_TASK }, { "hung task busybox in klpq_crash_init" }, { 21 } },
	{ "unexpected-reboot.log", 1, { CRASH_REBOOT }, { "unexpected reboot" }, { 38 } },
	{ "boot-clean.log", 0, { 0 }, { NULL }, { 0 } },
	/* whole klpq cells of the stability corpus (docs/corpus.md): console.log as klpq saved it */
	{ "corpus-callback-oops.log", 2, { CRASH_BUG, CRASH_PANIC },
	  { "BUG: NULL pointer dereference in klpq_cboops_pre_patch",
	    "Kernel panic: Attempted to kill init! exitcode=0x00000009" }, { 355, 414 } },
	{ "corpus-post-warn.log", 1, { CRASH_WARNING }, { "WARNING in klpq_postwarn_post_patch" },
	  { 358 } },
	{ "corpus-softlockup.log", 2, { CRASH_SOFT_LOCKUP, CRASH_RCU_STALL },
	  { "soft lockup in klpq_cmdline_proc_show", "RCU stall in klpq_cmdline_proc_show" }, { 356, 401 } },
};

START_TEST(test_fixture_titles)
{
	const struct fixture_case *fc = &fixture_cases[_i];
	struct cscan *c = scan_fixture(fc->file);
	size_t i;

	ck_assert_msg(cscan_nr_reports(c) == fc->nr, "%s: %zu reports, wanted %zu", fc->file,
		      cscan_nr_reports(c), fc->nr);
	for (i = 0; i < fc->nr; i++) {
		const struct crash_report *r = cscan_report(c, i);

		assert_report(c, i, fc->kind[i], fc->title[i]);
		ck_assert_uint_eq(r->line_no, fc->line_no[i]);
		ck_assert_uint_le(r->nr_evidence, CSCAN_CONTEXT_BEFORE + 1 + CSCAN_CONTEXT_AFTER);
		/* the hit itself is in the evidence, cleaned of its time stamp */
		ck_assert_uint_ge(r->nr_evidence, 1);
	}
	ck_assert_uint_eq(cscan_dropped_reports(c), 0);
	cscan_free(c);
}
END_TEST

START_TEST(test_fixture_chunking)
{
	const struct fixture_case *fc = &fixture_cases[_i];
	struct blob b = load_fixture(fc->file);
	struct cscan *whole = scan_whole(b.buf, b.len);
	struct cscan *bytes = cscan_new(), *chunks = cscan_new();
	unsigned seed = 12345u + (unsigned)_i;
	size_t i, n;

	for (i = 0; i < b.len; i++)
		cscan_feed(bytes, b.buf + i, 1);
	cscan_finish(bytes);
	for (i = 0; i < b.len; i += n) {
		n = (size_t)(rand_r(&seed) % 700);
		if (n > b.len - i)
			n = b.len - i;
		cscan_feed(chunks, b.buf + i, n);	/* n == 0 is a valid call too */
	}
	cscan_finish(chunks);
	ck_assert_msg(reports_equal(whole, bytes), "%s: byte-by-byte differs", fc->file);
	ck_assert_msg(reports_equal(whole, chunks), "%s: random chunks differ", fc->file);
	cscan_free(whole);
	cscan_free(bytes);
	cscan_free(chunks);
	free(b.buf);
}
END_TEST

/* Feeding the same text as kmsg-style whole lines gives the same reports. */
START_TEST(test_fixture_feed_line)
{
	const struct fixture_case *fc = &fixture_cases[_i];
	struct blob b = load_fixture(fc->file);
	struct cscan *whole = scan_whole(b.buf, b.len);
	struct cscan *lines = cscan_new();
	char *copy = malloc(b.len + 1), *p, *nl;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, b.buf, b.len);
	copy[b.len] = '\0';
	for (p = copy; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl) {
			cscan_feed_line(lines, p);
			break;
		}
		*nl = '\0';
		cscan_feed_line(lines, p);
	}
	cscan_finish(lines);
	ck_assert_msg(reports_equal(whole, lines), "%s: line feeding differs", fc->file);
	cscan_free(whole);
	cscan_free(lines);
	free(copy);
	free(b.buf);
}
END_TEST

START_TEST(test_clean_boot_is_silent)
{
	struct cscan *c = scan_fixture("boot-clean.log");

	ck_assert_uint_eq(cscan_nr_reports(c), 0);
	ck_assert_uint_eq(cscan_dropped_reports(c), 0);
	ck_assert_uint_eq(cscan_lines(c), 335);
	cscan_free(c);
}
END_TEST

/* The real soft lockup repeats three times and the hung task twice: each is still one incident. */
START_TEST(test_repeats_are_one_incident)
{
	struct blob b = load_fixture("soft-lockup.log");
	size_t i, hits = 0;
	struct cscan *c;

	for (i = 0; i + 11 < b.len; i++)
		if (!memcmp(b.buf + i, "soft lockup", 11))
			hits++;
	ck_assert_uint_ge(hits, 3);
	c = scan_whole(b.buf, b.len);
	ck_assert_uint_eq(cscan_nr_reports(c), 1);
	cscan_free(c);
	free(b.buf);
}
END_TEST

START_TEST(test_evidence_is_clean)
{
	struct cscan *c = scan_fixture("oops-null-deref.log");
	const struct crash_report *r = cscan_report(c, 0);
	size_t i, hit = CSCAN_CONTEXT_BEFORE;

	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->nr_evidence, CSCAN_CONTEXT_BEFORE + 1 + CSCAN_CONTEXT_AFTER);
	ck_assert_str_eq(r->evidence[hit],
			 "BUG: kernel NULL pointer dereference, address: 0000000000000004");
	ck_assert_str_eq(r->evidence[hit + 1], "#PF: supervisor read access in kernel mode");
	for (i = 0; i < r->nr_evidence; i++) {
		ck_assert_ptr_null(strchr(r->evidence[i], '\r'));
		ck_assert_msg(strncmp(r->evidence[i], "[ ", 2), "time stamp left: %s", r->evidence[i]);
	}
	cscan_free(c);
}
END_TEST

/* The example from the brief and console.h: a livepatched function oopses. */
START_TEST(test_header_example)
{
	struct cscan *c = scan_string(
		"[   25.123456] BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
		"[   25.123500] #PF: supervisor read access in kernel mode\n"
		"[   25.123510] #PF: error_code(0x0000) - not-present page\n"
		"[   25.123520] PGD 0 P4D 0\n"
		"[   25.123530] Oops: 0000 [#1] PREEMPT SMP NOPTI\n"
		"[   25.123540] CPU: 0 PID: 123 Comm: cat Tainted: G            E K    6.1.0-56-amd64 #1  Debian 6.1.192-2\n"
		"[   25.123560] RIP: 0010:lp_cmdline_show+0x5/0x20 [klpq_crash]\n"
		"[   25.123700] Call Trace:\n"
		"[   25.123710]  <TASK>\n"
		"[   25.123720]  seq_read_iter+0x10f/0x420\n"
		"[   25.123800]  </TASK>\n"
		"[   25.123900] ---[ end trace 0000000000000000 ]---\n"
		"[   25.124000] Call Trace:\n");

	/* the trailing Call Trace comes after the incident ended: a report of its own */
	ck_assert_uint_eq(cscan_nr_reports(c), 2);
	assert_report(c, 0, CRASH_BUG, "BUG: NULL pointer dereference in lp_cmdline_show");
	ck_assert_uint_eq(cscan_report(c, 0)->line_no, 1);
	assert_report(c, 1, CRASH_CALL_TRACE, "Call Trace without a crash header");
	cscan_free(c);
}
END_TEST

struct line_case {
	const char *text;
	enum crash_kind kind;
	const char *title;
	size_t len;		/* 0: strlen(text); else the text holds NUL bytes */
};

#define NUL_CASE "\033[0;31m[    1.0] BUG: kernel NULL pointer dereference\033[0m\r\r\nRIP: 0010:\0f5+0x1/0x2\r\n"

static const struct line_case line_cases[] = {
	{ "[  100.000001] BUG: unable to handle page fault for address: ffffc90000a4b000\n"
	  "[  100.000002] RIP: 0010:klp_try_switch_task+0x12/0x90\n",
	  CRASH_BUG, "BUG: unable to handle page fault in klp_try_switch_task", 0 },
	{ "BUG: unable to handle kernel paging request at ffffffffc0400000\n",
	  CRASH_BUG, "BUG: unable to handle page fault", 0 },
	{ "BUG: scheduling while atomic: insmod/80/0x00000002\n",
	  CRASH_BUG, "BUG: scheduling while atomic", 0 },
	{ "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580\n",
	  CRASH_BUG, "BUG: sleeping function called from invalid context", 0 },
	{ "WARNING: CPU: 1 PID: 77 at kernel/livepatch/core.c:123 klp_foo+0x1/0x2 [mod]\n",
	  CRASH_WARNING, "WARNING in klp_foo", 0 },
	{ "WARNING: CPU: 1 PID: 77 at kernel/livepatch/core.c:123 klp_foo+0x1/0x2 [mod]\n"
	  "RIP: 0010:klp_bar+0x4/0x8 [mod]\n",
	  CRASH_WARNING, "WARNING in klp_bar", 0 },
	{ "WARNING: possible circular locking dependency detected\n",
	  CRASH_WARNING, "WARNING: possible circular locking dependency detected", 0 },
	{ "general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI\n"
	  "RIP: 0010:list_del+0x1/0x2\n",
	  CRASH_GPF, "general protection fault in list_del", 0 },
	{ "stack segment: 0000 [#1] SMP\nRIP: 0010:foo+0x1/0x2\n",
	  CRASH_STACK_SEGMENT, "stack segment in foo", 0 },
	{ "PANIC: double fault, error_code: 0x0\nRIP: 0010:recurse+0x1/0x2\n",
	  CRASH_DOUBLE_FAULT, "double fault in recurse", 0 },
	{ "Oops: 0000 [#1] SMP\nRIP: 0010:lonely+0x1/0x2\n", CRASH_OOPS, "Oops in lonely", 0 },
	{ "Internal error: Oops - BUG: 00000000f2000800 [#1] PREEMPT SMP\n", CRASH_OOPS, "Oops", 0 },
	{ "NMI watchdog: Watchdog detected hard LOCKUP on cpu 1\n", CRASH_HARD_LOCKUP, "hard LOCKUP", 0 },
	{ "rcu: INFO: rcu_sched detected stalls on CPUs/tasks:\n", CRASH_RCU_STALL, "RCU stall", 0 },
	{ "rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-... }\n",
	  CRASH_RCU_STALL, "RCU stall", 0 },
	{ "INFO: task kworker/0:1:12 blocked for more than 120 seconds.\n",
	  CRASH_HUNG_TASK, "hung task kworker/0:1", 0 },
	{ "INFO: task cat:99 blocked for more than 120 seconds.\n", CRASH_HUNG_TASK, "hung task cat", 0 },
	{ "UBSAN: array-index-out-of-bounds in kernel/livepatch/core.c:42:17\n",
	  CRASH_UBSAN, "UBSAN: array-index-out-of-bounds in kernel/livepatch/core.c", 0 },
	{ "BUG: KASAN: slab-use-after-free in klp_free_patch+0x12/0x34 [livepatch]\n",
	  CRASH_KASAN, "KASAN: slab-use-after-free in klp_free_patch", 0 },
	{ "BUG: KFENCE: out-of-bounds read in test_func+0x1/0x2\n",
	  CRASH_KASAN, "KFENCE: out-of-bounds read in test_func", 0 },
	{ "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
	  CRASH_PANIC, "Kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)", 0 },
	{ "Kernel panic - not syncing: softlockup: hung tasks\n---[ end Kernel panic - not syncing: softlockup: hung tasks ]---\n",
	  CRASH_PANIC, "Kernel panic: softlockup: hung tasks", 0 },
	{ "kernel BUG at mm/slub.c:435!\ninvalid opcode: 0000 [#1] PREEMPT SMP NOPTI\nRIP: 0010:x+0x1/0x2\n",
	  CRASH_KERNEL_BUG_AT, "kernel BUG at mm/slub.c:435", 0 },
	{ "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [busy:88]\nRIP: 0010:busy_loop+0x5/0x9\n",
	  CRASH_SOFT_LOCKUP, "soft lockup in busy_loop", 0 },
	{ "RIP: 0010:ignored+0x1/0x2\nCall Trace:\n <TASK>\n dump_stack_lvl+0x1/0x2\n",
	  CRASH_CALL_TRACE, "Call Trace without a crash header", 0 },
	/* prefixes: syslog level, /dev/kmsg record, caller id, colours, CR, NUL */
	{ "<4>[   12.345678] WARNING: CPU: 0 PID: 1 at a.c:1 f1+0x1/0x2\n", CRASH_WARNING, "WARNING in f1", 0 },
	{ "4,1234,56789012,-;WARNING: CPU: 0 PID: 1 at a.c:1 f2+0x1/0x2\n", CRASH_WARNING, "WARNING in f2", 0 },
	{ "4,1234,56789012,-,caller=T1;WARNING: CPU: 0 PID: 1 at a.c:1 f3+0x1/0x2\n", CRASH_WARNING, "WARNING in f3", 0 },
	{ "[   12.345678][    T1] WARNING: CPU: 0 PID: 1 at a.c:1 f4+0x1/0x2\r\n", CRASH_WARNING, "WARNING in f4", 0 },
	{ NUL_CASE, CRASH_BUG, "BUG: NULL pointer dereference in f5", sizeof(NUL_CASE) - 1 },
};

START_TEST(test_line_families)
{
	const struct line_case *lc = &line_cases[_i];
	struct cscan *c = scan_whole(lc->text, lc->len ? lc->len : strlen(lc->text));

	ck_assert_msg(cscan_nr_reports(c) == 1, "case %d: %zu reports for: %s", _i,
		      cscan_nr_reports(c), lc->text);
	assert_report(c, 0, lc->kind, lc->title);
	cscan_free(c);
}
END_TEST

/* Lines that look close to a signature but are not one: false alarms cost as much as misses. */
START_TEST(test_no_false_alarms)
{
	static const char *const benign[] = {
		"[    0.1] rcu: Hierarchical RCU implementation.\n",
		"[    0.1] rcu: \tRCU CPU stall warnings timeout set to 5 (rcu_cpu_stall_timeout).\n",
		"[    0.2] NMI watchdog: Perf NMI watchdog permanently disabled\n",
		"DEBUG: something happened\n",
		"[   3.1] traps: cat[99] general protection fault ip:7f00 sp:7ffc error:0 in libc.so.6\n",
		"[   3.1] traps: a.out[99] trap divide error ip:401136 sp:7ffd error:0 in a.out\n",
		"[   3.1] traps: a.out[99] trap invalid opcode ip:401136 sp:7ffd error:0 in a.out\n",
		"[   3.1] cat[99]: segfault at 0 ip 0000 sp 0000 error 4 in cat\n",
		"WARNING: this is a user-space program talking\n",
		"KernelOops: nope\n",
		"[   0.0] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP\n",
		"Booting Linux version check\n",
		"[   1.0] hung_task: no hung tasks\n",
		"[   1.0] livepatch: enabling patch 'klpq_p1'\n",
		"[   1.0] livepatch: 'klpq_p1': patching complete\n",
	};
	struct cscan *c = cscan_new();
	size_t i;

	for (i = 0; i < sizeof(benign) / sizeof(benign[0]); i++)
		cscan_feed(c, benign[i], strlen(benign[i]));
	cscan_finish(c);
	for (i = 0; i < cscan_nr_reports(c); i++)
		ck_abort_msg("false alarm: %s", cscan_report(c, i)->title);
	cscan_free(c);
}
END_TEST

START_TEST(test_reboot_and_clear)
{
	static const char banner[] = "[    0.000000] Linux version 6.1.0-56-amd64 (gcc 12) #1 SMP\r\n";
	struct cscan *c = cscan_new();

	cscan_feed(c, banner, strlen(banner));
	cscan_feed_line(c, "WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2");
	ck_assert_uint_eq(cscan_nr_reports(c), 1);
	cscan_clear_reports(c);
	ck_assert_uint_eq(cscan_nr_reports(c), 0);
	ck_assert_uint_eq(cscan_lines(c), 2);
	cscan_feed(c, banner, strlen(banner));	/* the first banner is remembered */
	cscan_finish(c);
	ck_assert_uint_eq(cscan_nr_reports(c), 1);
	assert_report(c, 0, CRASH_REBOOT, "unexpected reboot");
	ck_assert_uint_eq(cscan_report(c, 0)->line_no, 3);
	cscan_free(c);
}
END_TEST

/* guest.kdump: after a crash the capture kernel's boot is neither a reboot nor the tested
 * kernel's. crash 0: only a warning before the second banner; 1: an oops, no panic line (what
 * x86 prints when panic_on_oops makes oops_end() kexec at once); 2: the oops and a panic line. */
static struct cscan *capture_run(int expect, int crash)
{
	static const char *const oops[] = {
		"[   20.100000] BUG: kernel NULL pointer dereference, address: 0000000000000000",
		"[   20.100001] #PF: supervisor write access in kernel mode",
		"[   20.100001] Oops: 0002 [#1] PREEMPT SMP NOPTI",
		"[   20.100002] RIP: 0010:klpq_fault+0x5/0x10 [klpq_s1]",
		NULL };
	static const char *const after[] = {
		"[    0.000000] Linux version 6.1.0-56-amd64 (gcc 12) #1 SMP",
		"[    0.000000] Command line: console=ttyS0 reset_devices nr_cpus=1",
		"[    1.000000] WARNING: CPU: 0 PID: 1 at drivers/x.c:1 probe+0x1/0x2",
		"[    9.000000] kdump-tools[1]: saved dmesg content in /var/crash/202612020101",
		NULL };
	struct cscan *c = cscan_new();

	if (expect)
		cscan_expect_capture(c);
	cscan_feed_line(c, "[    0.000000] Linux version 6.1.0-56-amd64 (gcc 12) #1 SMP");
	if (!crash)
		cscan_feed_line(c, "[   20.000000] WARNING: CPU: 1 PID: 9 at mm/y.c:2 f+0x1/0x2");
	for (size_t i = 0; crash && oops[i]; i++)
		cscan_feed_line(c, oops[i]);
	if (crash == 2)
		cscan_feed_line(c, "[   20.100003] Kernel panic - not syncing: Fatal exception");
	for (size_t i = 0; after[i]; i++)
		cscan_feed_line(c, after[i]);
	cscan_finish(c);
	return c;
}

START_TEST(test_kdump_capture)
{
	struct cscan *c = capture_run(1, 2);

	ck_assert_int_eq(cscan_in_capture(c), 1);
	ck_assert_int_eq(cscan_panicked(c), 1);
	ck_assert_uint_eq(cscan_capture_line(c), 7);
	ck_assert_uint_eq(cscan_nr_reports(c), 2);
	assert_report(c, 0, CRASH_BUG, "BUG: NULL pointer dereference in klpq_fault");
	assert_report(c, 1, CRASH_PANIC, "Kernel panic: Fatal exception");
	ck_assert(!cscan_seen(c, CRASH_REBOOT) && !cscan_seen(c, CRASH_WARNING));
	ck_assert_uint_eq(cscan_lines(c), 10);
	cscan_free(c);

	c = capture_run(1, 1); /* the oops kexecs by itself: no panic line */
	ck_assert_int_eq(cscan_in_capture(c), 1);
	ck_assert_int_eq(cscan_panicked(c), 0);
	ck_assert_int_eq(cscan_fatal(c), 1);
	ck_assert_uint_eq(cscan_capture_line(c), 6);
	ck_assert_uint_eq(cscan_nr_reports(c), 1);
	assert_report(c, 0, CRASH_BUG, "BUG: NULL pointer dereference in klpq_fault");
	cscan_free(c);

	c = capture_run(0, 2); /* no kdump: the same console is a reboot after the crash */
	ck_assert_int_eq(cscan_in_capture(c), 0);
	ck_assert(cscan_seen(c, CRASH_REBOOT) && cscan_seen(c, CRASH_WARNING));
	cscan_free(c);

	c = capture_run(1, 0); /* kdump, but only a warning: a second boot is a reboot */
	ck_assert_int_eq(cscan_in_capture(c), 0);
	ck_assert_int_eq(cscan_fatal(c), 0);
	ck_assert(cscan_seen(c, CRASH_REBOOT));
	cscan_free(c);
}
END_TEST

START_TEST(test_report_cap)
{
	struct cscan *c = cscan_new();
	char line[200];
	int i;

	for (i = 0; i < 40; i++) {
		snprintf(line, sizeof(line), "[ %4d.000000] WARNING: CPU: 0 PID: 1 at a.c:%d f%d+0x1/0x2\n",
			 i, i, i);
		cscan_feed(c, line, strlen(line));
		cscan_feed_line(c, "---[ end trace 0000000000000000 ]---");
	}
	cscan_finish(c);
	ck_assert_uint_eq(cscan_nr_reports(c), CSCAN_MAX_REPORTS);
	ck_assert_uint_eq(cscan_dropped_reports(c), 40 - CSCAN_MAX_REPORTS);
	assert_report(c, 0, CRASH_WARNING, "WARNING in f0");
	assert_report(c, CSCAN_MAX_REPORTS - 1, CRASH_WARNING, "WARNING in f15");
	ck_assert_ptr_null(cscan_report(c, CSCAN_MAX_REPORTS));
	cscan_free(c);
}
END_TEST

START_TEST(test_long_lines)
{
	size_t big = 3 * 1024 * 1024, i;
	char *buf = malloc(big);
	const struct crash_report *r;
	struct cscan *c;
	static const char hit[] = "[    1.0] BUG: kernel NULL pointer dereference, address: 0\n";

	ck_assert_ptr_nonnull(buf);
	/* a 1 MiB line of garbage, then a hit, then a 1 MiB line that starts like a hit */
	for (i = 0; i < 1024 * 1024; i++)
		buf[i] = (char)('a' + i % 26);
	buf[i++] = '\n';
	memcpy(buf + i, hit, sizeof(hit) - 1);
	i += sizeof(hit) - 1;
	memcpy(buf + i, "RIP: 0010:long_fn+0x1/0x2 ", 26);
	i += 26;
	for (; i < big - 1; i++)
		buf[i] = 'x';
	buf[i++] = '\n';
	c = scan_whole(buf, i);
	ck_assert_uint_eq(cscan_lines(c), 3);
	ck_assert_uint_eq(cscan_nr_reports(c), 1);
	r = cscan_report(c, 0);
	assert_report(c, 0, CRASH_BUG, "BUG: NULL pointer dereference in long_fn");
	ck_assert_uint_eq(r->line_no, 2);
	ck_assert_uint_eq(r->nr_evidence, 3);
	ck_assert_uint_le(strlen(r->evidence[0]), CSCAN_MAX_LINE);
	ck_assert_uint_le(strlen(r->evidence[2]), CSCAN_MAX_LINE);
	cscan_free(c);
	free(buf);
}
END_TEST

START_TEST(test_binary_garbage)
{
	size_t len = 8 * 1024 * 1024, i;
	unsigned char *buf = malloc(len);
	unsigned seed = 7;
	struct cscan *c = cscan_new();
	const struct crash_report *r;
	static const char hit[] = "\n\x01\xff\x7f BUG: kernel NULL pointer dereference\n";

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)rand_r(&seed);
	cscan_feed(c, (const char *)buf, len);
	ck_assert_uint_eq(cscan_nr_reports(c), 0);
	/* the scanner still works after the noise, and evidence is printable */
	cscan_feed(c, hit, sizeof(hit) - 1);
	cscan_finish(c);
	ck_assert_uint_eq(cscan_nr_reports(c), 1);
	r = cscan_report(c, 0);
	for (i = 0; i < r->nr_evidence; i++) {
		const unsigned char *p;

		for (p = (const unsigned char *)r->evidence[i]; *p; p++)
			ck_assert_msg(*p >= 0x20 && *p < 0x7f, "unprintable byte 0x%02x", *p);
	}
	cscan_free(c);
	free(buf);
}
END_TEST

START_TEST(test_kind_names)
{
	ck_assert_str_eq(crash_kind_name(CRASH_BUG), "BUG");
	ck_assert_str_eq(crash_kind_name(CRASH_WARNING), "WARNING");
	ck_assert_str_eq(crash_kind_name(CRASH_REBOOT), "REBOOT");
	ck_assert_str_eq(crash_kind_name((enum crash_kind)999), "UNKNOWN");
}
END_TEST

/* ---- flood: 200 MB through the scanner, memory must not move ---- */

#define FLOOD_BYTES (200u * 1024 * 1024)

static size_t make_flood_block(char *buf, size_t size)
{
	size_t len = 0;
	unsigned seed = 99;
	int i = 0;

	while (len + 400 < size) {
		int n;

		switch (i++ % 8) {
		case 0:
			n = snprintf(buf + len, size - len,
				     "[%5d.%06d] WARNING: CPU: 0 PID: 1 at a.c:1 flood_fn+0x1/0x2\r\n", i, i);
			break;
		case 1:
			n = snprintf(buf + len, size - len, "---[ end trace 0000000000000000 ]---\r\n");
			break;
		case 2: {
			int k;

			for (k = 0; k < 200; k++)
				buf[len + (size_t)k] = (char)rand_r(&seed);
			n = 200;
			break;
		}
		default:
			n = snprintf(buf + len, size - len,
				     "<6>[%5d.%06d] usb 1-1: new high-speed USB device number %d using xhci_hcd\n",
				     i, i, i);
			break;
		}
		len += (size_t)n;
	}
	return len;
}

START_TEST(test_flood_constant_memory)
{
	static char block[64 * 1024];
	size_t blen = make_flood_block(block, sizeof(block)), fed = 0;
	struct cscan *c = cscan_new();
	struct mallinfo2 before, after;

	/* warm up until the reports are capped, then measure */
	while (fed < 4u * 1024 * 1024) {
		cscan_feed(c, block, blen);
		fed += blen;
	}
	ck_assert_uint_eq(cscan_nr_reports(c), CSCAN_MAX_REPORTS);
	before = mallinfo2();
	while (fed < FLOOD_BYTES) {
		cscan_feed(c, block, blen);
		fed += blen;
	}
	after = mallinfo2();
	cscan_finish(c);
	ck_assert_uint_eq(cscan_nr_reports(c), CSCAN_MAX_REPORTS);
	ck_assert_uint_gt(cscan_dropped_reports(c), 100000);
	ck_assert_msg(after.uordblks <= before.uordblks + 4096,
		      "heap grew from %zu to %zu bytes", before.uordblks, after.uordblks);
	cscan_free(c);
}
END_TEST

/* A panic after more warnings than the report cap is still known to be a panic. */
START_TEST(test_seen_past_the_cap)
{
	struct cscan *c = cscan_new();
	char line[160];

	for (int i = 0; i < CSCAN_MAX_REPORTS + 4; i++) {
		snprintf(line, sizeof(line), "[   %d.000000] WARNING: CPU: 0 PID: 1 at kernel/x.c:%d "
			 "f%d+0x1/0x2", i + 1, i + 1, i);
		cscan_feed_line(c, line);
		cscan_feed_line(c, "[   99.000000] ---[ end trace 0000000000000000 ]---");
	}
	ck_assert(!cscan_seen(c, CRASH_PANIC));
	cscan_feed_line(c, "[  100.000000] Kernel panic - not syncing: Fatal exception");
	cscan_finish(c);
	ck_assert_uint_eq(cscan_nr_reports(c), CSCAN_MAX_REPORTS);
	ck_assert_uint_gt(cscan_dropped_reports(c), 0);
	ck_assert(cscan_seen(c, CRASH_PANIC));
	ck_assert(cscan_seen(c, CRASH_WARNING));
	ck_assert(!cscan_seen(c, CRASH_SOFT_LOCKUP));
	cscan_free(c);
}
END_TEST

/* Titles name the culprit: a frame of a livepatch module first, then a RIP that is not a
 * generic helper, then the first frame that is not one; '?' and <IRQ>/<NMI> frames never. */
#define CBSPIN_FRAMES \
	" klpq_cbspin_post_patch+0x1d/0x30 [klpq_cbspin_s1]\n" \
	" klp_post_patch_callback+0x1a/0x30\n" \
	" klp_complete_transition+0x120/0x1f0\n" \
	" ? klp_try_complete_transition+0x90/0x90\n" \
	" klp_enable_patch+0x3a0/0x4a0\n" \
	" do_one_initcall+0x56/0x220\n" \
	" </TASK>\n"

static const struct culprit_case {
	const char *text;
	const char *lp_module;	/* told to the scanner, or NULL */
	enum crash_kind kind;
	const char *title;
} culprit_cases[] = {
	/* a soft lockup in the delay loop a callback spins in */
	{ "watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [insmod:95]\n"
	  "Modules linked in: klpq_cbspin_s1(OEK+)\n"
	  "CPU: 1 PID: 95 Comm: insmod Tainted: G           OE K    6.1.0-56-amd64 #1  Debian\n"
	  "RIP: 0010:delay_tsc+0x4a/0xb0\n"
	  "Code: 48 89 14 24\n"
	  "Call Trace:\n"
	  " <TASK>\n" CBSPIN_FRAMES,
	  "klpq_cbspin_s1", CRASH_SOFT_LOCKUP, "soft lockup in klpq_cbspin_post_patch" },
	{ "watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [insmod:95]\n"
	  "RIP: 0010:delay_tsc+0x4a/0xb0\n"
	  "Call Trace:\n"
	  " <TASK>\n" CBSPIN_FRAMES,
	  NULL, CRASH_SOFT_LOCKUP, "soft lockup in klpq_cbspin_post_patch" },
	/* a self-detected RCU stall: the timer interrupt's frames are the reporter's */
	{ "rcu: INFO: rcu_preempt self-detected stall on CPU\n"
	  "rcu:     1-....: (5250 ticks this GP) idle=8a4c/1/0x4000000000000000 softirq=1/1 fqs=2625\n"
	  "        (t=5251 jiffies g=1233 q=56 ncpus=2)\n"
	  "CPU: 1 PID: 95 Comm: insmod Tainted: G           OE K    6.1.0-56-amd64 #1  Debian\n"
	  "Call Trace:\n"
	  " <IRQ>\n"
	  " rcu_dump_cpu_stacks+0xea/0x120\n"
	  " rcu_sched_clock_irq.cold+0x4b/0x1f6\n"
	  " update_process_times+0x5c/0x90\n"
	  " tick_sched_timer+0x88/0xa0\n"
	  " __hrtimer_run_queues+0x112/0x2b0\n"
	  " hrtimer_interrupt+0xfe/0x220\n"
	  " __sysvec_apic_timer_interrupt+0x5a/0x130\n"
	  " sysvec_apic_timer_interrupt+0x69/0x90\n"
	  " </IRQ>\n"
	  " <TASK>\n"
	  " asm_sysvec_apic_timer_interrupt+0x16/0x20\n"
	  "RIP: 0010:delay_tsc+0x4a/0xb0\n"
	  "RSP: 0018:ffffa7a8c03bfc70 EFLAGS: 00000283\n"
	  " ? delay_tsc+0x40/0xb0\n" CBSPIN_FRAMES,
	  "klpq_cbspin_s1", CRASH_RCU_STALL, "RCU stall in klpq_cbspin_post_patch" },
	/* a frame in the livepatch module beats a RIP in the core kernel */
	{ "general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI\n"
	  "RIP: 0010:__list_del_entry_valid+0x1/0x2\n"
	  "Call Trace:\n"
	  " <TASK>\n"
	  " klpq_list_show+0x31/0x80 [klpq_list_s2]\n"
	  " seq_read_iter+0x11f/0x440\n"
	  " </TASK>\n",
	  "klpq_list_s2", CRASH_GPF, "general protection fault in klpq_list_show" },
	{ "general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI\n"
	  "RIP: 0010:__list_del_entry_valid+0x1/0x2\n"
	  "Call Trace:\n"
	  " <TASK>\n"
	  " klpq_list_show+0x31/0x80 [klpq_list_s2]\n"
	  " </TASK>\n",
	  NULL, CRASH_GPF, "general protection fault in __list_del_entry_valid" },
	/* a hung task asleep in msleep under the patched function */
	{ "INFO: task cat:99 blocked for more than 120 seconds.\n"
	  "      Tainted: G           OE K    6.1.0-56-amd64 #1 Debian 6.1.158-1\n"
	  "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n"
	  "task:cat             state:D stack:0     pid:99    ppid:1      flags:0x00004000\n"
	  "Call Trace:\n"
	  " <TASK>\n"
	  " __schedule+0x34d/0x9e0\n"
	  " schedule+0x5a/0xd0\n"
	  " schedule_timeout+0x94/0x150\n"
	  " ? __bpf_trace_tick_stop+0x10/0x10\n"
	  " msleep+0x29/0x40\n"
	  " klpq_slow_show+0x20/0x40 [klpq_slow_s1]\n"
	  " seq_read_iter+0x11f/0x440\n"
	  " do_syscall_64+0x55/0xb0\n"
	  " entry_SYSCALL_64_after_hwframe+0x6e/0xd8\n"
	  " </TASK>\n",
	  NULL, CRASH_HUNG_TASK, "hung task cat in klpq_slow_show" },
	/* a hard lockup: the NMI's own frames do not count */
	{ "NMI watchdog: Watchdog detected hard LOCKUP on cpu 1\n"
	  "RIP: 0010:native_queued_spin_lock_slowpath+0x5e/0x2d0\n"
	  "Call Trace:\n"
	  " <NMI>\n"
	  " watchdog_overflow_callback.cold+0x1e/0x70\n"
	  " perf_event_overflow+0x19/0x20\n"
	  " </NMI>\n"
	  " <TASK>\n"
	  " _raw_spin_lock+0x29/0x30\n"
	  " klpq_lock_show+0x18/0x40 [klpq_lock_s1]\n"
	  " </TASK>\n",
	  "klpq_lock_s1", CRASH_HARD_LOCKUP, "hard LOCKUP in klpq_lock_show" },
	/* nothing better than the generic helper: it is named */
	{ "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:0]\n"
	  "RIP: 0010:delay_tsc+0x4a/0xb0\n"
	  "Call Trace:\n"
	  " <TASK>\n"
	  " ? delay_tsc+0x40/0xb0\n"
	  " __const_udelay+0x43/0x50\n"
	  " </TASK>\n",
	  NULL, CRASH_SOFT_LOCKUP, "soft lockup in delay_tsc" },
};

START_TEST(test_culprit_titles)
{
	const struct culprit_case *cc = &culprit_cases[_i];
	struct cscan *c = cscan_new();

	if (cc->lp_module)
		cscan_livepatch_module(c, cc->lp_module);
	cscan_feed(c, cc->text, strlen(cc->text));
	cscan_finish(c);
	ck_assert_uint_eq(cscan_nr_reports(c), 1);
	assert_report(c, 0, cc->kind, cc->title);
	cscan_free(c);
}
END_TEST

#define SYSRQ_DUMP \
	"sysrq: Show State\n" \
	"task:swapper/0       state:R  running task     stack:0     pid:0     ppid:0      flags:0x00004000\n" \
	"Call Trace:\n" \
	" <TASK>\n" \
	" __schedule+0x34d/0x9e0\n" \
	" </TASK>\n" \
	"task:init            state:S stack:0     pid:1     ppid:0      flags:0x00000002\n" \
	"Call Trace:\n" \
	" <TASK>\n" \
	" __schedule+0x34d/0x9e0\n" \
	" do_wait+0x15b/0x2f0\n" \
	" </TASK>\n" \
	"sysrq: Show backtrace of all active CPUs\n" \
	"NMI backtrace for cpu 0\n" \
	"CPU: 0 PID: 0 Comm: swapper/0 Not tainted 6.1.0-56-amd64 #1  Debian 6.1.158-1\n" \
	"RIP: 0010:native_safe_halt+0xb/0x10\n" \
	"Call Trace:\n" \
	" <TASK>\n" \
	" default_idle+0xa/0x20\n" \
	" </TASK>\n"

/* klpq's own hang dump (SysRq t, w, l) is the guest's state, not a crash; a real report in the
 * middle of it still is one, and a Call Trace long after it is reported again. */
START_TEST(test_sysrq_dump_quiet)
{
	struct cscan *c = scan_string(SYSRQ_DUMP);
	struct sb text = SB_INIT;

	ck_assert_uint_eq(cscan_nr_reports(c), 0);
	cscan_free(c);

	sb_adds(&text, SYSRQ_DUMP);
	sb_adds(&text, "BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
		       "RIP: 0010:klpq_oops_show+0x5/0x20 [klpq_oops_s1]\n");
	sb_adds(&text, SYSRQ_DUMP);
	for (int i = 0; i < 200; i++)
		sb_adds(&text, "klpq-mark: quiet\n");
	sb_adds(&text, "Call Trace:\n <TASK>\n dump_stack_lvl+0x1/0x2\n </TASK>\n");
	c = scan_string(text.buf);
	ck_assert_uint_eq(cscan_nr_reports(c), 2);
	assert_report(c, 0, CRASH_BUG, "BUG: NULL pointer dereference in klpq_oops_show");
	assert_report(c, 1, CRASH_CALL_TRACE, "Call Trace without a crash header");
	cscan_free(c);

	/* once klpq dumps the guest itself, no Call Trace without a header is reported */
	c = cscan_new();
	cscan_feed_line(c, "CPU: 0 PID: 0 Comm: swapper/0");
	cscan_diagnostics(c);
	cscan_feed_line(c, "Call Trace:");
	cscan_feed_line(c, " __schedule+0x1/0x2");
	cscan_feed_line(c, "WARNING: CPU: 0 PID: 1 at kernel/x.c:1 klpq_w+0x1/0x2");
	cscan_finish(c);
	ck_assert_uint_eq(cscan_nr_reports(c), 1);
	assert_report(c, 0, CRASH_WARNING, "WARNING in klpq_w");
	cscan_free(c);
	sb_release(&text);
}
END_TEST

Suite *console_suite(void)
{
	Suite *s = suite_create("console");
	TCase *tc = tcase_create("fixtures");
	int nfix = (int)(sizeof(fixture_cases) / sizeof(fixture_cases[0]));

	tcase_add_loop_test(tc, test_fixture_titles, 0, nfix);
	tcase_add_loop_test(tc, test_fixture_chunking, 0, nfix);
	tcase_add_loop_test(tc, test_fixture_feed_line, 0, nfix);
	tcase_add_test(tc, test_clean_boot_is_silent);
	tcase_add_test(tc, test_seen_past_the_cap);
	tcase_add_test(tc, test_repeats_are_one_incident);
	tcase_add_test(tc, test_evidence_is_clean);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("lines");
	tcase_add_test(tc, test_header_example);
	tcase_add_loop_test(tc, test_line_families, 0,
			    (int)(sizeof(line_cases) / sizeof(line_cases[0])));
	tcase_add_test(tc, test_no_false_alarms);
	tcase_add_test(tc, test_reboot_and_clear);
	tcase_add_test(tc, test_report_cap);
	tcase_add_test(tc, test_kdump_capture);
	tcase_add_test(tc, test_long_lines);
	tcase_add_test(tc, test_binary_garbage);
	tcase_add_test(tc, test_kind_names);
	tcase_add_loop_test(tc, test_culprit_titles, 0,
			    (int)(sizeof(culprit_cases) / sizeof(culprit_cases[0])));
	tcase_add_test(tc, test_sysrq_dump_quiet);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("flood");
	tcase_add_test(tc, test_flood_constant_memory);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}
