/* cell-probes.c: probes: run in the guest, judged against what the step expects (cell.h). */
#define _GNU_SOURCE
#include "cell.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- probes ---- */

/* Runs one probe. 1 passed (exit 0), 0 failed, -1 guest down. output gets its output. */
int run_probe(struct cellrun *cr, const char *step, const struct probe *p, int *exit_code,
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
	if (cr_call(cr, step, name, "exec", args, t + agent_ms(cr), &m) != VM_OK)
		return -1;
	*took = now_ms() - start;
	if (!m.ok) {
		cr_add(cr, step, name, V_ERROR, *took, "agent could not run the probe: %s",
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
int probe_check(struct cellrun *cr, const char *step, const struct step *from,
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
		r = cr_add(cr, step, name, V_PASS, took, "passes (from %s)", from->name);
	else if (want_pass)
		r = cr_add(cr, step, name, V_FAIL, took, "%s probe %s %s after %s",
			own ? "the" : "earlier step's", p->name, to ? "timed out" : "failed", step);
	else if (!ok && !to)
		r = cr_add(cr, step, name, V_PASS, took, "shows the unpatched behaviour (exit %d)", code);
	else
		r = cr_add(cr, step, name, V_FAIL, took, "probe %s %s %s%s", p->name,
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
int run_probes(struct cellrun *cr, const char *step, size_t upto, int want_pass, long own)
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
			if (probe_check(cr, step, st, p, want_pass, (long)s == own) < 0)
				return -1;
		}
	}
	return 0;
}

/* The probes a step wrote itself, each with its own expectation. */
int run_own_probes(struct cellrun *cr, size_t i)
{
	const struct step *st = &cr->sc->patchset.steps[i];

	for (size_t k = 0; k < st->nr_probes; k++)
		if (probe_check(cr, st->name, st, &st->probes[k], !st->probes[k].expect_fail, 1) < 0)
			return -1;
	return 0;
}
