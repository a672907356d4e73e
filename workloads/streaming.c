/* streaming.c: a producer sends media over TCP on loopback to a consumer.
 * --mode paced (the default): fixed-bitrate segments, each one write, to a consumer with a
 * playout buffer that plays in real time. Samples: seg_latency_us per segment (send start to
 * fully received), throughput_kbps per 250 ms window (delivered), and stall_us each time a
 * buffer underrun ends.
 * --mode saturate: the producer writes --write-bytes at a time as fast as the path takes them
 * (a streaming server's many small socket writes, with no rate limit), so the delivered
 * throughput_kbps per 250 ms window is what the send path can do, and write_ns per batch of
 * 32 writes is what one write costs: a per-call cost on the path shows in both, which paced
 * mode cannot show. */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wl.h"

struct seg_hdr {
	uint64_t seq, send_ns;
	uint32_t len, media_ms;
};

struct stream {
	long bitrate_kbps, segment_ms, buffer_ms, write_bytes;
	int saturate;
	uint64_t end;
	int rx;                     /* consumer side of the connection */
	int tx;                     /* producer side */
};

static void *producer(void *arg)
{
	struct stream *s = arg;
	size_t bytes = (size_t)(s->bitrate_kbps * 1000 / 8 * s->segment_ms / 1000);
	char *payload = calloc(1, bytes ? bytes : 1);
	uint64_t next = wl_now(), seq = 0;

	/* media is produced in real time: one segment every segment_ms */
	while (!wl_stop && payload) {
		struct seg_hdr h = { seq++, wl_now(), (uint32_t)bytes, (uint32_t)s->segment_ms };
		struct timespec ts;

		if (wl_write_all(s->tx, &h, sizeof(h)) < 0 || wl_write_all(s->tx, payload, bytes) < 0)
			break;
		next += (uint64_t)s->segment_ms * 1000000ULL;
		ts = wlm_ns_ts(next);
		while (!wl_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
			;
	}
	free(payload);
	shutdown(s->tx, SHUT_WR);
	return NULL;
}

/* saturate mode: small writes, back to back, until stopped */
static void *producer_saturate(void *arg)
{
	struct stream *s = arg;
	char *payload = calloc(1, (size_t)s->write_bytes);
	uint64_t t0 = wl_now();
	unsigned int n = 0;

	/* the cost of one write, averaged over each batch of 32: with TCP_NODELAY on loopback
	 * the writer's own context carries each segment through the whole stack (the
	 * receiver only copies big reads), so this is the send path's cost per call */
	while (!wl_stop && payload) {
		if (wl_write_all(s->tx, payload, (size_t)s->write_bytes) < 0)
			break;
		if (++n == 32) {
			uint64_t now = wl_now();

			wl_line("%llu write_ns=%llu", (unsigned long long)now,
				(unsigned long long)((now - t0) / n));
			t0 = now;
			n = 0;
		}
	}
	free(payload);
	shutdown(s->tx, SHUT_WR);
	return NULL;
}

static int self_test_saturate(void)
{
	const char *args[] = { "--mode", "saturate", "--write-bytes", "4096", NULL };
	char *t = wl_capture(wl_streaming, "streaming", args);
	double lo, hi, slo, shi;
	size_t win = wl_count(t, "throughput_kbps", &lo, &hi);
	size_t segs = wl_count(t, "seg_latency_us", &slo, &shi);
	size_t writes = wl_count(t, "write_ns", &slo, &shi);
	int ok = 1;

	/* loopback takes far more than any paced bitrate: 10 Mbit/s is a floor even under TCG */
	if (win < 5 || lo < 10000) {
		fprintf(stderr, "streaming self-test (saturate): %zu throughput windows, at least "
			"%.0f kbit/s (want >= 5 windows of >= 10000)\n", win, lo);
		ok = 0;
	}
	if (segs) {
		fprintf(stderr, "streaming self-test (saturate): %zu segment samples (want none)\n",
			segs);
		ok = 0;
	}
	if (writes < 100 || slo <= 0) {
		fprintf(stderr, "streaming self-test (saturate): %zu write_ns samples (want >= 100)\n",
			writes);
		ok = 0;
	}
	free(t);
	printf("streaming self-test (saturate): %s (%zu windows, %.0f..%.0f kbit/s, %zu write "
	       "batches)\n", ok ? "ok" : "FAILED", win, lo, hi, writes);
	return ok ? 0 : 1;
}

static int self_test(void)
{
	const char *args[] = { "--bitrate-kbps", "2000", "--segment-ms", "50", "--buffer-ms",
			       "150", NULL };
	char *t = wl_capture(wl_streaming, "streaming", args);
	double lo, hi;
	size_t segs = wl_count(t, "seg_latency_us", &lo, &hi), win;
	int ok = 1;

	if (strncmp(t, "# klpq-workload 1 streaming ", 28)) {
		fprintf(stderr, "streaming self-test: no header\n");
		ok = 0;
	}
	if (segs < 25 || lo <= 0) {
		fprintf(stderr, "streaming self-test: %zu segments in 2 s at 50 ms (want >= 25)\n",
			segs);
		ok = 0;
	}
	win = wl_count(t, "throughput_kbps", &lo, &hi);
	if (win < 5 || hi < 1000 || hi > 10000) {
		fprintf(stderr, "streaming self-test: %zu throughput windows, at most %.0f kbit/s "
			"(want about 2000)\n", win, hi);
		ok = 0;
	}
	free(t);
	printf("streaming self-test: %s (%zu segments, %zu windows)\n", ok ? "ok" : "FAILED",
	       segs, win);
	return self_test_saturate() || !ok ? 1 : 0;
}

/* both modes' consumers: the delivered rate of each 250 ms window, once it is over */
static void throughput_window(uint64_t now, uint64_t *start, uint64_t *bytes)
{
	if (now - *start < 250000000ULL)
		return;
	wl_line("%llu throughput_kbps=%.1f", (unsigned long long)now,
		wlm_kbps(*bytes, now - *start));
	*start = now;
	*bytes = 0;
}

/* saturate mode's consumer: reads whatever arrives and reports the delivered rate */
static void saturate_consume(struct stream *s, char *buf, size_t cap, uint64_t win_start,
			     uint64_t t_end)
{
	uint64_t win_bytes = 0;

	while (!wl_stop && (!t_end || wl_now() < t_end)) {
		struct pollfd p = { s->rx, POLLIN, 0 };
		uint64_t now;

		if (poll(&p, 1, 50) > 0) {
			ssize_t n = read(s->rx, buf, cap);

			if (n <= 0)
				break;
			win_bytes += (uint64_t)n;
		}
		now = wl_now();
		throughput_window(now, &win_start, &win_bytes);
		wl_maybe_flush();
	}
}

int wl_streaming(int argc, char **argv)
{
	struct stream s = { 4000, 100, 300, 4096, 0, 0, -1, -1 };
	const char *mode = "paced";
	struct wl_opt opts[] = {
		{ "--bitrate-kbps", &s.bitrate_kbps, NULL, 1, 10000000 },
		{ "--segment-ms", &s.segment_ms, NULL, 1, 10000 },
		{ "--buffer-ms", &s.buffer_ms, NULL, 1, 600000 },
		{ "--mode", NULL, &mode, 0, 0 },
		{ "--write-bytes", &s.write_bytes, NULL, 1, 1048576 },
	};
	struct wlm_playout po;
	pthread_t th;
	unsigned short port;
	long duration;
	int self, ls;
	uint64_t win_start, win_bytes = 0, t_end;
	size_t cap = 1 << 20;
	char *buf;

	wl_parse(argc, argv, "streaming", opts, 5, &duration, &self);
	if (self)
		return self_test();
	if (!strcmp(mode, "saturate"))
		s.saturate = 1;
	else if (strcmp(mode, "paced"))
		wl_die("streaming: --mode must be paced or saturate, not '%s'", mode);
	if (wl_lo_up() < 0)
		wl_die("streaming: cannot bring up the loopback interface");
	ls = wl_tcp_listen(&port);
	if (ls < 0 || (s.tx = wl_tcp_connect(port)) < 0 || (s.rx = accept(ls, NULL, NULL)) < 0)
		wl_die("streaming: cannot open a TCP connection on loopback");
	close(ls);
	buf = malloc(cap);
	if (!buf)
		wl_die("streaming: out of memory");
	if (s.saturate) {
		/* fixed buffers: autotuning grows them over the first seconds, and a throughput
		 * that drifts up phase after phase would read as a change between phases */
		int sz = 256 * 1024;

		setsockopt(s.tx, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(s.rx, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		wl_header("streaming", "mode=saturate write_bytes=%ld", s.write_bytes);
	} else {
		wl_header("streaming", "bitrate_kbps=%ld segment_ms=%ld buffer_ms=%ld", s.bitrate_kbps,
			  s.segment_ms, s.buffer_ms);
	}
	if (pthread_create(&th, NULL, s.saturate ? producer_saturate : producer, &s))
		wl_die("streaming: cannot start the producer");
	win_start = wl_now();
	t_end = duration ? win_start + (uint64_t)duration * 1000000000ULL : 0;
	if (s.saturate) {
		saturate_consume(&s, buf, cap, win_start, t_end);
		goto out;
	}
	wlm_playout_init(&po, (double)s.buffer_ms, win_start);
	while (!wl_stop && (!t_end || wl_now() < t_end)) {
		struct pollfd p = { s.rx, POLLIN, 0 };
		struct seg_hdr h;
		uint64_t now, stall;

		if (poll(&p, 1, 50) > 0) {
			if (wl_read_all(s.rx, &h, sizeof(h)) < 0)
				break;
			for (uint32_t left = h.len; left;) {
				uint32_t n = left < cap ? left : (uint32_t)cap;
				if (wl_read_all(s.rx, buf, n) < 0)
					goto out;
				left -= n;
			}
			now = wl_now();
			win_bytes += h.len + sizeof(h);
			stall = wlm_playout_add(&po, now, h.media_ms);
			if (stall)
				wl_line("%llu seg_latency_us=%llu stall_us=%llu", (unsigned long long)now,
					(unsigned long long)((now - h.send_ns) / 1000),
					(unsigned long long)(stall / 1000));
			else
				wl_line("%llu seg_latency_us=%llu", (unsigned long long)now,
					(unsigned long long)((now - h.send_ns) / 1000));
		}
		now = wl_now();
		wlm_playout_advance(&po, now);
		throughput_window(now, &win_start, &win_bytes);
		wl_maybe_flush();
	}
out:
	wl_stop = 1;
	shutdown(s.rx, SHUT_RDWR);
	pthread_join(th, NULL);
	close(s.rx);
	close(s.tx);
	free(buf);
	wl_flush();
	wl_stop = 0;
	return 0;
}
