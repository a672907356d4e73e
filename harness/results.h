/* results.h: verdicts as data, and the files and table made from them.
 *
 * A check yields PASS / FAIL / ERROR / SKIP with a short title and evidence lines. ERROR means
 * the harness or infrastructure failed (QEMU would not start, a download failed); FAIL means
 * the kernel or the patch did. Cells and the run summary are written to results.json with
 * write_file_atomic, after every cell, so an interrupted run keeps what it finished.
 */
#ifndef KLPQ_RESULTS_H
#define KLPQ_RESULTS_H

#include <json-c/json.h>
#include <stdio.h>
#include "util.h"

enum verdict { V_PASS, V_SKIP, V_ERROR, V_FAIL };

struct check_result {
	char *step;          /* "boot", "step1", "rollback", ... */
	char *name;          /* "load", "transition", "probe:cmdline-fix1", ... */
	enum verdict status;
	char *title;
	char **evidence;
	size_t nr_evidence;
	uint64_t duration_ms;
};

struct cell_result {
	char *id;            /* folder name under the run */
	char *dir;
	char *kernel;        /* as written in the scenario */
	char *release;
	char *patchset;
	char *accel;         /* "kvm" | "tcg" | "" before it was decided */
	char *accel_reason;  /* why that accelerator (accel.c), "" before it was decided */
	char *no_retry;      /* an ERROR a retry cannot change (why), or NULL: retry allowed */
	char *host;          /* the pool's host that ran the cell (pool.h), or NULL: no pool */
	char *host_fault;    /* the host's own failure that ended it: "connect", "lost" or
			      * "start" (pool.h's rules), or NULL */
	char *patchset_sha256; /* content of the patch set that ran (pbuild_patchset_hash), or NULL */
	char *kernel_image;  /* the kernel image that booted, and its SHA-256, or NULL */
	char *kernel_sha256;
	char *qemu_version;
	json_object *metrics; /* boot_ms, transition_ms per step, ... */
	json_object *postmortem; /* a failed disk guest's disk, read back (diskimg.h), or NULL */
	struct check_result *checks;
	size_t nr_checks;
	uint64_t started_wall_ms;
	uint64_t duration_ms;
	int finished;
	int attempts;        /* runs of this cell in this run (an ERROR is retried); 0 = 1 */
};

const char *verdict_name(enum verdict v);
/* "2026-11-22T09:30:00Z" from wall-clock milliseconds. */
void iso_time(uint64_t ms, char *buf, size_t len);
/* Worst of the checks: FAIL over ERROR over PASS; SKIP alone counts as PASS. */
enum verdict cell_verdict(const struct cell_result *c);

void cell_init(struct cell_result *c, const char *id, const char *dir, const char *kernel,
	       const char *patchset);
void cell_release(struct cell_result *c);
struct check_result *cell_add(struct cell_result *c, const char *step, const char *name,
			      enum verdict v, uint64_t duration_ms, const char *fmt, ...)
	KLPQ_ATTR_FMT(6, 7);
void check_evidence(struct check_result *r, const char *fmt, ...) KLPQ_ATTR_FMT(2, 3);
/* Adds each line of text (at most max_lines, the last ones) as evidence. */
void check_evidence_text(struct check_result *r, const char *prefix, const char *text,
			 size_t max_lines);

json_object *cell_to_json(const struct cell_result *c);
int cell_write(const struct cell_result *c, struct kerr *e);
/* Reads DIR/results.json back (for --resume): 0, or -1 when it is missing or not a cell. */
int cell_read(struct cell_result *c, const char *id, const char *dir, struct kerr *e);

struct run_result {
	char *id;
	char *dir;
	char *scenario;      /* file */
	char *scenario_name;
	uint64_t started_wall_ms;
	uint64_t duration_ms;
	struct cell_result *cells;
	size_t nr_cells;
	int interrupted;
	int unfinished;      /* still running, or killed before its end (SIGKILL): "finished": false */
	char *error;         /* a run-level harness error, or NULL */
	char *shard;         /* "I/N" when the run is one shard of a matrix, or NULL */
	size_t planned;      /* cells this run was to run (its shard of the plan) */
	char **merged_from;  /* klpq merge: the run folders this one was made from */
	size_t nr_merged_from;
};

void run_release(struct run_result *r);
/* Reads DIR/results.json and every cell it lists (klpq report, klpq merge). 0 or -1. */
int run_read(struct run_result *r, const char *dir, struct kerr *e);
int run_write(const struct run_result *r, struct kerr *e);
/* 0 every cell passed; 1 some check failed; 2 a harness error or nothing run (unless some
 * check failed), or a run that is incomplete: interrupted, or results that could not be
 * written (always: its findings are incomplete). */
int run_exit_code(const struct run_result *r);
/* The table: kernel, step, check, verdict, time; then a line per cell and a total. */
void run_print_table(const struct run_result *r, FILE *out, int color);

#endif
