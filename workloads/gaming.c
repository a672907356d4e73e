/* gaming.c: a fixed-timestep game server. Each tick: a burst of physics (an n-body step,
 * calibrated at start to take --physics-us), a state exchange with --clients simulated
 * clients over UDP on loopback (each echoes the state back: the round trip is timed), then
 * clock_nanosleep(TIMER_ABSTIME) to the next tick. Samples per tick: frame_us (tick deadline
 * to the end of its work), late_us (wake-up lateness), miss (1 when the work ran past the
 * next deadline), and one rtt_us per client. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wl.h"

#define BODIES 48
#define STATE_BYTES 512

struct body {
	double x, y, z, vx, vy, vz, m;
};

static struct body bodies[BODIES];

static void physics_init(void)
{
	for (int i = 0; i < BODIES; i++) {
		bodies[i] = (struct body){ cos(i) * 10, sin(i) * 10, i * 0.1, 0, 0, 0, 1 + i % 3 };
	}
}

/* One integration step; returns a checksum so the compiler keeps the work. */
static double physics_step(void)
{
	double sum = 0;

	for (int i = 0; i < BODIES; i++) {
		double ax = 0, ay = 0, az = 0;
		for (int j = 0; j < BODIES; j++) {
			double dx = bodies[j].x - bodies[i].x, dy = bodies[j].y - bodies[i].y;
			double dz = bodies[j].z - bodies[i].z, d2 = dx * dx + dy * dy + dz * dz + 0.01;
			double inv = bodies[j].m / (d2 * sqrt(d2));
			ax += dx * inv;
			ay += dy * inv;
			az += dz * inv;
		}
		bodies[i].vx += ax * 1e-4;
		bodies[i].vy += ay * 1e-4;
		bodies[i].vz += az * 1e-4;
	}
	for (int i = 0; i < BODIES; i++) {
		bodies[i].x += bodies[i].vx * 1e-3;
		bodies[i].y += bodies[i].vy * 1e-3;
		bodies[i].z += bodies[i].vz * 1e-3;
		sum += bodies[i].x;
	}
	return sum;
}

struct client {
	int fd;
	pthread_t th;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	char buf[STATE_BYTES];

	while (!wl_stop) {
		struct pollfd p = { c->fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n > 0)
			send(c->fd, buf, (size_t)n, 0); /* the client's input back to the server */
	}
	return NULL;
}

static int udp_socket(struct sockaddr_in *a)
{
	socklen_t len = sizeof(*a);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || bind(s, (struct sockaddr *)a, sizeof(*a)) < 0 ||
	    getsockname(s, (struct sockaddr *)a, &len) < 0)
		wl_die("gaming: cannot open a UDP socket on loopback");
	return s;
}

static int self_test(void)
{
	const char *args[] = { "--tick-hz", "50", "--clients", "2", "--physics-us", "500", NULL };
	char *t = wl_capture(wl_gaming, "gaming", args);
	double lo, hi;
	size_t frames = wl_count(t, "frame_us", &lo, &hi), rtts, misses;
	int ok = 1;

	if (strncmp(t, "# klpq-workload 1 gaming ", 25)) {
		fprintf(stderr, "gaming self-test: no header\n");
		ok = 0;
	}
	if (frames < 60 || lo < 0) {
		fprintf(stderr, "gaming self-test: %zu frames in 2 s at 50 Hz (want >= 60), "
			"min %.0f us\n", frames, lo);
		ok = 0;
	}
	rtts = wl_count(t, "rtt_us", &lo, &hi);
	if (rtts < frames || lo <= 0) {
		fprintf(stderr, "gaming self-test: %zu round trips for %zu frames, min %.0f us\n",
			rtts, frames, lo);
		ok = 0;
	}
	misses = wl_count(t, "miss", &lo, &hi);
	if (misses != frames || lo < 0 || hi > 1) {
		fprintf(stderr, "gaming self-test: miss flags %zu for %zu frames\n", misses, frames);
		ok = 0;
	}
	free(t);
	printf("gaming self-test: %s (%zu frames, %zu round trips)\n", ok ? "ok" : "FAILED",
	       frames, rtts);
	return ok ? 0 : 1;
}

