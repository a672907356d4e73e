/* util.h: the few helpers every klpq module shares.
 *
 * Error convention (whole tree): a function that can fail returns 0 on success and -1 on
 * failure (or NULL), after setting a message exactly once on the caller's `struct kerr`.
 * The top level prints that one line. kerr_set() returns -1 so `return kerr_set(e, ...)` works.
 *
 * struct sb is a growable string: `buf` is never NULL (SB_INIT points at a static ""), it is
 * always NUL-terminated, and ownership leaves only through sb_detach().
 */
#ifndef KLPQ_UTIL_H
#define KLPQ_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KLPQ_ATTR_FMT(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct kerr {
	int set;
	char msg[2048];
};
#define KERR_INIT { 0, { 0 } }

/* Sets the message unless one is already set (the first, most specific cause wins). */
int kerr_set(struct kerr *e, const char *fmt, ...) KLPQ_ATTR_FMT(2, 3);
/* Like kerr_set, appending ": strerror(errno)". */
int kerr_errno(struct kerr *e, const char *fmt, ...) KLPQ_ATTR_FMT(2, 3);
void kerr_clear(struct kerr *e);

struct sb {
	char *buf;
	size_t len;
	size_t alloc;
};
extern char sb_empty[];
#define SB_INIT { sb_empty, 0, 0 }

void sb_init(struct sb *s);
void sb_release(struct sb *s);          /* frees; s is SB_INIT again */
void sb_reset(struct sb *s);            /* len = 0, keeps memory */
void sb_grow(struct sb *s, size_t extra); /* aborts on out of memory */
void sb_add(struct sb *s, const void *data, size_t len);
void sb_adds(struct sb *s, const char *str);
void sb_addch(struct sb *s, char c);
void sb_addf(struct sb *s, const char *fmt, ...) KLPQ_ATTR_FMT(2, 3);
void sb_vaddf(struct sb *s, const char *fmt, va_list ap);
char *sb_detach(struct sb *s, size_t *len); /* caller frees; s is SB_INIT again */

void *xmalloc(size_t n);   /* abort with a message on out of memory */
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) KLPQ_ATTR_FMT(1, 2);

/* I/O that retries on EINTR and short counts. */
ssize_t xread(int fd, void *buf, size_t len);
ssize_t xwrite(int fd, const void *buf, size_t len);
int write_all(int fd, const void *buf, size_t len); /* 0 or -1 with errno */

int read_file(const char *path, struct sb *out, size_t max, struct kerr *e);
/* Writes via PATH.tmp.PID + fsync + rename: readers see the old or the new file, never half. */
int write_file_atomic(const char *path, const void *data, size_t len, struct kerr *e);
int mkdir_p(const char *path, mode_t mode, struct kerr *e);
/* Best effort; never follows a symbolic link below path (descriptor walk, O_NOFOLLOW). */
int rm_rf(const char *path);
/* Removes what a killed klpq left in dir: entries named PREFIX<pid>[-.]... owned by this user
 * (never another user's) whose lock file (.lock inside, make_locked_tmp) is free, or, without
 * one, whose process no longer exists and that are a minute old. Best effort. */
void sweep_dead(const char *dir, const char *prefix);
/* BASE/klpq-<euid>, this user's private parent of klpq's temporary folders, made 0700 when
 * missing. NULL with a message unless it is a folder (not a symlink) of this user, mode 0700. */
char *private_tmp_parent(const char *base, struct kerr *e);
/* A new folder BASE/klpq-<euid>/PREFIX<pid>-XXXXXX (0700) with .lock inside it held (flock) on
 * *lock_fd: close that when the folder is gone. A sweep of any klpq, in any PID namespace,
 * leaves the folder alone while the lock is held. malloc'd, or NULL with a message. */
char *make_locked_tmp(const char *base, const char *prefix, int *lock_fd, struct kerr *e);
int path_exists(const char *path);
int is_dir(const char *path);
char *path_join(const char *a, const char *b); /* malloc'd; b absolute -> copy of b */
char *path_dirname(const char *path);          /* malloc'd */

/* A name used as one path component: [A-Za-z0-9._+-], not empty, not "." or "..". */
int name_is_safe(const char *name);
int name_char_ok(char c); /* one character of such a name */

/* Iterates the lines of a NUL-terminated text: while (next_line(&p, &line, &len)) ...
 * line points into the text (no newline), len its length; a last line without "\n" counts. */
int next_line(const char **p, const char **line, size_t *len);

/* A kernel module's name from its file path: basename up to ".ko", '-' as '_'. malloc'd. */
char *module_name(const char *path, size_t len);

/* 1 when fd polls readable now (a level-triggered stop flag); 0 otherwise or for fd < 0. */
int fd_readable(int fd);
/* Takes an exclusive flock(2) on PATH (created if missing), waiting while another process
 * (a parallel cell, another klpq) holds it, until stop_fd is readable. The descriptor, or -1
 * with a message; close() it to release the lock. */
int lock_path(const char *path, int stop_fd, struct kerr *e);

/* Writes all of buf to a (possibly non-blocking) socket, waiting for room up to timeout_ms;
 * MSG_NOSIGNAL, so a closed peer is EPIPE, not SIGPIPE. 0, or -1 with errno (ETIMEDOUT). */
int send_all(int fd, const void *buf, size_t len, unsigned timeout_ms);

uint64_t now_ms(void);        /* CLOCK_MONOTONIC */
uint64_t wall_ms(void);       /* CLOCK_REALTIME */
void sleep_ms(unsigned ms);

int set_nonblock(int fd);

#endif
