/* callbench.c: the cost of one call into the kernel, in a tight loop: --op read (pread of
 * --path, default /proc/cmdline), getppid (a syscall that does almost nothing), or udp
 * (sendto on a connected UDP loopback socket). Samples: ns_per_call for each batch of --batch
 * calls. Run unpatched and patched, the difference is what a livepatch's redirection (and
 * the replacement function) costs per call. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wl.h"

static int self_test(void)
{
	static const char *const ops[] = { "getppid", "read", "udp" };
	int ok = 1;

	for (size_t i = 0; i < 3; i++) {
		const char *args[] = { "--op", ops[i], "--batch", "200", NULL };
		char *t = wl_capture(wl_callbench, "callbench", args);
		double lo, hi;
		size_t n = wl_count(t, "ns_per_call", &lo, &hi);

		if (n < 10 || lo <= 0) {
			fprintf(stderr, "callbench self-test: op %s: %zu batches, min %.1f ns\n", ops[i],
				n, lo);
			ok = 0;
		}
		printf("callbench self-test: op %s: %zu batches, %.0f..%.0f ns per call\n", ops[i],
		       n, lo, hi);
		free(t);
	}
	printf("callbench self-test: %s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}

int wl_callbench(int argc, char **argv)
{
	const char *op = "read", *path = "/proc/cmdline";
	long batch = 1000, duration;
	struct wl_opt opts[] = {
		{ "--op", NULL, &op, 0, 0 },
		{ "--path", NULL, &path, 0, 0 },
		{ "--batch", &batch, NULL, 1, 100000000 },
	};
	int self, fd = -1, kind;
	char buf[4096];
	uint64_t t_end;

	wl_parse(argc, argv, "callbench", opts, 3, &duration, &self);
	if (self)
		return self_test();
	if (!strcmp(op, "read")) {
		kind = 0;
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			wl_die("callbench: cannot open %s", path);
	} else if (!strcmp(op, "getppid")) {
		kind = 1;
	} else if (!strcmp(op, "udp")) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		socklen_t len = sizeof(a);
		int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

		kind = 2;
		if (wl_lo_up() < 0)
			wl_die("callbench: cannot bring up the loopback interface");
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		/* a receiver nobody reads: once its buffer is full the kernel drops datagrams, and
		 * every send still walks the whole send path */
		if (rx < 0 || fd < 0 || bind(rx, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    getsockname(rx, (struct sockaddr *)&a, &len) < 0 ||
		    connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			wl_die("callbench: cannot open UDP sockets on loopback");
	} else {
		wl_die("callbench: --op must be read, getppid or udp, not '%s'", op);
	}
	wl_header("callbench", "op=%s path=%s batch=%ld", op, kind == 0 ? path : "-", batch);
	t_end = duration ? wl_now() + (uint64_t)duration * 1000000000ULL : 0;
	while (!wl_stop && (!t_end || wl_now() < t_end)) {
		uint64_t t0 = wl_now(), t1;

		for (long i = 0; i < batch; i++) {
			if (kind == 0) {
				if (pread(fd, buf, sizeof(buf), 0) < 0)
					wl_die("callbench: read %s failed", path);
			} else if (kind == 1) {
				syscall(SYS_getppid);
			} else {
				send(fd, buf, 64, MSG_DONTWAIT);
			}
		}
		t1 = wl_now();
		wl_line("%llu ns_per_call=%.1f", (unsigned long long)t1,
			(double)(t1 - t0) / (double)batch);
		wl_maybe_flush();
	}
	if (fd >= 0)
		close(fd);
	wl_flush();
	wl_stop = 0;
	return 0;
}
