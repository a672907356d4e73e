/* util.c: see util.h. */
#define _GNU_SOURCE
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char sb_empty[1];

static void die_oom(size_t n)
{
	fprintf(stderr, "klpq: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die_oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die_oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die_oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		die_oom(strlen(s));
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		die_oom(n);
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	struct sb s = SB_INIT;
	va_list ap;

	va_start(ap, fmt);
	sb_vaddf(&s, fmt, ap);
	va_end(ap);
	return sb_detach(&s, NULL);
}

static int kerr_vset(struct kerr *e, int with_errno, const char *fmt, va_list ap)
{
	int saved = errno;

	if (!e || e->set)
		return -1;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	if (with_errno) {
		size_t n = strlen(e->msg);
		snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(saved));
	}
	e->set = 1;
	errno = saved;
	return -1;
}

int kerr_set(struct kerr *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kerr_vset(e, 0, fmt, ap);
	va_end(ap);
	return -1;
}

int kerr_errno(struct kerr *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kerr_vset(e, 1, fmt, ap);
	va_end(ap);
	return -1;
}

void kerr_clear(struct kerr *e)
{
	e->set = 0;
	e->msg[0] = '\0';
}

void sb_init(struct sb *s)
{
	s->buf = sb_empty;
	s->len = 0;
	s->alloc = 0;
}

void sb_release(struct sb *s)
{
	if (s->alloc)
		free(s->buf);
	sb_init(s);
}

void sb_reset(struct sb *s)
{
	s->len = 0;
	if (s->alloc)
		s->buf[0] = '\0';
}

void sb_grow(struct sb *s, size_t extra)
{
	size_t want = s->len + extra + 1;

	if (want < s->len)
		die_oom(SIZE_MAX);
	if (want <= s->alloc)
		return;
	size_t n = s->alloc ? s->alloc : 64;
	while (n < want)
		n = n * 2 > n ? n * 2 : want;
	if (s->alloc) {
		s->buf = xrealloc(s->buf, n);
	} else {
		s->buf = xmalloc(n);
		s->buf[0] = '\0';
	}
	s->alloc = n;
}

void sb_add(struct sb *s, const void *data, size_t len)
{
	sb_grow(s, len);
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
}

void sb_adds(struct sb *s, const char *str)
{
	sb_add(s, str, strlen(str));
}

void sb_addch(struct sb *s, char c)
{
	sb_add(s, &c, 1);
}

void sb_vaddf(struct sb *s, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	sb_grow(s, (size_t)n);
	vsnprintf(s->buf + s->len, (size_t)n + 1, fmt, ap);
	s->len += (size_t)n;
}

void sb_addf(struct sb *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sb_vaddf(s, fmt, ap);
	va_end(ap);
}

char *sb_detach(struct sb *s, size_t *len)
{
	char *p;

	if (len)
		*len = s->len;
	p = s->alloc ? s->buf : xstrdup("");
	sb_init(s);
	return p;
}


ssize_t xread(int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

ssize_t xwrite(int fd, const void *buf, size_t len)
{
	for (;;) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = xwrite(fd, p, len);
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_file(const char *path, struct sb *out, size_t max, struct kerr *e)
{
	char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return kerr_errno(e, "cannot open %s", path);
	for (;;) {
		ssize_t n = xread(fd, buf, sizeof(buf));
		if (n < 0) {
			close(fd);
			return kerr_errno(e, "cannot read %s", path);
		}
		if (n == 0)
			break;
		if (max && out->len + (size_t)n > max) {
			close(fd);
			return kerr_set(e, "%s: larger than %zu bytes", path, max);
		}
		sb_add(out, buf, (size_t)n);
	}
	close(fd);
	return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, struct kerr *e)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0) {
		kerr_errno(e, "cannot create %s", tmp);
		free(tmp);
		return -1;
	}
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		kerr_errno(e, "cannot write %s", tmp);
		close(fd);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		kerr_errno(e, "cannot write %s", path);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

int mkdir_p(const char *path, mode_t mode, struct kerr *e)
{
	char *p, *s;

	if (!path[0])
		return kerr_set(e, "empty folder name");
	p = xstrdup(path);
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			kerr_errno(e, "cannot create folder %s", p);
			free(p);
			return -1;
		}
		if (c == '\0')
			break;
		*s = c;
	}
	free(p);
	if (!is_dir(path))
		return kerr_set(e, "%s exists and is not a folder", path);
	return 0;
}

/* Removes NAME in the folder dfd, never following a symbolic link: every step is relative to
 * an open folder descriptor (fstatat, openat with O_NOFOLLOW, unlinkat), so a folder swapped for
 * a symlink while it is being removed loses the link, not what it points to. */
static int rm_at(int dfd, const char *name, int depth)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int fd, ret = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	if (depth > 256)
		return -1;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR) /* swapped since the fstatat */
			return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
		return errno == ENOENT ? 0 : -1;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (rm_at(dirfd(d), de->d_name, depth + 1) < 0)
			ret = -1;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		ret = -1;
	return ret;
}

int rm_rf(const char *path)
{
	char *dir = path_dirname(path);
	const char *base = strrchr(path, '/');
	int dfd, ret;

	base = base ? base + 1 : path;
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		free(dir);
		errno = EINVAL;
		return -1;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -1;
	ret = rm_at(dfd, base, 0);
	close(dfd);
	return ret;
}

/* A folder without a lock file (a klpq killed before it made one, a .download scratch) is
 * judged by its pid, and only once it is this old: a folder made a moment ago may not have its
 * lock yet. */
