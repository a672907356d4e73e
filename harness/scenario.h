/* scenario.h: the scenario and patch-set files (YAML, parsed with libyaml).
 *
 * A scenario names kernels, the VM, one patch set (a folder holding patchset.yaml), timeouts
 * and allowed taint. A patch set lists ordered cumulative steps, each with its probes.
 * Every error names FILE:LINE:COL and the field; unknown keys are errors. Relative paths in
 * a file are resolved against that file's folder and stored absolute.
 * The format is documented in docs/scenario.md.
 */
#ifndef KLPQ_SCENARIO_H
#define KLPQ_SCENARIO_H

#include "kname.h"
#include "pool.h"
#include "util.h"

enum kernel_kind { KERNEL_DEBIAN, KERNEL_LOCAL };

struct kernel_spec {
	enum kernel_kind kind;
	char *label;          /* as written for debian ("debian:6.1.0-56-amd64"); "local:<release>" for local */
	struct kname deb;     /* KERNEL_DEBIAN */
	char *vmlinuz;        /* KERNEL_LOCAL: absolute paths */
	char *modules;        /* the lib/modules/<release> folder */
	char *build;          /* headers/build folder (may be NULL when every step is prebuilt) */
	char *release;        /* KERNEL_LOCAL: optional "release:"; else basename of modules */
	int line, col;        /* where it was written, for later messages */
};

enum probe_expect { PROBE_EXPECT_PASS = 0, PROBE_EXPECT_FAIL = 1 };

struct probe {
	char *name;           /* unique within the patch set, name_is_safe() */
	char *run;            /* shell text run in the guest by /bin/sh -c */
	unsigned timeout_ms;  /* default: scenario timeouts.probe_s */
	int rollback_check;   /* 1 (default): after rollback this probe must exit nonzero */
	int expect_fail;      /* "expect: fails": after its own step the probe must exit nonzero */
	int recheck;          /* 1 (default): run again after every later step while its step
			       * is live; 0: checked after its own step only */
};

/* What a step does. A patch step loads a livepatch module; the others act on the guest
 * between (or during) patches, as the kernel's own livepatch selftests do. */
enum step_kind {
	STEP_PATCH,   /* source/module: a livepatch module */
	STEP_HELPER,  /* source/module with helper: true: an ordinary module (a test target) */
	STEP_KMOD,    /* kmod: a module of the kernel under test, with its dependencies */
	STEP_DISABLE, /* disable: write 0 to an earlier patch step's enabled, wait it out */
	STEP_UNLOAD,  /* unload: remove an earlier step's module */
	STEP_SYSCTL,  /* sysctl: write one /proc/sys value */
	STEP_RUN,     /* run: a shell command in the guest that must exit 0 */
};

struct step {
	char *name;           /* name_is_safe() */
	char *source;         /* folder with C source + Kbuild (absolute), or NULL */
	char *module;         /* prebuilt .ko (absolute), or NULL; exactly one of source/module */
	struct probe *probes;
	size_t nr_probes;
	int expect_load_fail; /* "expect: load-fails": the step must be refused by the kernel */
	int stacked;          /* method: 0 cumulative (atomic replace, the default), 1 stacked */
	int refusal_errno;    /* with it: the errno the refusal must give, or 0 for any */
	char *refusal_log;    /* and/or a text the kernel's lines since the step must hold */
	enum step_kind kind;
	char *params;         /* module parameters ("a=1 b=2") for patch/helper/kmod, or NULL */
	char *params_file;    /* a guest file whose one line is added to params at the load */
	char *kmod;           /* STEP_KMOD: the module's name */
	size_t target;        /* STEP_DISABLE/STEP_UNLOAD: index of the earlier step acted on */
	char *sysctl_key;     /* STEP_SYSCTL: "kernel.ftrace_enabled" */
	char *sysctl_value;
	char *run;            /* STEP_RUN: shell text */
	int nowait;           /* "wait: false": do not wait for the patch's transition */
	char **log;           /* the filtered kernel lines the step must produce, exactly */
	size_t nr_log;
	int has_log;          /* log: given (an empty list means: no such line at all) */
	int line;             /* where the step was written */
};

