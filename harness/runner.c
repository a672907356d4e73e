/* runner.c: see runner.h. */
#define _GNU_SOURCE
#include "perf.h"
#include "runner.h"
#include "console.h"
#include "initramfs.h"
#include "kernel.h"
#include "pbuild.h"
#include "accel.h"
#include "vm.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLL_MS 250
#define CONSOLE_TAIL_LINES 40

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
	struct cscan *console;
	size_t console_seen;         /* console reports already turned into checks */
	char **titles;               /* crash titles reported, to keep console and kmsg apart */
	size_t nr_titles;
	struct loaded *loaded;
	size_t nr_loaded;
	int patched;                 /* a patch step has been applied: trouble is the kernel's */
	int down;                    /* the guest is dead or silent: skip what needs it */
	int interrupted;
	char *console_path;
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
};

static void progress(struct cellrun *cr, const char *fmt, ...) KLPQ_ATTR_FMT(2, 3);
static void progress(struct cellrun *cr, const char *fmt, ...)
{
	va_list ap;

	if (!cr->rn->progress)
		return;
	fprintf(cr->rn->progress, "[%s] ", cr->cell->id);
	va_start(ap, fmt);
	vfprintf(cr->rn->progress, fmt, ap);
	va_end(ap);
	fputc('\n', cr->rn->progress);
	fflush(cr->rn->progress);
}

static struct check_result *add(struct cellrun *cr, const char *step, const char *name,
				enum verdict v, uint64_t ms, const char *fmt, ...) KLPQ_ATTR_FMT(6, 7);
static struct check_result *add(struct cellrun *cr, const char *step, const char *name,
				enum verdict v, uint64_t ms, const char *fmt, ...)
{
	struct sb t = SB_INIT;
	struct check_result *r;
	va_list ap;

	va_start(ap, fmt);
	sb_vaddf(&t, fmt, ap);
	va_end(ap);
	/* A title is one line; a multi-line message (a command's output) continues as evidence. */
	char *nl = strchr(t.buf, '\n');
	if (nl)
		*nl = '\0';
	r = cell_add(cr->cell, step, name, v, ms, "%s", t.buf);
	if (nl)
		check_evidence_text(r, "", nl + 1, 60);
	progress(cr, "%-10s %-24s %-5s %s", step, name, verdict_name(v), t.buf);
	sb_release(&t);
	return r;
}

static void on_console(void *ctx, const char *buf, size_t len)
{
	struct cellrun *cr = ctx;
	cr->console_bytes += len;
	cscan_feed(cr->console, buf, len);
}

static void console_tail(struct cellrun *cr, struct check_result *r)
{
	struct sb log = SB_INIT;
	struct kerr ignore = KERR_INIT;

	if (!cr->console_path || read_file(cr->console_path, &log, 0, &ignore) < 0) {
		sb_release(&log);
		return;
	}
	check_evidence(r, "last console lines (%s):", cr->console_path);
	check_evidence_text(r, "  ", log.buf, CONSOLE_TAIL_LINES);
	sb_release(&log);
}

static int title_seen(struct cellrun *cr, const char *title)
{
	for (size_t i = 0; i < cr->nr_titles; i++)
		if (!strcmp(cr->titles[i], title))
			return 1;
	cr->titles = xrealloc(cr->titles, (cr->nr_titles + 1) * sizeof(*cr->titles));
	cr->titles[cr->nr_titles++] = xstrdup(title);
	return 0;
}

static void report_crashes(struct cellrun *cr, const char *step, const char *source,
			   struct cscan *c, size_t from)
{
	for (size_t i = from; i < cscan_nr_reports(c); i++) {
		const struct crash_report *rep = cscan_report(c, i);
		if (title_seen(cr, rep->title))
			continue;
		struct check_result *r = add(cr, step, "crash", V_FAIL, 0, "%s", rep->title);
		check_evidence(r, "%s, line %llu, signature %s", source,
			       (unsigned long long)rep->line_no, crash_kind_name(rep->kind));
		for (size_t j = 0; j < rep->nr_evidence; j++)
			check_evidence(r, "  %s", rep->evidence[j]);
	}
}

static void console_crashes(struct cellrun *cr, const char *step)
{
	report_crashes(cr, step, "console", cr->console, cr->console_seen);
	cr->console_seen = cscan_nr_reports(cr->console);
}

/* The guest failed to answer: decide whose fault it is, record it, and stop using the guest. */
/* A guest that stopped answering is still running: keep what can be had before it is
 * killed (QMP status and registers into hang-dump.txt, SysRq dumps into console.log). */
static void hang_dump(struct cellrun *cr, struct check_result *r)
{
	struct sb out = SB_INIT;
	struct kerr e = KERR_INIT;
	char *path = path_join(cr->cell->dir, "hang-dump.txt");

	progress(cr, "guest hung: collecting QMP status, registers and SysRq dumps");
	if (vm_dump(cr->vm, &out, &e) < 0)
		sb_addf(&out, "(dump incomplete: %s)\n", e.msg);
	kerr_clear(&e);
	if (write_file_atomic(path, out.buf, out.len, &e) == 0)
		check_evidence(r, "QMP status and registers of every CPU in hang-dump.txt; SysRq t/w/l "
			       "output in console.log");
	{
		const char *st = strstr(out.buf, "\"status\": \"");
		if (st)
			check_evidence(r, "QMP: %.40s", st);
	}
	sb_release(&out);
	free(path);
}

static void guest_trouble(struct cellrun *cr, const char *step, const char *name,
			  enum vm_wait_result w, const struct kerr *e)
{
	struct check_result *r;
	const char *why = vm_exit_reason(cr->vm);

	if (w == VM_STOPPED) {
		cr->interrupted = 1;
		r = add(cr, step, name, V_ERROR, 0, "interrupted: klpq was asked to stop");
		cr->down = 1;
		return;
	}
	/* give the console a moment: the oops text may still be in flight */
	if (!why) {
		struct kerr ignore = KERR_INIT;
		vm_pump(cr->vm, 1000, &ignore);
		why = vm_exit_reason(cr->vm);
	}
	console_crashes(cr, step);
	if (w == VM_BROKEN && why)
		w = VM_GONE; /* the channel broke because QEMU was on its way out */
	if (w == VM_BROKEN) {
		r = add(cr, step, name, V_ERROR, 0, "harness error: %s", e->msg);
	} else if (w == VM_TIMEOUT && !vm_qmp_alive(cr->vm, 3000)) {
		/* a hung guest inside a running QEMU still has QMP answering; QEMU frozen is not
		 * the kernel's doing (a stopped process, a host in trouble): ERROR, retried */
		r = add(cr, step, name, V_ERROR, 0, "QEMU itself stopped answering (QMP silent for "
			"3 s too): %s", e->msg);
		check_evidence(r, "%s", e->msg);
		console_tail(cr, r);
		cr->down = 1;
		return;
	} else if (w == VM_GONE && vm_host_ended(cr->vm)) {
		/* killed from outside (OOM killer, an operator, a CI timeout): not the kernel's doing */
		r = add(cr, step, name, V_ERROR, 0, "QEMU ended from outside the guest: %s", why);
	} else if (cr->patched) {
		if (w == VM_GONE && vm_guest_reset(cr->vm) && cscan_seen(cr->console, CRASH_PANIC))
			r = add(cr, step, name, V_FAIL, 0, "guest died: kernel panic (%s)", why);
		else if (w == VM_GONE && vm_guest_reset(cr->vm))
			r = add(cr, step, name, V_FAIL, 0, "guest died: reset without a panic: reboot "
				"or triple fault (%s)", why);
		else if (w == VM_GONE)
			r = add(cr, step, name, V_FAIL, 0, "guest died: %s", why ? why : e->msg);
		else
			r = add(cr, step, name, V_FAIL, 0, "guest stopped answering: %s", e->msg);
		if (w == VM_TIMEOUT)
			hang_dump(cr, r);
	} else {
		r = add(cr, step, name, V_ERROR, 0, "guest %s before any patch: %s",
			w == VM_GONE ? "died" : "stopped answering", why ? why : e->msg);
	}
	check_evidence(r, "%s", e->msg);
	console_tail(cr, r);
	cr->down = 1;
}

/* An agent call that records trouble itself. VM_OK or the failure. */
static enum vm_wait_result call(struct cellrun *cr, const char *step, const char *name,
				const char *op, json_object *args, unsigned timeout_ms,
				struct proto_msg *reply)
{
	struct kerr e = KERR_INIT;
	enum vm_wait_result w;

	if (cr->down) {
		json_object_put(args);
		memset(reply, 0, sizeof(*reply));
		return VM_GONE;
	}
	w = vm_agent_call(cr->vm, op, args, timeout_ms, reply, &e);
	if (w != VM_OK)
		guest_trouble(cr, step, name, w, &e);
	return w;
}

static unsigned agent_ms(const struct cellrun *cr)
{
	return cr->sc->timeouts.agent_ms;
}

/* ---- livepatch state ---- */

struct lp_patch {
	char name[128];
	int enabled, transition, replace, stack_order;
	int objects, objects_patched;
	int objects_loaded;          /* objects whose module is loaded (vmlinux always) */
	int objects_wrong;           /* patched while its module is absent, or not while loaded */
	char absent[256];            /* the objects whose module is not loaded, comma-separated */
	char objs[512];              /* ",name,name," of every module object (vmlinux excluded) */
};

static int lp_state(struct cellrun *cr, const char *step, const char *name,
		    struct lp_patch *out, size_t max, size_t *nr)
{
	struct proto_msg m;
	json_object *arr;

	*nr = 0;
	if (call(cr, step, name, "lp_state", NULL, agent_ms(cr), &m) != VM_OK)
		return -1;
	if (!m.ok || !json_object_object_get_ex(m.result, "patches", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		add(cr, step, name, V_ERROR, 0, "agent lp_state failed: %s",
		    m.error ? m.error : "no patches array");
		proto_msg_release(&m);
		return -1;
	}
	for (size_t i = 0; i < json_object_array_length(arr) && *nr < max; i++) {
		json_object *p = json_object_array_get_idx(arr, i), *objs;
		struct lp_patch *lp = &out[(*nr)++];
		memset(lp, 0, sizeof(*lp));
		snprintf(lp->name, sizeof(lp->name), "%s", proto_get_str(p, "name", "?"));
		lp->enabled = (int)proto_get_int(p, "enabled", -1);
		lp->transition = (int)proto_get_int(p, "transition", -1);
		lp->replace = (int)proto_get_int(p, "replace", -1);
		lp->stack_order = (int)proto_get_int(p, "stack_order", -1);
		if (json_object_object_get_ex(p, "objects", &objs) &&
		    json_object_is_type(objs, json_type_array)) {
			for (size_t j = 0; j < json_object_array_length(objs); j++) {
				json_object *o = json_object_array_get_idx(objs, j);
				int patched = proto_get_int(o, "patched", 0) == 1;
				int loaded = proto_get_int(o, "loaded", 1) == 1;

				const char *on = proto_get_str(o, "name", "?");

				if (strcmp(on, "vmlinux") && strlen(lp->objs) + strlen(on) + 3 <
							     sizeof(lp->objs))
					snprintf(lp->objs + strlen(lp->objs),
						 sizeof(lp->objs) - strlen(lp->objs), "%s%s,",
						 *lp->objs ? "" : ",", on);
				lp->objects++;
				lp->objects_patched += patched;
				lp->objects_loaded += loaded;
				lp->objects_wrong += patched != loaded;
				if (!loaded && strlen(lp->absent) + 66 < sizeof(lp->absent))
					snprintf(lp->absent + strlen(lp->absent),
						 sizeof(lp->absent) - strlen(lp->absent), "%s%.64s",
						 *lp->absent ? ", " : "", proto_get_str(o, "name", "?"));
			}
		}
	}
	proto_msg_release(&m);
	return 0;
}

static const struct lp_patch *lp_find(const struct lp_patch *p, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(p[i].name, name))
			return &p[i];
	return NULL;
}

/* Asks the agent which tasks are not yet in the target state and records each with its stack
 * as evidence in r; their names ("comm:pid, ...") go to names. */
static void blocking_tasks(struct cellrun *cr, struct check_result *r, struct sb *names,
			   const char *step, int target)
{
	json_object *args = json_object_new_object(), *tasks;
	struct proto_msg m;

	json_object_object_add(args, "target", json_object_new_int(target));
	if (call(cr, step, "tasks", "tasks", args, agent_ms(cr), &m) != VM_OK)
		return;
	if (!m.ok || !json_object_object_get_ex(m.result, "tasks", &tasks) ||
	    !json_object_is_type(tasks, json_type_array)) {
		check_evidence(r, "the agent could not list the blocking tasks: %s",
			       m.error ? m.error : "no tasks array");
	} else {
		size_t n = json_object_array_length(tasks);
		check_evidence(r, "%zu task(s) not yet in the target state %d:", n, target);
		for (size_t i = 0; i < n; i++) {
			json_object *t = json_object_array_get_idx(tasks, i), *st;
			const char *comm = proto_get_str(t, "comm", "?");
			long long pid = (long long)proto_get_int(t, "pid", -1);
			check_evidence(r, "task %s pid %lld tid %lld patch_state %lld:", comm, pid,
				       (long long)proto_get_int(t, "tid", -1),
				       (long long)proto_get_int(t, "patch_state", -2));
			if (i < 4)
				sb_addf(names, "%s%s:%lld", i ? ", " : "", comm, pid);
			else if (i == 4)
				sb_addf(names, ", and %zu more", n - 4);
			if (json_object_object_get_ex(t, "stack", &st) &&
			    json_object_is_type(st, json_type_array))
				for (size_t j = 0; j < json_object_array_length(st); j++)
					check_evidence(r, "    %s", json_object_get_string(
						       json_object_array_get_idx(st, j)));
		}
		if (proto_get_bool(m.result, "truncated", 0))
			check_evidence(r, "(task list cut by the agent's size bound)");
	}
	proto_msg_release(&m);
}

/* A transition that did not settle: a FAIL titled as a stall that names the blocking tasks,
 * with their stacks as evidence. */
static void report_stall(struct cellrun *cr, const char *step, const char *check,
			 const char *what, const char *patch, int target, uint64_t took)
{
	struct check_result ev, *r;
	struct sb names = SB_INIT;

	memset(&ev, 0, sizeof(ev));
	blocking_tasks(cr, &ev, &names, step, target);
	r = add(cr, step, check, V_FAIL, took, "%s stall: '%s' did not settle within %.0f s%s%s%s",
		what, patch, cr->sc->timeouts.transition_ms / 1000.0,
		names.len ? " (blocked by " : "", names.buf, names.len ? ")" : "");
	r->evidence = ev.evidence;
	r->nr_evidence = ev.nr_evidence;
	sb_release(&names);
}

/* Waits until `name` settles: present, enabled and not in transition (enable=1), or gone / not
 * enabled and not in transition (enable=0). 0 settled (ms in *took), 1 stalled, -1 guest down. */
static int wait_transition(struct cellrun *cr, const char *step, const char *name, int enable,
			   uint64_t *took)
{
	uint64_t start = now_ms(), deadline = start + cr->sc->timeouts.transition_ms;
	struct lp_patch pp[32];
	size_t n;

	for (;;) {
		if (lp_state(cr, step, enable ? "transition" : "unpatch-transition", pp,
			     ARRAY_SIZE(pp), &n) < 0)
			return -1;
		const struct lp_patch *p = lp_find(pp, n, name);
		*took = now_ms() - start;
		/* klp_enable_patch() runs in the module's init: a module that loaded and is not
		 * listed registered no livepatch (a few polls' grace for sysfs) */
		if (enable && !p && *took >= 3 * POLL_MS)
			return 2;
		if (enable && p && p->enabled == 1 && p->transition == 0)
			return 0;
		if (!enable && (!p || (p->enabled == 0 && p->transition == 0)))
			return 0;
		if (now_ms() >= deadline)
			return 1;
		struct kerr e = KERR_INIT;
		enum vm_wait_result w = vm_pump(cr->vm, POLL_MS, &e);
		if (w != VM_OK) {
			guest_trouble(cr, step, enable ? "transition" : "unpatch-transition", w, &e);
			return -1;
		}
	}
}

static int guest_exec(struct cellrun *cr, const char *step, const char *name,
		      const char *const *argv, unsigned timeout_ms, int *exit_code, struct sb *out);

/* After a stall: what an operator would do. First the livepatch "signal" attribute (fake
 * signals to the blocking user tasks, a wake-up for kthreads), then, when the scenario says
 * stall_recovery: reverse, writing 0 to "enabled" mid-transition, which reverses it. The
 * stall stays a FAIL; this check says whether the system came back. */
