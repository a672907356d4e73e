/* cell-livepatch.c: livepatch state in sysfs, waiting for transitions, stalls (who blocks them)
 * and the recovery from one (cell.h).
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

/* ---- livepatch state ---- */

int lp_state(struct cellrun *cr, const char *step, const char *name,
	     struct lp_patch *out, size_t max, size_t *nr)
{
	struct proto_msg m;
	json_object *arr;

	*nr = 0;
	if (cr_call(cr, step, name, "lp_state", NULL, agent_ms(cr), &m) != VM_OK)
		return -1;
	if (!m.ok || !json_object_object_get_ex(m.result, "patches", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		cr_add(cr, step, name, V_ERROR, 0, "agent lp_state failed: %s",
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

size_t lp_live(const struct lp_patch *p, size_t n, const char *except)
{
	size_t live = 0;

	for (size_t i = 0; i < n; i++)
		live += (p[i].enabled == 1 || p[i].transition == 1) &&
			(!except || strcmp(p[i].name, except));
	return live;
}

const struct lp_patch *lp_find(const struct lp_patch *p, size_t n, const char *name)
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
	if (cr_call(cr, step, "tasks", "tasks", args, agent_ms(cr), &m) != VM_OK)
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
void report_stall(struct cellrun *cr, const char *step, const char *check,
		  const char *what, const char *patch, int target, uint64_t took)
{
	struct check_result ev, *r;
	struct sb names = SB_INIT;

	memset(&ev, 0, sizeof(ev));
	blocking_tasks(cr, &ev, &names, step, target);
	r = cr_add(cr, step, check, V_FAIL, took, "%s stall: '%s' did not settle within %.0f s%s%s%s",
		what, patch, cr->sc->timeouts.transition_ms / 1000.0,
		names.len ? " (blocked by " : "", names.buf, names.len ? ")" : "");
	r->evidence = ev.evidence;
	r->nr_evidence = ev.nr_evidence;
	sb_release(&names);
}

/* Waits until `name` settles: present, enabled and not in transition (enable=1), or gone / not
 * enabled and not in transition (enable=0). 0 settled (ms in *took), 1 stalled, -1 guest down. */
int wait_transition(struct cellrun *cr, const char *step, const char *name, int enable,
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


/* After a stall: what an operator would do. First the livepatch "signal" attribute (fake
 * signals to the blocking user tasks, a wake-up for kthreads), then, when the scenario says
 * stall_recovery: reverse, writing 0 to "enabled" mid-transition, which reverses it. The
 * stall stays a FAIL; this check says whether the system came back. */
void stall_recover(struct cellrun *cr, const char *step, const char *mod)
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
		cr_add(cr, step, "recovery", V_PASS, now_ms() - t0, "recovered: the transition settled "
		    "after signalling the blocking tasks");
		return;
	}
	if (cr->sc->stall_recovery != RECOVER_REVERSE) {
		c = cr_add(cr, step, "recovery", V_FAIL, now_ms() - t0, "did not recover: still in "
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
		if (cr_call(cr, step, "recovery", "lp_enable", args, agent_ms(cr), &m) != VM_OK)
			return;
		r = m.ok;
		proto_msg_release(&m);
	}
	if (!r) {
		cr_add(cr, step, "recovery", V_FAIL, now_ms() - t0, "did not recover: signalling did not "
		    "help and the transition could not be reversed (writing 0 to enabled failed)");
		return;
	}
	r = wait_transition(cr, step, mod, 0, &took);
	if (r < 0)
		return;
	if (r == 0)
		cr_add(cr, step, "recovery", V_PASS, now_ms() - t0, "recovered by reversing the "
		    "transition: %s unpatched in %.2f s (signalling alone did not help)", mod,
		    took / 1000.0);
	else
		cr_add(cr, step, "recovery", V_FAIL, now_ms() - t0, "did not recover: the reversed "
		    "transition did not settle either within %.0f s",
		    cr->sc->timeouts.transition_ms / 1000.0);
}
