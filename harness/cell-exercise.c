/* cell-exercise.c: was the patched code exercised? Counts the calls of every function a patch
 * step replaces while the step is tested (cell.h, docs/checks.md "exercised").
 *
 * After the step's patch is live, one kprobe event per replaced function is put on the original
 * function's entry (the functions come from the patch's sysfs folder, "FUNC,SYMPOS"). Every call
 * of the original reaches its ftrace entry before the livepatch handler sends it to the
 * replacement, so the count is the calls of the live code. The events are enabled in a trace
 * instance of their own whose buffer is off: the kernel counts the hits (kprobe_profile) and
 * records nothing. The probes of the step and of the earlier steps run; then the counts are read
 * and the events removed, before the step's performance phase.
 *
 * The workloads' calls are counted apart (perf_calls_*): events on the functions live after the
 * last step, made disabled before the baseline phase and enabled only in a window after each
 * phase (the same workloads, the same patch state), so no measured phase runs with a kprobe: a
 * second ftrace handler beside the livepatch's would cost the patched side alone. The guest's
 * memory is read at both ends of each phase (check "memory" at perf). */
#define _GNU_SOURCE
#include "cell.h"
#include "klpfuncs.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* $1 arm|read|remove|parm|on|off|snap, $2 the patch's module (its sysfs folder), $3 the events'
 * name prefix; with parm, then the functions as OBJ:FUNC:SYMPOS. The perf events (prefix
 * klpq_p, group klpqp) are made disabled (parm) and counted only between on and off. */
static const char ex_script[] =
	"A=$1\n"
	/* a perf phase's ends: the memory (snap: only that) */
	"if [ $A = on ] || [ $A = snap ]; then\n"
	"  echo '== mem'; cat /sys/devices/system/node/node0/meminfo 2>/dev/null || cat /proc/meminfo\n"
	"  echo '== slab'; awk 'NR > 2 { print $1, $2, 0, $4 }' /proc/slabinfo 2>/dev/null\n"
	"  [ $A = snap ] && exit 0\n"
	"fi\n"
	"T=/sys/kernel/tracing\n"
	"[ -e $T/kprobe_events ] || mount -t tracefs nodev $T 2>/dev/null\n"
	"if [ ! -e $T/kprobe_events ]; then echo \"none no kprobe_events in tracefs\"; exit 0; fi\n"
	"I=$T/instances/klpq; P=$3; G=klpq; [ $P = klpq_p ] && G=klpqp\n"
	"count() { while read e h m; do case $e in ${P}_f*) echo \"$e $h $m\";; esac; "
	"done < $T/kprobe_profile; }\n"
	"if [ $A = read ] || [ $A = remove ]; then\n"
	"  while read e h m; do\n"
	"    case $e in ${P}_f*) [ $A = read ] && echo \"count $e $h $m\"\n"
	"      echo 0 > $I/events/$G/$e/enable; echo \"-:$G/$e\" >> $T/kprobe_events;; esac\n"
	"  done < $T/kprobe_profile\n"
	"  exit 0\n"
	"fi\n"
	/* the counts, then counting on (on: after a phase) or off (off: the window's end) */
	"if [ $A = on ] || [ $A = off ]; then\n"
	"  [ $A = off ] && echo 0 > $I/events/$G/enable\n"
	"  echo '== count'; count\n"
	"  [ $A = on ] && echo 1 > $I/events/$G/enable\n"
	"  exit 0\n"
	"fi\n"
	"[ -d $I ] || mkdir $I 2>/dev/null || { echo \"none cannot make a trace instance\"; exit 0; }\n"
	"echo 0 > $I/tracing_on\n"
	"n=0\n"
	"arm() {\n"
	"  e=${P}_f$n; n=$((n+1)); s=$2; [ $1 = vmlinux ] || s=$1:$2\n"
	"  if [ \"$3\" -gt 1 ]; then\n"
	"    s=$(awk -v f=$2 -v m=$1 -v p=$3 '$3 == f && (m == \"vmlinux\" ? NF == 3 : "
	"$4 == \"[\" m \"]\") && ++k == p { print \"0x\" $1; exit }' /proc/kallsyms)\n"
	"    [ -n \"$s\" ] || { echo \"fail $e $1 $2 $3 no such symbol in /proc/kallsyms\"; "
	"return; }\n"
	"  fi\n"
	"  if echo \"p:$G/$e $s\" >> $T/kprobe_events 2>/dev/null &&\n"
	"     { [ $A = parm ] && [ -e $I/events/$G/$e/enable ] ||\n"
	"       echo 1 > $I/events/$G/$e/enable 2>/dev/null; }; then echo \"armed $e $1 $2 $3\"\n"
	"  else echo \"fail $e $1 $2 $3 the kernel refused a kprobe event on $s\"; fi\n"
	"}\n"
	"if [ $A = arm ]; then\n"
	"  for d in /sys/kernel/livepatch/$2/*/*,*; do\n"
	"    [ -d \"$d\" ] || continue\n"
	"    f=${d##*/}; o=${d%/*}; o=${o##*/}; arm $o ${f%,*} ${f##*,}\n"
	"  done\n"
	"else\n"
	"  shift 3\n"
	"  for w in \"$@\"; do o=${w%%:*}; r=${w#*:}; arm $o ${r%:*} ${r##*:}; done\n"
	"fi\n";

