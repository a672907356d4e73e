/* cell-perf.c: the performance phases under the scenario's workloads (cell.h). */
#define _GNU_SOURCE
#include "cell.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- performance under load ------------------------------------------------------------
 * The scenario's workloads start after the baseline probes and run to the end. The cell
 * records phases on the guest's clock: "baseline" (A, unpatched), each step's transition
 * window (T, load through settled) and patched phase (B), then perf.pairs - 1 more pairs of
 * unpatched (the last step unloaded) and patched (loaded again) phases. perf_finish compares
 * the A phases with the B phases of the last step, metric by metric (perf.c, stats.c). */

#define WL_DIR "/tmp/klpq-wl"
#define WL_READ_MAX 32768

int guest_exec(struct cellrun *cr, const char *step, const char *name,
	       const char *const *argv, unsigned timeout_ms, int *exit_code, struct sb *out)
{
	json_object *args = json_object_new_object(), *jargv = json_object_new_array();
	struct proto_msg m;

	for (size_t i = 0; argv[i]; i++)
		json_object_array_add(jargv, json_object_new_string(argv[i]));
	json_object_object_add(args, "argv", jargv);
	json_object_object_add(args, "timeout_ms", json_object_new_int64(timeout_ms));
	if (cr_call(cr, step, name, "exec", args, timeout_ms + agent_ms(cr), &m) != VM_OK)
		return -1;
	if (!m.ok) {
		cr_add(cr, step, name, V_ERROR, 0, "agent could not run %s: %s", argv[0],
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

int guest_now(struct cellrun *cr, const char *step, uint64_t *ns)
{
	struct proto_msg m;

	if (cr_call(cr, step, "clock", "now", json_object_new_object(), agent_ms(cr), &m) != VM_OK)
		return -1;
	*ns = (uint64_t)proto_get_int(m.result, "mono_ns", 0);
	proto_msg_release(&m);
	return 0;
}

/* Reads what the workloads wrote since the last pull. */
int perf_pull(struct cellrun *cr, const char *step)
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
			if (cr_call(cr, step, "samples", "read", args, agent_ms(cr), &m) != VM_OK) {
				free(path);
				return -1;
			}
			if (!m.ok) {
				cr_add(cr, step, "samples", V_ERROR, 0, "cannot read the %s workload's samples: "
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

int perf_idle(struct cellrun *cr, unsigned ms)
{
	return perf_wait(cr, "perf", ms);
}

/* One measured phase of perf.phase_ms. */
int perf_phase(struct cellrun *cr, enum perf_phase_kind kind, const char *label)
{
	uint64_t a, b;

	if (!cr->perf_on || cr->down)
		return cr->down ? -1 : 0;
	cr_progress(cr, "perf: %s phase %s (%.1f s)", kind == PHASE_A ? "unpatched" : "patched",
		 label, cr->sc->perf.phase_ms / 1000.0);
	if (perf_calls_begin(cr) < 0 || guest_now(cr, "perf", &a) < 0 ||
	    perf_wait(cr, "perf", cr->sc->perf.phase_ms) < 0 || guest_now(cr, "perf", &b) < 0)
		return -1;
	perf_phase_add(&cr->phases, kind, label, a, b);
	return perf_calls_end(cr, kind, label);
}

/* Starts every workload in the background, checks they are alive after the warm-up, then
 * records the baseline phase. -1 when the guest went down; 0 otherwise (a workload that
 * would not start is an ERROR check and perf is off). */
int perf_start(struct cellrun *cr)
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
	cr_progress(cr, "perf: %zu workload(s) started; warm-up %.1f s", sc->nr_workloads,
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
			c = cr_add(cr, "perf", "workloads", V_ERROR, 0, "the %s workload wrote no samples "
				"within the %.1f s warm-up", ps->workload, sc->perf.warmup_ms / 1000.0);
			check_evidence_text(c, "stderr: ", txt.buf, 20);
			sb_release(&txt);
			free(err);
			cr->perf_on = 0;
		}
	}
	if (cr->perf_on)
		cr_add(cr, "perf", "workloads", V_PASS, 0, "%zu workload(s) running: pids%s",
		    sc->nr_workloads, pids.buf);
	sb_release(&pids);
	if (cr->down)
		return -1;
	/* the same kprobe events in every phase, from before the baseline to the last pair */
	if (cr->perf_on)
		perf_calls_arm(cr);
	if (cr->down)
		return -1;
	return perf_phase(cr, PHASE_A, "baseline");
}

/* perf.pairs - 1 more unpatched/patched pairs with the last step: disable, settle, unload
 * (A), load, settle (T), (B). A livepatch that was disabled cannot be enabled again through
 * sysfs; loading the module again is how an operator re-applies it. */
int perf_unpatch(struct cellrun *cr, const char *step, const char *mod)
{
	json_object *args = json_object_new_object();
	struct proto_msg m;
	struct sb err = SB_INIT;
	uint64_t took;
	int r;

	json_object_object_add(args, "name", json_object_new_string(mod));
	json_object_object_add(args, "enabled", json_object_new_int(0));
	if (cr_call(cr, step, "disable", "lp_enable", args, agent_ms(cr), &m) != VM_OK)
		return -1;
	r = m.ok;
	proto_msg_release(&m);
	if (!r) {
		cr_add(cr, step, "disable", V_FAIL, 0, "cannot disable %s for an unpatched phase", mod);
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
		cr_add(cr, step, "unload", V_FAIL, 0, "%s cannot be removed after disable: %s", mod,
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
void perf_pairs(struct cellrun *cr, size_t last)
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
