/* exercise.c: reading and judging the calls counted while a step is tested (exercise.h). */
#define _GNU_SOURCE
#include "exercise.h"
#include "klpfuncs.h"

#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>

void exercise_reset(struct exercise *x)
{
	memset(x, 0, sizeof(*x));
	x->step = -1;
}

/* the next space-separated word of *p into out; 0 when there is none */
static int word(const char **p, char *out, size_t size)
{
	size_t n;

	while (**p == ' ' || **p == '\t')
		(*p)++;
	n = strcspn(*p, " \t\n");
	if (!n)
		return 0;
	snprintf(out, size, "%.*s", (int)n, *p);
	*p += n;
	return 1;
}

static void rest(const char *p, char *out, size_t size)
{
	size_t n;

	while (*p == ' ' || *p == '\t')
		p++;
	n = strcspn(p, "\n");
	snprintf(out, size, "%.*s", (int)n, p);
}

static struct ex_func *find_event(struct exercise *x, const char *event)
{
	for (size_t i = 0; i < x->nr; i++)
		if (!strcmp(x->f[i].event, event))
			return &x->f[i];
	return NULL;
}

void exercise_parse_line(struct exercise *x, const char *line)
{
	const char *p = line;
	char kind[16], ev[48], a[32], b[32];
	struct ex_func *f;

	if (!word(&p, kind, sizeof(kind)))
		return;
	if (!strcmp(kind, "none")) {
		rest(p, x->none, sizeof(x->none));
		if (!*x->none)
			snprintf(x->none, sizeof(x->none), "no reason given");
		return;
	}
	if (!strcmp(kind, "count")) {
		char *end;
		unsigned long long h, m;

		if (!word(&p, ev, sizeof(ev)) || !word(&p, a, sizeof(a)) || !word(&p, b, sizeof(b)))
			return;
		f = find_event(x, ev);
		h = strtoull(a, &end, 10);
		if (!f || !f->armed || *end)
			return;
		m = strtoull(b, &end, 10);
		if (*end)
			return;
		f->hits = h;
		f->missed = m;
		f->read = 1;
		return;
	}
	if (strcmp(kind, "armed") && strcmp(kind, "fail"))
		return;
	if (x->nr == EX_MAX_FUNCS) {
		x->dropped++;
		return;
	}
	f = &x->f[x->nr];
	memset(f, 0, sizeof(*f));
	if (!word(&p, f->event, sizeof(f->event)) || !word(&p, f->obj, sizeof(f->obj)) ||
	    !word(&p, f->func, sizeof(f->func)) || !word(&p, f->sympos, sizeof(f->sympos)))
		return;
	f->pos = atoi(f->sympos);
	f->armed = !strcmp(kind, "armed");
	if (!f->armed)
		rest(p, f->why, sizeof(f->why));
	x->nr++;
}

void exercise_parse(struct exercise *x, const char *text)
{
	for (const char *l = text ? text : ""; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "")
		exercise_parse_line(x, l);
}

void exercise_name_new(struct exercise *x, const struct klp_fn *fn, size_t nr)
{
	for (size_t i = 0; i < x->nr; i++)
		for (size_t k = 0; k < nr; k++) {
			unsigned long pos = fn[k].sympos ? fn[k].sympos : 1;
			int fpos = x->f[i].pos ? x->f[i].pos : 1;

			if (!strcmp(x->f[i].obj, fn[k].obj) && !strcmp(x->f[i].func, fn[k].old_name) &&
			    pos == (unsigned long)fpos) {
				snprintf(x->f[i].new_name, sizeof(x->f[i].new_name), "%s",
					 fn[k].new_name);
				break;
			}
		}
}

size_t exercise_never(const struct exercise *x)
{
	size_t n = 0;

	for (size_t i = 0; i < x->nr; i++)
		n += x->f[i].read && !x->f[i].hits;
	return n;
}