static int ex_run(struct cellrun *cr, const char *step, const char *action, size_t i,
		  struct sb *out)
{
	char tag[32];
	const char *argv[] = { "/bin/sh", "-c", ex_script, "klpq-exercise", action,
			       cr->mods[i].name, tag, NULL };
	int code = -1, r;

	snprintf(tag, sizeof(tag), "klpq_s%zu", i);
	cr->instrumenting = 1;
	r = guest_exec(cr, step, "exercised", argv, cr->sc->timeouts.probe_ms, &code, out);
	cr->instrumenting = 0;
	return r < 0 ? -1 : code;
}

void exercise_arm(struct cellrun *cr, size_t i, const char *step)
{
	struct exercise *x = &cr->ex;
	struct sb out = SB_INIT;
	int code;

	exercise_reset(x);
	if (!cr->sc->count_calls)
		return;
	x->step = (long)i;
	code = ex_run(cr, step, "arm", i, &out);
	if (code < 0) {
		x->step = -1;
		sb_release(&out);
		return;
	}
	if (code != 0)
		snprintf(x->none, sizeof(x->none), "the counting script exited with %d", code);
	exercise_parse(x, out.buf);
	sb_release(&out);
	{
		/* the replacements' names, from the module itself (best effort: titles only) */
		struct klp_fn *fn;
		size_t nfn;
		struct kerr e = KERR_INIT;

		if (klp_funcs_read(cr->mods[i].path, &fn, &nfn, &e) == 0) {
			exercise_name_new(x, fn, nfn);
			free(fn);
		}
	}
}

int exercise_check(struct cellrun *cr, size_t i, const char *step, const char *when)
{
	struct exercise *x = &cr->ex;
	struct sb out = SB_INIT;
	struct check_result *r;
	char title[512];
	enum verdict v;

	if (x->step != (long)i)
		return -1;
	x->step = -1;
	if (x->nr && !*x->none) {
		if (ex_run(cr, step, "read", i, &out) < 0) {
			sb_release(&out);
			return -1;
		}
		exercise_parse(x, out.buf);
		sb_release(&out);
	}
	v = exercise_judge(x, when, cr->mods[i].name, title, sizeof(title));
	r = cr_add(cr, step, "exercised", v, 0, "%s", title);
	for (size_t k = 0; k < x->nr; k++) {
		const struct ex_func *f = &x->f[k];

		if (!f->armed)
			check_evidence(r, "%s %s: not counted: %s", f->obj, f->func, f->why);
		else if (!f->read)
			check_evidence(r, "%s %s: the count could not be read", f->obj, f->func);
		else
			check_evidence(r, "%s %s%s%s%s%s: %llu call(s)%s", f->obj, f->func,
				       f->pos > 1 ? ", sympos " : "", f->pos > 1 ? f->sympos : "",
				       *f->new_name ? " -> " : "", f->new_name,
				       (unsigned long long)f->hits, f->missed ? " (some missed)" : "");
	}
	if (*x->none)
		check_evidence(r, "not counted: %s", x->none);
	return (int)v;
}

