/* stats.c: quantiles and the bootstrap comparison (see stats.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* xoshiro256** seeded by splitmix64 (Blackman and Vigna): small, fast, well studied, and
 * the same sequence everywhere, so a comparison is reproducible. */
struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t res = rotl(r->s[1] * 5, 7) * 9, t = r->s[1] << 17;

	r->s[2] ^= r->s[0];
	r->s[3] ^= r->s[1];
	r->s[1] ^= r->s[2];
	r->s[0] ^= r->s[3];
	r->s[2] ^= t;
	r->s[3] = rotl(r->s[3], 45);
	return res;
}

/* Uniform in [0, n) without modulo bias worth speaking of (n is far below 2^32). */
static size_t rng_below(struct rng *r, size_t n)
{
	return (size_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* The k-th smallest of x[0..n) (Hoare's selection, median-of-three pivot); reorders x. */
static double select_kth(double *x, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, i = lo, j = hi;
		double a = x[lo], b = x[mid], c = x[hi], p, t;

		p = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
		while (i <= j) {
			while (x[i] < p)
				i++;
			while (x[j] > p)
				j--;
			if (i <= j) {
				t = x[i];
				x[i] = x[j];
				x[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return x[k];
	}
	return x[k];
}

double stats_quantile(double *x, size_t n, double q)
{
	double pos = q * (double)(n - 1), v0, v1 = 0;
	size_t k = (size_t)pos;

	if (n == 1)
		return x[0];
	v0 = select_kth(x, n, k);
	if (k + 1 >= n || pos == (double)k)
		return v0;
	/* after selecting k, the k+1-th smallest is the minimum of what lies above it */
	v1 = x[k + 1];
	for (size_t i = k + 2; i < n; i++)
		if (x[i] < v1)
			v1 = x[i];
	return v0 + (pos - (double)k) * (v1 - v0);
}

double stats_of(enum stats_kind k, double *x, size_t n)
{
	double m = 0;

	switch (k) {
	case STATS_P50: return stats_quantile(x, n, 0.5);
	case STATS_P99: return stats_quantile(x, n, 0.99);
	case STATS_P999: return stats_quantile(x, n, 0.999);
	case STATS_MAX:
		m = x[0];
		for (size_t i = 1; i < n; i++)
			if (x[i] > m)
				m = x[i];
		return m;
	case STATS_MEAN:
		for (size_t i = 0; i < n; i++)
			m += x[i];
		return m / (double)n;
	}
	return NAN;
}

const char *stats_kind_name(enum stats_kind k)
{
	static const char *const names[] = { "p50", "p99", "p99.9", "max", "mean" };

	return (unsigned)k < ARRAY_SIZE(names) ? names[k] : "?";
}

const char *stats_verdict_name(enum stats_verdict v)
{
	return v == STATS_PASS ? "PASS" : v == STATS_FAIL ? "FAIL" : "INCONCLUSIVE";
}

static size_t pooled_size(const struct stats_group *g)
{
	size_t n = 0;

	for (size_t i = 0; i < g->nr; i++)
		n += g->n[i];
	return n;
}

/* A group's value: the median over its phases of each phase's statistic. One disturbed phase
 * (a burst of host load under TCG) moves it little, where it would dominate the p99 of the
 * pooled samples; a change present in every phase moves it fully. */
static double median_of(double *v, size_t n)
{
	return stats_quantile(v, n, 0.5);
}

static double group_stat(const struct stats_group *g, enum stats_kind k, double *buf,
			 double *per)
{
	for (size_t i = 0; i < g->nr; i++) {
		memcpy(buf, g->phase[i], g->n[i] * sizeof(*buf));
		per[i] = stats_of(k, buf, g->n[i]);
	}
	return median_of(per, g->nr);
}

/* One hierarchical resample of g: phases with replacement, then up to cap draws with
 * replacement inside each drawn phase; the median of the drawn phases' statistics. */
static double resample_stat(const struct stats_group *g, enum stats_kind k, size_t cap,
			    struct rng *r, double *buf, double *per)
{
	for (size_t i = 0; i < g->nr; i++) {
		size_t p = g->nr > 1 ? rng_below(r, g->nr) : 0;
		size_t m = g->n[p] < cap ? g->n[p] : cap;

		for (size_t j = 0; j < m; j++)
			buf[j] = g->phase[p][rng_below(r, g->n[p])];
		per[i] = stats_of(k, buf, m);
	}
	return median_of(per, g->nr);
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int check_group(const struct stats_group *g, const char *name, struct kerr *e)
{
	if (!g->nr)
		return kerr_set(e, "group %s has no phases", name);
	for (size_t i = 0; i < g->nr; i++)
		if (!g->n[i])
			return kerr_set(e, "phase %zu of group %s has no samples", i + 1, name);
	return 0;
}

int stats_compare(const struct stats_group *a, const struct stats_group *b,
		  const struct stats_opts *o, struct stats_result *out, struct kerr *e)
{
	size_t cap = o->cap ? o->cap : 4000, biggest, ra = 0;
	unsigned R = o->resamples ? o->resamples : 2000;
	double alpha = 1 - (o->confidence > 0 ? o->confidence : 0.95), *buf, *per, *changes;
	double dlo, dhi, lo_a, hi_a, lo_b, hi_b;
	struct rng rng;

	memset(out, 0, sizeof(*out));
	if (check_group(a, "A", e) || check_group(b, "B", e))
		return -1;
	out->a_samples = pooled_size(a);
	out->b_samples = pooled_size(b);
	biggest = cap;
	for (size_t i = 0; i < a->nr; i++)
		biggest = a->n[i] > biggest ? a->n[i] : biggest;
	for (size_t i = 0; i < b->nr; i++)
		biggest = b->n[i] > biggest ? b->n[i] : biggest;
	buf = xcalloc(biggest, sizeof(*buf));
	per = xcalloc(a->nr > b->nr ? a->nr : b->nr, sizeof(*per));
	out->a = group_stat(a, o->kind, buf, per);
	lo_a = hi_a = per[0];
	for (size_t i = 1; i < a->nr; i++) {
		lo_a = per[i] < lo_a ? per[i] : lo_a;
		hi_a = per[i] > hi_a ? per[i] : hi_a;
	}
	out->b = group_stat(b, o->kind, buf, per);
	lo_b = hi_b = per[0];
	for (size_t i = 1; i < b->nr; i++) {
		lo_b = per[i] < lo_b ? per[i] : lo_b;
		hi_b = per[i] > hi_b ? per[i] : hi_b;
	}
	/* every patched phase worse than every unpatched one, by more than the threshold */
	out->separated = o->higher_is_better ? hi_b < lo_a * (1 - o->threshold)
					     : lo_b > hi_a * (1 + o->threshold);
	if (out->a == 0 || !isfinite(out->a) || !isfinite(out->b)) {
		free(buf);
		free(per);
		return kerr_set(e, "the unpatched %s is %g: a relative change is undefined",
				stats_kind_name(o->kind), out->a);
	}
	out->change = out->b / out->a - 1;
	rng_seed(&rng, o->seed ? o->seed : 0x6b6c7071ULL /* "klpq" */);
	changes = xcalloc(R, sizeof(*changes));
	for (unsigned i = 0; i < R; i++) {
		double va = resample_stat(a, o->kind, cap, &rng, buf, per);
		double vb = resample_stat(b, o->kind, cap, &rng, buf, per);

		if (va != 0 && isfinite(va) && isfinite(vb))
			changes[ra++] = vb / va - 1;
	}
	free(buf);
	free(per);
	if (ra < R / 2) {
		free(changes);
		return kerr_set(e, "the unpatched %s is 0 in most resamples: a relative change is "
				"undefined", stats_kind_name(o->kind));
	}
	qsort(changes, ra, sizeof(*changes), dcmp);
	out->lo = changes[(size_t)floor(alpha / 2 * (double)(ra - 1))];
	out->hi = changes[(size_t)ceil((1 - alpha / 2) * (double)(ra - 1))];
	free(changes);
	out->noise = (out->hi - out->lo) / 2;
	/* the change in the bad direction */
	dlo = o->higher_is_better ? -out->hi : out->lo;
	dhi = o->higher_is_better ? -out->lo : out->hi;
	/* one phase a side: the interval holds the noise within that phase only, and "every
	 * patched phase worse" is one comparison; the phase-to-phase noise, which dominates under
	 * TCG (a 2 s phase's p99 moved +103.5% with nothing patched on its path), is not in it */
	out->one_phase = a->nr < 2 || b->nr < 2;
	if (out->one_phase)
		out->verdict = STATS_INCONCLUSIVE;
	else if (dlo > o->threshold && out->separated)
		out->verdict = STATS_FAIL;
	else if (dhi <= o->threshold)
		out->verdict = STATS_PASS;
	else
		out->verdict = STATS_INCONCLUSIVE;
	return 0;
}