enum verdict exercise_judge(const struct exercise *x, const char *when, const char *mod,
			    char *title, size_t size)
{
	size_t counted = 0, never = 0, o = 0;
	uint64_t calls = 0;

	if (*x->none) {
		snprintf(title, size, "not counted: %s", x->none);
		return V_SKIP;
	}
	if (!x->nr) {
		snprintf(title, size, "not counted: %s lists no function in its sysfs folder", mod);
		return V_SKIP;
	}
	for (size_t i = 0; i < x->nr; i++) {
		if (!x->f[i].read)
			continue;
		counted++;
		calls += x->f[i].hits;
		never += !x->f[i].hits;
	}
	if (!counted) {
		snprintf(title, size, "not counted: no kprobe event on the %zu function(s) of %s "
			 "counted", x->nr, mod);
		return V_SKIP;
	}
	if (never) {
		int named = 1;

		for (size_t i = 0; i < x->nr; i++)
			named &= !x->f[i].read || x->f[i].hits || *x->f[i].new_name;
		o = (size_t)snprintf(title, size, "not exercised: ");
		for (size_t i = 0, k = 0; i < x->nr && o < size; i++) {
			const struct ex_func *f = &x->f[i];

			if (!f->read || f->hits)
				continue;
			if (k == 3) {
				o += (size_t)snprintf(title + o, size - o, " and %zu more", never - 3);
				break;
			}
			if (named)
				o += (size_t)snprintf(title + o, size - o, "%s%s (replacing %s)",
						      k ? ", " : "", f->new_name, f->func);
			else
				o += (size_t)snprintf(title + o, size - o, "%s%s", k ? ", " : "",
						      f->func);
			k++;
		}
		if (o < size && named)
			snprintf(title + o, size - o, " %s never called %s",
				 never > 1 ? "were" : "was", when);
		else if (o < size)
			snprintf(title + o, size - o, " (replaced by %s) %s never called %s", mod,
				 never > 1 ? "were" : "was", when);
		return V_SKIP;
	}
	o = (size_t)snprintf(title, size, "%llu call(s) of the %zu replaced function(s) %s",
			     (unsigned long long)calls, counted, when);
	if (counted < x->nr && o < size)
		snprintf(title + o, size - o, "; %zu not counted", x->nr - counted);
	return V_PASS;
}

int perf_calls_parse(const struct exercise *x, const char *profile, uint64_t *hits)
{
	int seen[EX_MAX_FUNCS] = { 0 };

	for (const char *l = profile; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "") {
		const char *p = l;
		char ev[48], a[32], b[32], *end;
		unsigned long long h;

		if (!word(&p, ev, sizeof(ev)) || !word(&p, a, sizeof(a)) || !word(&p, b, sizeof(b)))
			continue;
		h = strtoull(a, &end, 10);
		if (*end)
			continue;
		for (size_t k = 0; k < x->nr; k++)
			if (x->f[k].armed && !strcmp(x->f[k].event, ev)) {
				hits[k] = h;
				seen[k] = 1;
			}
	}
	for (size_t k = 0; k < x->nr; k++)
		if (x->f[k].armed && !seen[k])
			return -1;
	return 0;
}

/* a patched phase of the last step: its own, or a pair's */
static int judged_phase(const struct pc_phase *p, const char *last)
{
	return p->patched && (!strcmp(p->label, last) ||
			      (!strncmp(p->label, "pair", 4) && strstr(p->label, "-patched")));
}

enum verdict perf_calls_judge(const struct perf_calls *pc, const char *last, const char *mod,
			      char *title, size_t size)
{
	struct exercise *t;
	size_t nb = 0;
	char when[160];
	enum verdict v;

	if (*pc->x.none)
		return exercise_judge(&pc->x, "", mod, title, size); /* "not counted: WHY" */
	if (!pc->x.nr) {
		snprintf(title, size, "not counted: no function was found in the patch modules");
		return V_SKIP;
	}
	t = malloc(sizeof(*t));
	if (!t) {
		snprintf(title, size, "not counted: out of memory");
		return V_SKIP;
	}
	*t = pc->x;
	for (size_t k = 0; k < t->nr; k++) {
		t->f[k].hits = 0;
		t->f[k].read = 0;
	}
	for (size_t i = 0; i < pc->nph; i++) {
		if (!judged_phase(&pc->ph[i], last) || !pc->ph[i].counted)
			continue;
		nb++;
		for (size_t k = 0; k < t->nr; k++)
			if (t->f[k].armed) {
				t->f[k].hits += pc->ph[i].hits[k];
				t->f[k].read = 1;
			}
	}
	if (!nb) {
		snprintf(title, size, "not counted: no patched phase of %s was counted%s", last,
			 pc->lost ? " (the counts could not be read)" : "");
		free(t);
		return V_SKIP;
	}
	snprintf(when, sizeof(when), "by the workloads in the %.1f s after each of %zu patched "
		 "phase(s)", pc->win_ms / 1000.0, nb);
	v = exercise_judge(t, when, mod, title, size);
	free(t);
	return v;
}

/* "KEY: N kB", or a node's "Node 0 KEY: N kB" (/sys/devices/system/node/node0/meminfo) */
static long meminfo_kb(const char *txt, const char *key)
{
	size_t n = strlen(key);

	for (const char *l = txt; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "") {
		const char *p = l;

		if (!strncmp(p, "Node ", 5)) {
			p += 5;
			while (*p >= '0' && *p <= '9')
				p++;
			while (*p == ' ')
				p++;
		}
		if (!strncmp(p, key, n) && p[n] == ':')
			return strtol(p + n + 1, NULL, 10);
	}
	return -1;
}

int perf_mem_parse(struct perf_calls *pc, const char *meminfo, const char *slabinfo,
		   struct pc_mem *m)
{
	int learn = !pc->learned;
	size_t hint = 0;