/* ---- the workloads' calls per perf phase ---------------------------------------------------- */

#define PC_PREFIX "klpq_p"

/* the functions live once the last step is: that step's, and the steps it is stacked on */
static size_t pc_functions(struct cellrun *cr, struct klp_fn *out, size_t max, struct sb *why,
			   size_t *dropped)
{
	const struct patchset *ps = &cr->sc->patchset;
	size_t n = 0;

	for (size_t s = ps->nr_steps; s-- > 0;) {
		const struct step *st = &ps->steps[s];
		struct klp_fn *fn;
		size_t nfn;
		struct kerr e = KERR_INIT;

		if (st->kind != STEP_PATCH || st->expect_load_fail || !cr->mods || !cr->mods[s].path)
			continue;
		if (klp_funcs_read(cr->mods[s].path, &fn, &nfn, &e) < 0) {
			sb_addf(why, "%s%s: %s", why->len ? "; " : "", cr->mods[s].name, e.msg);
		} else {
			for (size_t k = 0; k < nfn; k++) {
				size_t j;

				for (j = 0; j < n; j++)
					if (!strcmp(out[j].obj, fn[k].obj) &&
					    !strcmp(out[j].old_name, fn[k].old_name) &&
					    (out[j].sympos ? out[j].sympos : 1) ==
					    (fn[k].sympos ? fn[k].sympos : 1))
						break;
				if (j == n && n < max)
					out[n++] = fn[k];
				else if (j == n)
					(*dropped)++;
			}
			free(fn);
		}
		if (!st->stacked)
			break;
	}
	return n;
}

void perf_calls_arm(struct cellrun *cr)
{
	struct klp_fn fn[EX_MAX_FUNCS];
	struct sb why = SB_INIT, out = SB_INIT;
	struct perf_calls *pc = xcalloc(1, sizeof(*pc));
	size_t n = pc_functions(cr, fn, EX_MAX_FUNCS, &why, &pc->dropped_funcs);
	const char **argv = xcalloc(n + 8, sizeof(*argv));
	char **words = xcalloc(n + 1, sizeof(*words));
	int code = -1, r;

	exercise_reset(&pc->x);
	cr->pc = pc;
	pc->win_ms = cr->sc->perf.phase_ms / 2 < 2000 ? cr->sc->perf.phase_ms / 2 : 2000;
	if (!pc->win_ms)
		pc->win_ms = 1;
	if (!cr->sc->count_calls) {
		pc->counting_off = 1; /* the memory only */
		goto out;
	}
	if (!n) {
		snprintf(pc->x.none, sizeof(pc->x.none), "no replaced function found in the patch "
			 "module(s)%s%s", why.len ? ": " : "", why.len ? why.buf : "");
		goto out;
	}
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = ex_script;
	argv[3] = "klpq-exercise";
	argv[4] = "parm";
	argv[5] = "-";
	argv[6] = PC_PREFIX;
	for (size_t k = 0; k < n; k++) {
		words[k] = xasprintf("%s:%s:%lu", fn[k].obj, fn[k].old_name, fn[k].sympos);
		argv[7 + k] = words[k];
	}
	cr->instrumenting = 1;
	r = guest_exec(cr, "perf", "exercised", argv, cr->sc->timeouts.probe_ms, &code, &out);
	cr->instrumenting = 0;
	if (r < 0) {
		if (!cr->down)
			snprintf(pc->x.none, sizeof(pc->x.none), "the agent could not run the counting");
		goto out;
	}
	if (code != 0)
		snprintf(pc->x.none, sizeof(pc->x.none), "the counting script exited with %d", code);
	exercise_parse(&pc->x, out.buf);
	exercise_name_new(&pc->x, fn, n);
out:
	sb_release(&why);
	sb_release(&out);
	for (size_t k = 0; k < n; k++)
		free(words[k]);
	free(words);
	free(argv);
}