static void stall_recover(struct cellrun *cr, const char *step, const char *mod)
{
	char *sig = xasprintf("echo 1 > /sys/kernel/livepatch/%s/signal", mod);
	const char *argv[] = { "/bin/sh", "-c", sig, NULL };
	uint64_t t0 = now_ms(), took;
	struct check_result *c;
	struct proto_msg m;
	int code, r;

	if (cr->sc->stall_recovery == RECOVER_NONE || cr->down) {
		free(sig);
		return;
	}
	r = guest_exec(cr, step, "recovery", argv, 10000, &code, NULL);
	free(sig);
	if (r < 0)
		return;
	r = wait_transition(cr, step, mod, 1, &took);
	if (r < 0)
		return;
	if (r == 0) {
		add(cr, step, "recovery", V_PASS, now_ms() - t0, "recovered: the transition settled "
		    "after signalling the blocking tasks");
		return;
	}
	if (cr->sc->stall_recovery != RECOVER_REVERSE) {
		c = add(cr, step, "recovery", V_FAIL, now_ms() - t0, "did not recover: still in "
			"transition after signalling the blocking tasks (stall_recovery: reverse "
			"would also try reversing it)");
		check_evidence(c, "signal written (exit %d); waited %.0f s more", code,
			       took / 1000.0);
		return;
	}
	{
		json_object *args = json_object_new_object();

		json_object_object_add(args, "name", json_object_new_string(mod));
		json_object_object_add(args, "enabled", json_object_new_int(0));
		if (call(cr, step, "recovery", "lp_enable", args, agent_ms(cr), &m) != VM_OK)
			return;
		r = m.ok;
		proto_msg_release(&m);
	}
	if (!r) {
		add(cr, step, "recovery", V_FAIL, now_ms() - t0, "did not recover: signalling did not "
		    "help and the transition could not be reversed (writing 0 to enabled failed)");
		return;
	}
	r = wait_transition(cr, step, mod, 0, &took);
	if (r < 0)
		return;
	if (r == 0)
		add(cr, step, "recovery", V_PASS, now_ms() - t0, "recovered by reversing the "
		    "transition: %s unpatched in %.2f s (signalling alone did not help)", mod,
		    took / 1000.0);
	else
		add(cr, step, "recovery", V_FAIL, now_ms() - t0, "did not recover: the reversed "
		    "transition did not settle either within %.0f s",
		    cr->sc->timeouts.transition_ms / 1000.0);
}

/* ---- kernel log ---- */

static int kmsg_mark(struct cellrun *cr, const char *step, const char *text, int64_t *seq)
{
	json_object *args = json_object_new_object();
	struct proto_msg m;

	json_object_object_add(args, "text", json_object_new_string(text));
	if (call(cr, step, "mark", "mark", args, agent_ms(cr), &m) != VM_OK)
		return -1;
	*seq = m.ok ? proto_get_int(m.result, "seq", -1) : -1;
	if (*seq < 0)
		add(cr, step, "mark", V_ERROR, 0, "agent could not mark the kernel log: %s",
		    m.error ? m.error : "no sequence number in the reply");
	proto_msg_release(&m);
	return *seq >= 0 ? 0 : -1;
}

/* All kernel log lines after seq, joined with newlines. */
static int kmsg_since(struct cellrun *cr, const char *step, int64_t seq, struct sb *out)
{
	for (int round = 0; round < 64; round++) {
		json_object *args = json_object_new_object(), *recs, *tr;
		struct proto_msg m;
		json_object_object_add(args, "after", json_object_new_int64(seq));
		if (call(cr, step, "kmsg", "kmsg", args, agent_ms(cr), &m) != VM_OK)
			return -1;
		if (!m.ok || !json_object_object_get_ex(m.result, "records", &recs) ||
		    !json_object_is_type(recs, json_type_array)) {
			add(cr, step, "kmsg", V_ERROR, 0, "agent could not read the kernel log: %s",
			    m.error ? m.error : "no records array");
			proto_msg_release(&m);
			return -1;
		}
		for (size_t i = 0; i < json_object_array_length(recs); i++)
			sb_addf(out, "%s\n", proto_get_str(json_object_array_get_idx(recs, i),
							   "text", ""));
		int more = json_object_object_get_ex(m.result, "truncated", &tr) &&
			   json_object_get_boolean(tr);
		int64_t last = proto_get_int(m.result, "last", seq);
		proto_msg_release(&m);
		if (!more || last <= seq)
			break;
		seq = last;
	}
	return 0;
}

/* Checks the kernel log since a mark: the livepatch transcript (expected lines in order, when
 * given) and crash signatures. */
static void check_klog(struct cellrun *cr, const char *step, int64_t seq,
		       const char *const *expect, size_t nr_expect)
{
	struct sb log = SB_INIT;
	struct cscan *c;
	const char *pos;
	size_t i;

	if (cr->down || kmsg_since(cr, step, seq, &log) < 0) {
		sb_release(&log);
		return;
	}
	if (nr_expect) {
		struct check_result *r;
		for (i = 0, pos = log.buf; i < nr_expect; i++) {
			const char *hit = strstr(pos, expect[i]);
			if (!hit)
				break;
			pos = hit + strlen(expect[i]);
		}
		if (i == nr_expect)
			r = add(cr, step, "transcript", V_PASS, 0, "livepatch log lines as expected");
		else
			r = add(cr, step, "transcript", V_FAIL, 0,
				"livepatch log is missing \"%s\"", expect[i]);
		const char *line;
		size_t len;
		for (pos = log.buf; next_line(&pos, &line, &len);)
			if (memmem(line, len, "livepatch", 9))
				check_evidence(r, "%.*s", (int)len, line);
	}
	c = cscan_new();
	cscan_feed(c, log.buf, log.len);
	cscan_finish(c);
	report_crashes(cr, step, "kernel log", c, 0);
	cscan_free(c);
	sb_release(&log);
}

static void check_taint(struct cellrun *cr, const char *step)
{
	struct proto_msg m;
	char letters[64], bad[64];
	unsigned long t;

	if (call(cr, step, "taint", "taint", NULL, agent_ms(cr), &m) != VM_OK)
		return;
	if (!m.ok || proto_get_int(m.result, "taint", -1) < 0) {
		add(cr, step, "taint", V_ERROR, 0, "agent could not read the taint: %s",
		    m.error ? m.error : "no taint in the reply");
		proto_msg_release(&m);
		return;
	}
	t = (unsigned long)proto_get_int(m.result, "taint", 0);
	proto_msg_release(&m);
	taint_format(t, letters, sizeof(letters));
	taint_format(t & ~(unsigned long)cr->sc->taint_allow, bad, sizeof(bad));
	if (t & ~(unsigned long)cr->sc->taint_allow)
		add(cr, step, "taint", V_FAIL, 0, "taint %lu (%s) has flags not allowed: %s", t,
		    letters, bad);
	else
		add(cr, step, "taint", V_PASS, 0, "taint %lu (%s)", t, letters[0] ? letters : "-");
}

/* ---- probes ---- */

/* Runs one probe. 1 passed (exit 0), 0 failed, -1 guest down. output gets its output. */
static int run_probe(struct cellrun *cr, const char *step, const struct probe *p, int *exit_code,
		     int *timed_out, struct sb *output, uint64_t *took)
{
	json_object *args = json_object_new_object(), *argv = json_object_new_array();
	unsigned t = p->timeout_ms ? p->timeout_ms : cr->sc->timeouts.probe_ms;
	struct proto_msg m;
	char name[160];
	uint64_t start = now_ms();

	json_object_array_add(argv, json_object_new_string("/bin/sh"));
	json_object_array_add(argv, json_object_new_string("-c"));
	json_object_array_add(argv, json_object_new_string(p->run));
	json_object_object_add(args, "argv", argv);
	json_object_object_add(args, "timeout_ms", json_object_new_int64(t));
	snprintf(name, sizeof(name), "probe:%s", p->name);
	if (call(cr, step, name, "exec", args, t + agent_ms(cr), &m) != VM_OK)
		return -1;
	*took = now_ms() - start;
	if (!m.ok) {
		add(cr, step, name, V_ERROR, *took, "agent could not run the probe: %s",
		    m.error ? m.error : "?");
		proto_msg_release(&m);
		return -1;
	}
	*exit_code = (int)proto_get_int(m.result, "exit", -1);
	*timed_out = proto_get_bool(m.result, "timed_out", 0);
	sb_adds(output, proto_get_str(m.result, "output", ""));
	if (proto_get_int(m.result, "signal", 0))
		sb_addf(output, "(killed by signal %lld)\n",
			(long long)proto_get_int(m.result, "signal", 0));
	proto_msg_release(&m);
	return *exit_code == 0 && !*timed_out ? 1 : 0;
}

/* Runs probe p (written in step `from`) and records it: want_pass 1 the fix must show, 0 it must
 * not (exit nonzero). 0 recorded, -1 the guest went down. */
static int probe_check(struct cellrun *cr, const char *step, const struct step *from,
		       const struct probe *p, int want_pass, int own)
{
	struct sb out = SB_INIT;
	int code = -1, to = 0, ok;
	uint64_t took = 0;
	char name[160];
	struct check_result *r;

	snprintf(name, sizeof(name), "probe:%s", p->name);
	ok = run_probe(cr, step, p, &code, &to, &out, &took);
	if (ok < 0) {
		sb_release(&out);
		return -1;
	}
	if (want_pass && ok)
		r = add(cr, step, name, V_PASS, took, "passes (from %s)", from->name);
	else if (want_pass)
		r = add(cr, step, name, V_FAIL, took, "%s probe %s %s after %s",
			own ? "the" : "earlier step's", p->name, to ? "timed out" : "failed", step);
	else if (!ok && !to)
		r = add(cr, step, name, V_PASS, took, "shows the unpatched behaviour (exit %d)", code);
	else
		r = add(cr, step, name, V_FAIL, took, "probe %s %s %s%s", p->name,
			to ? "timed out" : "still passes", p->expect_fail ? "after " : "without the "
			"patch", p->expect_fail ? step : "");
	check_evidence(r, "run: %s", p->run);
	check_evidence(r, "exit %d%s", code, to ? ", timed out" : "");
	check_evidence_text(r, "| ", out.buf, 40);
	sb_release(&out);
	return cr->down ? -1 : 0;
}

/* Runs the probes of the patch steps [0, upto]; want_pass: 1 patched behaviour expected (steps
 * still live; a probe with recheck: false only for step `own`), 0 unpatched (only probes with
 * rollback set). Probes that expect failure belong to their own step only. Returns -1 when the
 * guest went down. */
static int run_probes(struct cellrun *cr, const char *step, size_t upto, int want_pass, long own)
{
	const struct patchset *ps = &cr->sc->patchset;

	for (size_t s = 0; s <= upto && s < ps->nr_steps; s++) {
		const struct step *st = &ps->steps[s];

		if (st->kind != STEP_PATCH || st->expect_load_fail)
			continue;
		if (want_pass && cr->state && cr->state[s] != ST_LIVE)
			continue;
		for (size_t i = 0; i < st->nr_probes; i++) {
			const struct probe *p = &st->probes[i];

			if (p->expect_fail || (!want_pass && !p->rollback_check))
				continue;
			if (want_pass && !p->recheck && (long)s != own)
				continue;
			if (probe_check(cr, step, st, p, want_pass, (long)s == own || s == upto) < 0)
				return -1;
		}
	}
	return 0;
}

/* The probes a step wrote itself, each with its own expectation. */
static int run_own_probes(struct cellrun *cr, size_t i)
{
	const struct step *st = &cr->sc->patchset.steps[i];

	for (size_t k = 0; k < st->nr_probes; k++)
		if (probe_check(cr, st->name, st, &st->probes[k], !st->probes[k].expect_fail, 1) < 0)
			return -1;
	return 0;
}

/* ---- steps ---- */

static struct loaded *loaded_find(struct cellrun *cr, const char *name)
{
	for (size_t i = 0; i < cr->nr_loaded; i++)
		if (!strcmp(cr->loaded[i].name, name))
			return &cr->loaded[i];
	return NULL;
}

static void note_loaded_as(struct cellrun *cr, const char *name, int plain)
{
	struct loaded *l = loaded_find(cr, name);

	if (!l) {
		cr->loaded = xrealloc(cr->loaded, (cr->nr_loaded + 1) * sizeof(*cr->loaded));
		l = &cr->loaded[cr->nr_loaded++];
		l->name = xstrdup(name);
	}
	l->inserted = 1;
	l->plain = plain;
}

static void note_loaded(struct cellrun *cr, const char *name)
{
	note_loaded_as(cr, name, 0);
}

/* Loads the module at a guest path with its parameters (or NULL); 0 loaded, 1 refused by the
 * kernel (message in err), -1 guest down. */
static int load_path(struct cellrun *cr, const char *step, const char *path, const char *params,
		     struct sb *err, int *err_no)
{
	json_object *args = json_object_new_object();
	struct proto_msg m;
	int ret;

	json_object_object_add(args, "path", json_object_new_string(path));
	if (params && *params)
		json_object_object_add(args, "params", json_object_new_string(params));
	if (call(cr, step, "load", "load", args, cr->sc->timeouts.transition_ms + agent_ms(cr),
		 &m) != VM_OK)
		return -1;
	if (m.ok) {
		ret = 0;
	} else {
		sb_adds(err, m.error ? m.error : "refused");
		*err_no = m.err_no;
		ret = 1;
	}
	proto_msg_release(&m);
	return ret;
}

/* A livepatch (or helper) module of the patch set, from /klpq/patches. */
static int load_module(struct cellrun *cr, const char *step, const char *modname,
		       const char *params, struct sb *err, int *err_no)
{
	char *path = xasprintf("/klpq/patches/%s.ko", modname);
	int ret = load_path(cr, step, path, params, err, err_no);

	free(path);
	return ret;
}

/* How long a module may stay referenced after its patch was disabled before that counts as
 * the patch's fault: livepatch drops its own reference from a workqueue a moment after the
 * patch leaves sysfs, so an unload in that moment gets EAGAIN on a correct patch. */
#define UNLOAD_SETTLE_MS 5000

/* 0 removed; 1 refused (why in err; a reference still held after UNLOAD_SETTLE_MS); -1 the
 * guest is in trouble (recorded). */
static int unload_module_errno(struct cellrun *cr, const char *step, const char *modname,
			       struct sb *err, int *err_no)
{
	uint64_t t0 = now_ms();
	int ret, tries = 0;

	for (;;) {
		json_object *args = json_object_new_object();
		struct proto_msg m;
		struct kerr ignore = KERR_INIT;

		json_object_object_add(args, "name", json_object_new_string(modname));
		if (call(cr, step, "unload", "unload", args, agent_ms(cr), &m) != VM_OK)
			return -1;
		tries++;
		if (!m.ok && m.err_no == EAGAIN && now_ms() - t0 < UNLOAD_SETTLE_MS) {
			proto_msg_release(&m);
			/* a guest that dies or a stop meanwhile: the next call records it */
			(void)vm_pump(cr->vm, 100, &ignore);
			continue;
		}
		ret = m.ok ? 0 : 1;
		if (err_no)
			*err_no = m.err_no;
		if (!m.ok) {
			sb_adds(err, m.error ? m.error : "refused");
			if (m.err_no == EAGAIN)
				sb_addf(err, " (still referenced after %.1f s, %d attempts)",
					(now_ms() - t0) / 1000.0, tries);
		} else if (tries > 1) {
			progress(cr, "%s: %s was still referenced for %.1f s after disable (%d "
				 "attempts)", step, modname, (now_ms() - t0) / 1000.0, tries);
		}
		proto_msg_release(&m);
		return ret;
	}
}

static int unload_module(struct cellrun *cr, const char *step, const char *modname,
			 struct sb *err)
{
	return unload_module_errno(cr, step, modname, err, NULL);
}

/* The livepatch transcript of a patch's enable (and below, of its disable); with the scenario's
 * livepatch_debug the pr_debug lines too. Returns the number of lines. */
static size_t transcript_apply(const struct cellrun *cr, const char *p, char buf[5][192],
			       const char *exp[5])
{
	size_t n = 0;

	snprintf(buf[n++], 192, "livepatch: enabling patch '%s'", p);
	if (cr->sc->livepatch_debug)
		snprintf(buf[n++], 192, "'%s': initializing patching transition", p);
	snprintf(buf[n++], 192, "'%s': starting patching transition", p);
	if (cr->sc->livepatch_debug)
		snprintf(buf[n++], 192, "'%s': completing patching transition", p);
	snprintf(buf[n++], 192, "'%s': patching complete", p);
	for (size_t i = 0; i < n; i++)
		exp[i] = buf[i];
	return n;
}

static size_t transcript_unpatch(const struct cellrun *cr, const char *p, char buf[5][192],
				 const char *exp[5])
{
	size_t n = 0;

	if (cr->sc->livepatch_debug)
		snprintf(buf[n++], 192, "'%s': initializing unpatching transition", p);
	snprintf(buf[n++], 192, "'%s': starting unpatching transition", p);
	if (cr->sc->livepatch_debug)
		snprintf(buf[n++], 192, "'%s': completing unpatching transition", p);
	snprintf(buf[n++], 192, "'%s': unpatching complete", p);
	for (size_t i = 0; i < n; i++)
		exp[i] = buf[i];
	return n;
}

enum settle { SETTLED, REFUSED_AS_EXPECTED, STOPPED_CELL, GUEST_DOWN };