/* A helper program of the patch set: a C file built for the guest (static) and put in it as
 * /klpq/bin/<name>, for a `run` step to start (a hammer of the patched call). */
struct program {
	char *name;           /* name_is_safe() */
	char *source;         /* absolute path of the .c file */
};

struct patchset {
	char *name;           /* name_is_safe() */
	char *dir;            /* absolute folder of patchset.yaml */
	char *file;           /* absolute path of patchset.yaml */
	char *description;
	int stacked;          /* the patch set's method: 0 cumulative (default), 1 stacked */
	char **log_filter;    /* a kernel line is a step's when it holds one of these; default
			       * "livepatch:" and the names of the patch set's modules */
	size_t nr_log_filter;
	struct program *programs;
	size_t nr_programs;
	struct step *steps;
	size_t nr_steps;
};

enum accel_kind { ACCEL_AUTO, ACCEL_KVM, ACCEL_TCG };
struct vm_backend;

struct vm_spec {
	char *name;           /* an entry of `vms:` (a safe name); NULL for the single `vm:` */
	const struct vm_backend *backend; /* vm.h; default vm_backend_default() ("qemu") */
	char *uri;            /* vm.uri: libvirt's connection URI, or NULL (embedded) */
	unsigned memory_mb;   /* default 1024, 128..65536 */
	unsigned cpus;        /* default 2, 1..64 */
	enum accel_kind accel;/* default auto */
	char *extra_cmdline;  /* appended to the kernel command line, or NULL */
	int network;          /* default 0: the guest has no network device */
	char **requires;      /* vm.requires: labels a pool host must have (pool.h) */
	size_t nr_requires;
	/* set by the scheduler in a cell's process when a pool runs it (not owned) */
	const char *host;     /* the pool host's name */
	int host_kvm;         /* that host has the label kvm */
};

struct timeouts {
	unsigned boot_ms;       /* boot until the agent is ready; default 180 s */
	unsigned console_ms;    /* a boot with not one byte on the console by then has hung;
				 * default 20 s */
	unsigned transition_ms; /* one patch transition; default 60 s */
	unsigned probe_ms;      /* default for probes; default 10 s */
	unsigned agent_ms;      /* one agent request; default 30 s */
};

/* One workload run in the guest while the patch steps are applied (perf.h, docs/workloads.md). */
struct workload_spec {
	char *name;           /* gaming | streaming | mining | callbench */
	char **args;          /* the option arguments: "--tick-hz", "120", ... */
	size_t nr_args;
	int line, col;
};

struct perf_threshold {
	char *metric;         /* a name perf_metric_find() knows */
	double pct;           /* a change in the bad direction beyond this is a FAIL */
};

/* The `perf:` mapping: how long each phase is and what counts as a regression. */
struct perf_spec {
	unsigned warmup_ms;   /* after the workloads start, before the first phase; default 2 s */
	unsigned phase_ms;    /* each measured phase (A or B); default 10 s */
	unsigned pairs;       /* unpatched/patched pairs for the last step; default 3, 1..20 */
	double threshold_pct; /* default for every metric; default 5 */
	double transition_pct;/* worst frame / stall in a transition vs baseline; default 100 */
	double confidence;    /* of the intervals; default 0.95 */
	unsigned resamples;   /* bootstrap resamples; default 2000 */
	struct perf_threshold *thresholds;
	size_t nr_thresholds;
};

/* The `leak:` mapping: apply/disable cycles of the last step with memory compared. */
struct leak_spec {
	unsigned cycles;      /* default 3; 0 turns the check off */
	unsigned threshold_kb;/* growth per cycle that is a leak; default 1024 */
	unsigned load_threshold_kb; /* a slab cache's growth in each patched perf phase that is a
				     * leak under load; default 128 */
	char *exercise;       /* shell text run in the guest each cycle; NULL: the probes */
};

/* One `exclude:` or `include:` entry of a matrix. For exclude, each non-NULL field is an
 * fnmatch(3) glob that must match the cell's value; for include, kernel is a kernel name
 * (debian:... or a label from kernels) and patchset / vm name entries of patchsets / vms. */