/* runs the counting script's action for the perf events, its output into out: 1 it ran and
 * exited 0, 0 it did not, -1 the guest went down */
static int pc_run(struct cellrun *cr, const char *action, struct sb *out)
{
	const char *argv[] = { "/bin/sh", "-c", ex_script, "klpq-exercise", action, "-",
			       PC_PREFIX, NULL };
	int code = -1, r;

	cr->instrumenting = strcmp(action, "snap") != 0; /* snap reads memory only */
	r = guest_exec(cr, "perf", "exercised", argv, cr->sc->timeouts.probe_ms, &code, out);
	cr->instrumenting = 0;
	if (r < 0)
		return cr->down ? -1 : 0;
	return code == 0;
}

/* the lines after "== NAME" up to the next "== " line, cut out of buf in place ("" none) */
static const char *pc_section(char *buf, const char *name)
{
	char mark[32], *p, *end;

	snprintf(mark, sizeof(mark), "== %s\n", name);
	if (!buf || !(p = strstr(buf, mark)))
		return "";
	p += strlen(mark);
	if ((end = strstr(p, "\n== ")))
		end[1] = '\0';
	return p;
}

static size_t pc_armed(const struct perf_calls *pc)
{
	size_t n = 0;

	for (size_t k = 0; k < pc->x.nr; k++)
		n += pc->x.f[k].armed;
	return *pc->x.none ? 0 : n;
}

/* the memory in a snap/on output into m: 1 read, 0 not (pc->mem_none says why) */
static int pc_mem(struct perf_calls *pc, struct sb *out, struct pc_mem *m)
{
	char *copy = xstrdup(out->buf ? out->buf : "");
	char *copy2 = xstrdup(copy);
	int r = perf_mem_parse(pc, pc_section(copy, "mem"), pc_section(copy2, "slab"), m);

	free(copy);
	free(copy2);
	if (r < 0 && !*pc->mem_none)
		snprintf(pc->mem_none, sizeof(pc->mem_none), "no SUnreclaim and MemFree in node 0's "
			 "meminfo or /proc/meminfo");
	return r == 0;
}

int perf_calls_begin(struct cellrun *cr)
{
	struct perf_calls *pc = cr->pc;
	struct sb out = SB_INIT;
	int r;

	if (!pc || *pc->mem_none)
		return 0;
	pc->mem_at_ok = 0;
	r = pc_run(cr, "snap", &out);
	if (r == 1)
		pc->mem_at_ok = pc_mem(pc, &out, &pc->mem_at);
	sb_release(&out);
	return r < 0 ? -1 : 0;
}

