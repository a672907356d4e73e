/* agent-util.c: clocks, diagnostics, power-off, small file and JSON helpers (agent.h); the I/O
 * helpers (write_all, set_nonblock, sleep_ms) are the host's, harness/util.c, linked in. */
#define _GNU_SOURCE
#include "agent.h"

static uint64_t clock_ms(clockid_t clock)
{
	struct timespec ts;

	/* Fails only for an invalid clock id or pointer. */
	if (clock_gettime(clock, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* Time since boot, suspend included: what the host compares with the guest's kernel log. */
uint64_t uptime_ms(void)
{
	return clock_ms(CLOCK_BOOTTIME);
}

void vdiag(struct agent *a, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "klpq-agent: ");
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);

	/* A cut diagnostic is still worth printing. */
	if (m < 0)
		m = 0;
	n = n + m < (int)sizeof(buf) - 1 ? n + m : (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	write_all(a->console_fd >= 0 ? a->console_fd : STDERR_FILENO, buf, (size_t)n);
}

/* A line on the console (stderr in host mode). */
void AGENT_FMT(2, 3) diag(struct agent *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(a, fmt, ap);
	va_end(ap);
}

void __attribute__((noreturn)) power_off(struct agent *a)
{
	sync();
	if (!a->is_init && !a->is_service)
		exit(0);
	reboot(RB_POWER_OFF);
	if (a->is_service) {
		/* not allowed to (not root): the host's stop kills the VM instead */
		diag(a, "power off failed: %s", strerror(errno));
		exit(1);
	}
	/* Returning from here would kill init and panic the kernel: wait for the host instead. */
	diag(a, "power off failed: %s; halting", strerror(errno));
	for (;;)
		pause();
}

void __attribute__((noreturn)) AGENT_FMT(2, 3) die(struct agent *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(a, fmt, ap);
	va_end(ap);
	if (!a->is_init)
		exit(1);
	diag(a, "fatal error; powering off");
	power_off(a);
}

/* snprintf that reports truncation as ENAMETOOLONG instead of using a cut path. */
int AGENT_FMT(3, 4) path_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Reads at most size - 1 bytes of a (small, usually virtual) file, NUL-terminated. */
int read_text_file(const char *path, char *buf, size_t size, size_t *len)
{
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), saved;

	if (fd < 0)
		return -1;
	while (got < size - 1) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	if (len)
		*len = got;
	return 0;
}

/* A file holding one decimal integer, as sysfs and procfs files do. */
int read_int_file(const char *path, int64_t *out)
{
	char buf[64], *end;
	long long v;

	if (read_text_file(path, buf, sizeof(buf), NULL) < 0)
		return -1;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n')) {
		errno = EINVAL;
		return -1;
	}
	*out = v;
	return 0;
}

void strip_newline(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

int is_number(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* A name used as one path component under sysfs: no '/', not "", "." or "..". */
int name_is_component(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

/* Escaped size of a JSON string, quotes included: what json-c emits, or a little more. */
size_t json_cost(const char *s, size_t len)
{
	size_t cost = 2;

	for (size_t i = 0; i < len; i++) {
		switch (s[i]) {
		case '\b': case '\f': case '\n': case '\r': case '\t':
		case '"': case '\\': case '/':
			cost += 2;
			break;
		default:
			cost += (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? 6 : 1;
		}
	}
	return cost;
}

size_t digits(uint64_t v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* The longest prefix of s whose escaped form fits budget; a cut never splits a UTF-8
 * sequence, so strict JSON readers on the host still accept the text. */
size_t json_fit(const char *s, size_t len, size_t budget)
{
	size_t cost = 2, i;

	for (i = 0; i < len; i++) {
		size_t c = json_cost(s + i, 1) - 2;
		if (cost + c > budget)
			break;
		cost += c;
	}
	if (i < len)
		while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
			i--;
	return i;
}

/* json-c's allocation failures leave a member out, which the host reports as a missing
 * field; not worth failing a probe over. */
void put(json_object *o, const char *key, json_object *val)
{
	if (val && json_object_object_add(o, key, val) < 0)
		json_object_put(val);
}

void put_int(json_object *o, const char *key, int64_t v)
{
	put(o, key, json_object_new_int64(v));
}

void put_str(json_object *o, const char *key, const char *s)
{
	put(o, key, json_object_new_string(s));
}

void put_bool(json_object *o, const char *key, int v)
{
	put(o, key, json_object_new_boolean(v));
}

void append(json_object *array, json_object *val)
{
	if (val && json_object_array_add(array, val) < 0)
		json_object_put(val);
}
