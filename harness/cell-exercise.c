/* cell-exercise.c: was the patched code exercised? Counts the calls of every function a patch
 * step replaces while the step is tested (cell.h, docs/checks.md "exercised").
 *
 * After the step's patch is live, one kprobe event per replaced function is put on the original
 * function's entry (the functions come from the patch's sysfs folder, "FUNC,SYMPOS"). Every call
 * of the original reaches its ftrace entry before the livepatch handler sends it to the
 * replacement, so the count is the calls of the live code. The events are enabled in a trace
 * instance of their own whose buffer is off: the kernel counts the hits (kprobe_profile) and
 * records nothing. The probes of the step and of the earlier steps run; then the counts are read
 * and the events removed, before the step's performance phase, so the workloads' phases are
 * measured without a kprobe on their path. */
#define _GNU_SOURCE
#include "cell.h"
#include "klpfuncs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* $1 arm|read, $2 the patch's module (its sysfs folder), $3 the events' name prefix */
static const char ex_script[] =
	"T=/sys/kernel/tracing\n"
	"[ -e $T/kprobe_events ] || mount -t tracefs nodev $T 2>/dev/null\n"
	"if [ ! -e $T/kprobe_events ]; then echo \"none no kprobe_events in tracefs\"; exit 0; fi\n"
	"I=$T/instances/klpq\n"
	"if [ $1 = read ]; then\n"
	"  while read e h m; do\n"
	"    case $e in $3_f*) echo \"count $e $h $m\"\n"
	"      echo 0 > $I/events/klpq/$e/enable; echo \"-:klpq/$e\" >> $T/kprobe_events;; esac\n"
	"  done < $T/kprobe_profile\n"
	"  exit 0\n"
	"fi\n"
	"[ -d $I ] || mkdir $I 2>/dev/null || { echo \"none cannot make a trace instance\"; exit 0; }\n"
	"echo 0 > $I/tracing_on\n"
	"n=0\n"
	"for d in /sys/kernel/livepatch/$2/*/*,*; do\n"
	"  [ -d \"$d\" ] || continue\n"
	"  f=${d##*/}; o=${d%/*}; o=${o##*/}; fn=${f%,*}; pos=${f##*,}; e=$3_f$n; n=$((n+1))\n"
	"  s=$fn; [ $o = vmlinux ] || s=$o:$fn\n"
	"  if [ \"$pos\" -gt 1 ]; then\n"
	"    s=$(awk -v f=$fn -v m=$o -v p=$pos '$3 == f && (m == \"vmlinux\" ? NF == 3 : "
	"$4 == \"[\" m \"]\") && ++k == p { print \"0x\" $1; exit }' /proc/kallsyms)\n"
	"    [ -n \"$s\" ] || { echo \"fail $e $o $fn $pos no such symbol in /proc/kallsyms\"; "
	"continue; }\n"
	"  fi\n"
	"  if echo \"p:klpq/$e $s\" >> $T/kprobe_events 2>/dev/null &&\n"
	"     echo 1 > $I/events/klpq/$e/enable 2>/dev/null; then echo \"armed $e $o $fn $pos\"\n"
	"  else echo \"fail $e $o $fn $pos the kernel refused a kprobe event on $s\"; fi\n"
	"done\n";

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