/* The patch set's step of that name (a check's step), or NULL ("rollback", "reapply", ...). */
static const struct step *step_named(const struct cellrun *cr, const char *name)
{
	for (size_t i = 0; i < cr->sc->patchset.nr_steps; i++)
		if (!strcmp(cr->sc->patchset.steps[i].name, name))
			return &cr->sc->patchset.steps[i];
	return NULL;
}

/* A refusal the patch set expects must be the one it names: the errno and/or a text in the
 * kernel's lines since the step began. Either way those lines are the evidence. */
static void check_refusal(struct cellrun *cr, const char *step, const char *mod,
			  const char *why, int err_no, int64_t seq, uint64_t ms)
{
	const struct step *st = step_named(cr, step);
	struct sb klog = SB_INIT;
	struct check_result *c;
	char want[256] = "", got_e[48];
	int ok = 1;

	kmsg_since(cr, step, seq, &klog);
	snprintf(got_e, sizeof(got_e), "%s (%d)", errno_name(err_no) ? errno_name(err_no) : "errno",
		 err_no);
	if (st && st->refusal_errno && st->refusal_errno != err_no) {
		ok = 0;
		snprintf(want, sizeof(want), "errno %s (%d)", errno_name(st->refusal_errno) ?
			 errno_name(st->refusal_errno) : "?", st->refusal_errno);
	} else if (st && st->refusal_log && !strstr(klog.buf, st->refusal_log)) {
		ok = 0;
		snprintf(want, sizeof(want), "a kernel line with '%.200s'", st->refusal_log);
	}
	const char *cn = !st || st->kind == STEP_PATCH || st->kind == STEP_HELPER ||
			 st->kind == STEP_KMOD ? "load" : "action";

	if (ok)
		c = add(cr, step, cn, V_PASS, ms, "refused as expected: %s, %s%s%s%s", why, got_e,
			st && st->refusal_log ? ", the kernel said '" : "",
			st && st->refusal_log ? st->refusal_log : "",
			st && st->refusal_log ? "'" : "");
	else
		c = add(cr, step, cn, V_FAIL, ms, "%s refused, but not as the patch set expects: "
			"%s, expected %s", mod, got_e, want);
	check_evidence(c, "errno %d", err_no);
	check_evidence_text(c, "kernel: ", klog.buf, 20);
	sb_release(&klog);
}

/* A step's module parameters: `params`, plus the one line of its `params_file` read from the
 * guest now (the pids of processes a run step started). 0 with *out set (free it), 1 the file
 * could not be used (a FAIL of the step, recorded), -1 guest down. */
static int step_params(struct cellrun *cr, const struct step *st, char **out)
{
	json_object *args, *d;
	struct proto_msg m;
	struct sb p = SB_INIT;
	const char *text = "";
	size_t len = 0;

	*out = NULL;
	if (!st->params_file) {
		*out = st->params ? xstrdup(st->params) : NULL;
		return 0;
	}
	args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string(st->params_file));
	json_object_object_add(args, "max", json_object_new_int(4096));
	if (call(cr, st->name, "params", "read", args, agent_ms(cr), &m) != VM_OK)
		return -1;
	if (m.ok && json_object_object_get_ex(m.result, "data", &d) &&
	    json_object_is_type(d, json_type_string)) {
		text = json_object_get_string(d);
		len = (size_t)json_object_get_string_len(d);
	}
	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	if (!m.ok || !len || memchr(text, '\n', len) || memchr(text, '\0', len)) {
		add(cr, st->name, "params", V_FAIL, 0, "params_file %s %s", st->params_file,
		    !m.ok ? (m.error ? m.error : "cannot be read") : !len ? "is empty" :
		    "holds more than one line");
		proto_msg_release(&m);
		return 1;
	}
	sb_addf(&p, "%s%s%.*s", st->params ? st->params : "", st->params ? " " : "", (int)len, text);
	proto_msg_release(&m);
	*out = xstrdup(p.buf);
	sb_release(&p);
	return 0;
}

/* Marks the kernel log (*seq), loads mod and waits for its transition, recording the load and
 * transition checks (a stall names its blockers). With expect_fail the load must be refused. */
static int guest_now(struct cellrun *cr, const char *step, uint64_t *ns);

static enum settle load_and_settle(struct cellrun *cr, const char *step, const char *mod,
				   const char *params, int expect_fail, int nowait, int64_t *seq)
{
	struct sb err = SB_INIT;
	char mark[192];
	uint64_t t0, took = 0, win_start = 0;
	int err_no = 0, r;
	enum settle ret = STOPPED_CELL;

	snprintf(mark, sizeof(mark), "%s begin", step);
	if (kmsg_mark(cr, step, mark, seq) < 0)
		return GUEST_DOWN;
	/* From here on a dead or silent guest is the patch's doing, the load included. */
	cr->patched = 1;
	if (cr->perf_on && guest_now(cr, step, &win_start) < 0)
		return GUEST_DOWN;
	t0 = now_ms();
	r = load_module(cr, step, mod, params, &err, &err_no);
	if (r < 0) {
		ret = GUEST_DOWN;
		goto out;
	}
	if (r == 0)
		note_loaded(cr, mod);
	if (expect_fail) {
		if (r == 1)
			check_refusal(cr, step, mod, err.buf, err_no, *seq, now_ms() - t0);
		else
			add(cr, step, "load", V_FAIL, now_ms() - t0,
			    "%s loaded, but the patch set says it must be refused", mod);
		check_klog(cr, step, *seq, NULL, 0);
		ret = r == 1 ? REFUSED_AS_EXPECTED : STOPPED_CELL;
		goto out;
	}
	if (r == 1) {
		struct check_result *c = add(cr, step, "load", V_FAIL, now_ms() - t0,
					     "%s refused by the kernel: %s", mod, err.buf);
		struct sb klog = SB_INIT;

		check_evidence(c, "errno %d", err_no);
		/* the kernel says why (an incompatible klp_state, a pre-patch callback that
		 * failed): its lines since the step began, as evidence */
		if (kmsg_since(cr, step, *seq, &klog) == 0)
			check_evidence_text(c, "kernel: ", klog.buf, 20);
		sb_release(&klog);
		check_klog(cr, step, *seq, NULL, 0);
		goto out;
	}
	add(cr, step, "load", V_PASS, now_ms() - t0, "%s loaded%s%s", mod, params && *params ?
	    " with " : "", params && *params ? params : "");
	if (nowait) {
		/* wait: false: a later step acts while the transition may still be pending (a
		 * busy task holds it); the sysfs check reads where it stands */
		add(cr, step, "transition", V_SKIP, 0, "not waited for (wait: false)");
		ret = SETTLED;
		goto out;
	}
	r = wait_transition(cr, step, mod, 1, &took);
	if (r < 0) {
		ret = GUEST_DOWN;
		goto out;
	}
	if (r == 2) {
		add(cr, step, "transition", V_FAIL, now_ms() - t0, "module %s registered no livepatch: "
		    "it loaded, but /sys/kernel/livepatch/%s never appeared", mod, mod);
		ret = STOPPED_CELL;
		goto out;
	}
	took = now_ms() - t0; /* the transition window: load through settled */
	{
		char *key = xasprintf("transition_ms.%s", step);
		json_object_object_add(cr->cell->metrics, key, json_object_new_int64((int64_t)took));
		free(key);
	}
	if (r == 1) {
		report_stall(cr, step, "transition", "transition", mod, 1, took);
		stall_recover(cr, step, mod);
		check_klog(cr, step, *seq, NULL, 0);
		goto out;
	}
	add(cr, step, "transition", V_PASS, took, "settled in %.2f s", took / 1000.0);
	if (cr->perf_on) {
		uint64_t win_end;
		char *label = xasprintf("%s-transition", step);

		if (guest_now(cr, step, &win_end) < 0) {
			free(label);
			ret = GUEST_DOWN;
			goto out;
		}
		perf_phase_add(&cr->phases, PHASE_T, label, win_start, win_end);
		free(label);
	}
	ret = SETTLED;
out:
	sb_release(&err);
	return ret;
}

/* The step's declared method (patch set or step `method:`) against what the kernel shows: a
 * cumulative step (atomic replace) leaves none of the cell's earlier patches listed, a stacked
 * one leaves every one of them (6.1 has no `replace` attribute to read; where it exists it must
 * agree too). A mismatch is a FAIL naming both sides. */
static void check_method(struct cellrun *cr, const char *step, const char *mod,
			 const struct lp_patch *p, const struct lp_patch *pp, size_t n)
{
	const struct step *st = step_named(cr, step);
	struct sb kept = SB_INIT, gone = SB_INIT;
	struct check_result *r;
	int stacked;

	if (!st)
		return;
	stacked = st->stacked == 1;
	for (size_t k = 0; k < cr->nr_loaded; k++) {
		const struct loaded *l = &cr->loaded[k];

		if (!l->inserted || l->plain || !strcmp(l->name, mod))
			continue;
		sb_addf(lp_find(pp, n, l->name) ? &kept : &gone, "%s%s",
			(lp_find(pp, n, l->name) ? kept.len : gone.len) ? ", " : "", l->name);
	}
	if (!stacked && (p->replace == 0 || kept.len))
		r = add(cr, step, "method", V_FAIL, 0, "%s is declared cumulative (atomic replace), but "
		    "the kernel %s: it was stacked (built without .replace = true?)", mod,
		    p->replace == 0 ? "says replace=0" : "still lists the earlier patch(es)");
	else if (stacked && p->stack_order >= 0 && p->stack_order != (int)n)
		r = add(cr, step, "method", V_FAIL, 0, "%s is declared stacked, but the kernel puts it "
		    "at stack_order %d of %zu patch(es): it is not on top", mod, p->stack_order, n);
	else if (stacked && (p->replace == 1 || gone.len))
		r = add(cr, step, "method", V_FAIL, 0, "%s is declared stacked, but the kernel %s%s: it "
		    "replaced them (built with .replace = true?)", mod, p->replace == 1 ?
		    "says replace=1" : "no longer lists ", p->replace == 1 ? "" : gone.buf);
	else if (!stacked)
		r = add(cr, step, "method", V_PASS, 0, "cumulative: %s%s", gone.len ? "replaced " :
		    "the only patch", gone.buf);
	else
		r = add(cr, step, "method", V_PASS, 0, "stacked%s%s", kept.len ? " on " : ": the first",
		    kept.buf);
	check_evidence(r, "declared %s; listed besides %s: %s; replace attribute %d (-1: this "
		       "kernel has none)", stacked ? "stacked" : "cumulative", mod,
		       kept.len ? kept.buf : "none", p->replace);
	sb_release(&kept);
	sb_release(&gone);
}

/* Whether a step after `after` unloads the module `name` itself (then klpq leaves it). */
static int unloaded_later(const struct cellrun *cr, const char *step, const char *name)
{
	const struct patchset *ps = &cr->sc->patchset;
	size_t i = 0;

	while (i < ps->nr_steps && strcmp(ps->steps[i].name, step))
		i++;
	for (i++; i < ps->nr_steps; i++)
		if (ps->steps[i].kind == STEP_UNLOAD && cr->mods[ps->steps[i].target].name &&
		    !strcmp(cr->mods[ps->steps[i].target].name, name))
			return 1;
	return 0;
}

/* The sysfs state after mod settled: it is enabled with every object patched; with atomic
 * replace it is the only patch left, and each replaced module can be removed (unless a later
 * step removes it). With nowait the transition may still be pending. -1 guest down. */
static int check_sysfs(struct cellrun *cr, const char *step, const char *mod, int nowait)
{
	struct lp_patch pp[32];
	const struct lp_patch *p;
	struct check_result *c;
	size_t n;
	int ok;

	if (lp_state(cr, step, "sysfs", pp, ARRAY_SIZE(pp), &n) < 0)
		return -1;
	p = lp_find(pp, n, mod);
	/* an object is patched exactly while its module is loaded (vmlinux always is) */
	ok = p && p->enabled == 1 && (nowait || p->transition == 0) && p->objects_wrong == 0;
	if (ok && !nowait && p->replace == 1 && n != 1)
		ok = 0;
	{
		char more[320] = "";

		if (p && *p->absent)
			snprintf(more, sizeof(more), "; %d not loaded, not patched: %s",
				 p->objects - p->objects_loaded, p->absent);
		c = add(cr, step, "sysfs", ok ? V_PASS : V_FAIL, 0,
			ok ? "%s enabled%s, %d object(s) patched%s%s" :
			     "livepatch state of %s is not as expected%s (%d object(s) patched%s%s)",
			mod, p && p->replace == 1 ? " with atomic replace" : "",
			p ? p->objects_patched : 0, more, p && p->transition == 1 ?
			"; transition still pending" : "");
	}
	for (size_t k = 0; k < n; k++)
		check_evidence(c, "%s: enabled=%d transition=%d replace=%d stack_order=%d "
			       "objects=%d patched=%d loaded=%d%s%s", pp[k].name, pp[k].enabled,
			       pp[k].transition, pp[k].replace, pp[k].stack_order, pp[k].objects,
			       pp[k].objects_patched, pp[k].objects_loaded,
			       *pp[k].absent ? " absent: " : "", pp[k].absent);
	if (p && !nowait)
		check_method(cr, step, mod, p, pp, n);
	for (size_t k = 0; k < cr->nr_loaded; k++) {
		struct loaded *l = &cr->loaded[k];
		struct sb uerr = SB_INIT;
		int u;

		if (!strcmp(l->name, mod) || !l->inserted || l->plain || nowait)
			continue;
		if (lp_find(pp, n, l->name)) {
			if (p && p->replace == 1)
				add(cr, step, "replaced", V_FAIL, 0,
				    "%s is still listed after the atomic replace", l->name);
			continue;
		}
		if (unloaded_later(cr, step, l->name)) {
			add(cr, step, "replaced", V_PASS, 0, "%s replaced (a later step removes its "
			    "module)", l->name);
			continue;
		}
		u = unload_module(cr, step, l->name, &uerr);
		if (u == 0) {
			l->inserted = 0;
			add(cr, step, "replaced", V_PASS, 0, "replaced module %s removed", l->name);
		} else if (u == 1) {
			add(cr, step, "replaced", V_FAIL, 0, "replaced module %s cannot be removed: %s",
			    l->name, uerr.buf);
		}
		sb_release(&uerr);
		if (u < 0)
			return -1;
	}
	return 0;
}

/* The module a step loads (patch, helper or kernel module), as the kernel names it; NULL for
 * the other steps. */
static const char *step_module(const struct cellrun *cr, size_t i)
{
	const struct step *st = &cr->sc->patchset.steps[i];

	if (st->kind == STEP_KMOD)
		return st->kmod;
	return cr->mods[i].name;
}

/* Whether a kernel line belongs to the patch set's transcript: it holds one of the patch
 * set's log_filter texts (default "livepatch:" and the names of its modules, as the kernel's
 * selftests filter); klpq's own marks and the taint notices are never part of it. */
static int klog_wanted(const struct cellrun *cr, const char *line, size_t len)
{
	const struct patchset *ps = &cr->sc->patchset;
	char buf[1024];

	snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), line);
	if (!strncmp(buf, "klpq-mark: ", 11) || strstr(buf, "tainting kernel") ||
	    strstr(buf, "taints kernel"))
		return 0;
	if (ps->nr_log_filter) {
		for (size_t i = 0; i < ps->nr_log_filter; i++)
			if (strstr(buf, ps->log_filter[i]))
				return 1;
		return 0;
	}
	if (strstr(buf, "livepatch:"))
		return 1;
	for (size_t i = 0; i < ps->nr_steps; i++) {
		const char *m = step_module(cr, i);

		if (m && strstr(buf, m))
			return 1;
	}
	return 0;
}

/* A step's `log:`: the filtered kernel lines since the step began must be exactly these, in
 * this order. Lines a transition prints just after sysfs settles may lag: short ones are read
 * again for up to a second. */
static void check_step_log(struct cellrun *cr, size_t i, int64_t seq)
{
	const struct step *st = &cr->sc->patchset.steps[i];
	struct sb log = SB_INIT, got = SB_INIT;
	struct check_result *r;
	const char *pos, *line;
	size_t len, n = 0, bad = (size_t)-1;

	if (!st->has_log || cr->down)
		return;
	for (int round = 0; round < 6; round++) {
		struct kerr ignore = KERR_INIT;

		sb_reset(&log);
		sb_reset(&got);
		n = 0;
		if (kmsg_since(cr, st->name, seq, &log) < 0)
			goto out;
		for (pos = log.buf; next_line(&pos, &line, &len);) {
			if (!klog_wanted(cr, line, len))
				continue;
			sb_addf(&got, "%.*s\n", (int)len, line);
			n++;
		}
		if (n >= st->nr_log)
			break;
		(void)vm_pump(cr->vm, 200, &ignore);
	}
	pos = got.buf;
	for (size_t k = 0; k < st->nr_log || k < n; k++) {
		int have = next_line(&pos, &line, &len);

		if (k >= st->nr_log || !have || len != strlen(st->log[k]) ||
		    memcmp(line, st->log[k], len)) {
			bad = k;
			break;
		}
	}
	if (bad == (size_t)-1) {
		r = add(cr, st->name, "klog", V_PASS, 0, "kernel log as expected: %zu line(s)", n);
	} else {
		const char *gl = NULL;
		size_t gn = 0, k = 0;

		for (pos = got.buf; next_line(&pos, &line, &len) && k <= bad; k++)
			if (k == bad) {
				gl = line;
				gn = len;
			}
		if (bad >= st->nr_log)
			r = add(cr, st->name, "klog", V_FAIL, 0, "kernel log has a line more than "
				"expected (line %zu): '%.*s'", bad + 1, (int)gn, gl);
		else if (!gl)
			r = add(cr, st->name, "klog", V_FAIL, 0, "kernel log is missing line %zu: "
				"'%s'", bad + 1, st->log[bad]);
		else
			r = add(cr, st->name, "klog", V_FAIL, 0, "kernel log differs at line %zu: "
				"expected '%s', got '%.*s'", bad + 1, st->log[bad], (int)gn, gl);
	}
	for (size_t k = 0; k < st->nr_log; k++)
		check_evidence(r, "expected: %s", st->log[k]);
	check_evidence_text(r, "kernel: ", got.buf, 60);
out:
	sb_release(&log);
	sb_release(&got);
}

