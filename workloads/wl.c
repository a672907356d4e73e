/* wl.c: what every workload shares: sample output, sockets, options, self-test capture. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wl.h"

volatile sig_atomic_t wl_stop;

#define OUT_SIZE (256 * 1024)

static struct {
	pthread_mutex_t lock;
	int fd;
	char buf[OUT_SIZE];
	size_t len;
	uint64_t last_flush;
} out = { PTHREAD_MUTEX_INITIALIZER, 1, { 0 }, 0, 0 };

void wl_die(const char *fmt, ...)
{
	va_list ap;

	fputs("klpq-workload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

uint64_t wl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return wlm_ts_ns(&ts);
}

void wl_out_init(int fd)
{
	out.fd = fd;
	out.len = 0;
	out.last_flush = wl_now();
}

/* Under the lock. A failed write (a full tmpfs) drops the batch: samples are not worth
 * blocking the workload for, and the reader sees the gap in the time stamps. */
static void flush_locked(void)
{
	size_t off = 0;

	while (off < out.len) {
		ssize_t n = write(out.fd, out.buf + off, out.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	out.len = 0;
	out.last_flush = wl_now();
}

static void vline(const char *fmt, va_list ap)
{
	char line[512];
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);

	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&out.lock);
	if (out.len + (size_t)n > sizeof(out.buf))
		flush_locked();
	memcpy(out.buf + out.len, line, (size_t)n);
	out.len += (size_t)n;
	pthread_mutex_unlock(&out.lock);
}

void wl_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(fmt, ap);
	va_end(ap);
}

void wl_header(const char *name, const char *fmt, ...)
{
	char cfg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cfg, sizeof(cfg), fmt, ap);
	va_end(ap);
	wl_line("# klpq-workload 1 %s %s", name, cfg);
	wl_flush();
}

void wl_flush(void)
{
	pthread_mutex_lock(&out.lock);
	flush_locked();
	pthread_mutex_unlock(&out.lock);
}

void wl_maybe_flush(void)
{
	pthread_mutex_lock(&out.lock);
	if (wl_now() - out.last_flush >= 100000000ULL)
		flush_locked();
	pthread_mutex_unlock(&out.lock);
}

int wl_lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = -1;

	if (s < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		if (ifr.ifr_flags & IFF_UP) {
			r = 0;
		} else {
			ifr.ifr_flags |= IFF_UP;
			r = ioctl(s, SIOCSIFFLAGS, &ifr);
		}
	}
	close(s);
	return r;
}

int wl_tcp_listen(unsigned short *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 16) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) < 0) {
		close(s);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return s;
}

int wl_tcp_connect(unsigned short port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (s < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(s);
		return -1;
	}
	setsockopt(s, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
	return s;
}

int wl_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int wl_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void wl_parse(int argc, char **argv, const char *name, const struct wl_opt *opts, size_t n,
	      long *duration_s, int *self_test)
{
	*duration_s = 0;
	*self_test = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		size_t k;

		if (!strcmp(a, "--self-test")) {
			*self_test = 1;
			continue;
		}
		if (i + 1 >= argc)
			wl_die("%s: option %s needs a value", name, a);
		if (!strcmp(a, "--duration-s")) {
			char *end;
			*duration_s = strtol(argv[++i], &end, 10);
			if (*end || *duration_s < 1)
				wl_die("%s: --duration-s wants a positive number", name);
			continue;
		}
		for (k = 0; k < n; k++)
			if (!strcmp(opts[k].name, a))
				break;
		if (k == n)
			wl_die("%s: unknown option %s", name, a);
		i++;
		if (opts[k].sval) {
			*opts[k].sval = argv[i];
		} else {
			char *end;
			long v = strtol(argv[i], &end, 10);
			if (*end || end == argv[i] || v < opts[k].min || v > opts[k].max)
				wl_die("%s: %s wants a number from %ld to %ld, not '%s'", name, a,
				       opts[k].min, opts[k].max, argv[i]);
			*opts[k].ival = v;
		}
	}
}

char *wl_capture(int (*fn)(int, char **), const char *name, const char *const *args)
{
	char path[] = "/tmp/klpq-wl-selftest-XXXXXX";
	char *argv[32], *text;
	int fd = mkstemp(path), argc = 0;
	off_t size;

	if (fd < 0)
		wl_die("%s: self-test: cannot create a temporary file", name);
	unlink(path);
	for (; args && args[argc] && argc < 28; argc++)
		argv[argc] = (char *)args[argc];
	argv[argc++] = (char *)"--duration-s";
	argv[argc++] = (char *)"2";
	argv[argc] = NULL;
	wl_out_init(fd);
	if (fn(argc, argv) != 0)
		wl_die("%s: self-test: the workload failed", name);
	wl_flush();
	size = lseek(fd, 0, SEEK_END);
	text = calloc(1, (size_t)size + 1);
	if (!text || pread(fd, text, (size_t)size, 0) != size)
		wl_die("%s: self-test: cannot read back the samples", name);
	close(fd);
	wl_out_init(1);
	return text;
}

size_t wl_count(const char *text, const char *key, double *min, double *max)
{
	size_t n = 0, klen = strlen(key);
	const char *p = text;

	*min = 1e300;
	*max = -1e300;
	while ((p = strstr(p, key))) {
		if ((p == text || p[-1] == ' ') && p[klen] == '=') {
			double v = strtod(p + klen + 1, NULL);
			if (v < *min)
				*min = v;
			if (v > *max)
				*max = v;
			n++;
		}
		p += klen;
	}
	return n;
}