int perf_calls_end(struct cellrun *cr, enum perf_phase_kind kind, const char *label)
{
	struct perf_calls *pc = cr->pc;
	uint64_t c0[EX_MAX_FUNCS] = { 0 }, c1[EX_MAX_FUNCS] = { 0 };
	struct pc_mem m = { 0, 0, NULL };
	struct sb out = SB_INIT;
	struct pc_phase *p;
	int counting, rm = 0, rc = 0, r;

	if (!pc)
		return 0;
	counting = pc_armed(pc) > 0;
	/* the memory at the phase's end, the counts, and the events on for the window */
	r = pc_run(cr, counting ? "on" : "snap", &out);
	if (r < 0)
		goto down;
	if (r == 1 && pc->mem_at_ok && !*pc->mem_none)
		rm = pc_mem(pc, &out, &m);
	if (r == 1 && counting) {
		char *copy = xstrdup(out.buf ? out.buf : "");

		rc = perf_calls_parse(&pc->x, pc_section(copy, "count"), c0) == 0;
		free(copy);
		/* the window: the same workloads, the same patch state, the events on; the measured
		 * phase itself ran without them (a second ftrace handler beside the livepatch's
		 * would cost the patched side alone) */
		if (perf_idle(cr, pc->win_ms) < 0)
			goto down;
		sb_reset(&out);
		r = pc_run(cr, "off", &out);
		if (r < 0)
			goto down;
		copy = xstrdup(out.buf ? out.buf : "");
		rc = rc && r == 1 && perf_calls_parse(&pc->x, pc_section(copy, "count"), c1) == 0;
		free(copy);
	}
	sb_release(&out);
	if (!rm && !rc) {
		pc->lost++;
		free(m.slab);
		return 0;
	}
	if (pc->nph == PC_MAX_PHASES) {
		pc->dropped_phases++;
		free(m.slab);
		return 0;
	}
	p = &pc->ph[pc->nph++];
	snprintf(p->label, sizeof(p->label), "%s", label);
	p->patched = kind == PHASE_B;
	if (rc) {
		p->counted = 1;
		for (size_t k = 0; k < pc->x.nr; k++)
			p->hits[k] = c1[k] >= c0[k] ? c1[k] - c0[k] : 0;
	}
	if (rm) {
		p->mem = 1;
		p->sunr_kb = m.sunr_kb - pc->mem_at.sunr_kb;
		p->avail_kb = m.avail_kb - pc->mem_at.avail_kb;
		p->slab = xcalloc(pc->ncache ? pc->ncache : 1, sizeof(*p->slab));
		for (size_t k = 0; k < pc->ncache; k++)
			p->slab[k] = m.slab[k] < 0 || pc->mem_at.slab[k] < 0 ? LONG_MIN :
				     m.slab[k] - pc->mem_at.slab[k];
	}
	free(m.slab);
	return 0;
down:
	sb_release(&out);
	free(m.slab);
	return -1;
}

/* the three caches that grew most in phase p, into ev */
static void pc_top_caches(const struct perf_calls *pc, const struct pc_phase *p, struct sb *ev)
{
	size_t top[3] = { (size_t)-1, (size_t)-1, (size_t)-1 };

	for (size_t k = 0; k < pc->ncache; k++) {
		if (p->slab[k] == LONG_MIN || p->slab[k] <= 0)
			continue;
		for (size_t t = 0; t < 3; t++)
			if (top[t] == (size_t)-1 || p->slab[k] > p->slab[top[t]]) {
				memmove(&top[t + 1], &top[t], (2 - t) * sizeof(top[0]));
				top[t] = k;
				break;
			}
	}
	for (size_t t = 0; t < 3 && top[t] != (size_t)-1; t++)
		sb_addf(ev, "%s %s %+ld kB", t ? "," : "; grew most:", pc->cache[top[t]],
			p->slab[top[t]] / 1024);
}