#define SWEEP_MIN_AGE_S 60

void sweep_dead(const char *dir, const char *prefix)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	size_t pl = strlen(prefix);

	if (dfd < 0)
		return;
	d = fdopendir(dup(dfd));
	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		char *end;
		long pid;
		int sub, lk = -1;

		if (strncmp(de->d_name, prefix, pl))
			continue;
		errno = 0;
		pid = strtol(de->d_name + pl, &end, 10);
		if (errno || end == de->d_name + pl || (*end != '-' && *end != '.' && *end) ||
		    pid <= 0)
			continue;
		/* only this user's: never another user's folder, whatever it holds */
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_uid != geteuid())
			continue;
		if (S_ISDIR(st.st_mode) &&
		    (sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
			lk = openat(sub, ".lock", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
			close(sub);
		}
		if (lk >= 0) {
			/* its owner holds the lock while it lives, in whatever PID namespace */
			if (flock(lk, LOCK_EX | LOCK_NB) < 0) {
				close(lk);
				continue;
			}
		} else if (kill((pid_t)pid, 0) == 0 || errno != ESRCH ||
			   time(NULL) - st.st_mtime < SWEEP_MIN_AGE_S) {
			continue; /* alive, not ours to judge, or too young to tell */
		}
		rm_at(dfd, de->d_name, 0);
		if (lk >= 0)
			close(lk);
	}
	closedir(d);
	close(dfd);
}

char *private_tmp_parent(const char *base, struct kerr *e)
{
	char *p = xasprintf("%s/klpq-%ld", base, (long)geteuid());
	struct stat st;

	if (mkdir(p, 0700) < 0 && errno != EEXIST) {
		kerr_errno(e, "cannot create %s", p);
		goto bad;
	}
	if (lstat(p, &st) < 0) {
		kerr_errno(e, "%s", p);
		goto bad;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		kerr_set(e, "%s must be a folder of user %ld with mode 0700 (it is %s, owner %ld, "
			 "mode %04o): someone else may have made it; remove it", p, (long)geteuid(),
			 S_ISLNK(st.st_mode) ? "a symlink" : S_ISDIR(st.st_mode) ? "a folder" :
			 "not a folder", (long)st.st_uid, (unsigned)(st.st_mode & 07777));
		goto bad;
	}
	return p;
bad:
	free(p);
	return NULL;
}

char *make_locked_tmp(const char *base, const char *prefix, int *lock_fd, struct kerr *e)
{
	char *parent = private_tmp_parent(base, e), *dir, *lock;

	*lock_fd = -1;
	if (!parent)
		return NULL;
	dir = xasprintf("%s/%s%ld-XXXXXX", parent, prefix, (long)getpid());
	free(parent);
	if (!mkdtemp(dir)) {
		kerr_errno(e, "cannot create a temporary folder in %s", base);
		free(dir);
		return NULL;
	}
	lock = path_join(dir, ".lock");
	*lock_fd = open(lock, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	free(lock);
	if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX | LOCK_NB) < 0) {
		kerr_errno(e, "cannot lock the temporary folder %s", dir);
		if (*lock_fd >= 0)
			close(*lock_fd);
		*lock_fd = -1;
		rm_rf(dir);
		free(dir);
		return NULL;
	}
	return dir;
}

int path_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a);

	if (b[0] == '/' || la == 0)
		return xstrdup(b);
	if (a[la - 1] == '/')
		return xasprintf("%s%s", a, b);
	return xasprintf("%s/%s", a, b);
}

char *path_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

int name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '+' || c == '-';
}

int name_is_safe(const char *name)
{
	const char *p;

	if (!name || !*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	for (p = name; *p; p++)
		if (!name_char_ok(*p))
			return 0;
	return 1;
}

int next_line(const char **p, const char **line, size_t *len)
{
	const char *nl;

	if (!**p)
		return 0;
	nl = strchr(*p, '\n');
	*line = *p;
	*len = nl ? (size_t)(nl - *p) : strlen(*p);
	*p += *len + (nl ? 1 : 0);
	return 1;
}

char *module_name(const char *path, size_t len)
{
	const char *base = path, *p;
	char *n, *q;

	for (p = path; p < path + len; p++)
		if (*p == '/')
			base = p + 1;
	n = xstrndup(base, (size_t)(path + len - base));
	q = strstr(n, ".ko");
	if (q)
		*q = '\0';
	for (q = n; *q; q++)
		if (*q == '-')
			*q = '_';
	return n;
}

int fd_readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

int send_all(int fd, const void *buf, size_t len, unsigned timeout_ms)
{
	const char *p = buf;
	uint64_t deadline = now_ms() + timeout_ms;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		uint64_t now = now_ms();
		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd pf = { fd, POLLOUT, 0 };
		poll(&pf, 1, (int)(deadline - now));
	}
	return 0;
}

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

uint64_t wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}


int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int lock_path(const char *path, int stop_fd, struct kerr *e)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0) {
		kerr_errno(e, "cannot open the lock file %s", path);
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		struct pollfd p = { .fd = stop_fd, .events = POLLIN };

		if (errno != EWOULDBLOCK && errno != EINTR) {
			kerr_errno(e, "cannot lock %s", path);
			close(fd);
			return -1;
		}
		if (stop_fd >= 0 && poll(&p, 1, 200) > 0) {
			kerr_set(e, "interrupted while waiting for %s", path);
			close(fd);
			return -1;
		}
		if (stop_fd < 0)
			poll(NULL, 0, 200);
	}
	return fd;
}
