/* wlmath.h: the arithmetic of the workloads, kept apart so it is unit-tested on the host
 * (tests/unit/test_workloads.c). */
#ifndef KLPQ_WLMATH_H
#define KLPQ_WLMATH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* timespec <-> ns on one clock */
uint64_t wlm_ts_ns(const struct timespec *ts);
struct timespec wlm_ns_ts(uint64_t ns);

/* The game loop's schedule: ticks of period_ns from start_ns. */
struct wlm_ticks {
	uint64_t start_ns, period_ns;
	uint64_t index;                   /* the tick being worked on */
};
/* The deadline (start) of the current tick. */
uint64_t wlm_tick_deadline(const struct wlm_ticks *t);
/* Ends the current tick at now_ns: returns 1 when the work ran past the next deadline (a
 * missed deadline); moves index to the next tick that is still in the future, so an
 * overrun skips ticks instead of bunching them. */
int wlm_tick_end(struct wlm_ticks *t, uint64_t now_ns, uint64_t *skipped);

/* A rate over a window: count events over elapsed ns, per second. 0 when elapsed is 0. */
double wlm_rate(uint64_t count, uint64_t elapsed_ns);
/* kbit/s from bytes over elapsed ns. */
double wlm_kbps(uint64_t bytes, uint64_t elapsed_ns);

/* The playout buffer of a streaming client: media arrives in segments, plays in real time.
 * Playback starts once start_ms of media is buffered; when the buffer runs dry the player
 * stalls until the next segment. */
struct wlm_playout {
	double start_ms;                  /* media buffered before playback starts */
	double buffered_ms;               /* media received and not yet played */
	uint64_t clock_ns;                /* time up to which playback has been accounted */
	int playing;                      /* playback has started */
	int stalled;                      /* playback ran dry and waits for media */
	uint64_t stall_start_ns;
	uint64_t stalls;
};
void wlm_playout_init(struct wlm_playout *p, double start_ms, uint64_t now_ns);
/* Plays out up to now_ns; notes when the buffer ran dry. */
void wlm_playout_advance(struct wlm_playout *p, uint64_t now_ns);
/* A segment of seg_ms of media arrived at now_ns (after advance). Returns the length in ns of
 * the stall it ended, or 0. */
uint64_t wlm_playout_add(struct wlm_playout *p, uint64_t now_ns, double seg_ms);

/* Leading zero bits of a hash (big-endian bit order over the bytes as given). */
unsigned wlm_leading_zero_bits(const unsigned char *h, size_t len);
/* Bitcoin's display order: the hash bytes reversed, in hex (out: 2 * len + 1). */
void wlm_hex_reversed(const unsigned char *h, size_t len, char *out);

#endif
