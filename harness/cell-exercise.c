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
 * last step, from before the baseline phase to the last pair, read at each phase's ends, so every
 * phase, unpatched or patched, has the same events on the same functions. */
#define _GNU_SOURCE
#include "cell.h"
#include "klpfuncs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* $1 arm|read|remove|parm, $2 the patch's module (its sysfs folder), $3 the events' name
 * prefix; with parm, then the functions as OBJ:FUNC:SYMPOS */
static const char ex_script[] =
	"T=/sys/kernel/tracing\n"
	"[ -e $T/kprobe_events ] || mount -t tracefs nodev $T 2>/dev/null\n"
	"if [ ! -e $T/kprobe_events ]; then echo \"none no kprobe_events in tracefs\"; exit 0; fi\n"
	"I=$T/instances/klpq; A=$1; P=$3\n"
	"if [ $A = read ] || [ $A = remove ]; then\n"
	"  while read e h m; do\n"
	"    case $e in ${P}_f*) [ $A = read ] && echo \"count $e $h $m\"\n"
	"      echo 0 > $I/events/klpq/$e/enable; echo \"-:klpq/$e\" >> $T/kprobe_events;; esac\n"
	"  done < $T/kprobe_profile\n"
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
	"  if echo \"p:klpq/$e $s\" >> $T/kprobe_events 2>/dev/null &&\n"
	"     echo 1 > $I/events/klpq/$e/enable 2>/dev/null; then echo \"armed $e $1 $2 $3\"\n"
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
	int code = -1;

	snprintf(tag, sizeof(tag), "klpq_s%zu", i);
	if (guest_exec(cr, step, "exercised", argv, cr->sc->timeouts.probe_ms, &code, out) < 0)
		return -1;
	return code;
}

void exercise_arm(struct cellrun *cr, size_t i, const char *step)
{
	struct exercise *x = &cr->ex;
	struct sb out = SB_INIT;
	const char *l;
	int code;

	exercise_reset(x);
	x->step = (long)i;
	code = ex_run(cr, step, "arm", i, &out);
	if (code < 0) {
		x->step = -1;
		sb_release(&out);
		return;
	}
	if (code != 0)
		snprintf(x->none, sizeof(x->none), "the counting script exited with %d", code);
	for (l = out.buf ? out.buf : ""; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "")
		exercise_parse_line(x, l);
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
	const char *l;
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
		for (l = out.buf ? out.buf : ""; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "")
			exercise_parse_line(x, l);
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
static size_t pc_functions(struct cellrun *cr, struct klp_fn *out, size_t max, struct sb *why)
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
	size_t n = pc_functions(cr, fn, EX_MAX_FUNCS, &why);
	const char **argv = xcalloc(n + 8, sizeof(*argv));
	char **words = xcalloc(n + 1, sizeof(*words));
	struct perf_calls *pc = xcalloc(1, sizeof(*pc));
	int code = -1;

	exercise_reset(&pc->x);
	cr->pc = pc;
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
	if (guest_exec(cr, "perf", "exercised", argv, cr->sc->timeouts.probe_ms, &code, &out) < 0) {
		if (!cr->down)
			snprintf(pc->x.none, sizeof(pc->x.none), "the agent could not run the counting");
		goto out;
	}
	if (code != 0)
		snprintf(pc->x.none, sizeof(pc->x.none), "the counting script exited with %d", code);
	for (const char *l = out.buf ? out.buf : ""; *l;
	     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "")
		exercise_parse_line(&pc->x, l);
	exercise_name_new(&pc->x, fn, n);
out:
	sb_release(&why);
	sb_release(&out);
	for (size_t k = 0; k < n; k++)
		free(words[k]);
	free(words);
	free(argv);
}

/* the armed events' counts now into hits; 1 read, 0 not counting or unreadable, -1 down */
static int pc_read(struct cellrun *cr, uint64_t *hits)
{
	struct perf_calls *pc = cr->pc;
	json_object *args;
	struct proto_msg m;
	size_t armed = 0;
	int r;

	if (!pc || *pc->x.none)
		return 0;
	for (size_t k = 0; k < pc->x.nr; k++)
		armed += pc->x.f[k].armed;
	if (!armed)
		return 0;
	args = json_object_new_object();
	json_object_object_add(args, "path",
			       json_object_new_string("/sys/kernel/tracing/kprobe_profile"));
	json_object_object_add(args, "offset", json_object_new_int64(0));
	json_object_object_add(args, "max", json_object_new_int(32768));
	if (cr_call(cr, "perf", "exercised", "read", args, agent_ms(cr), &m) != VM_OK)
		return -1;
	r = m.ok && perf_calls_parse(&pc->x, proto_get_str(m.result, "data", ""), hits) == 0;
	proto_msg_release(&m);
	return r;
}

int perf_calls_begin(struct cellrun *cr)
{
	int r;

	if (!cr->pc)
		return 0;
	r = pc_read(cr, cr->pc->at);
	cr->pc->at_ok = r == 1;
	return r < 0 ? -1 : 0;
}

int perf_calls_end(struct cellrun *cr, enum perf_phase_kind kind, const char *label)
{
	struct perf_calls *pc = cr->pc;
	uint64_t now[EX_MAX_FUNCS] = { 0 };
	struct pc_phase *p;
	int r;

	if (!pc || !pc->at_ok)
		return 0;
	pc->at_ok = 0;
	r = pc_read(cr, now);
	if (r < 0)
		return -1;
	if (r == 0 || pc->nph == PC_MAX_PHASES) {
		pc->lost++;
		return 0;
	}
	p = &pc->ph[pc->nph++];
	snprintf(p->label, sizeof(p->label), "%s", label);
	p->patched = kind == PHASE_B;
	for (size_t k = 0; k < pc->x.nr; k++)
		p->hits[k] = now[k] >= pc->at[k] ? now[k] - pc->at[k] : 0;
	return 0;
}

void perf_calls_finish(struct cellrun *cr, size_t last)
{
	struct perf_calls *pc = cr->pc;
	const char *argv[] = { "/bin/sh", "-c", ex_script, "klpq-exercise", "remove", "-",
			       PC_PREFIX, NULL };
	char title[512];
	struct check_result *r;
	json_object *j, *jf, *jp;
	enum verdict v;
	int code;

	if (!pc)
		return;
	cr->pc = NULL;
	if (cr->down) {
		free(pc);
		return;
	}
	v = perf_calls_judge(pc, cr->sc->patchset.steps[last].name, cr->mods[last].name, title,
			     sizeof(title));
	r = cr_add(cr, "perf", "exercised", v, 0, "%s", title);
	if (*pc->x.none)
		check_evidence(r, "not counted: %s", pc->x.none);
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
			if (pc->x.f[k].armed)
				sb_addf(&ev, " %s %llu", pc->x.f[k].func,
					(unsigned long long)p->hits[k]);
		}
		json_object_object_add(o, "label", json_object_new_string(p->label));
		json_object_object_add(o, "patched", json_object_new_boolean(p->patched));
		json_object_object_add(o, "calls", h);
		json_object_array_add(jp, o);
		check_evidence(r, "%s", ev.buf);
		sb_release(&ev);
	}
	json_object_object_add(j, "functions", jf);
	json_object_object_add(j, "phases", jp);
	json_object_object_add(cr->cell->metrics, "calls", j);
	if (!*pc->x.none)
		guest_exec(cr, "perf", "exercised", argv, cr->sc->timeouts.probe_ms, &code, NULL);
	free(pc);
}
