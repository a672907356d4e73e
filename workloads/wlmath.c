/* wlmath.c: the workloads' arithmetic (see wlmath.h). */
#include <stdio.h>

#include "wlmath.h"

uint64_t wlm_ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ULL + (uint64_t)ts->tv_nsec;
}

struct timespec wlm_ns_ts(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };
	return ts;
}

uint64_t wlm_tick_deadline(const struct wlm_ticks *t)
{
	return t->start_ns + t->index * t->period_ns;
}

int wlm_tick_end(struct wlm_ticks *t, uint64_t now_ns, uint64_t *skipped)
{
	uint64_t next = wlm_tick_deadline(t) + t->period_ns;
	int missed = now_ns > next;

	*skipped = 0;
	t->index++;
	if (missed) {
		/* the next tick still ahead of now */
		uint64_t behind = (now_ns - t->start_ns) / t->period_ns + 1;
		*skipped = behind - t->index;
		t->index = behind;
	}
	return missed;
}

double wlm_rate(uint64_t count, uint64_t elapsed_ns)
{
	return elapsed_ns ? (double)count * 1e9 / (double)elapsed_ns : 0;
}

double wlm_kbps(uint64_t bytes, uint64_t elapsed_ns)
{
	return elapsed_ns ? (double)bytes * 8.0 * 1e6 / (double)elapsed_ns : 0;
}

void wlm_playout_init(struct wlm_playout *p, double start_ms, uint64_t now_ns)
{
	p->start_ms = start_ms;
	p->buffered_ms = 0;
	p->clock_ns = now_ns;
	p->playing = 0;
	p->stalled = 0;
	p->stall_start_ns = 0;
	p->stalls = 0;
}

void wlm_playout_advance(struct wlm_playout *p, uint64_t now_ns)
{
	double elapsed_ms;

	if (now_ns <= p->clock_ns)
		return;
	elapsed_ms = (double)(now_ns - p->clock_ns) / 1e6;
	if (p->playing && !p->stalled) {
		if (elapsed_ms >= p->buffered_ms) {
			/* ran dry part-way: the stall began when the last media played out */
			p->stall_start_ns = p->clock_ns + (uint64_t)(p->buffered_ms * 1e6);
			p->buffered_ms = 0;
			p->stalled = 1;
			p->stalls++;
		} else {
			p->buffered_ms -= elapsed_ms;
		}
	}
	p->clock_ns = now_ns;
}

uint64_t wlm_playout_add(struct wlm_playout *p, uint64_t now_ns, double seg_ms)
{
	uint64_t stall = 0;

	wlm_playout_advance(p, now_ns);
	p->buffered_ms += seg_ms;
	if (p->stalled) {
		stall = now_ns > p->stall_start_ns ? now_ns - p->stall_start_ns : 0;
		p->stalled = 0;
	}
	if (!p->playing && p->buffered_ms >= p->start_ms)
		p->playing = 1;
	return stall;
}

unsigned wlm_leading_zero_bits(const unsigned char *h, size_t len)
{
	unsigned n = 0;

	for (size_t i = 0; i < len; i++) {
		if (h[i] == 0) {
			n += 8;
			continue;
		}
		for (int b = 7; b >= 0 && !(h[i] & (1u << b)); b--)
			n++;
		break;
	}
	return n;
}

void wlm_hex_reversed(const unsigned char *h, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[h[len - 1 - i] >> 4];
		out[2 * i + 1] = hex[h[len - 1 - i] & 15];
	}
	out[2 * len] = '\0';
}
