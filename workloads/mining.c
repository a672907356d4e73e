/* mining.c: --threads workers compute double SHA-256 (libcrypto) over an 80-byte block
 * header with an incrementing nonce; a hash with at least --share-bits leading zero bits is a
 * share, submitted to a local pool thread over TCP on loopback, which acknowledges it.
 * Samples: every 250 ms hps (hashes per second, all workers) and hps_t<i> per worker; per
 * share share_us (submit to acknowledgement). */
#define _GNU_SOURCE
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wl.h"

#define MAX_THREADS 64

struct worker {
	int id, fd;
	unsigned share_bits;
	_Atomic uint64_t hashes;
	pthread_t th;
};

/* The double SHA-256 of a block header, as Bitcoin computes it. */
static void dsha256(const unsigned char *hdr, size_t len, unsigned char out[32])
{
	unsigned char mid[32];

	SHA256(hdr, len, mid);
	SHA256(mid, sizeof(mid), out);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned char hdr[80], h[32];
	uint32_t nonce = 0;

	memset(hdr, 0, sizeof(hdr));
	hdr[0] = 2;
	memcpy(hdr + 4, &w->id, sizeof(w->id)); /* each worker its own search space */
	while (!wl_stop) {
		for (int k = 0; k < 256; k++) {
			memcpy(hdr + 76, &nonce, sizeof(nonce));
			dsha256(hdr, sizeof(hdr), h);
			nonce++;
			/* Bitcoin compares the hash as a little-endian number: its zero bits lead
			 * from the last byte; reverse to count them */
			unsigned char rev[32];
			for (int i = 0; i < 32; i++)
				rev[i] = h[31 - i];
			if (wlm_leading_zero_bits(rev, sizeof(rev)) >= w->share_bits) {
				uint64_t t0 = wl_now();
				char ack;

				if (wl_write_all(w->fd, &nonce, sizeof(nonce)) < 0 ||
				    wl_read_all(w->fd, &ack, 1) < 0)
					return NULL;
				wl_line("%llu share_us=%llu", (unsigned long long)wl_now(),
					(unsigned long long)((wl_now() - t0) / 1000));
			}
		}
		atomic_fetch_add(&w->hashes, 256);
	}
	return NULL;
}

struct pool {
	int fds[MAX_THREADS];
	int n;
};

static void *pool_main(void *arg)
{
	struct pool *p = arg;
	struct pollfd pf[MAX_THREADS];

	for (int i = 0; i < p->n; i++)
		pf[i] = (struct pollfd){ p->fds[i], POLLIN, 0 };
	while (!wl_stop) {
		if (poll(pf, (nfds_t)p->n, 100) <= 0)
			continue;
		for (int i = 0; i < p->n; i++) {
			uint32_t nonce;
			if (!(pf[i].revents & POLLIN))
				continue;
			if (wl_read_all(pf[i].fd, &nonce, sizeof(nonce)) < 0) {
				pf[i].fd = -1;
				continue;
			}
			wl_write_all(pf[i].fd, "k", 1);
		}
	}
	return NULL;
}

static int genesis_ok(void)
{
	/* the Bitcoin genesis block header */
	static const char *hex = "0100000000000000000000000000000000000000000000000000000000000000"
				 "000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa"
				 "4b1e5e4a29ab5f49ffff001d1dac2b7c";
	unsigned char hdr[80], h[32];
	char out[65];

	for (int i = 0; i < 80; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		hdr[i] = (unsigned char)v;
	}
	dsha256(hdr, sizeof(hdr), h);
	wlm_hex_reversed(h, sizeof(h), out);
	if (strcmp(out, "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f")) {
		fprintf(stderr, "mining self-test: genesis block hash %s is wrong\n", out);
		return 0;
	}
	return 1;
}

