/* exercise.h: the calls of the functions a patch step replaces, counted while the step is tested
 * (cell-exercise.c runs the counting in the guest; this reads what it prints and judges it). */
#ifndef KLPQ_EXERCISE_H
#define KLPQ_EXERCISE_H

#include <stddef.h>
#include <stdint.h>

#include "results.h"

#define EX_MAX_FUNCS 32

struct ex_func {
	char event[48];   /* the kprobe event: <prefix>_f<N> */
	char obj[64];     /* vmlinux or the patched module */
	char func[128];   /* the original function */
	char new_name[128]; /* its replacement, from the module's .ko (klpfuncs.h), or "" */
	char sympos[16];  /* its sympos as sysfs writes it ("0": unique) */
	int pos;
	int armed;        /* the event is counting */
	int read;         /* its count was read */
	uint64_t hits, missed;
	char why[128];    /* not armed: why */
};

struct exercise {
	long step;        /* the step being counted, -1 none */
	struct ex_func f[EX_MAX_FUNCS];
	size_t nr;
	size_t dropped;   /* functions past EX_MAX_FUNCS */
	char none[160];   /* nothing could be counted: why ("" counting works) */
};

void exercise_reset(struct exercise *x);
/* One line of the counting script's output: "armed EVENT OBJ FUNC SYMPOS", "fail EVENT OBJ FUNC
 * SYMPOS WHY...", "none WHY..." or "count EVENT HITS MISSED". Other lines are ignored. */
void exercise_parse_line(struct exercise *x, const char *line);
/* Every line of the script's output text, as exercise_parse_line. */
void exercise_parse(struct exercise *x, const char *text);
/* Names each function's replacement from the module's own list (klpfuncs.h): the entry of the
 * same object and name whose sympos matches (0 and 1 are both "the only one"). */
struct klp_fn;
void exercise_name_new(struct exercise *x, const struct klp_fn *fn, size_t nr);
/* The functions whose count was read as 0. */
size_t exercise_never(const struct exercise *x);
/* The exercised check: PASS every function counted was called, SKIP one was never called (what
 * ran did not test the patch: "not exercised: NEW (replacing F) was never called WHEN", or "F
 * (replaced by MOD)" when the replacement's name is not known) or
 * nothing could be counted ("not counted: ..."). when: "while step1 was tested". title gets
 * the check's title. */
enum verdict exercise_judge(const struct exercise *x, const char *when, const char *mod,
			    char *title, size_t size);

/* ---- the workloads' calls and the memory, per performance phase ----------------------------
 * The functions live after the last step (from the modules, klpfuncs.h) get a kprobe event
 * each, disabled, before the baseline phase. The memory is read at both ends of each phase;
 * after each phase the events are enabled for a short window (the same workloads, the same
 * patch state) and the calls in it counted: the measured phases run with no kprobe. */
#define PC_MAX_PHASES 64

struct pc_phase {
	char label[48];   /* the perf phase: "baseline", "step2", "pair2-patched" */
	int patched;      /* a B phase */
	int counted;      /* hits[] were read at both ends */
	uint64_t hits[EX_MAX_FUNCS]; /* calls of function k in the phase */
	int mem;          /* the memory below was read at both ends */
	long sunr_kb, avail_kb; /* SUnreclaim and MemFree: end minus start */
	long *slab;       /* bytes in use of each slab cache (perf_calls.cache): end minus start */
};

/* A reading of the guest's memory: /proc/meminfo and /proc/slabinfo. */
struct pc_mem {
	long sunr_kb, avail_kb;
	long *slab;       /* per cache of perf_calls.cache, active_objs * objsize; -1 not listed */
};

struct perf_calls {
	struct exercise x;           /* the functions and their events (x.f[k].event) */
	struct pc_phase ph[PC_MAX_PHASES];
	size_t nph;
	size_t lost;                 /* phases whose counts could not be read */
	char (*cache)[32];           /* the slab caches, as the first reading listed them */
	size_t ncache;
	int learned;                 /* cache[] was learned (the first reading) */
	unsigned win_ms;             /* the counting window after each phase */
	size_t dropped_phases;       /* phases past PC_MAX_PHASES */
	size_t dropped_funcs;        /* functions past EX_MAX_FUNCS */
	int counting_off;            /* count_calls off: the memory only */
	struct pc_mem mem_at;        /* the memory when the current phase began */
	int mem_at_ok;
	char mem_none[160];          /* memory not read: why ("" it is) */
};

/* /proc/meminfo and /proc/slabinfo's text into m (m->slab allocated here, one per cache of
 * pc; the first reading learns the caches). 0, or -1 when SUnreclaim or MemFree is not
 * in meminfo (slabinfo may be empty: only the totals are compared then). */
int perf_mem_parse(struct perf_calls *pc, const char *meminfo, const char *slabinfo,
		   struct pc_mem *m);
/* Check "memory" at perf: did a slab cache grow in every patched phase of the last step (as
 * perf_calls_judge picks them) and not in the unpatched ones? FAIL "leak under load: slab cache
 * C grew N kB or more in each of the P patched phase(s) of S (unpatched phases: M kB at most;
 * threshold T kB)"; PASS with the largest such growth and MemFree's least fall (evidence only:
 * page cache and per-CPU lists move it as much); SKIP "not measured: ..." without two read
 * patched phases and one unpatched. */
enum verdict perf_mem_judge(const struct perf_calls *pc, const char *last, unsigned thr_kb,
			    char *title, size_t size);
void perf_calls_release(struct perf_calls *pc);

/* kprobe_profile's lines ("EVENT HITS MISSED") into hits[k] for each armed function k of x;
 * returns 0, or -1 when an armed function's event is not in the text. */
int perf_calls_parse(const struct exercise *x, const char *profile, uint64_t *hits);
/* Check "exercised" at perf: over the patched phases of the last step (its own phase, named
 * `last`, and the pairs' "pair*-patched"), were all the functions called? PASS "N call(s) of
 * the K replaced function(s) by the workloads in P patched phase(s)", SKIP "not exercised: NEW
 * (replacing F) was never called by the workloads in P patched phase(s)" or "not counted: ...".
 * mod names the last step's module for a title without the replacement's name. */
enum verdict perf_calls_judge(const struct perf_calls *pc, const char *last, const char *mod,
			      char *title, size_t size);

#endif
