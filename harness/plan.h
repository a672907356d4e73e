/* plan.h: a scenario's matrix expanded into cells.
 *
 * A cell is one kernel x one patch set x one VM size. The cells are the cross product of the
 * scenario's kernels (ranges already expanded by the parser), patchsets and vms, in that
 * nesting order, minus the cells an `exclude:` rule matches, plus the `include:` cells.
 * Every rule must change the plan (a rule that matches nothing is a typo); the error names
 * the scenario file, line and column. Cell ids depend only on the scenario, so a resumed or
 * sharded run finds the same folders.
 */
#ifndef KLPQ_PLAN_H
#define KLPQ_PLAN_H

#include "scenario.h"

struct plan_cell {
	char *id;                        /* <release>_<patchset>[_<vm>][-N]: a folder name */
	const struct kernel_spec *kernel;/* in the scenario or in plan.extra */
	const struct patchset *patchset; /* in the scenario */
	const struct vm_spec *vm;        /* in the scenario */
	size_t index;                    /* position in the whole plan, before sharding */
};

struct plan {
	struct plan_cell *cells;
	size_t nr;
	size_t total;                    /* cells before sharding */
	struct kernel_spec *extra;       /* kernels named only by include rules; owned */
	size_t nr_extra;
};

/* 0, or -1 with "FILE:LINE:COL: ..." in e. */
int plan_build(const struct scenario *sc, struct plan *p, struct kerr *e);
/* Parses "I/N" (1 <= I <= N <= 10000). 0 or -1 with a message. */
int plan_parse_shard(const char *text, unsigned *i, unsigned *n, struct kerr *e);
/* Keeps shard I of N: the cells whose plan index is I-1 modulo N (balanced, stable for a
 * given scenario). */
void plan_shard(struct plan *p, unsigned i, unsigned n);
void plan_release(struct plan *p);

#endif