/* After a module came (loading 1) or went: every listed patch with an object for it says so in
 * the kernel log ("applying patch 'P' to loading module 'M'", "reverting patch 'P' on unloading
 * module 'M'"), in any order between patches. -1 guest down. */
static int check_module_lines(struct cellrun *cr, const char *step, const char *mod,
			      int loading, int64_t seq)
{
	struct lp_patch pp[32];
	struct sb log = SB_INIT, missing = SB_INIT;
	struct check_result *c;
	char key[80];
	size_t n, want = 0;

	if (lp_state(cr, step, "transcript", pp, ARRAY_SIZE(pp), &n) < 0)
		return -1;
	snprintf(key, sizeof(key), ",%s,", mod);
	for (size_t k = 0; k < n; k++)
		want += strstr(pp[k].objs, key) != NULL;
	if (!want)
		return 0;
	if (kmsg_since(cr, step, seq, &log) < 0) {
		sb_release(&log);
		return -1;
	}
	for (int round = 0; ; round++) {
		sb_reset(&missing);
		for (size_t k = 0; k < n; k++) {
			char line[320];

			if (!strstr(pp[k].objs, key))
				continue;
			snprintf(line, sizeof(line), loading ? "applying patch '%s' to loading module "
				 "'%s'" : "reverting patch '%s' on unloading module '%s'", pp[k].name,
				 mod);
			if (!strstr(log.buf, line))
				sb_addf(&missing, "%s%s", missing.len ? "; " : "", line);
		}
		if (!missing.len || round == 5)
			break;
		struct kerr ignore = KERR_INIT;
		(void)vm_pump(cr->vm, 200, &ignore);
		sb_reset(&log);
		if (kmsg_since(cr, step, seq, &log) < 0) {
			sb_release(&log);
			sb_release(&missing);
			return -1;
		}
	}
	if (missing.len)
		c = add(cr, step, "transcript", V_FAIL, 0, "livepatch log is missing \"%s\"",
			missing.buf);
	else
		c = add(cr, step, "transcript", V_PASS, 0, "%zu patch(es) %s module %s", want,
			loading ? "applied to the loading" : "reverted on the unloading", mod);
	{
		const char *pos, *line;
		size_t len;

		for (pos = log.buf; next_line(&pos, &line, &len);)
			if (memmem(line, len, "livepatch", 9))
				check_evidence(c, "%.*s", (int)len, line);
	}
	sb_release(&log);
	sb_release(&missing);
	return 0;
}

/* After a step that is not a patch: every listed patch's objects must follow the modules that
 * are loaded now (patched exactly while loaded). -1 guest down. */
static int check_objects(struct cellrun *cr, const char *step)
{
	struct lp_patch pp[32];
	struct check_result *c;
	size_t n, wrong = 0;

	if (lp_state(cr, step, "objects", pp, ARRAY_SIZE(pp), &n) < 0)
		return -1;
	if (!n)
		return 0;
	for (size_t k = 0; k < n; k++)
		wrong += pp[k].objects_wrong != 0;
	c = add(cr, step, "objects", wrong ? V_FAIL : V_PASS, 0, wrong ?
		"%zu patch(es) with an object patched while its module is absent, or not while "
		"it is loaded" : "every object of %zu patch(es) patched exactly while its module is "
		"loaded", wrong ? wrong : n);
	for (size_t k = 0; k < n; k++)
		check_evidence(c, "%s: enabled=%d transition=%d objects=%d patched=%d loaded=%d%s%s",
			       pp[k].name, pp[k].enabled, pp[k].transition, pp[k].objects,
			       pp[k].objects_patched, pp[k].objects_loaded,
			       *pp[k].absent ? " absent: " : "", pp[k].absent);
	return 0;
}

/* The outcome of a step's action against its `expect`: refused (r == 1) with expect: fails is
 * checked against `refusal`; anything else that does not match is a FAIL. 0 as expected, 1 not
 * (stop the later steps). */
static int judge_action(struct cellrun *cr, const struct step *st, const char *what, int r,
			const char *why, int err_no, int64_t seq, uint64_t ms)
{
	if (st->expect_load_fail) {
		if (r == 1) {
			check_refusal(cr, st->name, what, why, err_no, seq, ms);
			return 0;
		}
		add(cr, st->name, "action", V_FAIL, ms, "%s succeeded, but the patch set says the "
		    "kernel must refuse it", what);
		return 1;
	}
	if (r == 1) {
		struct check_result *c = add(cr, st->name, "action", V_FAIL, ms, "%s refused: %s",
					     what, why);
		struct sb klog = SB_INIT;

		check_evidence(c, "errno %d", err_no);
		if (kmsg_since(cr, st->name, seq, &klog) == 0)
			check_evidence_text(c, "kernel: ", klog.buf, 20);
		sb_release(&klog);
		return 1;
	}
	return 0;
}

/* A helper module of the patch set or a module of the kernel (its dependencies first). */
static int step_load_plain(struct cellrun *cr, size_t i, int64_t seq)
{
	const struct step *st = &cr->sc->patchset.steps[i];
	const char *mod = step_module(cr, i);
	struct sb err = SB_INIT;
	uint64_t t0 = now_ms();
	int r = 0, err_no = 0, ret;
	char *what, *params;

	ret = step_params(cr, st, &params);
	if (ret != 0) {
		sb_release(&err);
		return ret;
	}
	if (st->kind == STEP_KMOD) {
		for (size_t k = 0; k < cr->nr_kmod_paths[i] && r == 0; k++) {
			const char *path = cr->kmod_paths[i][k];
			int last = k + 1 == cr->nr_kmod_paths[i];

			sb_reset(&err);
			r = load_path(cr, st->name, path, last ? params : NULL, &err, &err_no);
			if (r == 1 && !last && err_no == EEXIST)
				r = 0; /* a dependency already loaded */
			else if (r == 1 && !last)
				sb_addf(&err, " (dependency %s)", path);
		}
	} else {
		r = load_module(cr, st->name, mod, params, &err, &err_no);
	}
	if (r < 0) {
		sb_release(&err);
		free(params);
		return -1;
	}
	what = xasprintf("loading %s%s%s", mod, params ? " " : "", params ? params : "");
	free(params);
	if (r == 0)
		note_loaded_as(cr, mod, 1);
	ret = judge_action(cr, st, what, r, err.buf, err_no, seq, now_ms() - t0);
	if (!ret && r == 0)
		add(cr, st->name, "action", V_PASS, now_ms() - t0, "%s loaded%s", mod,
		    st->kind == STEP_KMOD ? " (a module of the kernel)" : " (helper)");
	free(what);
	sb_release(&err);
	if (!ret && r == 0 && check_module_lines(cr, st->name, mod, 1, seq) < 0)
		return -1;
	return ret;
}

static int step_unload(struct cellrun *cr, size_t i, int64_t seq)
{
	const struct step *st = &cr->sc->patchset.steps[i];
	const char *mod = step_module(cr, st->target);
	struct sb err = SB_INIT;
	uint64_t t0 = now_ms();
	int err_no = 0, r, ret;
	char *what = xasprintf("removing %s", mod);

	r = unload_module_errno(cr, st->name, mod, &err, &err_no);
	if (r < 0) {
		free(what);
		sb_release(&err);
		return -1;
	}
	if (r == 0) {
		struct loaded *l = loaded_find(cr, mod);

		if (l)
			l->inserted = 0;
	}
	ret = judge_action(cr, st, what, r, err.buf, err_no, seq, now_ms() - t0);
	if (!ret && r == 0)
		add(cr, st->name, "action", V_PASS, now_ms() - t0, "%s removed", mod);
	free(what);
	sb_release(&err);
	if (!ret && r == 0 && cr->sc->patchset.steps[st->target].kind != STEP_PATCH &&
	    check_module_lines(cr, st->name, mod, 0, seq) < 0)
		return -1;
	return ret;
}

/* Disables an earlier patch step's livepatch and waits until it is gone; what it (and what it
 * replaced) fixed is retired. Its rollback probes must then fail when no other patch is left. */
static int step_disable(struct cellrun *cr, size_t i, int64_t seq)
{
	const struct patchset *ps = &cr->sc->patchset;
	const struct step *st = &ps->steps[i];
	const char *mod = cr->mods[st->target].name;
	json_object *args = json_object_new_object();
	struct lp_patch pp[32];
	struct proto_msg m;
	uint64_t t0 = now_ms(), took;
	size_t n;
	int r, err_no;
	char *what = xasprintf("disabling %s", mod), *why;

	json_object_object_add(args, "name", json_object_new_string(mod));
	json_object_object_add(args, "enabled", json_object_new_int(0));
	if (call(cr, st->name, "disable", "lp_enable", args, agent_ms(cr), &m) != VM_OK) {
		free(what);
		return -1;
	}
	why = xstrdup(m.error ? m.error : "refused");
	err_no = m.err_no;
	r = m.ok ? 0 : 1;
	proto_msg_release(&m);
	r = judge_action(cr, st, what, r, why, err_no, seq, now_ms() - t0) ? -2 : r;
	free(what);
	free(why);
	if (r != 0)
		return r == -2 ? 1 : 0;
	r = wait_transition(cr, st->name, mod, 0, &took);
	if (r < 0)
		return -1;
	took = now_ms() - t0;
	if (r == 1) {
		report_stall(cr, st->name, "unpatch-transition", "unpatching", mod, 0, took);
		return 1;
	}
	add(cr, st->name, "action", V_PASS, took, "%s disabled, unpatched in %.2f s", mod,
	    took / 1000.0);
	if (lp_state(cr, st->name, "sysfs", pp, ARRAY_SIZE(pp), &n) < 0)
		return -1;
	cr->state[st->target] = ST_RETIRED;
	for (size_t k = 0; k < ps->nr_steps; k++) {
		const struct lp_patch *p = cr->mods[k].name ? lp_find(pp, n, cr->mods[k].name) : NULL;

		if (cr->state[k] == ST_LIVE && (!p || p->enabled != 1))
			cr->state[k] = ST_RETIRED;
	}
	if (n == 0) {
		const struct step *t = &ps->steps[st->target];

		for (size_t k = 0; k < t->nr_probes; k++)
			if (t->probes[k].rollback_check && !t->probes[k].expect_fail &&
			    probe_check(cr, st->name, t, &t->probes[k], 0, 1) < 0)
				return -1;
	}
	return 0;
}

static int step_sysctl(struct cellrun *cr, size_t i, int64_t seq)
{
	const struct step *st = &cr->sc->patchset.steps[i];
	json_object *args = json_object_new_object();
	struct proto_msg m;
	uint64_t t0 = now_ms();
	char *what = xasprintf("setting %s = %s", st->sysctl_key, st->sysctl_value);
	int r, ret;

	json_object_object_add(args, "key", json_object_new_string(st->sysctl_key));
	json_object_object_add(args, "value", json_object_new_string(st->sysctl_value));
	if (call(cr, st->name, "sysctl", "sysctl", args, agent_ms(cr), &m) != VM_OK) {
		free(what);
		return -1;
	}
	r = m.ok ? 0 : 1;
	ret = judge_action(cr, st, what, r, m.error ? m.error : "refused", m.err_no, seq,
			   now_ms() - t0);
	if (!ret && r == 0)
		add(cr, st->name, "action", V_PASS, now_ms() - t0, "%s = %s", st->sysctl_key,
		    st->sysctl_value);
	proto_msg_release(&m);
	free(what);
	return ret;
}

static int step_run(struct cellrun *cr, size_t i)
{
	const struct step *st = &cr->sc->patchset.steps[i];
	const char *argv[] = { "/bin/sh", "-c", st->run, NULL };
	struct sb out = SB_INIT;
	uint64_t t0 = now_ms();
	struct check_result *c;
	int code = -1;

	if (guest_exec(cr, st->name, "action", argv, cr->sc->timeouts.probe_ms, &code, &out) < 0) {
		sb_release(&out);
		return -1;
	}
	c = add(cr, st->name, "action", code == 0 ? V_PASS : V_FAIL, now_ms() - t0,
		code == 0 ? "ran (exit 0)" : "the step's command failed (exit %d)", code);
	check_evidence(c, "run: %s", st->run);
	check_evidence_text(c, "| ", out.buf, 40);
	sb_release(&out);
	return code == 0 ? 0 : 1;
}

/* A patch step: load the livepatch and settle it. 0 applied (or refused as expected), 1 the
 * step failed in a way that stops later steps, -1 guest down. */
static int step_patch(struct cellrun *cr, size_t i, int64_t *seq)
{
	const struct step *st = &cr->sc->patchset.steps[i];
	const char *mod = cr->mods[i].name;
	char tbuf[5][192];
	const char *expect[5];
	size_t n;

	char *params;
	enum settle r;
	int pr = step_params(cr, st, &params);

	if (pr != 0)
		return pr;
	r = load_and_settle(cr, st->name, mod, params, st->expect_load_fail, st->nowait, seq);
	free(params);
	switch (r) {
	case SETTLED: break;
	case REFUSED_AS_EXPECTED:
		/* did the live patch survive the refused load? its fixes must still show */
		if (cr->live >= 0 && run_probes(cr, st->name, (size_t)cr->live, 1, -1) < 0)
			return -1;
		return cr->down ? -1 : 0;
	case STOPPED_CELL: return cr->down ? -1 : 1;
	case GUEST_DOWN: return -1;
	}
	cr->state[i] = ST_LIVE;
	if (check_sysfs(cr, st->name, mod, st->nowait) < 0 ||
	    (i > 0 && run_probes(cr, st->name, i - 1, 1, -1) < 0))
		return -1;
	n = transcript_apply(cr, mod, tbuf, expect);
	/* not waited for: the lines up to "starting patching transition" are printed by the load */
	check_klog(cr, st->name, *seq, expect, st->nowait ? n - (cr->sc->livepatch_debug ? 2 : 1) :
		   n);
	return cr->down ? -1 : 0;
}

/* Applies step i, then what every step is checked by: its own probes, the probes of the patches
 * still live, the objects against the loaded modules, its `log:`, crashes and taint. 0 applied,
 * 1 the step failed in a way that stops later steps, -1 guest down. */
static int apply_step(struct cellrun *cr, size_t i)
{
	const struct step *st = &cr->sc->patchset.steps[i];
	char mark[192];
	int64_t seq;
	int r;

	if (st->kind != STEP_PATCH) {
		snprintf(mark, sizeof(mark), "%s begin", st->name);
		if (kmsg_mark(cr, st->name, mark, &seq) < 0)
			return -1;
		cr->patched = 1; /* what goes wrong from here is the patch set's doing */
	}
	switch (st->kind) {
	case STEP_PATCH: r = step_patch(cr, i, &seq); break;
	case STEP_HELPER:
	case STEP_KMOD: r = step_load_plain(cr, i, seq); break;
	case STEP_UNLOAD: r = step_unload(cr, i, seq); break;
	case STEP_DISABLE: r = step_disable(cr, i, seq); break;
	case STEP_SYSCTL: r = step_sysctl(cr, i, seq); break;
	default: r = step_run(cr, i); break;
	}
	if (r < 0 || cr->down)
		return -1;
	if (st->kind != STEP_PATCH && r == 0) {
		/* the live patches' fixes must hold through whatever the step did */
		if (check_objects(cr, st->name) < 0 ||
		    run_probes(cr, st->name, cr->sc->patchset.nr_steps - 1, 1, -1) < 0)
			return -1;
		check_klog(cr, st->name, seq, NULL, 0);
	}
	if (r == 0 && !(st->kind == STEP_PATCH && st->expect_load_fail) && run_own_probes(cr, i) < 0)
		return -1;
	check_step_log(cr, i, seq);
	console_crashes(cr, st->name);
	if (!cr->down)
		check_taint(cr, st->name);
	/* the newest patch still live: where rollback, the pairs and the leak cycles act */
	cr->live = -1;
	for (size_t k = 0; k < cr->sc->patchset.nr_steps; k++)
		if (cr->state[k] == ST_LIVE)
			cr->live = (long)k;
	return cr->down ? -1 : r;
}

