/* perf.h: performance under load: the workloads a scenario may run in the guest, the metrics
 * klpq derives from their samples, the phases (unpatched A, patched B, transitions) a cell
 * records, and the comparison of B against A with statistics (stats.c).
 *
 * Workloads write sample lines (docs/workloads.md): "<t_ns> key=value ...", t_ns on the
 * guest's CLOCK_MONOTONIC. The runner tails their output files through the agent (`read`),
 * stamps phase boundaries with the agent's `now`, and hands both here. Each metric is one
 * statistic (p50, p99, max, mean) of one sample key, with a direction (a longer frame time
 * is worse; more hashes per second is better).
 */
#ifndef KLPQ_PERF_H
#define KLPQ_PERF_H

#include <json-c/json.h>
#include <stdint.h>

#include "stats.h"
#include "util.h"

struct perf_metric {
	const char *name;      /* "gaming.frame_p99": what thresholds name */
	const char *workload;  /* "gaming" */
	const char *sample;    /* the sample key: "frame_us" */
	enum stats_kind stat;
	int higher_is_better;
	const char *unit;
	int headline;          /* the one shown in the terminal table for its workload */
};

/* The known metrics, and lookup by name (NULL when unknown). */
const struct perf_metric *perf_metrics(size_t *n);
const struct perf_metric *perf_metric_find(const char *name);

/* Workload names and their options, for the scenario parser: an option `tick_hz: 120`
 * becomes `--tick-hz 120`. Integers are range-checked; strings must be one of choices
 * when choices is not NULL. */
struct perf_option {
	const char *workload;
	const char *key;       /* scenario spelling: tick_hz */
	long min, max;         /* integer options; min > max means a string option */
	const char *const *choices;
};
int perf_workload_known(const char *name);
const struct perf_option *perf_option_find(const char *workload, const char *key);
/* "gaming, streaming, mining, callbench" / the options of one workload, for messages. */
const char *perf_workload_names(void);
void perf_option_names(const char *workload, struct sb *out);

/* ---- samples -------------------------------------------------------------------------- */

struct perf_series {
	char *key;             /* sample key */
	uint64_t *t;           /* guest CLOCK_MONOTONIC ns */
	double *v;
	size_t n, alloc;
};

/* One workload's samples as they arrive; bounded (PERF_MAX_SAMPLES per key, then the
 * oldest half is thinned) so a runaway workload cannot exhaust the host's memory. */
struct perf_samples {
	char *workload;
	struct perf_series *series;
	size_t nr_series;
	struct sb partial;     /* an unfinished line */
	uint64_t offset;       /* bytes of the guest file consumed */
	size_t bad_lines;
	int header_seen;
};

#define PERF_MAX_SAMPLES 400000

void perf_samples_init(struct perf_samples *ps, const char *workload);
void perf_samples_release(struct perf_samples *ps);
/* Feeds bytes from the workload's output; whole lines are parsed, the rest kept. */
void perf_samples_feed(struct perf_samples *ps, const char *data, size_t len);
const struct perf_series *perf_series_find(const struct perf_samples *ps, const char *key);

/* ---- phases and comparison ------------------------------------------------------------ */

enum perf_phase_kind { PHASE_A, PHASE_B, PHASE_T };

struct perf_phase {
	enum perf_phase_kind kind;  /* A unpatched, B patched, T a transition window */
	char *label;                /* "baseline", "step2", "pair2-unpatched", "step1-transition" */
	uint64_t start_ns, end_ns;  /* guest CLOCK_MONOTONIC */
};

struct perf_phases {
	struct perf_phase *p;
	size_t n;
};

void perf_phase_add(struct perf_phases *ph, enum perf_phase_kind kind, const char *label,
		    uint64_t start_ns, uint64_t end_ns);
void perf_phases_release(struct perf_phases *ph);

/* The values of one sample key inside one phase (malloc'd, *n set; NULL when none). */
double *perf_values_in(const struct perf_series *s, uint64_t start_ns, uint64_t end_ns,
		       size_t *n);

#endif
