/* cell-steps.c: the step kinds: patch, helper, kmod, disable, unload, sysctl, run, and what
 * every step is checked by (cell.h).
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

/* The module a step loads (patch, helper or kernel module), as the kernel names it; NULL for
 * the other steps. */
const char *step_module(const struct cellrun *cr, size_t i)
{
	const struct step *st = &cr->sc->patchset.steps[i];

	if (st->kind == STEP_KMOD)
		return st->kmod;
	return cr->mods[i].name;
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
	c = cr_add(cr, step, "objects", wrong ? V_FAIL : V_PASS, 0, wrong ?
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
		cr_add(cr, st->name, "action", V_FAIL, ms, "%s succeeded, but the patch set says the "
		    "kernel must refuse it", what);
		return 1;
	}
	if (r == 1) {
		struct check_result *c = cr_add(cr, st->name, "action", V_FAIL, ms, "%s refused: %s",
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
		cr_add(cr, st->name, "action", V_PASS, now_ms() - t0, "%s loaded%s", mod,
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
		cr_add(cr, st->name, "action", V_PASS, now_ms() - t0, "%s removed", mod);
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
	if (cr_call(cr, st->name, "disable", "lp_enable", args, agent_ms(cr), &m) != VM_OK) {
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
	cr_add(cr, st->name, "action", V_PASS, took, "%s disabled, unpatched in %.2f s", mod,
	    took / 1000.0);
	if (lp_state(cr, st->name, "sysfs", pp, ARRAY_SIZE(pp), &n) < 0)
		return -1;
	cr->state[st->target] = ST_RETIRED;
	for (size_t k = 0; k < ps->nr_steps; k++) {
		const struct lp_patch *p = cr->mods[k].name ? lp_find(pp, n, cr->mods[k].name) : NULL;

		if (cr->state[k] == ST_LIVE && (!p || p->enabled != 1))
			cr->state[k] = ST_RETIRED;
	}
	if (lp_live(pp, n, mod) == 0) {
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
	if (cr_call(cr, st->name, "sysctl", "sysctl", args, agent_ms(cr), &m) != VM_OK) {
		free(what);
		return -1;
	}
	r = m.ok ? 0 : 1;
	ret = judge_action(cr, st, what, r, m.error ? m.error : "refused", m.err_no, seq,
			   now_ms() - t0);
	if (!ret && r == 0)
		cr_add(cr, st->name, "action", V_PASS, now_ms() - t0, "%s = %s", st->sysctl_key,
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
	c = cr_add(cr, st->name, "action", code == 0 ? V_PASS : V_FAIL, now_ms() - t0,
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
	if (check_sysfs(cr, st->name, mod, st->nowait) < 0)
		return -1;
	exercise_arm(cr, i, st->name);
	if (cr->down || (i > 0 && run_probes(cr, st->name, i - 1, 1, -1) < 0))
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
int apply_step(struct cellrun *cr, size_t i)
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
	if (st->kind == STEP_PATCH) {
		/* only if counting began: the patch went live */
		char when[160];

		snprintf(when, sizeof(when), "while %s was tested", st->name);
		exercise_check(cr, i, st->name, when);
	}
	if (cr->down)
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