/* Disables step idx's patch and removes its module, under the check step name S: the patch
 * must unpatch in time, and then either no patch is left and every rollback probe of the steps
 * up to `top` fails, or patches are still live below it (a stack) and their probes still pass.
 * The step is retired. 0 removed, -1 stopped (recorded). */
static int rollback_one(struct cellrun *cr, size_t idx, size_t top, const char *S)
{
	const char *mod = cr->mods[idx].name;
	json_object *args;
	struct proto_msg m;
	struct lp_patch pp[32];
	struct sb err = SB_INIT;
	size_t n;
	int64_t seq;
	uint64_t took = 0, t0;
	int r, u;
	char tb[5][192], mark[96];
	const char *expect[5];

	snprintf(mark, sizeof(mark), "%s begin", S);
	if (kmsg_mark(cr, S, mark, &seq) < 0)
		return -1;
	args = json_object_new_object();
	json_object_object_add(args, "name", json_object_new_string(mod));
	json_object_object_add(args, "enabled", json_object_new_int(0));
	t0 = now_ms();
	if (call(cr, S, "disable", "lp_enable", args, agent_ms(cr), &m) != VM_OK)
		return -1;
	if (!m.ok) {
		add(cr, S, "disable", V_FAIL, now_ms() - t0, "cannot disable %s: %s", mod,
		    m.error ? m.error : "?");
		proto_msg_release(&m);
		return -1;
	}
	proto_msg_release(&m);
	add(cr, S, "disable", V_PASS, now_ms() - t0, "wrote 0 to %s/enabled", mod);
	r = wait_transition(cr, S, mod, 0, &took);
	if (r < 0)
		return -1;
	took = now_ms() - t0;
	if (!json_object_object_get_ex(cr->cell->metrics, "unpatch_transition_ms", NULL))
		json_object_object_add(cr->cell->metrics, "unpatch_transition_ms",
				       json_object_new_int64((int64_t)took));
	if (r == 1) {
		report_stall(cr, S, "unpatch-transition", "unpatching", mod, 0, took);
		return -1;
	}
	add(cr, S, "unpatch-transition", V_PASS, took, "unpatched in %.2f s", took / 1000.0);
	if (lp_state(cr, S, "sysfs", pp, ARRAY_SIZE(pp), &n) < 0)
		return -1;
	cr->state[idx] = ST_RETIRED;
	/* With atomic replace nothing else is live: every fix must be gone. Stacked patches below
	 * keep theirs, so then the unpatched behaviour cannot be asserted, but theirs can. */
	if (n == 0) {
		if (run_probes(cr, S, top, 0, -1) < 0)
			return -1;
	} else {
		add(cr, S, "probes", V_SKIP, 0, "%zu other patch(es) still live: unpatched "
		    "behaviour not checked; their own probes must still pass", n);
		if (run_probes(cr, S, top, 1, -1) < 0)
			return -1;
	}
	check_klog(cr, S, seq, expect, transcript_unpatch(cr, mod, tb, expect));
	if (cr->down)
		return -1;
	u = unload_module(cr, S, mod, &err);
	if (u == 0) {
		struct loaded *l = loaded_find(cr, mod);
		if (l)
			l->inserted = 0;
		add(cr, S, "unload", V_PASS, 0, "%s removed", mod);
	} else if (u == 1) {
		add(cr, S, "unload", V_FAIL, 0, "%s cannot be removed after disable: %s", mod,
		    err.buf);
	}
	sb_release(&err);
	return u == 0 ? 0 : -1;
}

/* Loads step idx's patch again (check step name R): it must apply cleanly a second time, with
 * its probes and those of the steps below it passing. 0 applied, -1 not. */
static int reapply_one(struct cellrun *cr, size_t idx, const char *R)
{
	const char *mod = cr->mods[idx].name;
	char tb[5][192];
	const char *expect[5];
	int64_t seq;

	if (load_and_settle(cr, R, mod, cr->sc->patchset.steps[idx].params, 0, 0, &seq) !=
	    SETTLED)
		return -1;
	cr->state[idx] = ST_LIVE;
	if (run_probes(cr, R, idx, 1, (long)idx) < 0)
		return -1;
	check_klog(cr, R, seq, expect, transcript_apply(cr, mod, tb, expect));
	return cr->down ? -1 : 0;
}

/* Rolls the cell's live patches back and pushes them again (the state a fleet is left in after
 * a rollback and a re-push). One patch (cumulative): disable it, check the unpatched behaviour,
 * remove it, load it again. A stack: top down, each disable checked with the probes of the
 * patches below it (and, once none is left, every fix gone), then bottom up again. */
static void rollback(struct cellrun *cr, size_t last)
{
	const struct patchset *ps = &cr->sc->patchset;
	struct lp_patch pp[32];
	size_t stack[32], ns = 0, n;
	char name[32];

	if (lp_state(cr, "rollback", "sysfs", pp, ARRAY_SIZE(pp), &n) < 0)
		return;
	for (size_t k = 0; k <= last && ns < ARRAY_SIZE(stack); k++) {
		const struct lp_patch *p = cr->mods[k].name ? lp_find(pp, n, cr->mods[k].name) : NULL;

		if (ps->steps[k].kind == STEP_PATCH && cr->state[k] == ST_LIVE && p &&
		    p->enabled == 1)
			stack[ns++] = k;
	}
	if (ns < 2) {
		if (rollback_one(cr, last, last, "rollback") == 0)
			reapply_one(cr, last, "reapply");
		return;
	}
	for (size_t j = ns; j-- > 0;) {
		if (j == ns - 1)
			snprintf(name, sizeof(name), "rollback");
		else
			snprintf(name, sizeof(name), "rollback-%zu", ns - j);
		if (rollback_one(cr, stack[j], last, name) < 0)
			return;
	}
	for (size_t j = 0; j < ns; j++) {
		if (j == ns - 1)
			snprintf(name, sizeof(name), "reapply");
		else
			snprintf(name, sizeof(name), "reapply-%zu", ns - j);
		if (reapply_one(cr, stack[j], name) < 0)
			return;
	}
}

/* ---- performance under load ------------------------------------------------------------
 * The scenario's workloads start after the baseline probes and run to the end. The cell
 * records phases on the guest's clock: "baseline" (A, unpatched), each step's transition
 * window (T, load through settled) and patched phase (B), then perf.pairs - 1 more pairs of
 * unpatched (the last step unloaded) and patched (loaded again) phases. perf_finish compares
 * the A phases with the B phases of the last step, metric by metric (perf.c, stats.c). */

#define WL_DIR "/tmp/klpq-wl"
#define WL_READ_MAX 32768

static int guest_exec(struct cellrun *cr, const char *step, const char *name,
		      const char *const *argv, unsigned timeout_ms, int *exit_code, struct sb *out)
{
	json_object *args = json_object_new_object(), *jargv = json_object_new_array();
	struct proto_msg m;

	for (size_t i = 0; argv[i]; i++)
		json_object_array_add(jargv, json_object_new_string(argv[i]));
	json_object_object_add(args, "argv", jargv);
	json_object_object_add(args, "timeout_ms", json_object_new_int64(timeout_ms));
	if (call(cr, step, name, "exec", args, timeout_ms + agent_ms(cr), &m) != VM_OK)
		return -1;
	if (!m.ok) {
		add(cr, step, name, V_ERROR, 0, "agent could not run %s: %s", argv[0],
		    m.error ? m.error : "?");
		proto_msg_release(&m);
		return -1;
	}
	*exit_code = (int)proto_get_int(m.result, "exit", -1);
	if (out)
		sb_adds(out, proto_get_str(m.result, "output", ""));
	proto_msg_release(&m);
	return 0;
}

static int guest_now(struct cellrun *cr, const char *step, uint64_t *ns)
{
	struct proto_msg m;

	if (call(cr, step, "clock", "now", json_object_new_object(), agent_ms(cr), &m) != VM_OK)
		return -1;
	*ns = (uint64_t)proto_get_int(m.result, "mono_ns", 0);
	proto_msg_release(&m);
	return 0;
}

/* Reads what the workloads wrote since the last pull. */
static int perf_pull(struct cellrun *cr, const char *step)
{
	for (size_t i = 0; i < cr->sc->nr_workloads; i++) {
		struct perf_samples *ps = &cr->wl[i];
		char *path = xasprintf(WL_DIR "/%s.out", ps->workload);

		for (int chunk = 0; chunk < 4096; chunk++) {
			json_object *args = json_object_new_object();
			struct proto_msg m;
			json_object *d;
			int eof;

			json_object_object_add(args, "path", json_object_new_string(path));
			json_object_object_add(args, "offset", json_object_new_int64((int64_t)ps->offset));
			json_object_object_add(args, "max", json_object_new_int(WL_READ_MAX));
			if (call(cr, step, "samples", "read", args, agent_ms(cr), &m) != VM_OK) {
				free(path);
				return -1;
			}
			if (!m.ok) {
				add(cr, step, "samples", V_ERROR, 0, "cannot read the %s workload's samples: "
				    "%s", ps->workload, m.error ? m.error : "?");
				proto_msg_release(&m);
				free(path);
				return -1;
			}
			eof = proto_get_bool(m.result, "eof", 1);
			if (json_object_object_get_ex(m.result, "data", &d) &&
			    json_object_is_type(d, json_type_string) && json_object_get_string_len(d))
				perf_samples_feed(ps, json_object_get_string(d),
						  (size_t)json_object_get_string_len(d));
			else
				eof = 1;
			proto_msg_release(&m);
			if (eof)
				break;
		}
		free(path);
	}
	return 0;
}

/* Waits ms with the VM running (console and agent pumped), pulling samples now and then. */
static int perf_wait(struct cellrun *cr, const char *step, unsigned ms)
{
	uint64_t end = now_ms() + ms, last_pull = now_ms();

	while (now_ms() < end) {
		struct kerr e = KERR_INIT;
		uint64_t left = end - now_ms();
		enum vm_wait_result w = vm_pump(cr->vm, left < POLL_MS ? (unsigned)left : POLL_MS, &e);

		if (w != VM_OK) {
			guest_trouble(cr, step, "workload", w, &e);
			return -1;
		}
		if (now_ms() - last_pull >= 2000) {
			if (perf_pull(cr, step) < 0)
				return -1;
			last_pull = now_ms();
		}
	}
	return perf_pull(cr, step);
}

/* One measured phase of perf.phase_ms. */
static int perf_phase(struct cellrun *cr, enum perf_phase_kind kind, const char *label)
{
	uint64_t a, b;

	if (!cr->perf_on || cr->down)
		return cr->down ? -1 : 0;
	progress(cr, "perf: %s phase %s (%.1f s)", kind == PHASE_A ? "unpatched" : "patched",
		 label, cr->sc->perf.phase_ms / 1000.0);
	if (guest_now(cr, "perf", &a) < 0 || perf_wait(cr, "perf", cr->sc->perf.phase_ms) < 0 ||
	    guest_now(cr, "perf", &b) < 0)
		return -1;
	perf_phase_add(&cr->phases, kind, label, a, b);
	return 0;
}

/* Starts every workload in the background, checks they are alive after the warm-up, then
 * records the baseline phase. -1 when the guest went down; 0 otherwise (a workload that
 * would not start is an ERROR check and perf is off). */
static int perf_start(struct cellrun *cr)
{
	const struct scenario *sc = cr->sc;
	const char *mk[] = { "/bin/mkdir", "-p", WL_DIR, NULL };
	struct sb pids = SB_INIT;
	int code;

	cr->wl = xcalloc(sc->nr_workloads, sizeof(*cr->wl));
	for (size_t i = 0; i < sc->nr_workloads; i++)
		perf_samples_init(&cr->wl[i], sc->workloads[i].name);
	if (guest_exec(cr, "perf", "workloads", mk, 10000, &code, NULL) < 0)
		return cr->down ? -1 : 0;
	for (size_t i = 0; i < sc->nr_workloads; i++) {
		const struct workload_spec *w = &sc->workloads[i];
		const char **argv = xcalloc(w->nr_args + 6, sizeof(*argv));
		struct sb out = SB_INIT;
		int r;

		/* "$@" keeps every argument whole: no scenario text is parsed by the shell */
		argv[0] = "/bin/sh";
		argv[1] = "-c";
		argv[2] = "cd " WL_DIR " && name=$1 && shift && /bin/klpq-workload \"$name\" \"$@\" "
			  "> \"$name.out\" 2> \"$name.err\" & echo $!";
		argv[3] = "sh";
		argv[4] = w->name;
		for (size_t k = 0; k < w->nr_args; k++)
			argv[5 + k] = w->args[k];
		r = guest_exec(cr, "perf", "workloads", argv, 10000, &code, &out);
		free(argv);
		if (r < 0) {
			sb_release(&out);
			sb_release(&pids);
			return cr->down ? -1 : 0;
		}
		sb_addf(&pids, " %ld", strtol(out.buf, NULL, 10));
		sb_release(&out);
	}
	cr->perf_on = 1;
	progress(cr, "perf: %zu workload(s) started; warm-up %.1f s", sc->nr_workloads,
		 sc->perf.warmup_ms / 1000.0);
	if (perf_wait(cr, "perf", sc->perf.warmup_ms) < 0) {
		sb_release(&pids);
		return -1;
	}
	/* every workload must be alive and writing samples */
	for (size_t i = 0; i < sc->nr_workloads; i++) {
		const struct perf_samples *ps = &cr->wl[i];
		size_t n = 0;

		for (size_t k = 0; k < ps->nr_series; k++)
			n += ps->series[k].n;
		if (!ps->header_seen || !n) {
			char *err = xasprintf(WL_DIR "/%s.err", ps->workload);
			const char *cat[] = { "/bin/cat", err, NULL };
			struct sb txt = SB_INIT;
			struct check_result *c;

			guest_exec(cr, "perf", "workloads", cat, 10000, &code, &txt);
			c = add(cr, "perf", "workloads", V_ERROR, 0, "the %s workload wrote no samples "
				"within the %.1f s warm-up", ps->workload, sc->perf.warmup_ms / 1000.0);
			check_evidence_text(c, "stderr: ", txt.buf, 20);
			sb_release(&txt);
			free(err);
			cr->perf_on = 0;
		}
	}
	if (cr->perf_on)
		add(cr, "perf", "workloads", V_PASS, 0, "%zu workload(s) running: pids%s",
		    sc->nr_workloads, pids.buf);
	sb_release(&pids);
	if (cr->down)
		return -1;
	return perf_phase(cr, PHASE_A, "baseline");
}

/* perf.pairs - 1 more unpatched/patched pairs with the last step: disable, settle, unload
 * (A), load, settle (T), (B). A livepatch that was disabled cannot be enabled again through
 * sysfs; loading the module again is how an operator re-applies it. */
static int perf_unpatch(struct cellrun *cr, const char *step, const char *mod)
{
	json_object *args = json_object_new_object();
	struct proto_msg m;
	struct sb err = SB_INIT;
	uint64_t took;
	int r;

	json_object_object_add(args, "name", json_object_new_string(mod));
	json_object_object_add(args, "enabled", json_object_new_int(0));
	if (call(cr, step, "disable", "lp_enable", args, agent_ms(cr), &m) != VM_OK)
		return -1;
	r = m.ok;
	proto_msg_release(&m);
	if (!r) {
		add(cr, step, "disable", V_FAIL, 0, "cannot disable %s for an unpatched phase", mod);
		return -1;
	}
	r = wait_transition(cr, step, mod, 0, &took);
	if (r != 0) {
		if (r == 1)
			report_stall(cr, step, "unpatch-transition", "unpatching", mod, 0, took);
		return -1;
	}
	r = unload_module(cr, step, mod, &err);
	if (r == 1)
		add(cr, step, "unload", V_FAIL, 0, "%s cannot be removed after disable: %s", mod,
		    err.buf);
	sb_release(&err);
	if (r != 0)
		return -1;
	{
		struct loaded *l = loaded_find(cr, mod);
		if (l)
			l->inserted = 0;
	}
	return 0;
}

/* perf.pairs - 1 more unpatched/patched pairs with the last step. Pairs alternate their
 * order (unpatched first, then patched first) so that a slow drift of the guest (caches,
 * memory, time) does not land on one side: with the baseline first and the last step's
 * phase second, the phases run A B | A B | B A | A B ... A disabled livepatch cannot be
 * enabled again through sysfs: the module is removed and loaded again, as an operator
 * re-applies it. */
static void perf_pairs(struct cellrun *cr, size_t last)
{
	const char *mod = cr->mods[last].name;
	int loaded = 1;

	for (unsigned k = 2; k <= cr->sc->perf.pairs && cr->perf_on && !cr->down; k++) {
		char la[48], lb[48], step[48];
		int64_t seq;
		int b_first = k % 2 == 1;

		snprintf(step, sizeof(step), "perf-pair%u", k);
		snprintf(la, sizeof(la), "pair%u-unpatched", k);
		snprintf(lb, sizeof(lb), "pair%u-patched", k);
		for (int half = 0; half < 2; half++) {
			int want_b = half == 0 ? b_first : !b_first;

			if (want_b && !loaded) {
				if (load_and_settle(cr, step, mod, cr->sc->patchset.steps[last].params,
						    0, 0, &seq) != SETTLED)
					return;
				loaded = 1;
			}
			if (!want_b && loaded) {
				if (perf_unpatch(cr, step, mod) < 0)
					return;
				loaded = 0;
			}
			if (perf_phase(cr, want_b ? PHASE_B : PHASE_A, want_b ? lb : la) < 0)
				return;
		}
	}
}

