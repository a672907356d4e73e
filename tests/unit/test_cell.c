/* test_cell.c: the cell flow (runner.c and cell-*.c) against a fake backend (vm.h) that plays a
 * guest: a kernel with a livepatch sysfs and a kernel log, and one fault at a time (a guest that
 * never prints, an agent that never answers, a panic, a reset, QEMU killed, a hung guest, QEMU
 * frozen, a refused load, a stalled transition). Each gets the verdict docs/reliability.md
 * ("Faults") documents, with the same check and title the real-boot tests see. Real boots of
 * the same faults are tests/vm/faulty.sh; this runs in seconds. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accel.h"
#include "checks.h"
#include "exercise.h"
#include "klpfuncs.h"
#include "image.h"
#include "runner.h"
#include "scenario.h"
#include "vm.h"

enum fault {
	F_NONE,
	F_SILENT_CONSOLE, /* the kernel prints nothing */
	F_SILENT_AGENT,   /* it boots, but nothing answers on the channel */
	F_PANIC,          /* the load panics the kernel (panic=-1: a reset) */
	F_RESET,          /* the load resets the guest, no panic */
	F_KILLED,         /* QEMU killed by signal 9 during the load */
	F_HANG,           /* the guest stops answering at the load; QMP still answers */
	F_FROZEN,         /* the same, with QMP silent too (QEMU stopped) */
	F_REFUSE,         /* the load is refused (EINVAL) */
	F_STALL,          /* the transition never ends; a task is in the patched function */
};

static enum fault plan; /* the fault the next VM plays */
static long fake_calls = 3; /* calls of the patched function the exercise counting sees */
static unsigned fake_leak_cycles; /* the scenario's leak.cycles */
static int fake_count_calls = 1;   /* the scenario's count_calls */
static long fake_free_fall, fake_user_grow; /* kB per memory reading: MemFree, Mapped */
static long fake_free_back; /* from this memory reading on (1 = the first), 9000 kB more free */
static long fake_pcp_grow;  /* pages per memory reading on the per-CPU free lists */

struct patch {
	char name[64];
	int enabled, transition, in_sysfs, loaded;
	int linger;   /* disabled, unpatched, still listed for this many more lp_state reads */
};

struct fake {
	struct vm base;
	struct vm_config cfg;
	enum fault fault;
	struct patch p[8];
	size_t np;
	struct { int64_t seq; char text[160]; } rec[512];
	size_t nrec;
	int64_t taint;
	int exited, reset, host, hung;
	long mem_reads;
	const char *reason;
};

static void console(struct fake *f, const char *text)
{
	if (f->cfg.on_console)
		f->cfg.on_console(f->cfg.ctx, text, strlen(text));
}

static void klog(struct fake *f, const char *fmt, ...)
{
	va_list ap;

	if (f->nrec == sizeof(f->rec) / sizeof(f->rec[0]))
		return;
	f->rec[f->nrec].seq = (int64_t)f->nrec + 100;
	va_start(ap, fmt);
	vsnprintf(f->rec[f->nrec].text, sizeof(f->rec[0].text), fmt, ap);
	va_end(ap);
	f->nrec++;
}

static struct patch *find(struct fake *f, const char *name)
{
	for (size_t i = 0; i < f->np; i++)
		if (!strcmp(f->p[i].name, name) && f->p[i].loaded)
			return &f->p[i];
	return NULL;
}

static int fk_decide(enum accel_kind want, const char *kernel, const struct accel_opts *o,
		     struct accel_choice *c, struct kerr *e)
{
	(void)want, (void)kernel, (void)o, (void)e;
	memset(c, 0, sizeof(*c));
	snprintf(c->accel, sizeof(c->accel), "tcg");
	snprintf(c->cpu, sizeof(c->cpu), "max");
	snprintf(c->reason, sizeof(c->reason), "the fake backend emulates");
	return 0;
}

static const struct vm_backend fake_backend;

static int fk_start(const struct vm_config *cfg, struct vm **out, struct kerr *e)
{
	struct fake *f = xcalloc(1, sizeof(*f));

	(void)e;
	f->base.be = &fake_backend;
	f->cfg = *cfg;
	f->fault = plan;
	if (f->fault != F_SILENT_CONSOLE)
		console(f, "Linux version 9.9.9-fake (fake@backend)\nRun /init as init process\n");
	*out = &f->base;
	return 0;
}

static const char *fk_accel(const struct vm *v)
{
	(void)v;
	return "tcg";
}

static const char *fk_version(const struct vm *v)
{
	(void)v;
	return "fake 1";
}

static void fk_sleep(unsigned ms)
{
	usleep((ms < 20 ? ms : 20) * 1000);
}

static enum vm_wait_result fk_wait_ready(struct vm *v, unsigned ms, json_object **ready,
					 struct kerr *e)
{
	struct fake *f = (struct fake *)v;

	if (f->fault == F_SILENT_CONSOLE || f->fault == F_SILENT_AGENT) {
		fk_sleep(ms);
		kerr_set(e, "waiting for the agent: no answer within %.1f s", ms / 1000.0);
		return VM_TIMEOUT;
	}
	if (ready) {
		*ready = json_object_new_object();
		json_object_object_add(*ready, "kernel", json_object_new_string("9.9.9-fake"));
		json_object_object_add(*ready, "uptime_ms", json_object_new_int(900));
	}
	return VM_OK;
}

/* The guest dies now: a panic (reset), a reset, or QEMU killed. */
static enum vm_wait_result die(struct fake *f, struct kerr *e)
{
	if (f->fault == F_PANIC) {
		console(f, "Kernel panic - not syncing: klp_fix: panic in the patched function\n"
			   "CPU: 0 PID: 1 Comm: init Tainted: G           OE K    9.9.9-fake #1\n");
		f->reset = 1;
		f->reason = "guest reset (reboot or panic=-1)";
	} else if (f->fault == F_RESET) {
		f->reset = 1;
		f->reason = "guest reset (reboot or panic=-1)";
	} else {
		f->host = 1;
		f->reason = "QEMU killed by signal 9";
	}
	f->exited = 1;
	kerr_set(e, "agent request 'load': QEMU ended: %s", f->reason);
	return VM_GONE;
}

static json_object *lp_state(struct fake *f)
{
	json_object *r = json_object_new_object(), *a = json_object_new_array();

	for (size_t i = 0; i < f->np; i++) {
		json_object *p, *objs, *o;

		if (f->p[i].in_sysfs && !f->p[i].enabled && f->p[i].linger-- <= 0)
			f->p[i].in_sysfs = 0;
		if (!f->p[i].in_sysfs)
			continue;
		p = json_object_new_object();
		objs = json_object_new_array();
		o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string("vmlinux"));
		json_object_object_add(o, "patched", json_object_new_int(f->p[i].enabled ||
									f->p[i].transition));
		json_object_object_add(o, "loaded", json_object_new_int(1));
		json_object_array_add(objs, o);
		json_object_object_add(p, "name", json_object_new_string(f->p[i].name));
		json_object_object_add(p, "enabled", json_object_new_int(f->p[i].enabled));
		json_object_object_add(p, "transition", json_object_new_int(f->p[i].transition));
		json_object_object_add(p, "replace", json_object_new_int(1));
		json_object_object_add(p, "stack_order", json_object_new_int(1));
		json_object_object_add(p, "objects", objs);
		json_object_array_add(a, p);
	}
	json_object_object_add(r, "patches", a);
	return r;
}

