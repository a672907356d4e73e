/* cell.h: what the files of one cell's run share (internal to the runner; runner.h is the
 * interface). runner.c has the cell flow; each cell-*.c file one family of checks:
 *   cell-guest.c      recording checks, the guest's crash reports, whose fault a dead or silent
 *                     guest is, and the agent call every check goes through
 *   cell-livepatch.c  livepatch state in sysfs, transitions, stall detection and recovery
 *   cell-klog.c       the kernel log: marks, transcripts, step log: assertions, crashes, taint
 *   cell-probes.c     probes
 *   cell-modules.c    loading and removing modules, a patch's load and settle, refusals, the
 *                     sysfs and method checks
 *   cell-steps.c      the step kinds (patch, helper, kmod, disable, unload, sysctl, run)
 *   cell-rollback.c   rollback and reapply, a stack top down
 *   cell-perf.c       the performance phases under the scenario's workloads
 *   cell-judge.c      the performance judgement of those phases
 *   cell-leak.c       the leak check across patch cycles
 */
#ifndef KLPQ_CELL_H
#define KLPQ_CELL_H

#include "perf.h"
#include "runner.h"
#include "console.h"
#include "kernel.h"
#include "pbuild.h"
#include "image.h"
#include "vm.h"
#include "accel.h"
#include "exercise.h"

#include <stdint.h>

#define POLL_MS 250
#define CONSOLE_TAIL_LINES 40
/* guest.kdump: how long a panicked guest's capture boot may take to save the dump and end the
 * VM (a systemd boot and makedumpfile under TCG) */
#define KDUMP_WAIT_MS 240000
enum { KDUMP_NONE, KDUMP_ENDED, KDUMP_MISSED, KDUMP_STUCK };

struct loaded {
	char *name;     /* module name (= livepatch name for a patch) */
	int inserted;   /* module loaded */
	int plain;      /* a helper or kernel module, not a livepatch */
};

/* A step's standing, for which probes still hold: a patch step is live from its load until a
 * disable takes it (or the patch that replaced it) away. */
enum step_state { ST_NONE, ST_LIVE, ST_RETIRED };

struct cellrun {
	struct runner *rn;
	const struct scenario *sc;
	struct cell_result *cell;
	struct kernel k;
	struct built_module *mods;   /* one per step */
	struct vm *vm;
	const struct guest_image *img; /* image.h: the initramfs */
	struct cscan *console;
	size_t console_seen;         /* console reports already turned into checks */
	char **titles;               /* crash titles reported, to keep console and kmsg apart */
	size_t nr_titles;
	struct loaded *loaded;
	size_t nr_loaded;
	unsigned long taint_reported; /* taint flags not allowed that a check already failed on */
	char taint_step[32];          /* the step of that check */
	int patched;                 /* a patch step has been applied: trouble is the kernel's */
	int down;                    /* the guest is dead or silent: skip what needs it */
	int interrupted;
	char *console_path;
	char *disk;                  /* a disk guest's overlay (in the scratch folder), or NULL */
	char *disk_base;             /* its backing image: built (diskimg.h) or guest.path */
	char *disk_root;             /* the root device the first stage mounts: /dev/vda1 */
	int kdump_wait;              /* KDUMP_*: how the wait for a capture boot ended */
	uint64_t kdump_ms;           /* its length */
	int disk_booted;             /* the overlay has been booted: a post-mortem can read it */
	struct accel_choice ac;      /* decided once (decide_accel) */
	int ac_done;
	uint64_t console_bytes;      /* read from the serial console so far */
	long live;                   /* index of the last step applied and live, -1: none */
	enum step_state *state;      /* one per step */
	char ***kmod_paths;          /* per kmod step: host paths, dependencies first */
	size_t *nr_kmod_paths;
	char **programs;             /* host paths of the patch set's built programs */
	/* performance under load (scenario workloads): see the "perf" section below */
	struct perf_samples *wl;     /* one per workload */
	struct perf_phases phases;
	int perf_on;                 /* workloads are running */
	struct exercise ex;          /* the calls counted while a step is tested (cell-exercise.c) */
	struct perf_calls *pc;       /* the workloads' calls per perf phase, or NULL */
	int instrumenting;           /* klpq is changing kprobe events in the guest (a hang now is
				      * an ERROR, not the patch's FAIL) */
};

struct lp_patch {
	char name[128];
	int enabled, transition, replace, stack_order;
	int objects, objects_patched;
	int objects_loaded;          /* objects whose module is loaded (vmlinux always) */
	int objects_wrong;           /* patched while its module is absent, or not while loaded */
	char absent[256];            /* the objects whose module is not loaded, comma-separated */
	char objs[512];              /* ",name,name," of every module object (vmlinux excluded) */
};

enum settle { SETTLED, REFUSED_AS_EXPECTED, STOPPED_CELL, GUEST_DOWN };

void cr_progress(struct cellrun *cr, const char *fmt, ...) KLPQ_ATTR_FMT(2, 3);
struct check_result *cr_add(struct cellrun *cr, const char *step, const char *name,
			    enum verdict v, uint64_t ms, const char *fmt, ...) KLPQ_ATTR_FMT(6, 7);

/* cell-guest.c */
void report_crashes(struct cellrun *cr, const char *step, const char *source,
		    struct cscan *c, size_t from);
void console_crashes(struct cellrun *cr, const char *step);
void scan_patch_modules(struct cellrun *cr, struct cscan *c);
void guest_trouble(struct cellrun *cr, const char *step, const char *name,
		   enum vm_wait_result w, const struct kerr *e);
enum vm_wait_result cr_call(struct cellrun *cr, const char *step, const char *name,
			    const char *op, json_object *args, unsigned timeout_ms,
			    struct proto_msg *reply);