/* ---- resource leaks across patch cycles -------------------------------------------------
 * After the rollback: leak.cycles cycles of the last step (disable, unpatch, remove; load,
 * settle; exercise the patched path), each followed by a measurement of the guest's memory
 * after dropping caches. The first measurement is taken after one exercise in the state the
 * cell was in, so every measurement follows the same sequence. A leak is the median growth
 * per cycle beyond the threshold: unreclaimable slab, or free memory (four times the
 * threshold: page-level noise), or a module reference count that moves. The counters come from
 * the per-node meminfo in sysfs, not /proc/meminfo: a patch may change meminfo_proc_show (the
 * kernel's atomic-replace selftest does), and the leak check must not read through it. */

struct mem_sample {
	long avail_kb, slab_kb, sunreclaim_kb, refcnt; /* avail_kb: MemFree after drop_caches */
	int from_node;                                 /* read from sysfs node meminfo */
};

/* The sum of KEY over every line that has it ("Node 0 MemFree:  123 kB" per node, or one
 * /proc/meminfo line), or -1 when no line has it. */
static long meminfo_kb(const char *text, const char *key)
{
	long sum = -1;

	for (const char *p = text; (p = strstr(p, key)); p += strlen(key)) {
		char *end;
		long v = strtol(p + strlen(key), &end, 10);

		if (end != p + strlen(key))
			sum = (sum < 0 ? 0 : sum) + v;
	}
	return sum;
}

static int leak_exercise(struct cellrun *cr, const char *step, size_t last)
{
	if (cr->sc->leak.exercise) {
		const char *argv[] = { "/bin/sh", "-c", cr->sc->leak.exercise, NULL };
		int code;

		if (guest_exec(cr, step, "exercise", argv, cr->sc->timeouts.probe_ms * 6, &code,
			       NULL) < 0)
			return -1;
		if (code != 0)
			add(cr, step, "exercise", V_ERROR, 0, "leak.exercise exited with %d", code);
		return code == 0 ? 0 : -1;
	}
	/* the probes call the patched functions; their verdicts were checked already */
	for (size_t i = 0; i <= last; i++)
		for (size_t k = 0; k < cr->sc->patchset.steps[i].nr_probes; k++) {
			int code, to;
			uint64_t took;
			struct sb out = SB_INIT;
			int r = run_probe(cr, step, &cr->sc->patchset.steps[i].probes[k], &code, &to,
					  &out, &took);
			sb_release(&out);
			if (r < 0)
				return -1;
		}
	return 0;
}

static int mem_measure(struct cellrun *cr, const char *step, const char *mod,
		       struct mem_sample *m)
{
	char *script = xasprintf("sync; echo 3 > /proc/sys/vm/drop_caches; sleep 0.5; "
				 "if ls /sys/devices/system/node/node*/meminfo >/dev/null 2>&1; then "
				 "echo source: node; cat /sys/devices/system/node/node*/meminfo; "
				 "else echo source: proc; cat /proc/meminfo; fi; "
				 "echo refcnt: $(cat /sys/module/%s/refcnt 2>/dev/null || echo -1)", mod);
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct sb out = SB_INIT;
	int code, r;

	r = guest_exec(cr, step, "memory", argv, 20000, &code, &out);
	free(script);
	if (r == 0) {
		m->avail_kb = meminfo_kb(out.buf, "MemFree:");
		m->slab_kb = meminfo_kb(out.buf, "Slab:");
		m->sunreclaim_kb = meminfo_kb(out.buf, "SUnreclaim:");
		m->refcnt = meminfo_kb(out.buf, "refcnt:");
		m->from_node = strstr(out.buf, "source: node") != NULL;
		if (m->avail_kb < 0 || m->sunreclaim_kb < 0) {
			/* read after a patch: what the guest printed is the kernel's answer, and an
			 * unreadable memory counter under a live patch is the patch's doing */
			struct check_result *c = add(cr, step, "memory", cr->patched ? V_FAIL : V_ERROR,
						     0, "the guest's memory counters could not be read "
						     "(MemFree/SUnreclaim missing; exit %d)", code);
			check_evidence_text(c, "| ", out.buf, 40);
			r = -1;
		}
	}
	sb_release(&out);
	return r;
}

static int long_cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static long median_delta(const struct mem_sample *m, size_t n, size_t off)
{
	long d[64];

	for (size_t i = 1; i < n; i++)
		d[i - 1] = *(const long *)((const char *)&m[i] + off) -
			   *(const long *)((const char *)&m[i - 1] + off);
	qsort(d, n - 1, sizeof(*d), long_cmp);
	return (n - 1) % 2 ? d[(n - 1) / 2] : (d[(n - 1) / 2 - 1] + d[(n - 1) / 2]) / 2;
}

static void leak_check(struct cellrun *cr, size_t last)
{
	const char *S = "leak", *mod = cr->mods[last].name;
	const struct loaded *l = loaded_find(cr, mod);
	unsigned cycles = cr->sc->leak.cycles, thr = cr->sc->leak.threshold_kb;
	struct mem_sample m[51];
	long d_sun, d_avail;
	uint64_t t0 = now_ms();
	int64_t seq;
	struct check_result *c;
	json_object *j, *arr;

	if (!cycles || cr->down)
		return;
	progress(cr, "leak: %u apply/remove cycle(s) of %s", cycles, mod);
	if (!(l && l->inserted) && load_and_settle(cr, S, mod, cr->sc->patchset.steps[last].params,
						   0, 0, &seq) != SETTLED)
		return;
	if (leak_exercise(cr, S, last) < 0 || mem_measure(cr, S, mod, &m[0]) < 0)
		return;
	for (unsigned i = 1; i <= cycles; i++) {
		char step[32];

		snprintf(step, sizeof(step), "leak-cycle%u", i);
		if (perf_unpatch(cr, step, mod) < 0 ||
		    load_and_settle(cr, step, mod, cr->sc->patchset.steps[last].params, 0, 0, &seq) !=
		    SETTLED)
			return;
		if (leak_exercise(cr, step, last) < 0 || mem_measure(cr, step, mod, &m[i]) < 0)
			return;
	}
	d_sun = median_delta(m, cycles + 1, offsetof(struct mem_sample, sunreclaim_kb));
	d_avail = median_delta(m, cycles + 1, offsetof(struct mem_sample, avail_kb));
	j = json_object_new_object();
	arr = json_object_new_array();
	for (unsigned i = 0; i <= cycles; i++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "mem_available_kb", json_object_new_int64(m[i].avail_kb));
		json_object_object_add(o, "slab_kb", json_object_new_int64(m[i].slab_kb));
		json_object_object_add(o, "sunreclaim_kb", json_object_new_int64(m[i].sunreclaim_kb));
		json_object_object_add(o, "refcnt", json_object_new_int64(m[i].refcnt));
		json_object_array_add(arr, o);
	}
	json_object_object_add(j, "samples", arr);
	json_object_object_add(j, "sunreclaim_kb_per_cycle", json_object_new_int64(d_sun));
	json_object_object_add(j, "mem_available_kb_per_cycle", json_object_new_int64(d_avail));
	json_object_object_add(cr->cell->metrics, "leak", j);
	if (d_sun > (long)thr)
		c = add(cr, S, "memory", V_FAIL, now_ms() - t0, "leak: SUnreclaim grew %ld kB per "
			"cycle over %u cycles of %s (MemFree %+ld kB per cycle; threshold %u kB)",
			d_sun, cycles, mod, d_avail, thr);
	else if (-d_avail > 4L * thr)
		c = add(cr, S, "memory", V_FAIL, now_ms() - t0, "leak: MemFree fell %ld kB per "
			"cycle over %u cycles of %s (SUnreclaim %+ld kB per cycle; threshold %u kB)",
			-d_avail, cycles, mod, d_sun, 4 * thr);
	else
		c = add(cr, S, "memory", V_PASS, now_ms() - t0, "no leak over %u cycles of %s: "
			"SUnreclaim %+ld kB, MemFree %+ld kB per cycle (threshold %u kB)", cycles,
			mod, d_sun, d_avail, thr);
	for (unsigned i = 0; i <= cycles; i++)
		check_evidence(c, "%s: MemFree %ld kB, Slab %ld kB, SUnreclaim %ld kB, refcnt %ld "
			       "(from %s)",
			       i ? "after cycle" : "before", m[i].avail_kb, m[i].slab_kb,
			       m[i].sunreclaim_kb, m[i].refcnt, m[i].from_node ?
			       "/sys/devices/system/node/node*/meminfo" : "/proc/meminfo");
	for (unsigned i = 1; i <= cycles; i++)
		if (m[i].refcnt != m[0].refcnt) {
			add(cr, S, "refcnt", V_FAIL, 0, "leak: the reference count of %s moved from %ld "
			    "to %ld over %u cycles", mod, m[0].refcnt, m[cycles].refcnt, cycles);
			return;
		}
	add(cr, S, "refcnt", V_PASS, 0, "reference count of %s steady at %ld", mod, m[0].refcnt);
}

/* The values of one sample key in the phases of one kind (for a label prefix, or all). */
struct phase_values {
	double *v[64];
	size_t n[64];
	const double *cv[64];
	size_t nr;
};

static void collect(const struct cellrun *cr, const struct perf_series *s,
		    enum perf_phase_kind kind, const char *only, struct phase_values *pv)
{
	memset(pv, 0, sizeof(*pv));
	for (size_t i = 0; i < cr->phases.n && pv->nr < ARRAY_SIZE(pv->v); i++) {
		const struct perf_phase *p = &cr->phases.p[i];
		double *v;
		size_t n;

		if (p->kind != kind || (only && strcmp(p->label, only)))
			continue;
		v = perf_values_in(s, p->start_ns, p->end_ns, &n);
		if (!v)
			continue;
		pv->v[pv->nr] = v;
		pv->cv[pv->nr] = v;
		pv->n[pv->nr++] = n;
	}
}

static void phase_values_release(struct phase_values *pv)
{
	for (size_t i = 0; i < pv->nr; i++)
		free(pv->v[i]);
	pv->nr = 0;
}

static double threshold_of(const struct scenario *sc, const char *metric)
{
	for (size_t i = 0; i < sc->perf.nr_thresholds; i++)
		if (!strcmp(sc->perf.thresholds[i].metric, metric))
			return sc->perf.thresholds[i].pct;
	return sc->perf.threshold_pct;
}

static json_object *jdouble(double v)
{
	return json_object_new_double(round(v * 1000) / 1000);
}

/* The last step's B phases: its own patched phase and every pair's. */
static int is_final_b(const struct perf_phase *p, const char *last_step)
{
	return p->kind == PHASE_B && (!strcmp(p->label, last_step) ||
				      !strncmp(p->label, "pair", 4));
}

/* One metric: A phases against the last step's B phases. */
static void judge_metric(struct cellrun *cr, const struct perf_metric *m,
			 const struct perf_samples *ps, const char *last_step, json_object *jm)
{
	const struct perf_series *s = perf_series_find(ps, m->sample);
	struct phase_values a, b;
	struct stats_group ga, gb;
	struct stats_opts o;
	struct stats_result r;
	struct kerr e = KERR_INIT;
	double thr = threshold_of(cr->sc, m->name);
	char name[96];
	json_object *j = json_object_new_object(), *per = json_object_new_object();

	snprintf(name, sizeof(name), "perf:%s", m->name);
	collect(cr, s, PHASE_A, NULL, &a);
	memset(&b, 0, sizeof(b));
	for (size_t i = 0; i < cr->phases.n && b.nr < ARRAY_SIZE(b.v); i++) {
		const struct perf_phase *p = &cr->phases.p[i];
		size_t n;
		double *v;

		if (!is_final_b(p, last_step) || !(v = perf_values_in(s, p->start_ns, p->end_ns, &n)))
			continue;
		b.v[b.nr] = v;
		b.cv[b.nr] = v;
		b.n[b.nr++] = n;
	}
	/* every phase's own value, for the report */
	for (size_t i = 0; i < cr->phases.n; i++) {
		const struct perf_phase *p = &cr->phases.p[i];
		size_t n;
		double *v = perf_values_in(s, p->start_ns, p->end_ns, &n);

		if (v && p->kind != PHASE_T)
			json_object_object_add(per, p->label, jdouble(stats_of(m->stat, v, n)));
		free(v);
	}
	json_object_object_add(j, "unit", json_object_new_string(m->unit));
	json_object_object_add(j, "statistic", json_object_new_string(stats_kind_name(m->stat)));
	json_object_object_add(j, "higher_is_better", json_object_new_boolean(m->higher_is_better));
	json_object_object_add(j, "threshold_pct", jdouble(thr));
	json_object_object_add(j, "phases", per);
	ga = (struct stats_group){ a.cv, a.n, a.nr };
	gb = (struct stats_group){ b.cv, b.n, b.nr };
	memset(&o, 0, sizeof(o));
	o.kind = m->stat;
	o.higher_is_better = m->higher_is_better;
	o.threshold = thr / 100;
	o.confidence = cr->sc->perf.confidence;
	o.resamples = cr->sc->perf.resamples;
	if (!a.nr || !b.nr) {
		/* a key some phases never carry: no stall, no share found in that phase */
		add(cr, "perf", name, V_SKIP, 0, "%s: not compared: no %s samples in the %s "
		    "phases", m->name, m->sample, !a.nr && !b.nr ? "unpatched or patched" :
		    !a.nr ? "unpatched" : "patched");
		json_object_object_add(j, "verdict", json_object_new_string("NOT-COMPARED"));
	} else if (stats_compare(&ga, &gb, &o, &r, &e) < 0) {
		/* no samples (a workload that never reports this key), or a baseline of 0 (no
		 * stall, no missed tick): nothing to compare, which is not a finding */
		add(cr, "perf", name, V_SKIP, 0, "%s: not compared: %s", m->name, e.msg);
		json_object_object_add(j, "verdict", json_object_new_string("NOT-COMPARED"));
		json_object_object_add(j, "reason", json_object_new_string(e.msg));
	} else {
		const char *dir = m->higher_is_better ? "higher is better" : "lower is better";
		struct check_result *c;
		enum verdict v = r.verdict == STATS_FAIL ? V_FAIL :
				 r.verdict == STATS_PASS ? V_PASS : V_SKIP;

		if (r.verdict == STATS_FAIL)
			c = add(cr, "perf", name, v, 0, "%s regressed %+.1f%% (%.4g -> %.4g %s, %.0f%% "
				"interval %+.1f%%..%+.1f%%, threshold %.4g%%, %zu pair(s))", m->name,
				r.change * 100, r.a, r.b, m->unit, o.confidence * 100, r.lo * 100,
				r.hi * 100, thr, b.nr < a.nr ? b.nr : a.nr);
		else if (r.verdict == STATS_PASS)
			c = add(cr, "perf", name, v, 0, "%s %+.1f%% (%.4g -> %.4g %s, interval "
				"%+.1f%%..%+.1f%%): within %.4g%%", m->name, r.change * 100, r.a, r.b,
				m->unit, r.lo * 100, r.hi * 100, thr);
		else if ((m->higher_is_better ? -r.hi : r.lo) > thr / 100)
			/* beyond the threshold on the pooled evidence, but not phase by phase */
			c = add(cr, "perf", name, v, 0, "inconclusive: %s %+.1f%% (interval %+.1f%%.."
				"%+.1f%% beyond the %.4g%% threshold, but some patched phase is not worse "
				"than every unpatched one; noise +-%.1f%%)", m->name, r.change * 100,
				r.lo * 100, r.hi * 100, thr, r.noise * 100);
		else
			c = add(cr, "perf", name, v, 0, "inconclusive: %s %+.1f%% (interval %+.1f%%.."
				"%+.1f%% straddles the %.4g%% threshold; noise +-%.1f%%)", m->name,
				r.change * 100, r.lo * 100, r.hi * 100, thr, r.noise * 100);
		check_evidence(c, "%s of %s, %s; A: %zu phase(s), %zu samples; B: %zu phase(s), "
			       "%zu samples; %u bootstrap resamples", stats_kind_name(m->stat),
			       m->sample, dir, a.nr, r.a_samples, b.nr, r.b_samples, o.resamples);
		json_object_object_add(j, "a", jdouble(r.a));
		json_object_object_add(j, "b", jdouble(r.b));
		json_object_object_add(j, "change_pct", jdouble(r.change * 100));
		json_object_object_add(j, "ci_pct", json_object_new_array());
		json_object_array_add(json_object_object_get(j, "ci_pct"), jdouble(r.lo * 100));
		json_object_array_add(json_object_object_get(j, "ci_pct"), jdouble(r.hi * 100));
		json_object_object_add(j, "noise_pct", jdouble(r.noise * 100));
		json_object_object_add(j, "pairs", json_object_new_int((int)(b.nr < a.nr ? b.nr : a.nr)));
		json_object_object_add(j, "verdict",
				       json_object_new_string(stats_verdict_name(r.verdict)));
	}
	json_object_object_add(jm, m->name, j);
	phase_values_release(&a);
	phase_values_release(&b);
}

