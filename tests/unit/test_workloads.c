/* test_workloads.c: the workloads' arithmetic (workloads/wlmath.c). */
#include <check.h>
#include <math.h>
#include <string.h>

#include "wlmath.h"

START_TEST(test_ticks)
{
	struct wlm_ticks t = { 1000000000ULL, 16666667ULL, 1 };
	uint64_t skipped;

	ck_assert_uint_eq(wlm_tick_deadline(&t), 1016666667ULL);
	/* work ending before the next deadline: no miss, on to tick 2 */
	ck_assert_int_eq(wlm_tick_end(&t, 1020000000ULL, &skipped), 0);
	ck_assert_uint_eq(skipped, 0);
	ck_assert_uint_eq(t.index, 2);
	/* tick 2 (deadline 1.0333 s) runs until 1.09 s: past tick 3's deadline (1.05 s);
	 * tick 3 and 4 (1.0667 s) are gone, the next is tick 6 (1.1 s)? 1.0833 is tick 5 */
	ck_assert_int_eq(wlm_tick_end(&t, 1090000000ULL, &skipped), 1);
	ck_assert_uint_eq(t.index, 6);
	ck_assert_uint_eq(skipped, 3);
	ck_assert(wlm_tick_deadline(&t) > 1090000000ULL);
	ck_assert(wlm_tick_deadline(&t) - t.period_ns <= 1090000000ULL);
	/* exactly at the next deadline is still in time */
	t = (struct wlm_ticks){ 0, 100, 1 };
	ck_assert_int_eq(wlm_tick_end(&t, 200, &skipped), 0);
}
END_TEST

START_TEST(test_rates)
{
	ck_assert(fabs(wlm_rate(500, 250000000ULL) - 2000) < 1e-9);
	ck_assert(wlm_rate(5, 0) == 0);
	/* 50,000 bytes in 100 ms = 4000 kbit/s */
	ck_assert(fabs(wlm_kbps(50000, 100000000ULL) - 4000) < 1e-9);
	{
		struct timespec ts = wlm_ns_ts(3000000007ULL);
		ck_assert_int_eq(ts.tv_sec, 3);
		ck_assert_int_eq(ts.tv_nsec, 7);
		ck_assert_uint_eq(wlm_ts_ns(&ts), 3000000007ULL);
	}
}
END_TEST

START_TEST(test_playout)
{
	struct wlm_playout p;
	const uint64_t ms = 1000000ULL;

	wlm_playout_init(&p, 300, 0);
	/* three 100 ms segments, 100 ms apart: playback starts with the third */
	ck_assert_uint_eq(wlm_playout_add(&p, 0, 100), 0);
	ck_assert_uint_eq(wlm_playout_add(&p, 100 * ms, 100), 0);
	ck_assert(!p.playing);
	ck_assert_uint_eq(wlm_playout_add(&p, 200 * ms, 100), 0);
	ck_assert(p.playing);
	ck_assert(fabs(p.buffered_ms - 300) < 1e-9);
	/* nothing for 450 ms: the 300 ms buffer runs dry at 500 ms, the segment at 650 ms ends a
	 * 150 ms stall */
	wlm_playout_advance(&p, 400 * ms);
	ck_assert(fabs(p.buffered_ms - 100) < 1e-9);
	ck_assert(!p.stalled);
	wlm_playout_advance(&p, 600 * ms);
	ck_assert(p.stalled);
	ck_assert_uint_eq(p.stall_start_ns, 500 * ms);
	ck_assert_uint_eq(wlm_playout_add(&p, 650 * ms, 100), 150 * ms);
	ck_assert(!p.stalled);
	ck_assert_uint_eq(p.stalls, 1);
	/* in time again: no stall */
	ck_assert_uint_eq(wlm_playout_add(&p, 700 * ms, 100), 0);
	ck_assert(fabs(p.buffered_ms - 150) < 1e-9);
}
END_TEST

START_TEST(test_zero_bits_and_hex)
{
	unsigned char h[4] = { 0x00, 0x00, 0x1f, 0xff };
	char hex[9];

	ck_assert_uint_eq(wlm_leading_zero_bits(h, 4), 19);
	h[2] = 0x80;
	ck_assert_uint_eq(wlm_leading_zero_bits(h, 4), 16);
	memset(h, 0, 4);
	ck_assert_uint_eq(wlm_leading_zero_bits(h, 4), 32);
	h[0] = 0x12, h[1] = 0x34, h[2] = 0xab, h[3] = 0x0c;
	wlm_hex_reversed(h, 4, hex);
	ck_assert_str_eq(hex, "0cab3412");
}
END_TEST

Suite *workloads_suite(void)
{
	Suite *s = suite_create("workloads");
	TCase *tc = tcase_create("math");

	tcase_add_test(tc, test_ticks);
	tcase_add_test(tc, test_rates);
	tcase_add_test(tc, test_playout);
	tcase_add_test(tc, test_zero_bits_and_hex);
	suite_add_tcase(s, tc);
	return s;
}