void perf_calls_finish(struct cellrun *cr, size_t last)
{
	struct perf_calls *pc = cr->pc;
	const char *argv[] = { "/bin/sh", "-c", ex_script, "klpq-exercise", "remove", "-",
			       PC_PREFIX, NULL };
	const char *lname = cr->sc->patchset.steps[last].name;
	char title[512];
	struct check_result *r, *rm;
	json_object *j, *jf, *jp;
	enum verdict v, vm;
	int code, never;

	if (!pc)
		return;
	cr->pc = NULL;
	if (cr->down) {
		perf_calls_release(pc);
		return;
	}
	if (pc->counting_off) {
		v = V_PASS;
		r = NULL;
		never = 0;
	} else {
		v = perf_calls_judge(pc, lname, cr->mods[last].name, title, sizeof(title));
		r = cr_add(cr, "perf", "exercised", v, 0, "%s", title);
		never = v == V_SKIP && !strncmp(title, "not exercised", 13);
	}
	if (*pc->x.none)
		check_evidence(r, "not counted: %s", pc->x.none);
	if (pc->dropped_funcs)
		check_evidence(r, "%zu more function(s) not counted (at most %d)", pc->dropped_funcs,
			       EX_MAX_FUNCS);
	if (pc->dropped_phases)
		check_evidence(r, "%zu phase(s) past the first %d not recorded", pc->dropped_phases,
			       PC_MAX_PHASES);
	vm = perf_mem_judge(pc, lname, cr->sc->leak.load_threshold_kb, title, sizeof(title));
	if (vm == V_PASS && never) {
		/* a leak on a path the workloads did not take cannot show */
		char t2[sizeof(title)];

		memcpy(t2, title, sizeof(t2));
		snprintf(title, sizeof(title), "not exercised: %.380s, but the workloads did not "
			 "call every patched function (see check exercised at perf)", t2);
		vm = V_SKIP;
	}
	rm = cr_add(cr, "perf", "memory", vm, 0, "%s", title);
	j = json_object_new_object();
	jf = json_object_new_array();
	jp = json_object_new_array();
	for (size_t k = 0; k < pc->x.nr; k++) {
		const struct ex_func *f = &pc->x.f[k];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "object", json_object_new_string(f->obj));
		json_object_object_add(o, "function", json_object_new_string(f->func));
		json_object_object_add(o, "replacement", json_object_new_string(f->new_name));
		json_object_object_add(o, "counted", json_object_new_boolean(f->armed));
		json_object_array_add(jf, o);
		if (!f->armed)
			check_evidence(r, "%s %s: not counted: %s", f->obj, f->func, f->why);
	}
	for (size_t i = 0; i < pc->nph; i++) {
		const struct pc_phase *p = &pc->ph[i];
		json_object *o = json_object_new_object(), *h = json_object_new_array();
		struct sb ev = SB_INIT;

		sb_addf(&ev, "%s (%s):", p->label, p->patched ? "patched" : "unpatched");
		for (size_t k = 0; k < pc->x.nr; k++) {
			json_object_array_add(h, json_object_new_int64((int64_t)p->hits[k]));
			if (pc->x.f[k].armed && p->counted)
				sb_addf(&ev, " %s %llu", pc->x.f[k].func,
					(unsigned long long)p->hits[k]);
		}
		json_object_object_add(o, "label", json_object_new_string(p->label));
		json_object_object_add(o, "patched", json_object_new_boolean(p->patched));
		if (p->counted)
			json_object_object_add(o, "calls", h);
		else
			json_object_put(h);
		if (p->counted)
			check_evidence(r, "%s", ev.buf);
		if (p->mem) {
			json_object_object_add(o, "sunreclaim_kb", json_object_new_int64(p->sunr_kb));
			json_object_object_add(o, "memfree_kb", json_object_new_int64(p->avail_kb));
			sb_reset(&ev);
			sb_addf(&ev, "%s (%s): SUnreclaim %+ld kB, MemFree %+ld kB", p->label,
				p->patched ? "patched" : "unpatched", p->sunr_kb, p->avail_kb);
			pc_top_caches(pc, p, &ev);
			check_evidence(rm, "%s", ev.buf);
		}
		json_object_array_add(jp, o);
		sb_release(&ev);
	}
	if (*pc->mem_none)
		check_evidence(rm, "not measured: %s", pc->mem_none);
	json_object_object_add(j, "functions", jf);
	json_object_object_add(j, "phases", jp);
	json_object_object_add(cr->cell->metrics, "calls", j);
	if (!*pc->x.none)
		guest_exec(cr, "perf", "exercised", argv, cr->sc->timeouts.probe_ms, &code, NULL);
	perf_calls_release(pc);
}