/* Transition disruption: the worst value of a sample key inside the transition windows
 * against the worst in the unpatched phases. A floor keeps TCG artefacts from counting: the
 * ftrace text patching of every transition makes QEMU drop its translated code, and frames of
 * about 20 ms at a transition are normal there (the A/A runs showed 21 ms against 10 ms). */
static void judge_transition(struct cellrun *cr, const struct perf_samples *ps, const char *key,
			     const char *what, double floor_us, json_object *jm)
{
	const struct perf_series *s = perf_series_find(ps, key);
	struct phase_values a;
	double worst_a = 0, worst_t = 0, pct = cr->sc->perf.transition_pct;
	char name[160], metric[128];
	size_t ta = 0;
	const char *worst_label = "";
	json_object *j;

	collect(cr, s, PHASE_A, NULL, &a);
	for (size_t i = 0; i < a.nr; i++)
		for (size_t k = 0; k < a.n[i]; k++)
			if (a.v[i][k] > worst_a)
				worst_a = a.v[i][k];
	for (size_t i = 0; i < cr->phases.n; i++) {
		const struct perf_phase *p = &cr->phases.p[i];
		size_t n;
		double *v;

		if (p->kind != PHASE_T)
			continue;
		ta++;
		v = perf_values_in(s, p->start_ns, p->end_ns, &n);
		if (v && stats_of(STATS_MAX, v, n) > worst_t) {
			worst_t = stats_of(STATS_MAX, v, n);
			worst_label = p->label;
		}
		free(v);
	}
	snprintf(metric, sizeof(metric), "%.40s.transition_%.40s_max", ps->workload, what);
	snprintf(name, sizeof(name), "perf:%s", metric);
	j = json_object_new_object();
	json_object_object_add(j, "unit", json_object_new_string("us"));
	json_object_object_add(j, "baseline_worst", jdouble(worst_a));
	json_object_object_add(j, "transition_worst", jdouble(worst_t));
	json_object_object_add(j, "windows", json_object_new_int((int)ta));
	/* no stall samples in the unpatched phases means no stall there: its worst is 0 */
	if (!ta) {
		add(cr, "perf", name, V_SKIP, 0, "%s: no transition window or baseline to compare",
		    metric);
		json_object_object_add(j, "verdict", json_object_new_string("NOT-COMPARED"));
	} else if (worst_t > worst_a * (1 + pct / 100) && worst_t - worst_a > floor_us) {
		struct check_result *c = add(cr, "perf", name, V_FAIL, 0, "transition disruption: "
			"worst %s %.1f ms in %s, against %.1f ms at worst unpatched (allowed +%.4g%%)",
			what, worst_t / 1000, worst_label, worst_a / 1000, pct);
		check_evidence(c, "%zu transition window(s); noise floor %.1f ms", ta,
			       floor_us / 1000);
		json_object_object_add(j, "verdict", json_object_new_string("FAIL"));
	} else {
		add(cr, "perf", name, V_PASS, 0, "worst %s %.1f ms in %zu transition window(s), "
		    "%.1f ms at worst unpatched", what, worst_t / 1000, ta, worst_a / 1000);
		json_object_object_add(j, "verdict", json_object_new_string("PASS"));
	}
	json_object_object_add(jm, metric, j);
	phase_values_release(&a);
}

/* Stops the workloads, reads the last samples, judges every metric. */
static void perf_finish(struct cellrun *cr, size_t last)
{
	const char *kill_argv[] = { "/bin/sh", "-c", "killall -TERM klpq-workload; sleep 1; "
				    "killall -KILL klpq-workload 2>/dev/null; true", NULL };
	json_object *jm, *jp, *js, *jph;
	int code;

	if (!cr->wl)
		return;
	if (!cr->down && cr->perf_on)
		guest_exec(cr, "perf", "workloads", kill_argv, 10000, &code, NULL);
	if (!cr->down && cr->perf_on)
		perf_pull(cr, "perf");
	if (!cr->perf_on || cr->down)
		return;
	jp = json_object_new_object();
	jm = json_object_new_object();
	js = json_object_new_object();
	jph = json_object_new_array();
	for (size_t i = 0; i < cr->phases.n; i++) {
		const struct perf_phase *p = &cr->phases.p[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "label", json_object_new_string(p->label));
		json_object_object_add(o, "kind", json_object_new_string(
			p->kind == PHASE_A ? "unpatched" : p->kind == PHASE_B ? "patched" : "transition"));
		json_object_object_add(o, "duration_ms",
				       json_object_new_int64((int64_t)((p->end_ns - p->start_ns) / 1000000)));
		json_object_array_add(jph, o);
	}
	for (size_t w = 0; w < cr->sc->nr_workloads; w++) {
		const struct perf_samples *ps = &cr->wl[w];
		size_t nm;
		const struct perf_metric *m = perf_metrics(&nm);
		json_object *jw = json_object_new_object();

		for (size_t k = 0; k < ps->nr_series; k++) {
			const struct perf_series *s = &ps->series[k];
			double *v = xcalloc(s->n ? s->n : 1, sizeof(*v));
			json_object *o = json_object_new_object();

			memcpy(v, s->v, s->n * sizeof(*v));
			json_object_object_add(o, "count", json_object_new_int64((int64_t)s->n));
			if (s->n) {
				json_object_object_add(o, "min", jdouble(stats_quantile(v, s->n, 0)));
				json_object_object_add(o, "p50", jdouble(stats_quantile(v, s->n, 0.5)));
				json_object_object_add(o, "p99", jdouble(stats_quantile(v, s->n, 0.99)));
				json_object_object_add(o, "max", jdouble(stats_quantile(v, s->n, 1)));
			}
			json_object_object_add(jw, s->key, o);
			free(v);
		}
		json_object_object_add(jw, "bad_lines", json_object_new_int64((int64_t)ps->bad_lines));
		json_object_object_add(js, ps->workload, jw);
		for (size_t k = 0; k < nm; k++)
			if (!strcmp(m[k].workload, ps->workload))
				judge_metric(cr, &m[k], ps, cr->sc->patchset.steps[last].name, jm);
		if (!strcmp(ps->workload, "gaming"))
			judge_transition(cr, ps, "frame_us", "frame", 25000, jm);
		if (!strcmp(ps->workload, "streaming"))
			judge_transition(cr, ps, "stall_us", "stall", 100000, jm);
	}
	json_object_object_add(jp, "phases", jph);
	json_object_object_add(jp, "samples", js);
	json_object_object_add(jp, "metrics", jm);
	json_object_object_add(cr->cell->metrics, "perf", jp);
}

/* ---- the cell ---- */

static void log_line(void *ctx, const char *msg)
{
	progress(ctx, "%s", msg);
}

/* Kernel, module builds and initramfs. 0, or -1 after recording the failure. */
/* A kmod step's module and its dependencies, in load order, from the kernel's modules.dep. */
static int kmod_resolve(struct cellrun *cr, size_t i)
{
	const struct step *st = &cr->sc->patchset.steps[i];
	const char *wanted[] = { st->kmod, NULL };
	char *dep_path = path_join(cr->k.modules, "modules.dep");
	char *bi_path = path_join(cr->k.modules, "modules.builtin");
	struct sb dep = SB_INIT, bi = SB_INIT;
	struct kerr e = KERR_INIT, ignore = KERR_INIT;
	char **paths = NULL;
	size_t nr = 0;
	int ret = -1;

	if (read_file(dep_path, &dep, 64u << 20, &e) < 0) {
		add(cr, st->name, "kmod", V_ERROR, 0, "%s", e.msg);
		goto out;
	}
	if (read_file(bi_path, &bi, 64u << 20, &ignore) < 0)
		sb_reset(&bi);
	if (modules_load_order(dep.buf, bi.len ? bi.buf : NULL, wanted, &paths, &nr, &e) < 0) {
		/* the patch set names a module this kernel does not have: its input, not ours */
		add(cr, st->name, "kmod", V_FAIL, 0, "kernel %s has no module %s: %s", cr->k.release,
		    st->kmod, e.msg);
		goto out;
	}
	if (nr == 0) {
		add(cr, st->name, "kmod", V_FAIL, 0, "%s is built into kernel %s: it cannot be "
		    "loaded or removed", st->kmod, cr->k.release);
		goto out;
	}
	cr->kmod_paths[i] = xcalloc(nr, sizeof(char *));
	for (size_t k = 0; k < nr; k++)
		cr->kmod_paths[i][k] = path_join(cr->k.modules, paths[k]);
	cr->nr_kmod_paths[i] = nr;
	ret = 0;
out:
	for (size_t k = 0; k < nr; k++)
		free(paths[k]);
	free(paths);
	sb_release(&dep);
	sb_release(&bi);
	free(dep_path);
	free(bi_path);
	return ret;
}

static int prepare(struct cellrun *cr, const struct kernel_spec *ks)
{
	const struct patchset *ps = &cr->sc->patchset;
	struct kerr e = KERR_INIT;
	uint64_t t0 = now_ms();
	struct check_result *r;

	if (kernel_prepare(ks, cr->rn->cache, cr->rn->stop_fd, &cr->k, log_line, cr, &e) < 0) {
		add(cr, "prepare", "kernel", V_ERROR, now_ms() - t0, "%s", e.msg);
		return -1;
	}
	free(cr->cell->release);
	cr->cell->release = xstrdup(cr->k.release);
	{
		/* what booted, by content: --resume keeps this cell only for the same bytes */
		char sum[65];
		struct kerr he = KERR_INIT;

		if (sha256_file(cr->k.vmlinuz, sum, &he) == 0) {
			free(cr->cell->kernel_image);
			free(cr->cell->kernel_sha256);
			cr->cell->kernel_image = xstrdup(cr->k.vmlinuz);
			cr->cell->kernel_sha256 = xstrdup(sum);
		}
	}
	add(cr, "prepare", "kernel", V_PASS, now_ms() - t0, "%s ready%s", cr->k.release,
	    cr->k.from_cache ? " (cache)" : "");
	cr->programs = xcalloc(ps->nr_programs + 1, sizeof(*cr->programs));
	for (size_t i = 0; i < ps->nr_programs; i++) {
		struct sb blog = SB_INIT;
		int fault = 0;

		kerr_clear(&e);
		t0 = now_ms();
		if (pbuild_program(&ps->programs[i], cr->rn->cache, cr->rn->stop_fd, &cr->programs[i],
				   &fault, &blog, &e) < 0) {
			r = add(cr, "prepare", "program", fault ? V_FAIL : V_ERROR, now_ms() - t0, "%s",
				e.msg);
			check_evidence_text(r, "| ", blog.buf, 60);
			sb_release(&blog);
			return -1;
		}
		sb_release(&blog);
		add(cr, "prepare", "program", V_PASS, now_ms() - t0, "%s built for the guest",
		    ps->programs[i].name);
	}
	cr->mods = xcalloc(ps->nr_steps, sizeof(*cr->mods));
	cr->kmod_paths = xcalloc(ps->nr_steps, sizeof(*cr->kmod_paths));
	cr->nr_kmod_paths = xcalloc(ps->nr_steps, sizeof(*cr->nr_kmod_paths));
	for (size_t i = 0; i < ps->nr_steps; i++) {
		struct sb blog = SB_INIT;
		int fault = 0;

		if (ps->steps[i].kind == STEP_KMOD) {
			if (kmod_resolve(cr, i) < 0)
				return -1;
			continue;
		}
		if (ps->steps[i].kind != STEP_PATCH && ps->steps[i].kind != STEP_HELPER)
			continue;
		kerr_clear(&e);
		t0 = now_ms();
		if (pbuild_step(&ps->steps[i], &cr->k, cr->rn->cache, cr->rn->stop_fd, &cr->mods[i],
				&fault, &blog, &e) < 0) {
			r = add(cr, ps->steps[i].name, "build", fault ? V_FAIL : V_ERROR,
				now_ms() - t0, "%s", e.msg);
			check_evidence_text(r, "| ", blog.buf, 60);
			sb_release(&blog);
			return -1;
		}
		sb_release(&blog);
		for (size_t j = 0; j < i; j++) {
			/* the same module in two steps (a re-apply, a downgrade) is fine; two
			 * different modules of one name are not */
			if (cr->mods[j].name && !strcmp(cr->mods[j].name, cr->mods[i].name) &&
			    (strcmp(cr->mods[j].key, cr->mods[i].key) ||
			     ps->steps[j].kind != ps->steps[i].kind)) {
				add(cr, ps->steps[i].name, "build", V_FAIL, 0,
				    "module name %s is used by step %s too, for a different module: "
				    "module names must differ", cr->mods[i].name, ps->steps[j].name);
				return -1;
			}
		}
		add(cr, ps->steps[i].name, "build", V_PASS, now_ms() - t0, "%s%s",
		    cr->mods[i].name, cr->mods[i].from_cache ? " (cache)" : "");
	}
	return 0;
}

static int make_initramfs(struct cellrun *cr, const char *out)
{
	const struct patchset *ps = &cr->sc->patchset;
	static const char *const boot_modules[] = { "virtio_pci", "virtio_console", NULL };
	size_t nfiles = 0, ng = 0, max = ps->nr_steps + ps->nr_programs + 1;
	struct initramfs_file *files;
	char **guest, **hosts;
	size_t nh = 0;
	struct initramfs_spec spec;
	struct kerr e = KERR_INIT;
	uint64_t t0 = now_ms();
	int ret;

	for (size_t i = 0; i < ps->nr_steps; i++)
		max += cr->nr_kmod_paths[i];
	files = xcalloc(max, sizeof(*files));
	guest = xcalloc(max, sizeof(*guest));
	hosts = xcalloc(max, sizeof(*hosts));
	for (size_t i = 0; i < ps->nr_steps; i++) {
		int dup = 0;

		if (!cr->mods[i].name)
			continue;
		for (size_t j = 0; j < i; j++)
			dup |= cr->mods[j].name && !strcmp(cr->mods[j].name, cr->mods[i].name);
		if (dup)
			continue;
		guest[ng] = xasprintf("/klpq/patches/%s.ko", cr->mods[i].name);
		files[nfiles].host_path = cr->mods[i].path;
		files[nfiles].guest_path = guest[ng++];
		files[nfiles].mode = 0644;
		files[nfiles++].decompress = 1;
	}
	for (size_t i = 0; i < ps->nr_programs; i++) {
		guest[ng] = xasprintf("/klpq/bin/%s", ps->programs[i].name);
		files[nfiles].host_path = cr->programs[i];
		files[nfiles].guest_path = guest[ng++];
		files[nfiles++].mode = 0755;
	}
	/* a kmod step's modules go to /klpq/kmod/<file>.ko, stored decompressed; the guest path
	 * replaces the host one in kmod_paths (the load order stays) */
	for (size_t i = 0; i < ps->nr_steps; i++) {
		for (size_t k = 0; k < cr->nr_kmod_paths[i]; k++) {
			char *host = cr->kmod_paths[i][k], *base = strrchr(host, '/'), *dot;
			char *g, *bdup;
			int dup = 0;

			bdup = xstrdup(base ? base + 1 : host);
			dot = strstr(bdup, ".ko");
			if (dot)
				dot[3] = '\0';
			g = xasprintf("/klpq/kmod/%s", bdup);
			free(bdup);
			for (size_t j = 0; j < ng; j++)
				dup |= !strcmp(guest[j], g);
			if (!dup) {
				files[nfiles].host_path = host;
				files[nfiles].guest_path = g;
				files[nfiles].mode = 0644;
				files[nfiles++].decompress = 1;
				guest[ng++] = xstrdup(g);
			}
			cr->kmod_paths[i][k] = g; /* the guest's path from now on */
			hosts[nh++] = host; /* freed once the archive is written */
		}
	}
	memset(&spec, 0, sizeof(spec));
	spec.output = out;
	spec.agent = cr->rn->agent;
	spec.busybox = cr->rn->busybox;
	spec.modules_dir = cr->k.modules;
	spec.release = cr->k.release;
	spec.boot_modules = boot_modules;
	spec.files = files;
	spec.nr_files = nfiles;
	if (cr->sc->nr_workloads) {
		files[spec.nr_files].host_path = cr->rn->workload;
		files[spec.nr_files].guest_path = "/bin/klpq-workload";
		files[spec.nr_files].mode = 0755;
		spec.nr_files++;
	}
	ret = initramfs_build(&spec, &e);
	if (ret < 0)
		add(cr, "prepare", "initramfs", V_ERROR, now_ms() - t0, "%s", e.msg);
	for (size_t i = 0; i < ng; i++)
		free(guest[i]);
	free(guest);
	free(files);
	for (size_t i = 0; i < nh; i++)
		free(hosts[i]);
	free(hosts);
	return ret;
}

