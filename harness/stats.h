/* stats.h: the statistics behind klpq's performance verdicts (and, later, history baselines).
 *
 * A comparison takes two groups of phases, A (unpatched) and B (patched), each phase an array
 * of samples of one quantity (frame times, hashes per second...), and a statistic (p50, p99,
 * max, mean). A group's value is the median over its phases of each phase's statistic (one
 * disturbed phase moves it little). It reports both values, the relative change B/A - 1, and
 * a percentile confidence interval for that change from a hierarchical bootstrap: each
 * resample draws the group's phases with replacement, then samples with replacement inside
 * each drawn phase. Drawing phases captures the phase-to-phase noise that dominates under
 * TCG; drawing samples captures the noise within a phase.
 *
 * The verdict is against a threshold on the change in the bad direction (a longer frame time
 * is bad; fewer hashes per second is bad):
 *   FAIL          the whole interval lies beyond the threshold, and every phase of B is
 *                 worse than every phase of A by more than the threshold (with 3 phases a
 *                 side, chance alone orders them so 1 time in 20): a significant regression
 *                 larger than allowed;
 *   PASS          the whole interval lies within the threshold: any regression is smaller;
 *   INCONCLUSIVE  the interval straddles the threshold: too noisy to tell at this length;
 *                 the noise figure (half the interval's width) says how far off it is.
 * The generator is seeded, so the same samples give the same interval. docs/statistics.md.
 */
#ifndef KLPQ_STATS_H
#define KLPQ_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum stats_kind { STATS_P50, STATS_P99, STATS_P999, STATS_MAX, STATS_MEAN };
enum stats_verdict { STATS_PASS, STATS_FAIL, STATS_INCONCLUSIVE };

/* The q-quantile of x[0..n) (linear interpolation between order statistics, "type 7");
 * reorders x (selection, O(n)). n > 0, 0 <= q <= 1. */
double stats_quantile(double *x, size_t n, double q);
/* The statistic over x[0..n) (may reorder x). n > 0. */
double stats_of(enum stats_kind k, double *x, size_t n);
const char *stats_kind_name(enum stats_kind k);
const char *stats_verdict_name(enum stats_verdict v);

struct stats_group {
	const double *const *phase;  /* phase[i][0..n[i]) */
	const size_t *n;
	size_t nr;                   /* phases */
};

struct stats_opts {
	enum stats_kind kind;
	int higher_is_better;
	double threshold;            /* a fraction: 0.05 for 5% */
	double confidence;           /* 0.95 */
	unsigned resamples;          /* 2000 */
	uint64_t seed;               /* 0: a fixed default */
	size_t cap;                  /* at most this many draws per phase and resample (0: 4000) */
};

struct stats_result {
	double a, b;                 /* each group's value: median of its phases' statistics */
	double change;               /* b / a - 1 */
	double lo, hi;               /* confidence interval of change */
	double noise;                /* (hi - lo) / 2: the precision of this comparison */
	int separated;               /* every B phase worse than every A phase beyond the threshold */
	int one_phase;               /* a group of one phase: never PASS or FAIL (stats.c) */
	size_t a_samples, b_samples;
	enum stats_verdict verdict;
};

/* 0, or -1 with a message (an empty group or phase, a statistic of 0 in A: a relative change
 * is then undefined). */
int stats_compare(const struct stats_group *a, const struct stats_group *b,
		  const struct stats_opts *o, struct stats_result *out, struct kerr *e);

#endif