unsigned agent_ms(const struct cellrun *cr);

/* cell-exercise.c: counting the calls of step i's replaced functions starts once its patch is
 * live (the functions from sysfs; requests recorded at `step`) and is read, judged and removed
 * by exercise_check: check "exercised" at `step`, its title ending in `when` ("while step1
 * was tested").
 * exercise_check returns that check's verdict, or -1 when nothing was counted or judged (not
 * armed for step i, or the guest went down). */
void exercise_arm(struct cellrun *cr, size_t i, const char *step);
int exercise_check(struct cellrun *cr, size_t i, const char *step, const char *when);
/* The workloads' calls of the functions live after the last step and the guest's memory, per
 * perf phase: the events made (disabled) by perf_start before the baseline; perf_phase reads
 * the memory when each phase begins and ends, then counts the calls in a window after it
 * (-1: the guest went down); perf_calls_finish judges (checks "exercised" and "memory" at perf)
 * and removes the events; results.json metrics "calls". */
void perf_calls_arm(struct cellrun *cr);
int perf_calls_begin(struct cellrun *cr);
int perf_calls_end(struct cellrun *cr, enum perf_phase_kind kind, const char *label);
void perf_calls_finish(struct cellrun *cr, size_t last);

/* cell-livepatch.c */
int lp_state(struct cellrun *cr, const char *step, const char *name,
	     struct lp_patch *out, size_t max, size_t *nr);
const struct lp_patch *lp_find(const struct lp_patch *p, size_t n, const char *name);
/* Patches still live (enabled, or in a transition) other than except (may be NULL). A patch
 * that was disabled stays listed for a moment after its unpatching completes: the kernel
 * frees it (and its sysfs folder) from a workqueue; it is not live. */
size_t lp_live(const struct lp_patch *p, size_t n, const char *except);
void report_stall(struct cellrun *cr, const char *step, const char *check,
		  const char *what, const char *patch, int target, uint64_t took);
int wait_transition(struct cellrun *cr, const char *step, const char *name, int enable,
		    uint64_t *took);
void stall_recover(struct cellrun *cr, const char *step, const char *mod);

/* cell-klog.c */
int kmsg_mark(struct cellrun *cr, const char *step, const char *text, int64_t *seq);
int kmsg_since(struct cellrun *cr, const char *step, int64_t seq, struct sb *out);
void check_klog(struct cellrun *cr, const char *step, int64_t seq,
		const char *const *expect, size_t nr_expect);
void check_taint(struct cellrun *cr, const char *step);
void check_step_log(struct cellrun *cr, size_t i, int64_t seq);
int check_module_lines(struct cellrun *cr, const char *step, const char *mod,
		       int loading, int64_t seq);

/* cell-probes.c */
int run_probe(struct cellrun *cr, const char *step, const struct probe *p, int *exit_code,
	      int *timed_out, struct sb *output, uint64_t *took);
int probe_check(struct cellrun *cr, const char *step, const struct step *from,
		const struct probe *p, int want_pass, int own);
int run_probes(struct cellrun *cr, const char *step, size_t upto, int want_pass, long own);
int run_own_probes(struct cellrun *cr, size_t i);

/* cell-modules.c */
struct loaded *loaded_find(struct cellrun *cr, const char *name);
void note_loaded_as(struct cellrun *cr, const char *name, int plain);
int load_path(struct cellrun *cr, const char *step, const char *path, const char *params,
	      struct sb *err, int *err_no);
int load_module(struct cellrun *cr, const char *step, const char *modname,
		const char *params, struct sb *err, int *err_no);
int unload_module_errno(struct cellrun *cr, const char *step, const char *modname,
			struct sb *err, int *err_no);
int unload_module(struct cellrun *cr, const char *step, const char *modname,
		  struct sb *err);
size_t transcript_apply(const struct cellrun *cr, const char *p, char buf[5][192],
			const char *exp[5]);
size_t transcript_unpatch(const struct cellrun *cr, const char *p, char buf[5][192],
			  const char *exp[5]);
void check_refusal(struct cellrun *cr, const char *step, const char *mod,
		   const char *why, int err_no, int64_t seq, uint64_t ms);
int step_params(struct cellrun *cr, const struct step *st, char **out);
enum settle load_and_settle(struct cellrun *cr, const char *step, const char *mod,
			    const char *params, int expect_fail, int nowait, int64_t *seq);
int check_sysfs(struct cellrun *cr, const char *step, const char *mod, int nowait);

/* cell-steps.c */
const char *step_module(const struct cellrun *cr, size_t i);
int apply_step(struct cellrun *cr, size_t i);

/* cell-rollback.c */
void rollback_cell(struct cellrun *cr, size_t last);

/* cell-perf.c */
int guest_exec(struct cellrun *cr, const char *step, const char *name,
	       const char *const *argv, unsigned timeout_ms, int *exit_code, struct sb *out);
int guest_now(struct cellrun *cr, const char *step, uint64_t *ns);
int perf_pull(struct cellrun *cr, const char *step);
/* ms with the guest running and the workloads' samples pulled (outside any phase); -1 down */
int perf_idle(struct cellrun *cr, unsigned ms);
int perf_phase(struct cellrun *cr, enum perf_phase_kind kind, const char *label);
int perf_start(struct cellrun *cr);
int perf_unpatch(struct cellrun *cr, const char *step, const char *mod);
void perf_pairs(struct cellrun *cr, size_t last);

/* cell-leak.c */
void leak_check(struct cellrun *cr, size_t last);

/* cell-judge.c */
void perf_finish(struct cellrun *cr, size_t last);

/* cell-guest.c: the console callback of the VM (console bytes into the crash scanner) */
void on_console(void *ctx, const char *buf, size_t len);

#endif