static int op_load(struct fake *f, json_object *args, json_object *res, char *err, int *eno)
{
	const char *path = proto_get_str(args, "path", ""), *base = strrchr(path, '/');
	struct patch *p;
	char name[64];

	(void)res;
	snprintf(name, sizeof(name), "%s", base ? base + 1 : path);
	if (strstr(name, ".ko"))
		*strstr(name, ".ko") = '\0';
	if (f->fault == F_REFUSE) {
		klog(f, "%s: module verification failed: refused by the fake", name);
		*eno = EINVAL;
		snprintf(err, 128, "load %s: finit_module: Invalid argument", path);
		return -1;
	}
	if (find(f, name)) {
		*eno = EEXIST;
		snprintf(err, 128, "load %s: finit_module: File exists", path);
		return -1;
	}
	p = &f->p[f->np < 7 ? f->np++ : 7];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->loaded = p->in_sysfs = p->enabled = 1;
	f->taint |= 4096 | 8192 | 32768; /* O, E, K */
	klog(f, "livepatch: enabling patch '%s'", name);
	klog(f, "livepatch: '%s': starting patching transition", name);
	if (f->fault == F_STALL)
		p->transition = 1;
	else
		klog(f, "livepatch: '%s': patching complete", name);
	return 0;
}

static int op_enable(struct fake *f, json_object *args, char *err, int *eno)
{
	struct patch *p = find(f, proto_get_str(args, "name", ""));
	int want = (int)proto_get_int(args, "enabled", -1);

	if (!p || !p->in_sysfs) {
		*eno = ENOENT;
		snprintf(err, 128, "lp_enable: no such patch");
		return -1;
	}
	if (want == p->enabled) {
		*eno = EINVAL;
		snprintf(err, 128, "lp_enable: already %d", want);
		return -1;
	}
	p->enabled = want;
	if (p->transition && !want) {
		/* reversing a stalled transition: in the fake, the task leaves at once */
		klog(f, "livepatch: '%s': reversing transition from patching to unpatching",
		     p->name);
		klog(f, "livepatch: '%s': unpatching complete", p->name);
		p->transition = 0;
		p->in_sysfs = 0;
		return 0;
	}
	klog(f, "livepatch: '%s': starting unpatching transition", p->name);
	klog(f, "livepatch: '%s': unpatching complete", p->name);
	/* the kernel frees a disabled patch from a workqueue: its sysfs folder (enabled 0,
	 * transition 0) outlives the transition by a moment */
	p->linger = 2;
	return 0;
}

static int op_unload(struct fake *f, json_object *args, char *err, int *eno)
{
	struct patch *p = find(f, proto_get_str(args, "name", ""));

	if (!p) {
		*eno = ENOENT;
		snprintf(err, 128, "unload: delete_module: No such file or directory");
		return -1;
	}
	if (p->in_sysfs && !p->enabled && !p->transition && p->linger-- <= 0)
		p->in_sysfs = 0; /* the workqueue freed it meanwhile */
	if (p->in_sysfs && !p->enabled && !p->transition) {
		*eno = EAGAIN; /* still referenced by the livepatch being freed: klpq retries */
		snprintf(err, 128, "unload: delete_module: Resource temporarily unavailable");
		return -1;
	}
	if (p->in_sysfs) {
		*eno = EBUSY;
		snprintf(err, 128, "unload: delete_module: Device or resource busy");
		return -1;
	}
	p->loaded = 0;
	return 0;
}

static void op_kmsg(struct fake *f, json_object *args, json_object *res)
{
	int64_t after = proto_get_int(args, "after", -1), last = after;
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < f->nrec; i++) {
		json_object *r;

		if (f->rec[i].seq <= after)
			continue;
		r = json_object_new_object();
		json_object_object_add(r, "seq", json_object_new_int64(f->rec[i].seq));
		json_object_object_add(r, "level", json_object_new_int(6));
		json_object_object_add(r, "ts_us", json_object_new_int64(f->rec[i].seq * 1000));
		json_object_object_add(r, "text", json_object_new_string(f->rec[i].text));
		json_object_array_add(a, r);
		last = f->rec[i].seq;
	}
	json_object_object_add(res, "records", a);
	json_object_object_add(res, "truncated", json_object_new_boolean(0));
	json_object_object_add(res, "last", json_object_new_int64(last));
}

static void op_tasks(struct fake *f, json_object *res)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < f->np; i++) {
		json_object *t, *st;

		if (!f->p[i].transition)
			continue;
		t = json_object_new_object();
		st = json_object_new_array();
		json_object_array_add(st, json_object_new_string("[<0>] msleep+0x2a/0x40"));
		json_object_array_add(st, json_object_new_string("[<0>] klpq_stall_fn+0x11/0x30"));
		json_object_object_add(t, "pid", json_object_new_int(42));
		json_object_object_add(t, "tid", json_object_new_int(42));
		json_object_object_add(t, "comm", json_object_new_string("klpq_stall"));
		json_object_object_add(t, "patch_state", json_object_new_int(0));
		json_object_object_add(t, "stack", st);
		json_object_array_add(a, t);
	}
	json_object_object_add(res, "tasks", a);
	json_object_object_add(res, "truncated", json_object_new_boolean(0));
}