static int stopped(struct cellrun *cr, const char *step);

/* This cell's ERROR is one a retry cannot change: the scheduler does not run it again. */
static void no_retry(struct cellrun *cr, const char *why)
{
	if (!cr->cell->no_retry)
		cr->cell->no_retry = xstrdup(why);
}

/* QEMU's own last lines (qemu.log without its first line, the command line) as evidence. */
static void qemu_log_tail(struct check_result *r, const char *qlog)
{
	struct sb log = SB_INIT;
	struct kerr ignore = KERR_INIT;
	const char *body;

	if (read_file(qlog, &log, 0, &ignore) == 0 && (body = strchr(log.buf, '\n')) && body[1]) {
		check_evidence(r, "QEMU's last lines (%s):", qlog);
		check_evidence_text(r, "  ", body + 1, 20);
	}
	sb_release(&log);
}

/* The accelerator for this cell's kernel (accel.c: a trial boot under KVM, cached), recorded in
 * the cell and shown. -1 after adding the ERROR when the scenario's choice cannot be met. */
static int decide_accel(struct cellrun *cr, struct accel_choice *ac)
{
	struct accel_opts o = { .cache_dir = cr->rn->cache, .stop_fd = cr->rn->stop_fd,
				.kernel_sha256 = cr->cell->kernel_sha256 };
	struct kerr e = KERR_INIT;
	uint64_t t0 = now_ms();

	if (accel_decide(cr->sc->vm.accel, cr->k.vmlinuz, &o, ac, &e) < 0) {
		if (fd_readable(cr->rn->stop_fd)) {
			stopped(cr, "boot");
			return -1;
		}
		add(cr, "boot", "accel", V_ERROR, now_ms() - t0, "%s", e.msg);
		free(cr->cell->accel_reason);
		cr->cell->accel_reason = xstrdup(e.msg);
		no_retry(cr, "a retry would come to the same decision (it is cached per kernel and host)");
		return -1;
	}
	free(cr->cell->accel);
	cr->cell->accel = xstrdup(ac->accel);
	free(cr->cell->accel_reason);
	cr->cell->accel_reason = xstrdup(ac->reason);
	if (ac->trial_ms)
		json_object_object_add(cr->cell->metrics, "accel_trial_ms",
				       json_object_new_int64((int64_t)ac->trial_ms));
	if (ac->cached)
		progress(cr, "accel %s: %s (decided earlier, cached)", ac->accel, ac->reason);
	else if (ac->trial_ms)
		progress(cr, "accel %s: %s (trial %.1f s)", ac->accel, ac->reason,
			 ac->trial_ms / 1000.0);
	else
		progress(cr, "accel %s: %s", ac->accel, ac->reason);
	return 0;
}

static int boot(struct cellrun *cr, const char *initrd)
{
	const struct scenario *sc = cr->sc;
	char *cons = path_join(cr->cell->dir, "console.log");
	char *alog = path_join(cr->cell->dir, "agent.log");
	char *qlog = path_join(cr->cell->dir, "qemu.log");
	struct vm_config cfg;
	struct kerr e = KERR_INIT;
	json_object *ready = NULL;
	struct sb cmdline = SB_INIT;
	struct accel_choice ac;
	uint64_t t0 = now_ms();
	enum vm_wait_result w;
	uint64_t tb;
	int ret = -1, started;

	/* printk.devkmsg=on: the agent's kernel-log marks must not be rate limited.
	 * panic=-1 with QEMU's -no-reboot: a panic ends the VM at once instead of hanging. */
	sb_adds(&cmdline, "console=ttyS0,115200 panic=-1 printk.devkmsg=on sysrq_always_enabled");
	/* livepatch_debug: the pr_debug lines of kernel/livepatch, as the kernel's selftests turn
	 * them on, without the per-task lines of klp_try_switch_task */
	if (sc->livepatch_debug)
		sb_adds(&cmdline, " dyndbg=\"file kernel/livepatch/* +p; func klp_try_switch_task -p\"");
	if (sc->vm.extra_cmdline && *sc->vm.extra_cmdline)
		sb_addf(&cmdline, " %s", sc->vm.extra_cmdline);
	memset(&cfg, 0, sizeof(cfg));
	cfg.name = cr->cell->id;
	cfg.kernel = cr->k.vmlinuz;
	cfg.initrd = initrd;
	cfg.cmdline = cmdline.buf;
	cfg.memory_mb = sc->vm.memory_mb;
	cfg.cpus = sc->vm.cpus;
	if (decide_accel(cr, &ac) < 0)
		goto out;
	cfg.accel = ac.accel;
	cfg.cpu = ac.cpu;
	cfg.network = sc->vm.network;
	cfg.console_log = cons;
	cfg.agent_log = alog;
	cfg.qemu_log = qlog;
	cfg.stop_fd = cr->rn->stop_fd;
	cfg.on_console = on_console;
	cfg.ctx = cr;
	cr->console_path = xstrdup(cons);
	if ((started = vm_start(&cfg, &cr->vm, &e)) < 0) {
		struct check_result *c = add(cr, "boot", "qemu", V_ERROR, now_ms() - t0, "%s", e.msg);
		qemu_log_tail(c, qlog);
		if (started == VM_START_REFUSED)
			no_retry(cr, "QEMU refused to start; the same command line would fail again");
		goto out;
	}
	free(cr->cell->qemu_version);
	cr->cell->qemu_version = xstrdup(vm_qemu_version(cr->vm));
	if (strcmp(vm_accel(cr->vm), ac.accel)) {
		/* QMP's query-kvm is the truth: record what ran */
		free(cr->cell->accel_reason);
		cr->cell->accel_reason = xasprintf("%s; but QEMU reports %s running", ac.reason,
						   vm_accel(cr->vm));
	}
	free(cr->cell->accel);
	cr->cell->accel = xstrdup(vm_accel(cr->vm));
	progress(cr, "booting %s under %s (QEMU %s)", cr->k.release, vm_accel(cr->vm),
		 vm_qemu_version(cr->vm));
	/* a kernel that prints nothing at all has not started (a KVM that cannot run it, a boot
	 * that hung at once): that is known after console_s, not after boot_s */
	tb = now_ms();
	w = vm_wait_ready(cr->vm, sc->timeouts.console_ms < sc->timeouts.boot_ms ?
			  sc->timeouts.console_ms : sc->timeouts.boot_ms, &ready, &e);
	if (w == VM_TIMEOUT && sc->timeouts.console_ms < sc->timeouts.boot_ms) {
		if (!cr->console_bytes) {
			struct check_result *c = add(cr, "boot", "console", V_ERROR, now_ms() - t0,
				"the guest printed nothing on its console in %.0f s (accel %s, -cpu %s)",
				sc->timeouts.console_ms / 1000.0, ac.accel, ac.cpu);
			check_evidence(c, "accelerator: %s", ac.reason);
			check_evidence(c, "kernel command line: %s", cmdline.buf);
			cr->down = 1;
			goto out;
		}
		kerr_clear(&e);
		w = vm_wait_ready(cr->vm, sc->timeouts.boot_ms - (unsigned)(now_ms() - tb), &ready,
				  &e);
	}
	if (w != VM_OK) {
		guest_trouble(cr, "boot", "agent", w, &e);
		/* a boot that crashed the kernel is a kernel FAIL, one that just hung is ERROR */
		goto out;
	}
	{
		const char *kver = proto_get_str(ready, "kernel", "");
		uint64_t ms = now_ms() - t0;
		json_object_object_add(cr->cell->metrics, "boot_ms", json_object_new_int64((int64_t)ms));
		if (strcmp(kver, cr->k.release)) {
			add(cr, "boot", "agent", V_ERROR, ms,
			    "guest runs kernel %s, expected %s", kver, cr->k.release);
			goto out;
		}
		struct check_result *r = add(cr, "boot", "agent", V_PASS, ms,
					     "agent ready on %s after %.1f s (%s)", kver,
					     ms / 1000.0, vm_accel(cr->vm));
		check_evidence(r, "guest uptime at ready: %lld ms",
			       (long long)proto_get_int(ready, "uptime_ms", -1));
		check_evidence(r, "kernel command line: %s", cmdline.buf);
	}
	console_crashes(cr, "boot");
	ret = 0;
out:
	json_object_put(ready);
	sb_release(&cmdline);
	free(cons);
	free(alog);
	free(qlog);
	return ret;
}

static void poweroff(struct cellrun *cr)
{
	uint64_t t0 = now_ms();
	const char *why;

	if (!cr->vm)
		return;
	if (cr->down) {
		vm_stop(cr->vm, 2000);
		return;
	}
	vm_stop(cr->vm, 15000);
	why = vm_exit_reason(cr->vm);
	if (why && strstr(why, "powered off"))
		add(cr, "end", "poweroff", V_PASS, now_ms() - t0, "%s", why);
	else
		add(cr, "end", "poweroff", cr->patched ? V_FAIL : V_ERROR, now_ms() - t0,
		    "guest did not power off cleanly: %s", why ? why : "still running, killed");
}

/* The cell's scratch folder for its guest image: $TMPDIR (or /tmp)/klpq-<uid>/cell-<pid>-XXXXXX,
 * locked while it lives (make_locked_tmp) so that only a dead klpq's is swept. */
static char *make_tmpdir(int *lock_fd, struct kerr *e)
{
	const char *t = getenv("TMPDIR");

	return make_locked_tmp(t && *t ? t : "/tmp", "cell-", lock_fd, e);
}

static void save_progress(struct cellrun *cr)
{
	struct kerr e = KERR_INIT;

	if (cell_write(cr->cell, &e) < 0)
		fprintf(stderr, "klpq: cannot save results: %s\n", e.msg);
}

/* A stop (Ctrl-C, SIGTERM) outside a VM wait: record it once. The stop descriptor is never
 * drained, so it stays readable for every later check. */
static int stopped(struct cellrun *cr, const char *step)
{
	if (cr->interrupted)
		return 1;
	if (!fd_readable(cr->rn->stop_fd))
		return 0;
	cr->interrupted = 1;
	cr->down = 1;
	add(cr, step, "interrupted", V_ERROR, 0, "interrupted: klpq was asked to stop");
	return 1;
}

int runner_run_cell(struct runner *rn, const struct kernel_spec *ks, struct cell_result *cell)
{
	struct cellrun cr;
	const struct patchset *ps = &rn->sc->patchset;
	uint64_t t0 = now_ms();
	char *tmpdir = NULL, *initrd = NULL;
	struct kerr e = KERR_INIT;
	size_t applied = 0;
	int write_failed = 0, tmp_lock = -1;

	memset(&cr, 0, sizeof(cr));
	cr.rn = rn;
	cr.sc = rn->sc;
	cr.cell = cell;
	cr.live = -1;
	cr.state = xcalloc(ps->nr_steps, sizeof(*cr.state));
	cr.console = cscan_new();
	progress(&cr, "cell start: %s with patch set %s", ks->label, ps->name);
	{
		char sum[65];
		struct kerr he = KERR_INIT;

		if (pbuild_patchset_hash(ps, sum, &he) == 0)
			cell->patchset_sha256 = xstrdup(sum);
	}

	/* The cell's results.json exists from the start and is rewritten after every phase, so a
	 * klpq that is killed outright still leaves what it saw (marked unfinished). */
	save_progress(&cr);
	if (prepare(&cr, ks) < 0) {
		stopped(&cr, "prepare"); /* a download or build cut short by a stop */
		goto end;
	}
	tmpdir = make_tmpdir(&tmp_lock, &e);
	if (!tmpdir) {
		add(&cr, "prepare", "initramfs", V_ERROR, 0, "%s", e.msg);
		no_retry(&cr, "the temporary folder is refused the same way every time");
		goto end;
	}
	initrd = path_join(tmpdir, "initramfs.cpio");
	if (stopped(&cr, "prepare") || make_initramfs(&cr, initrd) < 0 || boot(&cr, initrd) < 0)
		goto end;
	save_progress(&cr);
	if (run_probes(&cr, "baseline", ps->nr_steps - 1, 0, -1) < 0)
		goto end;
	check_taint(&cr, "baseline");
	if (rn->sc->nr_workloads && perf_start(&cr) < 0)
		goto end;
	for (size_t i = 0; i < ps->nr_steps && !cr.down; i++) {
		int r = apply_step(&cr, i);
		save_progress(&cr);
		if (r != 0)
			break;
		applied = i + 1;
		if (cr.state[i] == ST_LIVE && perf_phase(&cr, PHASE_B, ps->steps[i].name) < 0)
			break;
	}
	/* A refused last step leaves the step before it live: rollback, reapply, the pairs and
	 * the leak cycles are done on that one. */
	if (!cr.down && applied == ps->nr_steps && cr.live >= 0 && rn->sc->rollback)
		rollback(&cr, (size_t)cr.live);
	if (cr.perf_on && !cr.down && applied == ps->nr_steps && cr.live >= 0) {
		const struct loaded *l = loaded_find(&cr, cr.mods[cr.live].name);
		if (l && l->inserted)
			perf_pairs(&cr, (size_t)cr.live);
	}
	if (cr.wl) {
		perf_finish(&cr, cr.live >= 0 ? (size_t)cr.live : 0);
		cr.perf_on = 0; /* the workloads are stopped: no more phases */
		save_progress(&cr);
	}
	if (!cr.down && !cr.interrupted && applied == ps->nr_steps && cr.live >= 0) {
		leak_check(&cr, (size_t)cr.live);
		save_progress(&cr);
	}
	if (!cr.interrupted && applied + 1 < ps->nr_steps)
		add(&cr, "end", "remaining", V_SKIP, 0, "%zu step(s) not run after %s of %s",
		    ps->nr_steps - applied - 1, cr.down ? "the loss of the guest" : "the failure",
		    ps->steps[applied].name);
end:
	poweroff(&cr);
	if (cr.vm) {
		uint64_t over, bad;
		vm_channel_stats(cr.vm, &over, &bad);
		if (vm_log_errno(cr.vm)) {
			add(&cr, "end", "logs", V_ERROR, 0, "the logs of this cell are incomplete: %s",
			    strerror(vm_log_errno(cr.vm)));
			no_retry(&cr, "the results folder refuses writes; another attempt could not "
				 "write either");
		}
		/* before any patch a garbled channel is not the patch's doing */
		if (over || bad)
			add(&cr, "end", "agent-channel", cr.patched ? V_FAIL : V_ERROR, 0,
			    "the guest wrote %llu oversized and %llu malformed line(s) into the agent "
			    "channel (dropped; see agent.log)", (unsigned long long)over,
			    (unsigned long long)bad);
	}
	cscan_finish(cr.console);
	console_crashes(&cr, "end");
	cell->finished = !cr.interrupted;
	cell->duration_ms = now_ms() - t0;
	{
		/* the cell's own process: klpq's cost for this cell, QEMU excluded */
		struct rusage ru;
		json_object *h = json_object_new_object();

		getrusage(RUSAGE_SELF, &ru);
		json_object_object_add(h, "cpu_user_ms", json_object_new_int64(
			(int64_t)ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000));
		json_object_object_add(h, "cpu_sys_ms", json_object_new_int64(
			(int64_t)ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000));
		json_object_object_add(h, "peak_rss_kb", json_object_new_int64(ru.ru_maxrss));
		json_object_object_add(cell->metrics, "harness", h);
	}
	progress(&cr, "cell done: %s in %.1f s", verdict_name(cell_verdict(cell)),
		 cell->duration_ms / 1000.0);
	if (cell_write(cell, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		write_failed = 1;
	}

	vm_destroy(cr.vm);
	cscan_free(cr.console);
	for (size_t i = 0; cr.wl && i < rn->sc->nr_workloads; i++)
		perf_samples_release(&cr.wl[i]);
	free(cr.wl);
	perf_phases_release(&cr.phases);
	kernel_release(&cr.k);
	if (cr.mods)
		for (size_t i = 0; i < ps->nr_steps; i++)
			built_module_release(&cr.mods[i]);
	free(cr.mods);
	for (size_t i = 0; cr.kmod_paths && i < ps->nr_steps; i++) {
		for (size_t k = 0; k < cr.nr_kmod_paths[i]; k++)
			free(cr.kmod_paths[i][k]);
		free(cr.kmod_paths[i]);
	}
	free(cr.kmod_paths);
	free(cr.nr_kmod_paths);
	for (size_t i = 0; cr.programs && i < ps->nr_programs; i++)
		free(cr.programs[i]);
	free(cr.programs);
	free(cr.state);
	for (size_t i = 0; i < cr.nr_loaded; i++)
		free(cr.loaded[i].name);
	free(cr.loaded);
	for (size_t i = 0; i < cr.nr_titles; i++)
		free(cr.titles[i]);
	free(cr.titles);
	free(cr.console_path);
	free(initrd);
	if (tmpdir)
		rm_rf(tmpdir); /* the guest image is rebuilt each run: not a result */
	free(tmpdir);
	if (tmp_lock >= 0)
		close(tmp_lock);
	return cr.interrupted ? -1 : write_failed ? -2 : 0;
}
