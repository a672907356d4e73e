/* console.h: the crash-signature classifier for kernel console output and kernel log lines.
 *
 * Feed it bytes as they arrive (console) or whole lines (kmsg records); it splits lines itself,
 * so a report line split across writes still matches, and strips "\r", "[   12.345678] " time
 * stamps and "<N>" / "N,SEQ,TS,-;" prefixes before matching. Memory is bounded whatever the
 * input: lines longer than CSCAN_MAX_LINE are cut, at most CSCAN_MAX_REPORTS reports are kept
 * (the rest are counted), each with at most CSCAN_CONTEXT_BEFORE lines before the hit and
 * CSCAN_CONTEXT_AFTER lines after it as evidence.
 *
 * Signature families (docs/checks.md lists them with examples): BUG, WARNING, Oops, general
 * protection fault, invalid opcode, divide error, stack segment, double fault, kernel BUG at,
 * Kernel panic, RCU stall, soft lockup, hard lockup, hung task, UBSAN, KASAN/KFENCE, Call Trace
 * without a preceding header, and a second "Linux version" banner (unexpected reboot).
 * One incident (a "BUG:" line, then "Oops:", RIP, Call Trace ...) yields one report, not one per
 * line; a panic that follows an oops is its own report.
 *
 * Titles are short and stable (no addresses, no timestamps, no PIDs):
 *   "BUG: NULL pointer dereference in lp_cmdline_show"
 *   "BUG: unable to handle page fault in FUNC"
 *   "WARNING in FUNC" (from "WARNING: CPU: 0 PID: 1 at FILE:LINE FUNC+0x..")
 *   "general protection fault in FUNC", "invalid opcode in FUNC", "kernel BUG at FILE:LINE"
 *   "Kernel panic: MESSAGE" (text after "not syncing: ", cut at 80 chars)
 *   "soft lockup in FUNC", "hard LOCKUP in FUNC", "RCU stall in FUNC", "hung task COMM in FUNC",
 *   "UBSAN: KIND in FILE", "unexpected reboot"
 * FUNC names the culprit, in this order: the first function of the incident (RIP, the header's
 * "at FILE:LINE FUNC", a Call Trace frame) in one of the livepatch modules the scanner was told
 * of (cscan_livepatch_module); else the RIP's or the header's function unless it is a generic
 * helper (delay, spin, lock, sleep and copy primitives, the scheduler's entry, the trace, stack,
 * warn, die, RCU and watchdog machinery); else the first Call Trace frame that is not one; else
 * that helper. Frames marked '?' never count, nor frames inside <IRQ>/<NMI> outside a livepatch
 * module. Without a FUNC the title ends before " in".
 *
 * SysRq dumps ("sysrq: Show ..." and the task stacks after it) and everything after
 * cscan_diagnostics() are the guest's state, not failures: a Call Trace there is not reported
 * (a real header still is).
 */
#ifndef KLPQ_CONSOLE_H
#define KLPQ_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#define CSCAN_MAX_LINE 1024
#define CSCAN_MAX_REPORTS 16
#define CSCAN_CONTEXT_BEFORE 16
#define CSCAN_CONTEXT_AFTER 48

enum crash_kind {
	CRASH_BUG, CRASH_WARNING, CRASH_OOPS, CRASH_GPF, CRASH_INVALID_OPCODE, CRASH_DIVIDE_ERROR,
	CRASH_STACK_SEGMENT, CRASH_DOUBLE_FAULT, CRASH_KERNEL_BUG_AT, CRASH_PANIC, CRASH_RCU_STALL,
	CRASH_SOFT_LOCKUP, CRASH_HARD_LOCKUP, CRASH_HUNG_TASK, CRASH_UBSAN, CRASH_KASAN,
	CRASH_CALL_TRACE, CRASH_REBOOT,
};

struct crash_report {
	enum crash_kind kind;
	char title[160];
	uint64_t line_no;     /* 1-based line number of the hit within everything fed */
	char **evidence;      /* lines, cleaned of timestamps */
	size_t nr_evidence;
};

struct cscan; /* opaque */

struct cscan *cscan_new(void);
void cscan_free(struct cscan *c);
/* Bytes in any chunking. */
void cscan_feed(struct cscan *c, const char *buf, size_t len);
/* One complete line (no newline needed). */
void cscan_feed_line(struct cscan *c, const char *line);
/* Flushes a partial last line and closes open incidents. Call before reading reports. */
void cscan_finish(struct cscan *c);
size_t cscan_nr_reports(const struct cscan *c);
const struct crash_report *cscan_report(const struct cscan *c, size_t i);
uint64_t cscan_dropped_reports(const struct cscan *c); /* past CSCAN_MAX_REPORTS */
/* 1 when an incident of that kind was seen, even if its report was dropped past the cap or
 * cleared: "was there a panic" must not depend on how many warnings came first. */
int cscan_seen(const struct cscan *c, enum crash_kind kind);
uint64_t cscan_lines(const struct cscan *c);
/* A kdump capture kernel may boot after a crash (guest.kdump): the next "Linux version" banner
 * after a panic or an oops-class header (cscan_fatal) then starts the capture boot instead of
 * being an unexpected reboot, and nothing from there on is classified (it is not the tested
 * kernel's run). */
void cscan_expect_capture(struct cscan *c);
/* 1 once the capture kernel's banner was seen; the line it is on (1-based), or 0. */
int cscan_in_capture(const struct cscan *c);
uint64_t cscan_capture_line(const struct cscan *c);
/* 1 once a crash the kernel may kexec after was seen: a panic, or an oops-class header (with
 * panic_on_oops, x86 kexecs from the oops without printing a panic line). */
int cscan_fatal(const struct cscan *c);
/* 1 once a "Kernel panic - not syncing" line was seen (also one an oops's report absorbed). */
int cscan_panicked(const struct cscan *c);
/* A livepatch module of the cell: a frame in it names the title before any other. */
void cscan_livepatch_module(struct cscan *c, const char *name);
/* klpq is about to dump the guest's state (SysRq): from here on, a Call Trace without a crash
 * header is part of the dump. */
void cscan_diagnostics(struct cscan *c);
/* Forgets reports (keeps line count and the "Linux version" state): used per patch step. */
void cscan_clear_reports(struct cscan *c);
const char *crash_kind_name(enum crash_kind k); /* "BUG", "WARNING", ... */

#endif
