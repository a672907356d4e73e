/* checks.h: every check a cell can report, as data: where it runs, its id(s), the verdicts a
 * failure of it can have, when it passes, and what its FAIL or ERROR says. docs/checks.md's
 * table is generated from it (`klpq checks`), and the unit tests hold every check the cell flow
 * reports to an entry here.
 */
#ifndef KLPQ_CHECKS_H
#define KLPQ_CHECKS_H

#include <stddef.h>
#include "util.h"

struct check_def {
	const char *anchor;   /* its row in docs/checks.md: checks.md#check-ANCHOR, unique */
	const char *steps;    /* where it runs: "prepare", "boot", "*step*", "rollback", ... */
	const char *check;    /* its id(s) in backticks; NAME / METRIC: any name after the prefix */
	const char *classes;  /* what a failure of it is: "FAIL", "ERROR", "FAIL or ERROR", "SKIP" */
	const char *pass;     /* PASS when */
	const char *bad;      /* its FAIL / ERROR and the title it carries */
};

extern const struct check_def check_defs[];
extern const size_t nr_check_defs;

/* 1 when d is about this check id (one of its ids, NAME/METRIC matching any name). */
int check_def_is(const struct check_def *d, const char *name);
/* The first entry naming this check id ("load", "probe:cmdline-fix1"), or NULL. */
const struct check_def *check_def_find(const char *name);
/* The entry for this check id reported at this step ("step1"/"load", "rollback"/"probe:x",
 * "leak-cycle2"/"disable"): the first whose ids and step kinds both match, else NULL. */
const struct check_def *check_def_at(const char *step, const char *name);
/* check_def_at, or else the first entry naming the id whatever its step (check_def_find). */
const struct check_def *check_def_for(const char *step, const char *name);
/* 1 when a check of this entry may have this verdict: PASS and SKIP always, FAIL and ERROR
 * when its fault classes say so. A check that was waiting on a guest that died or stopped
 * answering reports that instead (docs/checks.md, above the table); checks_guest_loss
 * tells those titles. */
int check_def_allows(const struct check_def *d, int is_fail);
/* 1 when a title is one of the guest-loss verdicts any waiting check may carry. */
int checks_guest_loss(const char *title);
/* "docs/checks.md#check-ANCHOR" (static storage until the next call), or NULL for NULL. */
const char *check_def_doc(const struct check_def *d);
/* docs/checks.md's table, header included. */
void checks_doc_table(struct sb *out);

#endif