struct matrix_rule {
	char *kernel, *abi, *flavor, *series, *patchset, *vm;
	int line, col;        /* where the entry was written */
};

/* `guest:` what the cell boots into (docs/scenario.md, "guest"). */
/* guest.kdump: the crashkernel= reservation, and the least vm.memory_mb that leaves the tested
 * kernel room beside it */
#define KDUMP_CRASHKERNEL_MB 256
#define KDUMP_MIN_MEMORY_MB 768

struct guest_spec {
	int disk;             /* 0: the initramfs (default); 1: a disk image */
	char *path;           /* guest.path: the user's qcow2 image (absolute), read only */
	char *root;           /* guest.root: the disk's root device in the guest; /dev/vda1 */
	int root_given;       /* guest.root was written (else a user image's is inspected) */
	char *distro;         /* guest.distro: the image klpq builds (diskimg.h); NULL: path */
	char **packages;      /* guest.packages: Debian packages added to the built image */
	size_t nr_packages;
	char *mirror;         /* guest.mirror: the Debian archive; NULL: this host's apt source */
	unsigned keep_overlay_mb; /* a failed cell's overlay is kept when at most this big */
	int kdump;            /* guest.kdump: kdump-tools and a crashkernel in the built image */
};

struct scenario {
	char *file;           /* absolute path */
	struct guest_spec guest;
	struct pool pool;     /* `hosts:` (pool.h); nr 0 without */
	char *name;           /* name_is_safe(); default: file name without .yaml */
	char *description;
	struct kernel_spec *kernels;
	size_t nr_kernels;
	struct vm_spec vm;    /* the cell's VM: vms[0] after loading; not owned (see vms) */
	struct patchset patchset; /* the cell's patch set: patchsets[0] after loading; not owned */
	struct patchset *patchsets; /* `patchset:` (one) or `patchsets:` (a matrix axis); owned */
	size_t nr_patchsets;
	struct vm_spec *vms;  /* `vm:` (one, name NULL) or `vms:` (a matrix axis); owned */
	size_t nr_vms;
	struct matrix_rule *exclude, *include;
	size_t nr_exclude, nr_include;
	struct timeouts timeouts;
	struct workload_spec *workloads; /* none: the cell runs without load, no perf checks */
	size_t nr_workloads;
	struct perf_spec perf;
	struct leak_spec leak;
	enum { RECOVER_NONE, RECOVER_SIGNAL, RECOVER_REVERSE } stall_recovery; /* default signal */
	unsigned taint_allow; /* bit mask of allowed taint flags; default K|E|O (livepatch, unsigned, out-of-tree) */
	int rollback;         /* default 1: disable the last step, check, re-enable */
	int count_calls;      /* default 0: count the replaced functions' calls with kprobe events
			       * (checks exercised); off because changing kprobe events on a
			       * livepatched function wedged a TCG guest once (docs/checks.md) */
	int livepatch_debug;  /* 1: dyndbg on for kernel/livepatch; transcripts include pr_debug */
};

/* 0, or -1 with "FILE:LINE:COL: message" in e. On failure *out is released. */
int scenario_load(const char *path, struct scenario *out, struct kerr *e);
void scenario_release(struct scenario *s);
/* Loads PATH/patchset.yaml (PATH a folder) into out. */
int patchset_load(const char *dir, struct patchset *out, struct kerr *e);
/* "EINVAL" for 22, ... (the names refusal.errno accepts), or NULL. */
const char *errno_name(int num);
/* sources_anywhere: steps may name sources outside the patch set's folder (the scenario's
 * sources_outside_patchset: true); patchset_load refuses them. */
int patchset_load_opts(const char *dir, int sources_anywhere, struct patchset *out,
		       struct kerr *e);
void patchset_release(struct patchset *p);

/* Taint letters, the kernel's order (bit 0 = 'P' ... bit 18 = 'N'). Unknown letters -> -1. */
int taint_letter_bit(char letter);
/* Writes the letters of every set bit, kernel order, into out (e.g. "OEK"). */
void taint_format(unsigned long taint, char *out, size_t outlen);

#endif
