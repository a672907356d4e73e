/* scheduler.h: runs a plan's cells, up to N at once, each in its own process.
 *
 * Each cell runs in a forked klpq process (its own stop pipe, PR_SET_PDEATHSIG so a killed
 * parent takes it down cleanly, its own VM and work folder) and writes its own results.json;
 * the parent reads that back when the process ends, so a cell that crashed still leaves a
 * result. Kernels and patch modules are shared through the cache, guarded by flock. A cell
 * whose verdict is ERROR (infrastructure: a download, QEMU, host memory) is run again up to
 * `retries` times; the earlier attempt is kept in RUN/.attempts/. A cell starts only when the
 * host's MemAvailable covers its VM; the progress display is live on a terminal and
 * line-oriented otherwise.
 */
#ifndef KLPQ_SCHEDULER_H
#define KLPQ_SCHEDULER_H

#include <signal.h>
#include <stdio.h>

#include "plan.h"
#include "pool.h"
#include "results.h"
#include "runner.h"

struct sched_opts {
	unsigned jobs;        /* cells at once, >= 1 */
	unsigned retries;     /* extra attempts for a cell whose verdict is ERROR */
	int quiet;            /* no progress output at all */
	int live;             /* a terminal: redraw a live display instead of printing lines */
	int color;
	FILE *out;
	/* In the child, after fork: fresh signal handling; returns the child's stop fd. */
	int (*child_setup)(void);
	volatile sig_atomic_t *stop_signal;
	struct pool *pool;    /* NULL; or the hosts each cell runs on, over libvirt (pool.h) */
};

/* Default -j: the online CPUs, bounded by what MemAvailable holds for VMs of vm_mb each. */
unsigned sched_default_jobs(unsigned vm_mb);

/* Runs p's cells into run (cells already in run and finished are kept: --resume). The
 * runner rn supplies the cache, agent, busybox and scenario. run.results.json is rewritten
 * after every cell. Returns 0, or -1 when some cell's results could not be written (run.error
 * is set). */
int sched_run(const struct runner *rn, const struct plan *p, struct run_result *run,
	      const struct sched_opts *o);

#endif