	m->sunr_kb = meminfo_kb(meminfo, "SUnreclaim");
	m->avail_kb = meminfo_kb(meminfo, "MemFree"); /* a node's meminfo has no MemAvailable */
	if (m->sunr_kb < 0 || m->avail_kb < 0)
		return -1;
	/* "name active_objs num_objs objsize objperslab pagesperslab : tunables ..." */
	for (const char *l = slabinfo; learn && l && *l;
	     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "") {
		char name[32];
		long a, o;

		if (*l == '#' || sscanf(l, "%31s %ld %*d %ld", name, &a, &o) != 3)
			continue;
		if (pc->ncache % 64 == 0) {
			void *c = realloc(pc->cache, (pc->ncache + 64) * sizeof(*pc->cache));

			if (!c)
				return -1;
			pc->cache = c;
		}
		snprintf(pc->cache[pc->ncache++], sizeof(pc->cache[0]), "%s", name);
	}
	pc->learned = 1;
	free(m->slab);
	m->slab = calloc(pc->ncache ? pc->ncache : 1, sizeof(*m->slab));
	if (!m->slab)
		return -1;
	for (size_t k = 0; k < pc->ncache; k++)
		m->slab[k] = -1;
	for (const char *l = slabinfo; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "") {
		char name[32];
		long a, o;

		if (*l == '#' || sscanf(l, "%31s %ld %*d %ld", name, &a, &o) != 3)
			continue;
		/* mostly in the order of the first reading: look from the last match on */
		for (size_t k = 0; k < pc->ncache; k++) {
			size_t j = (hint + k) % pc->ncache;

			if (!strcmp(pc->cache[j], name)) {
				m->slab[j] = a * o;
				hint = j + 1;
				break;
			}
		}
	}
	return 0;
}

void perf_calls_release(struct perf_calls *pc)
{
	if (!pc)
		return;
	for (size_t i = 0; i < pc->nph; i++)
		free(pc->ph[i].slab);
	free(pc->mem_at.slab);
	free(pc->cache);
	free(pc);
}

/* the phases perf_phase records unpatched are the baseline and each pair's unpatched one */
static int unpatched_phase(const struct pc_phase *p)
{
	return !p->patched;
}

enum verdict perf_mem_judge(const struct perf_calls *pc, const char *last, unsigned thr_kb,
			    char *title, size_t size)
{
	size_t na = 0, nb = 0, best = (size_t)-1;
	long best_min = 0, best_max_a = 0, avail_min = 0, grow_max = 0;
	const long thr = (long)thr_kb * 1024;

	if (*pc->mem_none) {
		snprintf(title, size, "not measured: %s", pc->mem_none);
		return V_SKIP;
	}
	for (size_t i = 0; i < pc->nph; i++) {
		const struct pc_phase *p = &pc->ph[i];

		if (!p->mem)
			continue;
		if (judged_phase(p, last)) {
			avail_min = nb ? (-p->avail_kb < avail_min ? -p->avail_kb : avail_min)
				       : -p->avail_kb;
			nb++;
		} else if (unpatched_phase(p)) {
			na++;
		}
	}
	if (nb < 2 || !na) {
		snprintf(title, size, "not measured: %zu patched phase(s) of %s and %zu unpatched "
			 "one(s) with the memory read at both ends (2 and 1 are needed: perf.pairs "
			 "2 or more)", nb, last, na);
		return V_SKIP;
	}
	for (size_t k = 0; k < pc->ncache; k++) {
		long min_b = 0, max_a = 0;
		size_t b = 0, a = 0;
		int seen = 1;

		for (size_t i = 0; i < pc->nph && seen; i++) {
			const struct pc_phase *p = &pc->ph[i];

			if (!p->mem)
				continue;
			if (p->slab[k] == LONG_MIN)
				seen = 0;
			else if (judged_phase(p, last))
				min_b = b++ ? (p->slab[k] < min_b ? p->slab[k] : min_b) : p->slab[k];
			else if (unpatched_phase(p))
				max_a = a++ ? (p->slab[k] > max_a ? p->slab[k] : max_a) : p->slab[k];
		}
		if (!seen)
			continue;
		if (min_b > grow_max)
			grow_max = min_b;
		/* grew in every patched phase, at least 4 times what it grew in any unpatched one */
		if (min_b >= thr && (max_a <= 0 || min_b >= 4 * max_a) &&
		    (best == (size_t)-1 || min_b > best_min)) {
			best = k;
			best_min = min_b;
			best_max_a = max_a;
		}
	}
	if (best != (size_t)-1) {
		snprintf(title, size, "leak under load: slab cache %s grew %ld kB or more in each of "
			 "the %zu patched phase(s) of %s (unpatched phases: %+ld kB at most; threshold "
			 "%u kB)", pc->cache[best], best_min / 1024, nb, last, best_max_a / 1024,
			 thr_kb);
		return V_FAIL;
	}
	snprintf(title, size, "no leak under load in the %zu patched phase(s) of %s: no slab cache "
		 "grew more than %ld kB in all of them (threshold %u kB); MemFree fell %ld kB in "
		 "the least", nb, last, grow_max / 1024, thr_kb, avail_min);
	return V_PASS;
}