static int self_test(void)
{
	const char *args[] = { "--threads", "2", "--share-bits", "8", NULL };
	int ok = genesis_ok();
	char *t = wl_capture(wl_mining, "mining", args);
	double lo, hi, top;
	size_t win = wl_count(t, "hps", &lo, &top), shares;

	if (win < 5 || lo <= 0) {
		fprintf(stderr, "mining self-test: %zu hash-rate windows, min %.0f\n", win, lo);
		ok = 0;
	}
	shares = wl_count(t, "share_us", &lo, &hi);
	if (shares < 5 || lo < 0) {
		fprintf(stderr, "mining self-test: %zu shares at 8 bits in 2 s\n", shares);
		ok = 0;
	}
	if (!strstr(t, " hps_t1=")) {
		fprintf(stderr, "mining self-test: no per-thread rate for thread 1\n");
		ok = 0;
	}
	printf("mining self-test: %s (genesis hash ok, %zu windows, %zu shares, up to %.0f H/s)\n",
	       ok ? "ok" : "FAILED", win, shares, top);
	free(t);
	return ok ? 0 : 1;
}

int wl_mining(int argc, char **argv)
{
	long threads = 2, share_bits = 12, duration;
	struct wl_opt opts[] = {
		{ "--threads", &threads, NULL, 1, MAX_THREADS },
		{ "--share-bits", &share_bits, NULL, 1, 64 },
	};
	struct worker *w;
	struct pool pool;
	pthread_t pth;
	unsigned short port;
	uint64_t last[MAX_THREADS], t_last, t_end;
	int self, ls;

	wl_parse(argc, argv, "mining", opts, 2, &duration, &self);
	if (self)
		return self_test();
	if (wl_lo_up() < 0)
		wl_die("mining: cannot bring up the loopback interface");
	ls = wl_tcp_listen(&port);
	if (ls < 0)
		wl_die("mining: cannot listen on loopback");
	w = calloc((size_t)threads, sizeof(*w));
	pool.n = (int)threads;
	for (long i = 0; i < threads; i++) {
		w[i].id = (int)i;
		w[i].share_bits = (unsigned)share_bits;
		if ((w[i].fd = wl_tcp_connect(port)) < 0 || (pool.fds[i] = accept(ls, NULL, NULL)) < 0)
			wl_die("mining: cannot connect worker %ld to the pool", i);
	}
	close(ls);
	wl_header("mining", "threads=%ld share_bits=%ld", threads, share_bits);
	if (pthread_create(&pth, NULL, pool_main, &pool))
		wl_die("mining: cannot start the pool");
	for (long i = 0; i < threads; i++)
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]))
			wl_die("mining: cannot start worker %ld", i);
	memset(last, 0, sizeof(last));
	t_last = wl_now();
	t_end = duration ? t_last + (uint64_t)duration * 1000000000ULL : 0;
	while (!wl_stop && (!t_end || wl_now() < t_end)) {
		char line[2048];
		size_t len;
		uint64_t now, total = 0;
		struct timespec ts = { 0, 250000000 };

		nanosleep(&ts, NULL);
		now = wl_now();
		len = (size_t)snprintf(line, sizeof(line), "%llu", (unsigned long long)now);
		for (long i = 0; i < threads; i++) {
			uint64_t h = atomic_load(&w[i].hashes);
			total += h - last[i];
			if (len + 40 < sizeof(line))
				len += (size_t)snprintf(line + len, sizeof(line) - len, " hps_t%ld=%.1f", i,
							wlm_rate(h - last[i], now - t_last));
			last[i] = h;
		}
		wl_line("%s hps=%.1f", line, wlm_rate(total, now - t_last));
		t_last = now;
		wl_maybe_flush();
	}
	wl_stop = 1;
	for (long i = 0; i < threads; i++) {
		shutdown(w[i].fd, SHUT_RDWR);
		pthread_join(w[i].th, NULL);
		close(w[i].fd);
	}
	pthread_join(pth, NULL);
	for (int i = 0; i < pool.n; i++)
		close(pool.fds[i]);
	free(w);
	wl_flush();
	wl_stop = 0;
	return 0;
}
