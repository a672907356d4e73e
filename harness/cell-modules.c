/* cell-modules.c: loading and removing modules, a patch's load and settle, expected refusals,
 * the sysfs and method checks (cell.h).
 */
#define _GNU_SOURCE
#include "cell.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- steps ---- */

struct loaded *loaded_find(struct cellrun *cr, const char *name)
{
	for (size_t i = 0; i < cr->nr_loaded; i++)
		if (!strcmp(cr->loaded[i].name, name))
			return &cr->loaded[i];
	return NULL;
}

void note_loaded_as(struct cellrun *cr, const char *name, int plain)
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
int load_path(struct cellrun *cr, const char *step, const char *path, const char *params,
	      struct sb *err, int *err_no)
{
	json_object *args = json_object_new_object();
	struct proto_msg m;
	int ret;

	json_object_object_add(args, "path", json_object_new_string(path));
	if (params && *params)
		json_object_object_add(args, "params", json_object_new_string(params));
	if (cr_call(cr, step, "load", "load", args, cr->sc->timeouts.transition_ms + agent_ms(cr),
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

/* A livepatch (or helper) module of the patch set, where the guest image put it. */
int load_module(struct cellrun *cr, const char *step, const char *modname,
		const char *params, struct sb *err, int *err_no)
{
	char *path = cr->img->guest_path(IMAGE_PATCH, modname);
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
int unload_module_errno(struct cellrun *cr, const char *step, const char *modname,
			struct sb *err, int *err_no)
{
	uint64_t t0 = now_ms();
	int ret, tries = 0;

	for (;;) {
		json_object *args = json_object_new_object();
		struct proto_msg m;
		struct kerr ignore = KERR_INIT;

		json_object_object_add(args, "name", json_object_new_string(modname));
		if (cr_call(cr, step, "unload", "unload", args, agent_ms(cr), &m) != VM_OK)
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
			cr_progress(cr, "%s: %s was still referenced for %.1f s after disable (%d "
				 "attempts)", step, modname, (now_ms() - t0) / 1000.0, tries);
		}
		proto_msg_release(&m);
		return ret;
	}
}

int unload_module(struct cellrun *cr, const char *step, const char *modname,
		  struct sb *err)
{
	return unload_module_errno(cr, step, modname, err, NULL);
}

/* The livepatch transcript of a patch's enable (and below, of its disable); with the scenario's
 * livepatch_debug the pr_debug lines too. Returns the number of lines. */
size_t transcript_apply(const struct cellrun *cr, const char *p, char buf[5][192],
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

size_t transcript_unpatch(const struct cellrun *cr, const char *p, char buf[5][192],
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
void check_refusal(struct cellrun *cr, const char *step, const char *mod,
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
		c = cr_add(cr, step, cn, V_PASS, ms, "refused as expected: %s, %s%s%s%s", why, got_e,
			st && st->refusal_log ? ", the kernel said '" : "",
			st && st->refusal_log ? st->refusal_log : "",
			st && st->refusal_log ? "'" : "");
	else
		c = cr_add(cr, step, cn, V_FAIL, ms, "%s refused, but not as the patch set expects: "
			"%s, expected %s", mod, got_e, want);
	check_evidence(c, "errno %d", err_no);
	check_evidence_text(c, "kernel: ", klog.buf, 20);
	sb_release(&klog);
}

/* A step's module parameters: `params`, plus the one line of its `params_file` read from the
 * guest now (the pids of processes a run step started). 0 with *out set (free it), 1 the file
 * could not be used (a FAIL of the step, recorded), -1 guest down. */
int step_params(struct cellrun *cr, const struct step *st, char **out)
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
	if (cr_call(cr, st->name, "params", "read", args, agent_ms(cr), &m) != VM_OK)
		return -1;
	if (m.ok && json_object_object_get_ex(m.result, "data", &d) &&
	    json_object_is_type(d, json_type_string)) {
		text = json_object_get_string(d);
		len = (size_t)json_object_get_string_len(d);
	}
	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	if (!m.ok || !len || memchr(text, '\n', len) || memchr(text, '\0', len)) {
		cr_add(cr, st->name, "params", V_FAIL, 0, "params_file %s %s", st->params_file,
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

enum settle load_and_settle(struct cellrun *cr, const char *step, const char *mod,
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
			cr_add(cr, step, "load", V_FAIL, now_ms() - t0,
			    "%s loaded, but the patch set says it must be refused", mod);
		check_klog(cr, step, *seq, NULL, 0);
		ret = r == 1 ? REFUSED_AS_EXPECTED : STOPPED_CELL;
		goto out;
	}
	if (r == 1) {
		struct check_result *c = cr_add(cr, step, "load", V_FAIL, now_ms() - t0,
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
	cr_add(cr, step, "load", V_PASS, now_ms() - t0, "%s loaded%s%s", mod, params && *params ?
	    " with " : "", params && *params ? params : "");
	if (nowait) {
		/* wait: false: a later step acts while the transition may still be pending (a
		 * busy task holds it); the sysfs check reads where it stands */
		cr_add(cr, step, "transition", V_SKIP, 0, "not waited for (wait: false)");
		ret = SETTLED;
		goto out;
	}
	r = wait_transition(cr, step, mod, 1, &took);
	if (r < 0) {
		ret = GUEST_DOWN;
		goto out;
	}
	if (r == 2) {
		cr_add(cr, step, "transition", V_FAIL, now_ms() - t0, "module %s registered no livepatch: "
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
	cr_add(cr, step, "transition", V_PASS, took, "settled in %.2f s", took / 1000.0);
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
		r = cr_add(cr, step, "method", V_FAIL, 0, "%s is declared cumulative (atomic replace), but "
		    "the kernel %s: it was stacked (built without .replace = true?)", mod,
		    p->replace == 0 ? "says replace=0" : "still lists the earlier patch(es)");
	else if (stacked && p->stack_order >= 0 && p->stack_order != (int)n)
		r = cr_add(cr, step, "method", V_FAIL, 0, "%s is declared stacked, but the kernel puts it "
		    "at stack_order %d of %zu patch(es): it is not on top", mod, p->stack_order, n);
	else if (stacked && (p->replace == 1 || gone.len))
		r = cr_add(cr, step, "method", V_FAIL, 0, "%s is declared stacked, but the kernel %s%s: it "
		    "replaced them (built with .replace = true?)", mod, p->replace == 1 ?
		    "says replace=1" : "no longer lists ", p->replace == 1 ? "" : gone.buf);
	else if (!stacked)
		r = cr_add(cr, step, "method", V_PASS, 0, "cumulative: %s%s", gone.len ? "replaced " :
		    "the only patch", gone.buf);
	else
		r = cr_add(cr, step, "method", V_PASS, 0, "stacked%s%s", kept.len ? " on " : ": the first",
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
int check_sysfs(struct cellrun *cr, const char *step, const char *mod, int nowait)
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
		c = cr_add(cr, step, "sysfs", ok ? V_PASS : V_FAIL, 0,
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
				cr_add(cr, step, "replaced", V_FAIL, 0,
				    "%s is still listed after the atomic replace", l->name);
			continue;
		}
		if (unloaded_later(cr, step, l->name)) {
			cr_add(cr, step, "replaced", V_PASS, 0, "%s replaced (a later step removes its "
			    "module)", l->name);
			continue;
		}
		u = unload_module(cr, step, l->name, &uerr);
		if (u == 0) {
			l->inserted = 0;
			cr_add(cr, step, "replaced", V_PASS, 0, "replaced module %s removed", l->name);
		} else if (u == 1) {
			cr_add(cr, step, "replaced", V_FAIL, 0, "replaced module %s cannot be removed: %s",
			    l->name, uerr.buf);
		}
		sb_release(&uerr);
		if (u < 0)
			return -1;
	}
	return 0;
}
