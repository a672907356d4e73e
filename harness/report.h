/* report.h: the result formats CI systems read, made from a run's results (results.h).
 *
 *   junit.xml    JUnit XML: <testsuites>, one <testsuite> per cell (properties: kernel,
 *                release, patch set, accel), one <testcase> per check; FAIL is <failure>,
 *                ERROR <error>, SKIP <skipped>, with the title as message and the evidence
 *                as text
 *   results.tap  TAP version 13 (on request: klpq run --tap), one test point per check;
 *                ERROR and FAIL are "not ok" with a YAML diagnostic block
 *   kcidb.json   KernelCI KCIDB I/O schema v4.0: one checkout per run, one build per cell
 *                (the kernel under test), one test per check, path klpq.<patchset>.<step>.
 *                <check>, status PASS/FAIL/ERROR/SKIP
 *   report.html  one self-contained page: cells, checks, evidence folded
 * Every file is written atomically into the run folder. Text from the guest (titles,
 * evidence) is escaped for each format: invalid UTF-8 and control characters never reach
 * XML or HTML. docs/results.md describes each format.
 */
#ifndef KLPQ_REPORT_H
#define KLPQ_REPORT_H

#include "results.h"

int report_junit(const struct run_result *r, const char *path, struct kerr *e);
int report_tap(const struct run_result *r, const char *path, struct kerr *e);
int report_kcidb(const struct run_result *r, const char *path, struct kerr *e);
int report_html(const struct run_result *r, const char *path, struct kerr *e);
/* junit.xml, kcidb.json and report.html (and results.tap when tap) in r->dir. */
int report_write_all(const struct run_result *r, int tap, struct kerr *e);

/* Exposed for tests: text made safe for XML/HTML (escaped, valid UTF-8, no control
 * characters but tab and newline), appended to out. */
void report_xml_escape(struct sb *out, const char *text);

#endif
