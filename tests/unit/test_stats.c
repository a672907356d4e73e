/* test_stats.c: quantiles by selection against a sorted reference, and the bootstrap
 * comparison's verdicts on generated data with known answers. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* A small deterministic generator for test data (independent of the one in stats.c). */
static uint64_t lcg_state;
static double unif(void)
{
	lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return ((double)(lcg_state >> 11) + 0.5) / 9007199254740992.0;
}
static double normal(double mu, double sigma)
{
	return mu + sigma * sqrt(-2 * log(unif())) * cos(2 * M_PI * unif());
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double ref_quantile(const double *x, size_t n, double q)
{
	double *s = malloc(n * sizeof(*s)), pos = q * (double)(n - 1), r;
	size_t k = (size_t)pos;

	memcpy(s, x, n * sizeof(*s));
	qsort(s, n, sizeof(*s), dcmp);
	r = k + 1 < n ? s[k] + (pos - (double)k) * (s[k + 1] - s[k]) : s[k];
	free(s);
	return r;
}

START_TEST(test_quantile_matches_sort)
{
	static const double qs[] = { 0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1 };
	double *x = malloc(5000 * sizeof(*x)), *y = malloc(5000 * sizeof(*y));

	lcg_state = 42;
	for (int round = 0; round < 300; round++) {
		size_t n = 1 + (size_t)(unif() * (round < 100 ? 20 : 5000));
		int dups = round % 3 == 0;

		for (size_t i = 0; i < n; i++)
			x[i] = dups ? floor(unif() * 5) : normal(100, 30);
		for (size_t k = 0; k < ARRAY_SIZE(qs); k++) {
			double want = ref_quantile(x, n, qs[k]), got;
			memcpy(y, x, n * sizeof(*y));
			got = stats_quantile(y, n, qs[k]);
			ck_assert_msg(fabs(got - want) < 1e-9, "n=%zu q=%g: got %g want %g", n, qs[k],
				      got, want);
		}
	}
	free(x);
	free(y);
}
END_TEST

START_TEST(test_quantile_by_hand)
{
	double a[] = { 5 }, b[] = { 4, 1, 3, 2 }, c[] = { 10, 20 };

	ck_assert(stats_quantile(a, 1, 0.99) == 5);
	ck_assert(stats_quantile(b, 4, 0) == 1);
	ck_assert(stats_quantile(b, 4, 1) == 4);
	ck_assert(fabs(stats_quantile(b, 4, 0.5) - 2.5) < 1e-12);
	ck_assert(fabs(stats_quantile(c, 2, 0.99) - 19.9) < 1e-12);
	ck_assert(stats_of(STATS_MAX, b, 4) == 4);
	ck_assert(stats_of(STATS_MEAN, b, 4) == 2.5);
}
END_TEST

/* k phases of n samples each, normal(mu * (1 + phase_jitter), sigma) */
struct gen {
	double *data[8];
	size_t n[8];
	const double *ptr[8];
	struct stats_group g;
};

static void gen_fill(struct gen *g, size_t k, size_t n, double mu, double sigma, double jitter)
{
	g->g.nr = k;
	g->g.phase = g->ptr;
	g->g.n = g->n;
	for (size_t i = 0; i < k; i++) {
		double m = mu * (1 + normal(0, jitter));
		g->data[i] = malloc(n * sizeof(double));
		g->n[i] = n;
		g->ptr[i] = g->data[i];
		for (size_t j = 0; j < n; j++)
			g->data[i][j] = fabs(normal(m, sigma));
	}
}

static void gen_free(struct gen *g)
{
	for (size_t i = 0; i < g->g.nr; i++)
		free(g->data[i]);
}

static struct stats_result cmp(struct gen *a, struct gen *b, enum stats_kind k, int hib,
			       double thr)
{
	struct stats_opts o = { .kind = k, .higher_is_better = hib, .threshold = thr,
				.confidence = 0.95, .resamples = 1000 };
	struct stats_result r;
	struct kerr e = KERR_INIT;

	ck_assert_msg(stats_compare(&a->g, &b->g, &o, &r, &e) == 0, "%s", e.msg);
	ck_assert(r.lo <= r.change + 1e-12 || r.verdict != STATS_PASS);
	ck_assert(r.lo <= r.hi);
	return r;
}

START_TEST(test_aa_never_fails)
{
	int pass = 0;

	lcg_state = 7;
	for (int run = 0; run < 20; run++) {
		struct gen a, b;
		struct stats_result r;

		gen_fill(&a, 3, 600, 2000, 300, 0.01);
		gen_fill(&b, 3, 600, 2000, 300, 0.01);
		for (int k = STATS_P50; k <= STATS_MEAN; k++) {
			r = cmp(&a, &b, (enum stats_kind)k, 0, 0.05);
			ck_assert_msg(r.verdict != STATS_FAIL, "A/A run %d %s: change %.3f [%.3f, %.3f]",
				      run, stats_kind_name((enum stats_kind)k), r.change, r.lo, r.hi);
			pass += r.verdict == STATS_PASS;
		}
		gen_free(&a);
		gen_free(&b);
	}
	ck_assert_int_gt(pass, 40); /* the medians and means of such data are precise enough */
}
END_TEST

START_TEST(test_shift_fails_with_direction)
{
	struct gen a, b;
	struct stats_result r;

	lcg_state = 11;
	gen_fill(&a, 3, 800, 2000, 200, 0.01);
	gen_fill(&b, 3, 800, 2600, 200, 0.01); /* +30% */
	r = cmp(&a, &b, STATS_P50, 0, 0.05);
	ck_assert_int_eq(r.verdict, STATS_FAIL);
	ck_assert(r.change > 0.25 && r.change < 0.35);
	ck_assert(r.lo > 0.05 && r.hi < 0.5);
	/* the same rise in a higher-is-better quantity (hashes per second) is no regression */
	r = cmp(&a, &b, STATS_MEAN, 1, 0.05);
	ck_assert_int_eq(r.verdict, STATS_PASS);
	/* and a drop in it is */
	r = cmp(&b, &a, STATS_MEAN, 1, 0.05);
	ck_assert_int_eq(r.verdict, STATS_FAIL);
	ck_assert(r.change < -0.2);
	gen_free(&a);
	gen_free(&b);
}
END_TEST

START_TEST(test_noisy_is_inconclusive)
{
	struct gen a, b;
	struct stats_result r;

	lcg_state = 5;
	/* phases that wander by 20% between each other, a true change of +6% */
	gen_fill(&a, 3, 300, 2000, 400, 0.2);
	gen_fill(&b, 3, 300, 2120, 400, 0.2);
	r = cmp(&a, &b, STATS_P50, 0, 0.05);
	ck_assert_int_eq(r.verdict, STATS_INCONCLUSIVE);
	ck_assert(r.noise > 0.05);
	gen_free(&a);
	gen_free(&b);
}
END_TEST

/* A change carried by two of three patched phases: the third is like the unpatched ones. The
 * pooled evidence is beyond the threshold, the phases are not all worse: not a FAIL. */
START_TEST(test_not_every_phase_is_not_a_fail)
{
	struct gen a, b;
	struct stats_result r;

	lcg_state = 21;
	gen_fill(&a, 3, 800, 2000, 100, 0.0);
	gen_fill(&b, 3, 800, 2000, 100, 0.0);
	for (size_t i = 0; i < 2; i++)           /* phases 1 and 2 of B: +40% */
		for (size_t j = 0; j < b.n[i]; j++)
			b.data[i][j] *= 1.4;
	r = cmp(&a, &b, STATS_P50, 0, 0.05);
	ck_assert(r.change > 0.3);
	ck_assert(!r.separated);
	ck_assert_int_ne(r.verdict, STATS_FAIL);
	/* all three: FAIL */
	for (size_t j = 0; j < b.n[2]; j++)
		b.data[2][j] *= 1.4;
	r = cmp(&a, &b, STATS_P50, 0, 0.05);
	ck_assert(r.separated);
	ck_assert_int_eq(r.verdict, STATS_FAIL);
	gen_free(&a);
	gen_free(&b);
}
END_TEST

/* One phase a side: a +40% change in every sample is still no FAIL, and no change no PASS. */
START_TEST(test_one_phase_is_inconclusive)
{
	struct gen a, b;
	struct stats_result r;

	lcg_state = 33;
	gen_fill(&a, 1, 800, 2000, 100, 0.0);
	gen_fill(&b, 1, 800, 2000, 100, 0.0);
	r = cmp(&a, &b, STATS_P50, 0, 0.05);
	ck_assert(r.one_phase);
	ck_assert_int_eq(r.verdict, STATS_INCONCLUSIVE);
	for (size_t j = 0; j < b.n[0]; j++)
		b.data[0][j] *= 1.4;
	r = cmp(&a, &b, STATS_P50, 0, 0.05);
	ck_assert(r.change > 0.3 && r.separated && r.one_phase);
	ck_assert_int_eq(r.verdict, STATS_INCONCLUSIVE);
	gen_free(&a);
	gen_free(&b);
	/* two a side with the same change: FAIL */
	gen_fill(&a, 2, 800, 2000, 100, 0.0);
	gen_fill(&b, 2, 800, 2000, 100, 0.0);
	for (size_t i = 0; i < 2; i++)
		for (size_t j = 0; j < b.n[i]; j++)
			b.data[i][j] *= 1.4;
	r = cmp(&a, &b, STATS_P50, 0, 0.05);
	ck_assert(!r.one_phase);
	ck_assert_int_eq(r.verdict, STATS_FAIL);
	gen_free(&a);
	gen_free(&b);
}
END_TEST

START_TEST(test_deterministic_and_errors)
{
	struct gen a, b;
	struct stats_result r1, r2, r;
	struct stats_opts o = { .kind = STATS_P99, .threshold = 0.05, .resamples = 500 };
	struct kerr e = KERR_INIT;
	double zero[3] = { 0, 0, 0 };
	const double *zp[1] = { zero };
	size_t zn[1] = { 3 }, none[1] = { 0 };
	struct stats_group z = { zp, zn, 1 }, empty = { zp, none, 1 }, nophase = { zp, zn, 0 };

	lcg_state = 3;
	gen_fill(&a, 2, 500, 100, 10, 0.02);
	gen_fill(&b, 2, 500, 100, 10, 0.02);
	ck_assert_int_eq(stats_compare(&a.g, &b.g, &o, &r1, &e), 0);
	ck_assert_int_eq(stats_compare(&a.g, &b.g, &o, &r2, &e), 0);
	ck_assert(r1.lo == r2.lo && r1.hi == r2.hi);
	o.seed = 99;
	ck_assert_int_eq(stats_compare(&a.g, &b.g, &o, &r2, &e), 0);
	ck_assert(r1.lo != r2.lo || r1.hi != r2.hi);
	ck_assert_int_eq(stats_compare(&z, &b.g, &o, &r, &e), -1);
	ck_assert(strstr(e.msg, "undefined"));
	kerr_clear(&e);
	ck_assert_int_eq(stats_compare(&empty, &b.g, &o, &r, &e), -1);
	ck_assert(strstr(e.msg, "no samples"));
	kerr_clear(&e);
	ck_assert_int_eq(stats_compare(&a.g, &nophase, &o, &r, &e), -1);
	ck_assert(strstr(e.msg, "no phases"));
	gen_free(&a);
	gen_free(&b);
}
END_TEST

Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("stats");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_quantile_matches_sort);
	tcase_add_test(tc, test_quantile_by_hand);
	tcase_add_test(tc, test_aa_never_fails);
	tcase_add_test(tc, test_shift_fails_with_direction);
	tcase_add_test(tc, test_noisy_is_inconclusive);
	tcase_add_test(tc, test_not_every_phase_is_not_a_fail);
	tcase_add_test(tc, test_one_phase_is_inconclusive);
	tcase_add_test(tc, test_deterministic_and_errors);
	suite_add_tcase(s, tc);
	return s;
}
