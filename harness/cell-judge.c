/* cell-judge.c: the performance judgement: each metric's A phases against its B phases
 * (cell.h).
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
		cr_add(cr, "perf", name, V_SKIP, 0, "%s: not compared: no %s samples in the %s "
		    "phases", m->name, m->sample, !a.nr && !b.nr ? "unpatched or patched" :
		    !a.nr ? "unpatched" : "patched");
		json_object_object_add(j, "verdict", json_object_new_string("NOT-COMPARED"));
	} else if (stats_compare(&ga, &gb, &o, &r, &e) < 0) {
		/* no samples (a workload that never reports this key), or a baseline of 0 (no
		 * stall, no missed tick): nothing to compare, which is not a finding */
		cr_add(cr, "perf", name, V_SKIP, 0, "%s: not compared: %s", m->name, e.msg);
		json_object_object_add(j, "verdict", json_object_new_string("NOT-COMPARED"));
		json_object_object_add(j, "reason", json_object_new_string(e.msg));
	} else {
		const char *dir = m->higher_is_better ? "higher is better" : "lower is better";
		struct check_result *c;
		enum verdict v = r.verdict == STATS_FAIL ? V_FAIL :
				 r.verdict == STATS_PASS ? V_PASS : V_SKIP;

		if (r.verdict == STATS_FAIL)
			c = cr_add(cr, "perf", name, v, 0, "%s regressed %+.1f%% (%.4g -> %.4g %s, %.0f%% "
				"interval %+.1f%%..%+.1f%%, threshold %.4g%%, %zu pair(s))", m->name,
				r.change * 100, r.a, r.b, m->unit, o.confidence * 100, r.lo * 100,
				r.hi * 100, thr, b.nr < a.nr ? b.nr : a.nr);
		else if (r.verdict == STATS_PASS)
			c = cr_add(cr, "perf", name, v, 0, "%s %+.1f%% (%.4g -> %.4g %s, interval "
				"%+.1f%%..%+.1f%%): within %.4g%%", m->name, r.change * 100, r.a, r.b,
				m->unit, r.lo * 100, r.hi * 100, thr);
		else if (r.one_phase)
			c = cr_add(cr, "perf", name, v, 0, "inconclusive: %s %+.1f%% (%.4g -> %.4g %s, "
				"interval %+.1f%%..%+.1f%%, threshold %.4g%%) from one phase a side: one "
				"pair cannot tell a change from the phase-to-phase noise; perf.pairs 2 or "
				"more can PASS or FAIL", m->name, r.change * 100, r.a, r.b, m->unit,
				r.lo * 100, r.hi * 100, thr);
		else if ((m->higher_is_better ? -r.hi : r.lo) > thr / 100)
			/* beyond the threshold on the pooled evidence, but not phase by phase */
			c = cr_add(cr, "perf", name, v, 0, "inconclusive: %s %+.1f%% (interval %+.1f%%.."
				"%+.1f%% beyond the %.4g%% threshold, but some patched phase is not worse "
				"than every unpatched one; noise +-%.1f%%)", m->name, r.change * 100,
				r.lo * 100, r.hi * 100, thr, r.noise * 100);
		else
			c = cr_add(cr, "perf", name, v, 0, "inconclusive: %s %+.1f%% (interval %+.1f%%.."
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
		cr_add(cr, "perf", name, V_SKIP, 0, "%s: no transition window or baseline to compare",
		    metric);
		json_object_object_add(j, "verdict", json_object_new_string("NOT-COMPARED"));
	} else if (worst_t > worst_a * (1 + pct / 100) && worst_t - worst_a > floor_us) {
		struct check_result *c = cr_add(cr, "perf", name, V_FAIL, 0, "transition disruption: "
			"worst %s %.1f ms in %s, against %.1f ms at worst unpatched (allowed +%.4g%%)",
			what, worst_t / 1000, worst_label, worst_a / 1000, pct);
		check_evidence(c, "%zu transition window(s); noise floor %.1f ms", ta,
			       floor_us / 1000);
		json_object_object_add(j, "verdict", json_object_new_string("FAIL"));
	} else {
		cr_add(cr, "perf", name, V_PASS, 0, "worst %s %.1f ms in %zu transition window(s), "
		    "%.1f ms at worst unpatched", what, worst_t / 1000, ta, worst_a / 1000);
		json_object_object_add(j, "verdict", json_object_new_string("PASS"));
	}
	json_object_object_add(jm, metric, j);
	phase_values_release(&a);
}

/* Stops the workloads, reads the last samples, judges every metric. */
void perf_finish(struct cellrun *cr, size_t last)
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