int wl_gaming(int argc, char **argv)
{
	long hz = 60, nclients = 4, physics_us = 2000, duration, steps;
	int self, srv;
	struct wl_opt opts[] = {
		{ "--tick-hz", &hz, NULL, 1, 1000 },
		{ "--clients", &nclients, NULL, 0, 64 },
		{ "--physics-us", &physics_us, NULL, 0, 1000000 },
	};
	struct client *cl;
	struct sockaddr_in sa, *caddr;
	struct wlm_ticks ticks;
	uint64_t end, seq = 0;
	double sink = 0;

	wl_parse(argc, argv, "gaming", opts, 3, &duration, &self);
	if (self)
		return self_test();
	if (wl_lo_up() < 0)
		wl_die("gaming: cannot bring up the loopback interface");
	physics_init();
	/* calibrate: how many steps fit in physics_us on this machine, now */
	{
		uint64_t t0 = wl_now(), n = 0;
		while (wl_now() - t0 < 200000000ULL) {
			sink += physics_step();
			n++;
		}
		steps = (long)((double)n * (double)physics_us / 200000.0);
	}
	srv = udp_socket(&sa);
	cl = calloc((size_t)nclients + 1, sizeof(*cl));
	caddr = calloc((size_t)nclients + 1, sizeof(*caddr));
	for (long i = 0; i < nclients; i++) {
		cl[i].fd = udp_socket(&caddr[i]);
		if (connect(cl[i].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    pthread_create(&cl[i].th, NULL, client_main, &cl[i]))
			wl_die("gaming: cannot start client %ld", i);
	}
	wl_header("gaming", "tick_hz=%ld clients=%ld physics_us=%ld physics_steps=%ld", hz,
		  nclients, physics_us, steps);
	ticks.start_ns = wl_now();
	ticks.period_ns = 1000000000ULL / (uint64_t)hz;
	ticks.index = 1;
	end = duration ? ticks.start_ns + (uint64_t)duration * 1000000000ULL : 0;
	while (!wl_stop && (!end || wl_now() < end)) {
		uint64_t deadline = wlm_tick_deadline(&ticks), wake, done, skipped;
		struct timespec ts = wlm_ns_ts(deadline);
		char line[512], state[STATE_BYTES];
		uint64_t sent[64];
		size_t len;
		int missed;

		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) && !wl_stop)
			;
		wake = wl_now();
		for (long s = 0; s < steps; s++)
			sink += physics_step();
		/* the state to every client, and their acks back */
		memset(state, 0, sizeof(state));
		memcpy(state, &seq, sizeof(seq));
		memcpy(state + 8, bodies, sizeof(state) - 8 < sizeof(bodies) ? sizeof(state) - 8
									     : sizeof(bodies));
		len = (size_t)snprintf(line, sizeof(line), "%llu", (unsigned long long)deadline);
		for (long i = 0; i < nclients; i++) {
			sent[i] = wl_now();
			sendto(srv, state, sizeof(state), 0, (struct sockaddr *)&caddr[i],
			       sizeof(caddr[i]));
		}
		for (long got = 0; got < nclients && !wl_stop;) {
			struct pollfd p = { srv, POLLIN, 0 };
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			char buf[STATE_BYTES];
			uint64_t rseq;

			if (poll(&p, 1, 1000) <= 0)
				break; /* a lost datagram: no round trip for that client this tick */
			if (recvfrom(srv, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl) < 8)
				continue;
			memcpy(&rseq, buf, sizeof(rseq));
			if (rseq != seq)
				continue; /* a late ack of an earlier tick */
			for (long i = 0; i < nclients; i++)
				if (from.sin_port == caddr[i].sin_port && len + 32 < sizeof(line))
					len += (size_t)snprintf(line + len, sizeof(line) - len,
								" rtt_us=%llu", (unsigned long long)
								((wl_now() - sent[i]) / 1000));
			got++;
		}
		done = wl_now();
		missed = wlm_tick_end(&ticks, done, &skipped);
		wl_line("%s frame_us=%llu late_us=%llu miss=%d", line,
			(unsigned long long)((done - deadline) / 1000),
			(unsigned long long)((wake > deadline ? wake - deadline : 0) / 1000), missed);
		seq++;
		wl_maybe_flush();
	}
	wl_stop = 1;
	for (long i = 0; i < nclients; i++) {
		pthread_join(cl[i].th, NULL);
		close(cl[i].fd);
	}
	close(srv);
	free(cl);
	free(caddr);
	wl_flush();
	if (sink == 12345.678) /* keeps the physics from being optimised away */
		fputc(' ', stderr);
	if (self) /* never: the self-test returns above */
		return 1;
	wl_stop = 0;
	return 0;
}