static enum vm_wait_result fk_call(struct vm *v, const char *op, json_object *args,
				   unsigned ms, struct proto_msg *reply, struct kerr *e)
{
	struct fake *f = (struct fake *)v;
	json_object *res = json_object_new_object();
	char err[128] = "", perr[64];
	int eno = 0, bad = 0;
	size_t len;
	char *line;

	memset(reply, 0, sizeof(*reply));
	if (f->exited) {
		json_object_put(args);
		json_object_put(res);
		kerr_set(e, "agent %s: channel closed: QEMU ended: %s", op, f->reason);
		return VM_GONE;
	}
	if (f->hung || (!strcmp(op, "load") && (f->fault == F_HANG || f->fault == F_FROZEN))) {
		f->hung = 1;
		fk_sleep(ms);
		json_object_put(args);
		json_object_put(res);
		kerr_set(e, "agent request '%s': heartbeat lost: nothing from the agent for 10.0 s",
			 op);
		return VM_TIMEOUT;
	}
	if (!strcmp(op, "load") && (f->fault == F_PANIC || f->fault == F_RESET ||
				    f->fault == F_KILLED)) {
		json_object_put(args);
		json_object_put(res);
		return die(f, e);
	}
	if (!strcmp(op, "load")) {
		bad = op_load(f, args, res, err, &eno) < 0;
	} else if (!strcmp(op, "lp_enable")) {
		bad = op_enable(f, args, err, &eno) < 0;
	} else if (!strcmp(op, "unload")) {
		bad = op_unload(f, args, err, &eno) < 0;
	} else if (!strcmp(op, "lp_state")) {
		json_object_put(res);
		res = lp_state(f);
	} else if (!strcmp(op, "mark")) {
		klog(f, "klpq-mark: %s", proto_get_str(args, "text", ""));
		json_object_object_add(res, "seq", json_object_new_int64((int64_t)f->nrec + 99));
	} else if (!strcmp(op, "kmsg")) {
		op_kmsg(f, args, res);
	} else if (!strcmp(op, "taint")) {
		json_object_object_add(res, "taint", json_object_new_int64(f->taint));
	} else if (!strcmp(op, "tasks")) {
		op_tasks(f, res);
	} else if (!strcmp(op, "now")) {
		json_object_object_add(res, "mono_ns", json_object_new_int64((int64_t)now_ms() * 1000000));
	} else if (!strcmp(op, "exec")) {
		int live = 0;
		json_object *argv = NULL;
		const char *a3 = "", *a4 = "", *a6 = "";
		char out[256] = "";

		for (size_t i = 0; i < f->np; i++)
			live |= f->p[i].in_sysfs && f->p[i].enabled;
		if (json_object_object_get_ex(args, "argv", &argv) &&
		    json_object_array_length(argv) >= 7) {
			a3 = json_object_get_string(json_object_array_get_idx(argv, 3));
			a4 = json_object_get_string(json_object_array_get_idx(argv, 4));
			a6 = json_object_get_string(json_object_array_get_idx(argv, 6));
		}
		/* the exercise counting (cell-exercise.c): one function, fake_calls calls */
		if (!strcmp(a3, "klpq-exercise") && !strcmp(a4, "arm"))
			snprintf(out, sizeof(out), "armed %s_f0 vmlinux cmdline_proc_show 0\n", a6);
		else if (!strcmp(a3, "klpq-exercise"))
			snprintf(out, sizeof(out), "count %s_f0 %ld 0\n", a6, fake_calls);
		/* the leak check's memory reading: MemFree falls by fake_free_fall and Mapped
		 * grows by fake_user_grow per reading (by default memory holds still) */
		if (json_object_array_length(argv) >= 3 &&
		    strstr(json_object_get_string(json_object_array_get_idx(argv, 2)),
			   "drop_caches")) {
			long n = f->mem_reads++;

			snprintf(out, sizeof(out), "source: proc\nMemFree: %ld kB\nAnonPages: 900 kB\n"
				 "Mapped: %ld kB\nShmem: 100 kB\nSlab: 5000 kB\nSUnreclaim: 3000 kB\n"
				 "pcp_pages: %ld\nrefcnt: 0\n", 100000 - n * fake_free_fall +
				 (fake_free_back && n + 1 >= fake_free_back ? 9000 : 0),
				 2000 + n * fake_user_grow, 10 + n * fake_pcp_grow);
		}
		/* the other programs run are the probe: the fix shows while the patch is live */
		json_object_object_add(res, "exit", json_object_new_int(live || *a3 ? 0 : 1));
		json_object_object_add(res, "signal", json_object_new_int(0));
		json_object_object_add(res, "timed_out", json_object_new_boolean(0));
		json_object_object_add(res, "output", json_object_new_string(out));
		json_object_object_add(res, "truncated", json_object_new_boolean(0));
		json_object_object_add(res, "duration_ms", json_object_new_int(1));
	} else if (!strcmp(op, "poweroff")) {
		f->exited = 1;
		f->reason = "guest powered off";
	} else {
		bad = 1;
		eno = EOPNOTSUPP;
		snprintf(err, sizeof(err), "unknown op");
		ck_abort_msg("the cell flow asked the fake for '%s', which it does not play", op);
	}
	json_object_put(args);
	if (bad) {
		json_object_put(res);
		line = proto_reply_error(1, err, eno, &len);
	} else {
		line = proto_reply_ok(1, res, &len);
	}
	ck_assert_int_eq(proto_parse(line, len, reply, perr, sizeof(perr)), 0);
	free(line);
	return VM_OK;
}

static int fk_dump(struct vm *v, struct sb *out, struct kerr *e)
{
	struct fake *f = (struct fake *)v;

	if (f->fault == F_FROZEN)
		return kerr_set(e, "QMP: no answer");
	sb_adds(out, "== QMP query-status\n{\"status\": \"running\"}\n");
	return 0;
}

static int fk_alive(struct vm *v, unsigned ms)
{
	(void)ms;
	return ((struct fake *)v)->fault != F_FROZEN;
}

static enum vm_wait_result fk_pump(struct vm *v, unsigned ms, struct kerr *e)
{
	struct fake *f = (struct fake *)v;

	if (f->exited) {
		kerr_set(e, "QEMU ended: %s", f->reason);
		return VM_GONE;
	}
	fk_sleep(ms);
	return VM_OK;
}

static const char *fk_exit_reason(const struct vm *v)
{
	const struct fake *f = (const struct fake *)v;

	return f->exited ? f->reason : NULL;
}

static int fk_guest_reset(const struct vm *v)
{
	return ((const struct fake *)v)->reset;
}

static int fk_host_ended(const struct vm *v)
{
	return ((const struct fake *)v)->host;
}

static int fk_log_errno(const struct vm *v)
{
	(void)v;
	return 0;
}

static void fk_channel_stats(const struct vm *v, uint64_t *oversized, uint64_t *malformed)
{
	(void)v;
	*oversized = *malformed = 0;
}

static void fk_stop(struct vm *v, unsigned ms)
{
	struct fake *f = (struct fake *)v;

	(void)ms;
	if (!f->exited) {
		f->exited = 1;
		f->reason = f->hung ? "QEMU killed by signal 9" : "guest powered off";
	}
}

static void fk_destroy(struct vm *v)
{
	free(v);
}

static const char *const no_modules[] = { NULL };

static const struct vm_backend fake_backend = {
	.name = "fake",
	.guest_cmdline = "console=fake0",
	.boot_modules = no_modules,
	.decide_accel = fk_decide,
	.start = fk_start,
	.accel = fk_accel,
	.version = fk_version,
	.wait_ready = fk_wait_ready,
	.agent_call = fk_call,
	.dump = fk_dump,
	.alive = fk_alive,
	.pump = fk_pump,
	.exit_reason = fk_exit_reason,
	.guest_reset = fk_guest_reset,
	.host_ended = fk_host_ended,
	.log_errno = fk_log_errno,
	.channel_stats = fk_channel_stats,
	.stop = fk_stop,
	.destroy = fk_destroy,
};

/* The image the fake boots: the request is checked and written down, nothing is built. */
static char *fk_guest_path(enum image_item_kind kind, const char *name)
{
	return image_initramfs.guest_path(kind, name);
}

static int fk_build(const struct image_request *req, const char *out, struct kerr *e)
{
	ck_assert_str_eq(req->release, "9.9.9-fake");
	/* the backend's boot modules, in order, and no disk modules (an initramfs guest) */
	for (size_t i = 0; ; i++) {
		ck_assert_ptr_nonnull(req->boot_modules);
		if (!fake_backend.boot_modules[i]) {
			ck_assert_ptr_null(req->boot_modules[i]);
			break;
		}
		ck_assert_str_eq(req->boot_modules[i], fake_backend.boot_modules[i]);
	}
	ck_assert_uint_eq(req->nr_items, 1);
	ck_assert_int_eq(req->items[0].kind, IMAGE_PATCH);
	ck_assert_str_eq(req->items[0].name, "klp_fix");
	return write_file_atomic(out, "fake image\n", 11, e);
}

