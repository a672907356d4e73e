/* runner.h: runs one cell (one kernel x one patch set) from boot to power-off and turns what
 * happened into checks (results.h).
 *
 * The flow: prepare the kernel, build each step, build the initramfs, boot, wait for the agent;
 * the probes must fail unpatched; then for each step: mark the kernel log, load, wait for the
 * transition (a timeout is a stall that names the blocking tasks with their stacks), verify the
 * livepatch sysfs state and that replaced modules can be removed, run this step's and every
 * earlier step's probes, read the log since the mark for the livepatch transcript and crash
 * signatures, check taint; after the last step: disable it, check the unpatching transition and
 * that the probes show the unpatched behaviour, unload, load again, power off.
 */
#ifndef KLPQ_RUNNER_H
#define KLPQ_RUNNER_H

#include <stdio.h>
#include "results.h"
#include "scenario.h"

struct runner {
	const struct scenario *sc;
	const char *cache;      /* kernel and module cache */
	const char *agent;      /* static guest agent binary */
	const char *busybox;    /* static busybox */
	const char *workload;   /* static klpq-workload (only when the scenario has workloads) */
	int stop_fd;            /* readable on Ctrl-C / SIGTERM */
	FILE *progress;         /* one line per event, or NULL */
	const struct guest_image *image; /* image.h; NULL: the initramfs */
};

/* Runs the cell and fills cell (already cell_init'ed; its dir exists). Writes the cell's
 * results.json before returning, whatever happened. Returns 0; -1 when interrupted; -2 when
 * its results.json could not be written (the message went to stderr). */
int runner_run_cell(struct runner *rn, const struct kernel_spec *ks, struct cell_result *cell);

#endif
