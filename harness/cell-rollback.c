/* cell-rollback.c: rollback and reapply (a stack top down, then bottom up) (cell.h). */
#define _GNU_SOURCE
#include "cell.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	if (cr_call(cr, S, "disable", "lp_enable", args, agent_ms(cr), &m) != VM_OK)
		return -1;
	if (!m.ok) {
		cr_add(cr, S, "disable", V_FAIL, now_ms() - t0, "cannot disable %s: %s", mod,
		    m.error ? m.error : "?");
		proto_msg_release(&m);
		return -1;
	}
	proto_msg_release(&m);
	cr_add(cr, S, "disable", V_PASS, now_ms() - t0, "wrote 0 to %s/enabled", mod);
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
	cr_add(cr, S, "unpatch-transition", V_PASS, took, "unpatched in %.2f s", took / 1000.0);
	if (lp_state(cr, S, "sysfs", pp, ARRAY_SIZE(pp), &n) < 0)
		return -1;
	cr->state[idx] = ST_RETIRED;
	/* With atomic replace nothing else is live: every fix must be gone. Stacked patches below
	 * keep theirs, so then the unpatched behaviour cannot be asserted, but theirs can. The
	 * patch just disabled may still be listed (freed from a workqueue): it is not live. */
	n = lp_live(pp, n, mod);
	if (n == 0) {
		if (run_probes(cr, S, top, 0, -1) < 0)
			return -1;
	} else {
		cr_add(cr, S, "probes", V_SKIP, 0, "%zu other patch(es) still live: unpatched "
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
		cr_add(cr, S, "unload", V_PASS, 0, "%s removed", mod);
	} else if (u == 1) {
		cr_add(cr, S, "unload", V_FAIL, 0, "%s cannot be removed after disable: %s", mod,
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
void rollback_cell(struct cellrun *cr, size_t last)
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
		if (rollback_one(cr, last, last, "rollback") == 0 &&
		    reapply_one(cr, last, "reapply") == 0)
			check_taint(cr, "reapply");
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
	check_taint(cr, "reapply");
}