static const struct guest_image fake_image = {
	.name = "fake-image", .guest_path = fk_guest_path, .build = fk_build,
};

/* ---- the cell ---- */

struct fx {
	char dir[64];
	struct scenario sc;
	struct cell_result cell;
};

static void put(const char *dir, const char *name, const char *text)
{
	struct kerr e = KERR_INIT;
	char *p = path_join(dir, name);

	ck_assert_msg(write_file_atomic(p, text, strlen(text), &e) == 0, "%s", e.msg);
	free(p);
}

/* A local kernel (any bytes), a one-step cumulative patch set with a prebuilt module, and a
 * scenario with short timeouts; the cell runs against the fake backend playing fault. */
static void run_cell(struct fx *x, enum fault fault)
{
	struct kerr e = KERR_INIT;
	struct runner rn;
	char *scen, *cdir, *sub;

	snprintf(x->dir, sizeof(x->dir), "/tmp/klpq-test-cell-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(x->dir));
	sub = path_join(x->dir, "modules");
	ck_assert_int_eq(mkdir_p(sub, 0755, &e), 0);
	free(sub);
	sub = path_join(x->dir, "ps");
	ck_assert_int_eq(mkdir_p(sub, 0755, &e), 0);
	put(sub, "klp_fix.ko", "not really a module");
	put(sub, "patchset.yaml", "name: ps\nmethod: cumulative\nsteps:\n"
				  "  - name: fix1\n    module: klp_fix.ko\n    probes:\n"
				  "      - name: fixed\n        run: \"grep -q klp.fix /proc/cmdline\"\n"
				  "        rollback: true\n");
	free(sub);
	put(x->dir, "vmlinuz", "not really a kernel");
	put(x->dir, "modules/modules.dep", "");
	put(x->dir, "agent", "#!agent");
	put(x->dir, "busybox", "#!busybox");
	sub = xasprintf("name: fake\nkernels:\n  - local:\n      vmlinuz: vmlinuz\n"
			"      modules: modules\n      release: 9.9.9-fake\n"
			"patchset: ps\n"
			"timeouts: {boot_s: 1, console_s: 0.5, agent_s: 2, transition_s: 1}\n"
			"leak: {cycles: %u}\ncount_calls: %s\n", fake_leak_cycles,
			fake_count_calls ? "true" : "false");
	put(x->dir, "s.yaml", sub);
	free(sub);
	scen = path_join(x->dir, "s.yaml");
	ck_assert_msg(scenario_load(scen, &x->sc, &e) == 0, "%s", e.msg);
	free(scen);
	x->sc.vms[0].backend = &fake_backend;
	x->sc.vm = x->sc.vms[0];
	cdir = path_join(x->dir, "cell");
	ck_assert_int_eq(mkdir_p(cdir, 0755, &e), 0);
	cell_init(&x->cell, "fake-cell", cdir, "9.9.9-fake", "ps");
	free(cdir);
	memset(&rn, 0, sizeof(rn));
	rn.sc = &x->sc;
	sub = path_join(x->dir, "cache");
	rn.cache = sub;
	rn.image = &fake_image;
	rn.stop_fd = -1;
	plan = fault;
	ck_assert_int_eq(runner_run_cell(&rn, &x->sc.kernels[0], &x->cell), 0);
	free(sub);
}

static void fx_release(struct fx *x)
{
	/* every check the cell flow reported is in the table of checks (checks.c) at the step
	 * it ran at, and a FAIL or an ERROR of it is one its row allows, or a lost guest's */
	for (size_t i = 0; i < x->cell.nr_checks; i++) {
		const struct check_result *r = &x->cell.checks[i];
		const struct check_def *d = check_def_at(r->step, r->name);

		ck_assert_msg(d, "check %s/%s is not in checks.c's table at that step (nor in "
			      "docs/checks.md)", r->step, r->name);
		if (r->status == V_FAIL || r->status == V_ERROR)
			ck_assert_msg(check_def_allows(d, r->status == V_FAIL) ||
				      checks_guest_loss(r->title), "check %s/%s is %s ('%s'), which "
				      "its row in checks.c does not allow (%s)", r->step, r->name,
				      verdict_name(r->status), r->title, d->classes);
	}
	cell_release(&x->cell);
	scenario_release(&x->sc);
	rm_rf(x->dir);
}

/* The first check that is not PASS or SKIP. */
static const struct check_result *first_bad(const struct fx *x)
{
	for (size_t i = 0; i < x->cell.nr_checks; i++)
		if (x->cell.checks[i].status != V_PASS && x->cell.checks[i].status != V_SKIP)
			return &x->cell.checks[i];
	return NULL;
}

static void dump_checks(const struct fx *x)
{
	for (size_t i = 0; i < x->cell.nr_checks; i++)
		fprintf(stderr, "  %s/%s %s: %s\n", x->cell.checks[i].step, x->cell.checks[i].name,
			verdict_name(x->cell.checks[i].status), x->cell.checks[i].title);
}

/* The check of that step and name, or NULL. */
static const struct check_result *check_of(const struct fx *x, const char *step,
					   const char *name)
{
	for (size_t i = 0; i < x->cell.nr_checks; i++)
		if (!strcmp(x->cell.checks[i].step, step) && !strcmp(x->cell.checks[i].name, name))
			return &x->cell.checks[i];
	return NULL;
}

/* The cell's verdict, and one check's status and a part of its title (no step: every check
 * passed). The verdict is the worst check (FAIL over ERROR): an ERROR cell has no FAIL. */
static void expect(struct fx *x, enum verdict v, const char *step, const char *name,
		   enum verdict status, const char *title_part)
{
	const struct check_result *c = step ? check_of(x, step, name) : first_bad(x);

	if (cell_verdict(&x->cell) != v || (step && (!c || c->status != status ||
						     !strstr(c->title, title_part))) ||
	    (!step && c))
		dump_checks(x);
	ck_assert_str_eq(verdict_name(cell_verdict(&x->cell)), verdict_name(v));
	if (!step) {
		ck_assert_ptr_null(c);
		return;
	}
	ck_assert_msg(c, "no check %s/%s", step, name);
	ck_assert_str_eq(verdict_name(c->status), verdict_name(status));
	ck_assert_msg(strstr(c->title, title_part), "title '%s' lacks '%s'", c->title, title_part);
}

/* A working guest: every check passes, through rollback and reapply. Its kernel keeps a
 * disabled patch listed for two sysfs reads after unpatching (the kernel frees it from a
 * workqueue): the rollback must not take it for a patch still live (the A/A false FAIL of
 * 2026-12-01: "earlier step's probe ... failed after rollback"). */
START_TEST(test_cell_pass)
{
	struct fx x;
	int saw_transcript = 0, saw_rollback = 0;

	run_cell(&x, F_NONE);
	expect(&x, V_PASS, NULL, NULL, V_PASS, NULL);
	ck_assert_ptr_nonnull(check_of(&x, "rollback", "probe:fixed"));
	/* the patched function was called while fix1 was tested */
	expect(&x, V_PASS, "fix1", "exercised", V_PASS,
	       "3 call(s) of the 1 replaced function(s) while fix1 was tested");
	ck_assert_str_eq(check_of(&x, "fix1", "exercised")->evidence[0],
			 "vmlinux cmdline_proc_show: 3 call(s)");
	ck_assert_ptr_null(check_of(&x, "rollback", "probes")); /* no "still live" SKIP */
	for (size_t i = 0; i < x.cell.nr_checks; i++) {
		saw_transcript |= !strcmp(x.cell.checks[i].step, "fix1") &&
				  !strcmp(x.cell.checks[i].name, "transcript");
		saw_rollback |= !strcmp(x.cell.checks[i].step, "rollback");
	}
	if (!saw_transcript || !saw_rollback)
		dump_checks(&x);
	ck_assert(saw_transcript && saw_rollback);
	{
		/* the cell's results.json read back: the same checks, evidence and verdict */
		struct cell_result back;
		struct kerr e = KERR_INIT;

		ck_assert_msg(cell_read(&back, "fake-cell", x.cell.dir, &e) == 0, "%s", e.msg);
		ck_assert_int_eq(cell_verdict(&back), cell_verdict(&x.cell));
		ck_assert_uint_eq(back.nr_checks, x.cell.nr_checks);
		for (size_t i = 0; i < back.nr_checks; i++) {
			const struct check_result *a = &x.cell.checks[i], *b = &back.checks[i];

			ck_assert_str_eq(b->step, a->step);
			ck_assert_str_eq(b->name, a->name);
			ck_assert_int_eq(b->status, a->status);
			ck_assert_str_eq(b->title, a->title);
			ck_assert_uint_eq(b->nr_evidence, a->nr_evidence);
			for (size_t k = 0; k < b->nr_evidence; k++)
				ck_assert_str_eq(b->evidence[k], a->evidence[k]);
		}
		ck_assert_str_eq(back.release, "9.9.9-fake");
		ck_assert_str_eq(back.accel, "tcg");
		cell_release(&back);
	}
	{
		/* each check in results.json names its row of the table of checks */
		char *p = path_join(x.cell.dir, "results.json");
		json_object *o = json_object_from_file(p), *checks, *doc;

		ck_assert_ptr_nonnull(o);
		ck_assert(json_object_object_get_ex(o, "checks", &checks));
		ck_assert_uint_eq(json_object_array_length(checks), x.cell.nr_checks);
		for (size_t i = 0; i < x.cell.nr_checks; i++) {
			const struct check_result *a = &x.cell.checks[i];

			ck_assert(json_object_object_get_ex(json_object_array_get_idx(checks, i),
							    "doc", &doc));
			ck_assert_str_eq(json_object_get_string(doc),
					 check_def_doc(check_def_at(a->step, a->name)));
		}
		json_object_put(o);
		free(p);
	}
	fx_release(&x);
}
END_TEST

/* A patch whose function nothing called while it was tested: flagged, not passed quietly, and
 * not a FAIL of the patch either. */
START_TEST(test_cell_not_exercised)
{
	struct fx x;

	fake_calls = 0;
	run_cell(&x, F_NONE);
	fake_calls = 3;
	expect(&x, V_PASS, "fix1", "exercised", V_SKIP, "not exercised: cmdline_proc_show "
	       "(replaced by klp_fix) was never called while fix1 was tested");
	fx_release(&x);
}
END_TEST

/* The leak cycles count the patched function's calls too: an exercise that never reached it
 * makes "no growth" a SKIP, not "no leak". */
/* count_calls: false (the default): no kprobe event is made, no exercised check. */
START_TEST(test_cell_no_counting)
{
	struct fx x;

	fake_count_calls = 0;
	run_cell(&x, F_NONE);
	fake_count_calls = 1;
	ck_assert_int_eq(cell_verdict(&x.cell), V_PASS);
	for (size_t i = 0; i < x.cell.nr_checks; i++)
		ck_assert_msg(strcmp(x.cell.checks[i].name, "exercised"), "an exercised check at %s",
			      x.cell.checks[i].step);
	fx_release(&x);
}
END_TEST

/* Free memory is MemFree plus what userland holds plus the per-CPU free lists: pages moving
 * to a daemon (Mapped) or onto those lists are no leak; the same fall of MemFree with nothing
 * to show for it is one. */
START_TEST(test_cell_leak_userland)
{
	struct fx x;

	fake_leak_cycles = 3;
	fake_free_fall = 4340;
	fake_user_grow = 2300;
	fake_pcp_grow = 500; /* 2000 kB */
	run_cell(&x, F_NONE);
	expect(&x, V_PASS, "leak", "memory", V_PASS, "no leak over 3 cycles of klp_fix: SUnreclaim "
	       "+0 kB, free memory -40 kB per cycle (MemFree -4340 kB, userland +2300 kB, per-CPU "
	       "lists +2000 kB; threshold 1024 kB)");
	fx_release(&x);
	fake_user_grow = 0;
	fake_pcp_grow = 0;
	run_cell(&x, F_NONE);
	fake_free_fall = 0;
	fake_leak_cycles = 0;
	expect(&x, V_FAIL, "leak", "memory", V_FAIL, "leak: free memory fell 4340 kB per cycle "
	       "over 3 cycles of klp_fix, at least 4340 kB in each (MemFree -4340 kB, userland "
	       "+0 kB, per-CPU lists +0 kB, SUnreclaim +0 kB per cycle; threshold 4096 kB)");
	fx_release(&x);
	/* one cycle in which memory came back: noise, not a leak that takes pages every cycle */
	fake_leak_cycles = 3;
	fake_free_fall = 4340;
	fake_free_back = 3; /* the third reading (after cycle 2) gives 9000 kB back */
	run_cell(&x, F_NONE);
	fake_free_fall = 0;
	fake_free_back = 0;
	fake_leak_cycles = 0;
	expect(&x, V_PASS, "leak", "memory", V_PASS, "no steady leak over 3 cycles of klp_fix: "
	       "free memory fell 4340 kB per cycle, but +4660 kB in cycle 2");
	fx_release(&x);
}
END_TEST

START_TEST(test_cell_leak_not_exercised)
{
	struct fx x;

	fake_leak_cycles = 2;
	run_cell(&x, F_NONE);
	expect(&x, V_PASS, "leak", "memory", V_PASS, "no leak over 2 cycles of klp_fix");
	expect(&x, V_PASS, "leak", "exercised", V_PASS,
	       "3 call(s) of the 1 replaced function(s) by the exercise of the 2 leak cycle(s)");
	fx_release(&x);
	fake_calls = 0;
	run_cell(&x, F_NONE);
	fake_calls = 3;
	fake_leak_cycles = 0;
	expect(&x, V_PASS, "leak", "memory", V_SKIP, "not exercised: no growth over 2 cycles of "
	       "klp_fix, but the exercise did not reach every patched function");
	expect(&x, V_PASS, "leak", "exercised", V_SKIP, "not exercised: cmdline_proc_show "
	       "(replaced by klp_fix) was never called by the exercise of the 2 leak cycle(s)");
	fx_release(&x);
}
END_TEST

/* The functions a livepatch module replaces, read from real .ko files (tests/fixtures/klp),
 * and a file that is not one. */
START_TEST(test_klp_funcs)
{
	struct klp_fn *f;
	size_t n;
	struct kerr e = KERR_INIT;
	struct exercise x;
	char t[512];

	ck_assert_msg(klp_funcs_read(KLPQ_SRCDIR "/tests/fixtures/klp/klpq_modobj_s1.ko", &f, &n,
				     &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(f[0].obj, "isofs");
	ck_assert_str_eq(f[0].old_name, "isofs_statfs");
	ck_assert_str_eq(f[0].new_name, "klpq_isofs_statfs");
	ck_assert_uint_eq(f[0].sympos, 0);
	ck_assert_str_eq(f[1].obj, "vmlinux");
	ck_assert_str_eq(f[1].old_name, "cmdline_proc_show");
	ck_assert_str_eq(f[1].new_name, "klpq_cmdline_proc_show");
	/* the sysfs names (sympos 1 for 0) matched to them, and the title names the replacement */
	exercise_reset(&x);
	exercise_parse_line(&x, "armed klpq_s0_f0 isofs isofs_statfs 1");
	exercise_parse_line(&x, "armed klpq_s0_f1 vmlinux cmdline_proc_show 1");
	exercise_parse_line(&x, "count klpq_s0_f0 0 0");
	exercise_parse_line(&x, "count klpq_s0_f1 5 0");
	exercise_name_new(&x, f, n);
	free(f);
	ck_assert_str_eq(x.f[0].new_name, "klpq_isofs_statfs");
	ck_assert_int_eq(exercise_judge(&x, "while step1 was tested", "klpq_modobj_s1", t,
					sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not exercised: klpq_isofs_statfs (replacing isofs_statfs) was never "
			 "called while step1 was tested");

	ck_assert_msg(klp_funcs_read(KLPQ_SRCDIR "/tests/fixtures/klp/klpq_demo_s3.ko", &f, &n,
				     &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(f[0].new_name, "klpq_cmdline_proc_show");
	ck_assert_str_eq(f[1].old_name, "version_proc_show");
	ck_assert_str_eq(f[1].obj, "vmlinux");
	free(f);

	ck_assert_int_eq(klp_funcs_read(KLPQ_SRCDIR "/tests/fixtures/klp/README.md", &f, &n, &e),
			 -1);
	ck_assert_msg(strstr(e.msg, "not an x86-64 ELF relocatable object"), "%s", e.msg);
	{
		/* a module cut short anywhere is refused or read, never read past its end */
		struct sb ko = SB_INIT;
		char tmp[] = "/tmp/klpq-test-ko-XXXXXX";
		int fd = mkstemp(tmp);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(read_file(KLPQ_SRCDIR "/tests/fixtures/klp/klpq_modobj_s1.ko", &ko,
					   0, &e), 0);
		for (size_t len = 0; len < ko.len; len += 97) {
			ck_assert_int_eq(ftruncate(fd, 0), 0);
			ck_assert_int_eq(pwrite(fd, ko.buf, len, 0), (ssize_t)len);
			kerr_clear(&e);
			if (klp_funcs_read(tmp, &f, &n, &e) == 0)
				free(f);
		}
		close(fd);
		unlink(tmp);
		sb_release(&ko);
	}
}
END_TEST

/* What the counting script prints, read and judged (exercise.c). */
START_TEST(test_exercise_judge)
{
	struct exercise x;
	char t[512];

	exercise_reset(&x);
	exercise_parse_line(&x, "armed klpq_s1_f0 vmlinux cmdline_proc_show 0");
	exercise_parse_line(&x, "fail klpq_s1_f1 isofs isofs_fill_super 2 no such symbol in /proc/kallsyms");
	exercise_parse_line(&x, "armed klpq_s1_f2 vmlinux version_proc_show 0");
	exercise_parse_line(&x, "some other line");
	exercise_parse_line(&x, "count klpq_s1_f0 12 0");
	exercise_parse_line(&x, "count klpq_s1_f1 99 0"); /* not armed: ignored */
	exercise_parse_line(&x, "count klpq_s1_f2 x 0");  /* garbled: not read */
	ck_assert_uint_eq(x.nr, 3);
	ck_assert_str_eq(x.f[1].why, "no such symbol in /proc/kallsyms");
	ck_assert_int_eq(x.f[1].pos, 2);
	ck_assert_int_eq(exercise_judge(&x, "while step2 was tested", "klpq_s2", t, sizeof(t)), V_PASS);
	ck_assert_str_eq(t, "12 call(s) of the 1 replaced function(s) while step2 was tested; "
			 "2 not counted");
	exercise_parse_line(&x, "count klpq_s1_f2 0 0");
	ck_assert_int_eq(exercise_judge(&x, "while step2 was tested", "klpq_s2", t, sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not exercised: version_proc_show (replaced by klpq_s2) was never "
			 "called while step2 was tested");
	exercise_parse_line(&x, "none no kprobe_events in tracefs");
	ck_assert_int_eq(exercise_judge(&x, "while step2 was tested", "klpq_s2", t, sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not counted: no kprobe_events in tracefs");
	exercise_reset(&x);
	ck_assert_int_eq(exercise_judge(&x, "while step2 was tested", "klpq_s2", t, sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not counted: klpq_s2 lists no function in its sysfs folder");
}
END_TEST

/* The workloads' calls per perf phase: kprobe_profile read and the last step's patched
 * phases judged (exercise.c). */
START_TEST(test_perf_calls_judge)
{
	struct perf_calls *pc = calloc(1, sizeof(*pc));
	struct klp_fn fn[1];
	uint64_t h[EX_MAX_FUNCS] = { 0 };
	const char *labels[] = { "baseline", "step1", "step3", "pair2-unpatched", "pair2-patched" };
	const uint64_t f0[] = { 5, 7, 10, 4, 20 }, f1[] = { 0, 9, 0, 3, 0 };
	char t[512];

	ck_assert_ptr_nonnull(pc);
	exercise_reset(&pc->x);
	pc->win_ms = 2000;
	ck_assert_int_eq(perf_calls_judge(pc, "step3", "klpq_s3", t, sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not counted: no function was found in the patch modules");
	exercise_parse_line(&pc->x, "armed klpq_p_f0 vmlinux cmdline_proc_show 0");
	exercise_parse_line(&pc->x, "armed klpq_p_f1 vmlinux version_proc_show 0");
	exercise_parse_line(&pc->x, "fail klpq_p_f2 isofs isofs_statfs 0 the kernel refused");
	ck_assert_int_eq(perf_calls_parse(&pc->x, "  klpq_p_f1   4  0\nklpq_s1_f0 1 0\n"
					  "klpq_p_f0 123 1\n", h), 0);
	ck_assert_uint_eq(h[0], 123);
	ck_assert_uint_eq(h[1], 4);
	ck_assert_int_eq(perf_calls_parse(&pc->x, "klpq_p_f0 123 1\n", h), -1);
	ck_assert_int_eq(perf_calls_judge(pc, "step3", "klpq_s3", t, sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not counted: no patched phase of step3 was counted");
	for (size_t i = 0; i < 5; i++) {
		struct pc_phase *p = &pc->ph[pc->nph++];

		snprintf(p->label, sizeof(p->label), "%s", labels[i]);
		p->patched = i == 1 || i == 2 || i == 4;
		p->counted = 1;
		p->hits[0] = f0[i];
		p->hits[1] = f1[i];
	}
	/* version_proc_show: called in step1's phase and an unpatched one, never in step3's */
	ck_assert_int_eq(perf_calls_judge(pc, "step3", "klpq_s3", t, sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not exercised: version_proc_show (replaced by klpq_s3) was never "
			 "called by the workloads in the 2.0 s after each of 2 patched phase(s)");
	memset(fn, 0, sizeof(fn));
	snprintf(fn[0].obj, sizeof(fn[0].obj), "vmlinux");
	snprintf(fn[0].old_name, sizeof(fn[0].old_name), "version_proc_show");
	snprintf(fn[0].new_name, sizeof(fn[0].new_name), "klpq_version_proc_show");
	exercise_name_new(&pc->x, fn, 1);
	snprintf(pc->x.f[0].new_name, sizeof(pc->x.f[0].new_name), "klpq_cmdline_proc_show");
	ck_assert_int_eq(perf_calls_judge(pc, "step3", "klpq_s3", t, sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not exercised: klpq_version_proc_show (replacing version_proc_show) "
			 "was never called by the workloads in the 2.0 s after each of 2 patched "
			 "phase(s)");
	pc->ph[4].hits[1] = 2;
	ck_assert_int_eq(perf_calls_judge(pc, "step3", "klpq_s3", t, sizeof(t)), V_PASS);
	ck_assert_str_eq(t, "32 call(s) of the 2 replaced function(s) by the workloads in the 2.0 "
			 "s after each of 2 patched phase(s); 1 not counted");
	exercise_parse_line(&pc->x, "none no kprobe_events in tracefs");
	ck_assert_int_eq(perf_calls_judge(pc, "step3", "klpq_s3", t, sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not counted: no kprobe_events in tracefs");
	ck_assert_str_eq(check_def_at("perf", "exercised")->anchor, "exercised");
	perf_calls_release(pc);
}
END_TEST

/* Memory read at each perf phase's ends: a slab cache that grows in every patched phase of the
 * last step and not in the unpatched ones is a leak under load (exercise.c). */
START_TEST(test_perf_mem_judge)
{
	static const char slab0[] =
		"slabinfo - version: 2.1\n"
		"# name            <active_objs> <num_objs> <objsize> <objperslab> ...\n"
		"kmalloc-256          512    512    256   16    1 : tunables 0 0 0 : slabdata 32 32 0\n"
		"dentry              2000   2100    192   21    1 : tunables 0 0 0 : slabdata 100 100 0\n";
	static const char slab1[] =
		"dentry              2100   2100    192   21    1 : tunables 0 0 0 : slabdata 100 100 0\n"
		"kmalloc-256         1536   1536    256   16    1 : tunables 0 0 0 : slabdata 96 96 0\n";
	struct perf_calls *pc = calloc(1, sizeof(*pc));
	struct pc_mem m0 = { 0, 0, NULL }, m1 = { 0, 0, NULL };
	const char *labels[] = { "baseline", "step1", "pair2-unpatched", "pair2-patched" };
	/* kmalloc-256's growth per phase in kB: 0 unpatched, 256 and 300 patched */
	const long k256[] = { 0, 256, 8, 300 }, dent[] = { 40, 40, 40, 40 };
	char t[512];

	ck_assert_ptr_nonnull(pc);
	exercise_reset(&pc->x);
	ck_assert_int_eq(perf_mem_parse(pc, "MemTotal: 1 kB\n", slab0, &m0), -1);
	ck_assert_int_eq(perf_mem_parse(pc, "SUnreclaim:  3000 kB\nMemFree: 90000 kB\n",
					slab0, &m0), 0);
	ck_assert_uint_eq(pc->ncache, 2);
	ck_assert_int_eq(m0.sunr_kb, 3000);
	ck_assert_int_eq(m0.slab[0], 512 * 256);
	/* a later reading in another order, one cache gone */
	ck_assert_int_eq(perf_mem_parse(pc, "Node 0 SUnreclaim: 3100 kB\nNode 0 MemFree: 80 kB\n",
					slab1 + 0, &m1), 0);
	ck_assert_int_eq(m1.avail_kb, 80);
	ck_assert_int_eq(m1.slab[0], 1536 * 256);
	ck_assert_int_eq(m1.slab[1], 2100 * 192);
	ck_assert_int_eq(perf_mem_parse(pc, "SUnreclaim: 1 kB\nMemFree: 2 kB\n",
					"dentry 1 1 192 21 1\n", &m1), 0);
	ck_assert_int_eq(m1.slab[0], -1);
	free(m0.slab);
	free(m1.slab);
	ck_assert_int_eq(perf_mem_judge(pc, "step1", 128, t, sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not measured: 0 patched phase(s) of step1 and 0 unpatched one(s) with "
			 "the memory read at both ends (2 and 1 are needed: perf.pairs 2 or more)");
	for (size_t i = 0; i < 4; i++) {
		struct pc_phase *p = &pc->ph[pc->nph++];

		snprintf(p->label, sizeof(p->label), "%s", labels[i]);
		p->patched = i % 2;
		p->mem = 1;
		p->avail_kb = -100;
		p->slab = calloc(2, sizeof(long));
		p->slab[0] = k256[i] * 1024;
		p->slab[1] = dent[i] * 1024;
	}
	ck_assert_int_eq(perf_mem_judge(pc, "step1", 128, t, sizeof(t)), V_FAIL);
	ck_assert_str_eq(t, "leak under load: slab cache kmalloc-256 grew 256 kB or more in each "
			 "of the 2 patched phase(s) of step1 (unpatched phases: +8 kB at most; "
			 "threshold 128 kB)");
	/* the same growth in an unpatched phase: a drift, not the patch */
	pc->ph[2].slab[0] = 200 * 1024;
	ck_assert_int_eq(perf_mem_judge(pc, "step1", 128, t, sizeof(t)), V_PASS);
	ck_assert_str_eq(t, "no leak under load in the 2 patched phase(s) of step1: no slab cache "
			 "grew more than 256 kB in all of them (threshold 128 kB); MemFree fell "
			 "100 kB in the least");
	/* below the threshold in one patched phase */
	pc->ph[2].slab[0] = 0;
	pc->ph[1].slab[0] = 100 * 1024;
	ck_assert_int_eq(perf_mem_judge(pc, "step1", 128, t, sizeof(t)), V_PASS);
	/* MemFree falling in the patched phases only is evidence, not a verdict */
	pc->ph[1].avail_kb = pc->ph[3].avail_kb = -4096;
	ck_assert_int_eq(perf_mem_judge(pc, "step1", 128, t, sizeof(t)), V_PASS);
	/* a cache that is not in every reading is not judged */
	pc->ph[1].avail_kb = pc->ph[3].avail_kb = -100;
	pc->ph[1].slab[0] = LONG_MIN;
	pc->ph[3].slab[0] = 900 * 1024;
	ck_assert_int_eq(perf_mem_judge(pc, "step1", 128, t, sizeof(t)), V_PASS);
	snprintf(pc->mem_none, sizeof(pc->mem_none), "no slabinfo");
	ck_assert_int_eq(perf_mem_judge(pc, "step1", 128, t, sizeof(t)), V_SKIP);
	ck_assert_str_eq(t, "not measured: no slabinfo");
	perf_calls_release(pc);
}
END_TEST

START_TEST(test_cell_silent_console)
{
	struct fx x;

	run_cell(&x, F_SILENT_CONSOLE);
	expect(&x, V_ERROR, "boot", "console", V_ERROR, "printed nothing on its console");
	fx_release(&x);
}
END_TEST

START_TEST(test_cell_silent_agent)
{
	struct fx x;

	run_cell(&x, F_SILENT_AGENT);
	expect(&x, V_ERROR, "boot", "agent", V_ERROR, "stopped answering before any patch");
	fx_release(&x);
}
END_TEST

START_TEST(test_cell_panic)
{
	struct fx x;

	run_cell(&x, F_PANIC);
	expect(&x, V_FAIL, "fix1", "load", V_FAIL, "guest died: kernel panic");
	expect(&x, V_FAIL, "fix1", "crash", V_FAIL, "Kernel panic: klp_fix: panic in the patched");
	fx_release(&x);
}
END_TEST

START_TEST(test_cell_reset)
{
	struct fx x;

	run_cell(&x, F_RESET);
	expect(&x, V_FAIL, "fix1", "load", V_FAIL, "reset without a panic");
	fx_release(&x);
}
END_TEST

START_TEST(test_cell_qemu_killed)
{
	struct fx x;

	run_cell(&x, F_KILLED);
	expect(&x, V_ERROR, "fix1", "load", V_ERROR, "QEMU ended from outside the guest");
	fx_release(&x);
}
END_TEST

START_TEST(test_cell_hang)
{
	struct fx x;

	run_cell(&x, F_HANG);
	expect(&x, V_FAIL, "fix1", "load", V_FAIL, "guest stopped answering");
	fx_release(&x);
}
END_TEST

START_TEST(test_cell_qemu_frozen)
{
	struct fx x;

	run_cell(&x, F_FROZEN);
	expect(&x, V_ERROR, "fix1", "load", V_ERROR, "QEMU itself stopped answering");
	fx_release(&x);
}
END_TEST

START_TEST(test_cell_refused_load)
{
	struct fx x;

	run_cell(&x, F_REFUSE);
	expect(&x, V_FAIL, "fix1", "load", V_FAIL, "Invalid argument");
	fx_release(&x);
}
END_TEST

START_TEST(test_cell_stall)
{
	struct fx x;

	run_cell(&x, F_STALL);
	expect(&x, V_FAIL, "fix1", "transition", V_FAIL, "klpq_stall:42");
	fx_release(&x);
}
END_TEST

/* docs/checks.md's table is the table of checks, as `klpq checks` prints it. */
START_TEST(test_checks_doc)
{
	struct sb doc = SB_INIT, want = SB_INIT;
	struct kerr e = KERR_INIT;
	const char *start, *end;

	ck_assert_msg(read_file(KLPQ_SRCDIR "/docs/checks.md", &doc, 0, &e) == 0, "%s", e.msg);
	checks_doc_table(&want);
	start = strstr(doc.buf, "| step | check | PASS when | FAIL / ERROR |");
	ck_assert_ptr_nonnull(start);
	end = strstr(start, "\n\n");
	ck_assert_ptr_nonnull(end);
	ck_assert_msg((size_t)(end + 1 - start) == want.len && !strncmp(start, want.buf, want.len),
		      "docs/checks.md's table differs from checks.c's: write it with "
		      "`build/klpq checks` (docs/checks.md, \"The table\")");
	ck_assert_ptr_nonnull(check_def_find("probe:cmdline-fix1"));
	ck_assert_ptr_nonnull(check_def_find("perf:gaming.rtt_p50"));
	ck_assert_ptr_null(check_def_find("probe:"));
	ck_assert_ptr_null(check_def_find("no-such-check"));
	/* the row for a check id at a step: its kind of step picks among rows of one id */
	ck_assert_str_eq(check_def_at("fix1", "load")->anchor, "load");
	ck_assert_str_eq(check_def_at("reapply", "load")->anchor, "reapply");
	ck_assert_str_eq(check_def_at("reapply-2", "load")->anchor, "reapply");
	ck_assert_str_eq(check_def_at("leak-cycle3", "disable")->anchor, "leak");
	ck_assert_str_eq(check_def_at("perf-pair1", "transition")->anchor, "perf-pair");
	ck_assert_str_eq(check_def_at("rollback", "disable")->anchor, "disable");
	ck_assert_str_eq(check_def_at("rollback-1", "probe:x")->anchor, "rollback-probe");
	ck_assert_str_eq(check_def_at("baseline", "probe:x")->anchor, "baseline-probe");
	ck_assert_str_eq(check_def_at("step2", "probe:x")->anchor, "probe");
	ck_assert_str_eq(check_def_at("boot", "crash")->anchor, "crash"); /* "any" */
	ck_assert_str_eq(check_def_at("end", "process")->anchor, "results");
	ck_assert_ptr_null(check_def_at("boot", "load"));     /* load never runs at boot */
	ck_assert_ptr_null(check_def_at("leak-cycle", "disable")); /* no number: a patch step */
	ck_assert_str_eq(check_def_for("boot", "load")->anchor, "load");
	ck_assert(check_def_allows(check_def_at("fix1", "build"), 1));
	ck_assert(check_def_allows(check_def_at("fix1", "build"), 0));
	ck_assert(!check_def_allows(check_def_at("prepare", "kernel"), 1));
	ck_assert(!check_def_allows(check_def_at("fix1", "sysfs"), 0));
	ck_assert(checks_guest_loss("guest died: kernel panic (x)"));
	ck_assert(checks_guest_loss("QEMU ended from outside the guest: killed"));
	ck_assert(!checks_guest_loss("refused: -22"));
	ck_assert_str_eq(check_def_doc(check_def_at("fix1", "load")), "docs/checks.md#check-load");
	ck_assert_ptr_null(check_def_doc(NULL));
	/* anchors are unique */
	for (size_t i = 0; i < nr_check_defs; i++)
		for (size_t k = i + 1; k < nr_check_defs; k++)
			ck_assert_msg(strcmp(check_defs[i].anchor, check_defs[k].anchor),
				      "anchor %s twice", check_defs[i].anchor);
	sb_release(&doc);
	sb_release(&want);
}
END_TEST

Suite *cell_suite(void)
{
	Suite *s = suite_create("cell");
	TCase *tc = tcase_create("fake-backend");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_cell_pass);
	tcase_add_test(tc, test_cell_not_exercised);
	tcase_add_test(tc, test_exercise_judge);
	tcase_add_test(tc, test_perf_calls_judge);
	tcase_add_test(tc, test_perf_mem_judge);
	tcase_add_test(tc, test_klp_funcs);
	tcase_add_test(tc, test_cell_leak_not_exercised);
	tcase_add_test(tc, test_cell_leak_userland);
	tcase_add_test(tc, test_cell_no_counting);
	tcase_add_test(tc, test_cell_silent_console);
	tcase_add_test(tc, test_cell_silent_agent);
	tcase_add_test(tc, test_cell_panic);
	tcase_add_test(tc, test_cell_reset);
	tcase_add_test(tc, test_cell_qemu_killed);
	tcase_add_test(tc, test_cell_hang);
	tcase_add_test(tc, test_cell_qemu_frozen);
	tcase_add_test(tc, test_cell_refused_load);
	tcase_add_test(tc, test_cell_stall);
	tcase_add_test(tc, test_checks_doc);
	suite_add_tcase(s, tc);
	return s;
}
