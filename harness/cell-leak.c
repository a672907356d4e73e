/* cell-leak.c: the leak check across apply/remove cycles of the last step (cell.h). */
#define _GNU_SOURCE
#include "cell.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- resource leaks across patch cycles -------------------------------------------------
 * After the rollback: leak.cycles cycles of the last step (disable, unpatch, remove; load,
 * settle; exercise the patched path), each followed by a measurement of the guest's memory
 * after dropping caches. The first measurement is taken after one exercise in the state the
 * cell was in, so every measurement follows the same sequence. A leak is the median growth
 * per cycle beyond the threshold: unreclaimable slab, or free memory (four times the
 * threshold: page-level noise), or a module reference count that moves. Free memory is MemFree
 * plus what userland holds after the caches are dropped (AnonPages, Mapped, Shmem) plus the
 * pages on the per-CPU free lists (/proc/zoneinfo's pageset counts, which meminfo counts
 * nowhere): on a disk guest a daemon that exits or a journal that grows moves megabytes between
 * them, and that is no kernel leak (a CI run's kdump cell read MemFree -4340 kB per cycle,
 * SUnreclaim -32 kB). The counters come from
 * the per-node meminfo in sysfs, not /proc/meminfo: a patch may change meminfo_proc_show (the
 * kernel's atomic-replace selftest does), and the leak check must not read through it. */

struct mem_sample {
	long avail_kb, slab_kb, sunreclaim_kb, refcnt; /* avail_kb: MemFree after drop_caches */
	long user_kb;                                  /* AnonPages + Mapped + Shmem, or 0 */
	long pcp_kb;                                   /* per-CPU free lists (zoneinfo), or 0 */
	long free_kb;                                  /* avail_kb + user_kb + pcp_kb: judged */
	int from_node;                                 /* read from sysfs node meminfo */
};

/* The sum of KEY over every line that has it ("Node 0 MemFree:  123 kB" per node, or one
 * /proc/meminfo line), or -1 when no line has it. */
static long meminfo_kb(const char *text, const char *key)
{
	long sum = -1;

	for (const char *p = text; (p = strstr(p, key)); p += strlen(key)) {
		char *end;
		long v = strtol(p + strlen(key), &end, 10);

		if (end != p + strlen(key))
			sum = (sum < 0 ? 0 : sum) + v;
	}
	return sum;
}

static int leak_exercise(struct cellrun *cr, const char *step, size_t last)
{
	if (cr->sc->leak.exercise) {
		const char *argv[] = { "/bin/sh", "-c", cr->sc->leak.exercise, NULL };
		int code;

		if (guest_exec(cr, step, "exercise", argv, cr->sc->timeouts.probe_ms * 6, &code,
			       NULL) < 0)
			return -1;
		if (code != 0)
			cr_add(cr, step, "exercise", V_ERROR, 0, "leak.exercise exited with %d", code);
		return code == 0 ? 0 : -1;
	}
	/* the probes call the patched functions; their verdicts were checked already */
	for (size_t i = 0; i <= last; i++)
		for (size_t k = 0; k < cr->sc->patchset.steps[i].nr_probes; k++) {
			int code, to;
			uint64_t took;
			struct sb out = SB_INIT;
			int r = run_probe(cr, step, &cr->sc->patchset.steps[i].probes[k], &code, &to,
					  &out, &took);
			sb_release(&out);
			if (r < 0)
				return -1;
		}
	return 0;
}

static int mem_measure(struct cellrun *cr, const char *step, const char *mod,
		       struct mem_sample *m)
{
	char *script = xasprintf("sync; echo 3 > /proc/sys/vm/drop_caches; sleep 0.5; "
				 "if ls /sys/devices/system/node/node*/meminfo >/dev/null 2>&1; then "
				 "echo source: node; cat /sys/devices/system/node/node*/meminfo; "
				 "else echo source: proc; cat /proc/meminfo; fi; "
				 "awk '$1 == \"count:\" { n += $2 } END { print \"pcp_pages:\", n + 0 }' "
				 "/proc/zoneinfo 2>/dev/null; "
				 "echo refcnt: $(cat /sys/module/%s/refcnt 2>/dev/null || echo -1)", mod);
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct sb out = SB_INIT;
	int code, r;

	r = guest_exec(cr, step, "memory", argv, 20000, &code, &out);
	free(script);
	if (r == 0) {
		m->avail_kb = meminfo_kb(out.buf, "MemFree:");
		m->slab_kb = meminfo_kb(out.buf, "Slab:");
		m->sunreclaim_kb = meminfo_kb(out.buf, "SUnreclaim:");
		m->refcnt = meminfo_kb(out.buf, "refcnt:");
		m->user_kb = 0;
		for (const char *const *k = (const char *const[]){ "AnonPages:", "Mapped:",
								     "Shmem:", NULL }; *k; k++)
			if (meminfo_kb(out.buf, *k) > 0)
				m->user_kb += meminfo_kb(out.buf, *k);
		/* pages on the per-CPU free lists are counted nowhere in meminfo: a process's exit
		 * moves megabytes there and back (4 KiB pages: x86-64) */
		m->pcp_kb = meminfo_kb(out.buf, "pcp_pages:") > 0 ? meminfo_kb(out.buf, "pcp_pages:") * 4
								     : 0;
		m->free_kb = m->avail_kb + m->user_kb + m->pcp_kb;
		m->from_node = strstr(out.buf, "source: node") != NULL;
		if (m->avail_kb < 0 || m->sunreclaim_kb < 0) {
			/* read after a patch: what the guest printed is the kernel's answer, and an
			 * unreadable memory counter under a live patch is the patch's doing */
			struct check_result *c = cr_add(cr, step, "memory", cr->patched ? V_FAIL : V_ERROR,
						     0, "the guest's memory counters could not be read "
						     "(MemFree/SUnreclaim missing; exit %d)", code);
			check_evidence_text(c, "| ", out.buf, 40);
			r = -1;
		}
	}
	sb_release(&out);
	return r;
}

static int long_cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static long median_delta(const struct mem_sample *m, size_t n, size_t off)
{
	long d[64];

	for (size_t i = 1; i < n; i++)
		d[i - 1] = *(const long *)((const char *)&m[i] + off) -
			   *(const long *)((const char *)&m[i - 1] + off);
	qsort(d, n - 1, sizeof(*d), long_cmp);
	return (n - 1) % 2 ? d[(n - 1) / 2] : (d[(n - 1) / 2 - 1] + d[(n - 1) / 2]) / 2;
}

void leak_check(struct cellrun *cr, size_t last)
{
	const char *S = "leak", *mod = cr->mods[last].name;
	const struct loaded *l = loaded_find(cr, mod);
	unsigned cycles = cr->sc->leak.cycles, thr = cr->sc->leak.threshold_kb;
	struct mem_sample m[51];
	long d_sun, d_avail, d_user, d_pcp, d_free, least = LONG_MAX;
	unsigned least_at = 0;
	uint64_t t0 = now_ms();
	int64_t seq;
	int weak;
	struct check_result *c;
	json_object *j, *arr;

	if (!cycles || cr->down)
		return;
	cr_progress(cr, "leak: %u apply/remove cycle(s) of %s", cycles, mod);
	if (!(l && l->inserted) && load_and_settle(cr, S, mod, cr->sc->patchset.steps[last].params,
						   0, 0, &seq) != SETTLED)
		return;
	/* counting the patched functions' calls from here on (set up before the first
	 * measurement: the kprobe events' own memory is not a cycle's) */
	exercise_arm(cr, last, S);
	if (cr->down || leak_exercise(cr, S, last) < 0 || mem_measure(cr, S, mod, &m[0]) < 0)
		return;
	for (unsigned i = 1; i <= cycles; i++) {
		char step[32];

		snprintf(step, sizeof(step), "leak-cycle%u", i);
		if (perf_unpatch(cr, step, mod) < 0 ||
		    load_and_settle(cr, step, mod, cr->sc->patchset.steps[last].params, 0, 0, &seq) !=
		    SETTLED)
			return;
		if (leak_exercise(cr, step, last) < 0 || mem_measure(cr, step, mod, &m[i]) < 0)
			return;
	}
	{
		char when[96];

		snprintf(when, sizeof(when), "by the exercise of the %u leak cycle(s)", cycles);
		weak = exercise_check(cr, last, S, when) == V_SKIP && exercise_never(&cr->ex);
		if (cr->down)
			return;
	}
	d_sun = median_delta(m, cycles + 1, offsetof(struct mem_sample, sunreclaim_kb));
	d_avail = median_delta(m, cycles + 1, offsetof(struct mem_sample, avail_kb));
	d_user = median_delta(m, cycles + 1, offsetof(struct mem_sample, user_kb));
	d_pcp = median_delta(m, cycles + 1, offsetof(struct mem_sample, pcp_kb));
	d_free = median_delta(m, cycles + 1, offsetof(struct mem_sample, free_kb));
	/* a leak takes its pages in every cycle; a guest's own noise (per-CPU page lists, a
	 * daemon's memory) moves both ways: the least fall must be past the threshold too */
	for (unsigned i = 1; i <= cycles; i++)
		if (m[i - 1].free_kb - m[i].free_kb < least) {
			least = m[i - 1].free_kb - m[i].free_kb;
			least_at = i;
		}
	j = json_object_new_object();
	arr = json_object_new_array();
	for (unsigned i = 0; i <= cycles; i++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "mem_available_kb", json_object_new_int64(m[i].avail_kb));
		json_object_object_add(o, "slab_kb", json_object_new_int64(m[i].slab_kb));
		json_object_object_add(o, "sunreclaim_kb", json_object_new_int64(m[i].sunreclaim_kb));
		json_object_object_add(o, "user_kb", json_object_new_int64(m[i].user_kb));
		json_object_object_add(o, "pcp_kb", json_object_new_int64(m[i].pcp_kb));
		json_object_object_add(o, "refcnt", json_object_new_int64(m[i].refcnt));
		json_object_array_add(arr, o);
	}
	json_object_object_add(j, "samples", arr);
	json_object_object_add(j, "sunreclaim_kb_per_cycle", json_object_new_int64(d_sun));
	json_object_object_add(j, "mem_available_kb_per_cycle", json_object_new_int64(d_avail));
	json_object_object_add(j, "user_kb_per_cycle", json_object_new_int64(d_user));
	json_object_object_add(j, "pcp_kb_per_cycle", json_object_new_int64(d_pcp));
	json_object_object_add(j, "free_kb_per_cycle", json_object_new_int64(d_free));
	json_object_object_add(cr->cell->metrics, "leak", j);
	if (d_sun > (long)thr)
		c = cr_add(cr, S, "memory", V_FAIL, now_ms() - t0, "leak: SUnreclaim grew %ld kB per "
			"cycle over %u cycles of %s (free memory %+ld kB per cycle; threshold %u kB)",
			d_sun, cycles, mod, d_free, thr);
	else if (-d_free > 4L * thr && least > (long)thr)
		c = cr_add(cr, S, "memory", V_FAIL, now_ms() - t0, "leak: free memory fell %ld kB per "
			"cycle over %u cycles of %s, at least %ld kB in each (MemFree %+ld kB, userland "
			"%+ld kB, per-CPU lists %+ld kB, SUnreclaim %+ld kB per cycle; threshold %u kB)",
			-d_free, cycles, mod, least, d_avail, d_user, d_pcp, d_sun, 4 * thr);
	else if (-d_free > 4L * thr)
		c = cr_add(cr, S, "memory", V_PASS, now_ms() - t0, "no steady leak over %u cycles of "
			"%s: free memory fell %ld kB per cycle, but %+ld kB in cycle %u (a leak takes "
			"its pages in every cycle; SUnreclaim %+ld kB per cycle; threshold %u kB)",
			cycles, mod, -d_free, -least, least_at, d_sun, 4 * thr);
	else if (weak)
		/* a leak on a path nothing took cannot show: not "no leak" */
		c = cr_add(cr, S, "memory", V_SKIP, now_ms() - t0, "not exercised: no growth over %u "
			"cycles of %s, but the exercise did not reach every patched function (see "
			"check exercised): SUnreclaim %+ld kB, free memory %+ld kB per cycle", cycles,
			mod, d_sun, d_free);
	else
		c = cr_add(cr, S, "memory", V_PASS, now_ms() - t0, "no leak over %u cycles of %s: "
			"SUnreclaim %+ld kB, free memory %+ld kB per cycle (MemFree %+ld kB, userland "
			"%+ld kB, per-CPU lists %+ld kB; threshold %u kB)", cycles, mod, d_sun, d_free,
			d_avail, d_user, d_pcp, thr);
	for (unsigned i = 0; i <= cycles; i++)
		check_evidence(c, "%s: MemFree %ld kB, userland %ld kB (AnonPages+Mapped+Shmem), "
			       "per-CPU free lists %ld kB, Slab %ld kB, SUnreclaim %ld kB, refcnt %ld "
			       "(from %s)", i ? "after cycle" : "before", m[i].avail_kb, m[i].user_kb,
			       m[i].pcp_kb, m[i].slab_kb, m[i].sunreclaim_kb, m[i].refcnt, m[i].from_node ?
			       "/sys/devices/system/node/node*/meminfo" : "/proc/meminfo");
	for (unsigned i = 1; i <= cycles; i++)
		if (m[i].refcnt != m[0].refcnt) {
			cr_add(cr, S, "refcnt", V_FAIL, 0, "leak: the reference count of %s moved from %ld "
			    "to %ld over %u cycles", mod, m[0].refcnt, m[cycles].refcnt, cycles);
			return;
		}
	cr_add(cr, S, "refcnt", V_PASS, 0, "reference count of %s steady at %ld", mod, m[0].refcnt);
}
