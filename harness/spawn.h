/* spawn.h: the one way klpq starts child processes (QEMU, apt-get, dpkg-deb, depmod, make).
 *
 * argv arrays only, never a shell. The program is looked up in PATH before the fork (the child
 * only calls async-signal-safe functions), every signal is blocked across the fork, and the child
 * starts with default dispositions and an empty mask. Every descriptor klpq opens is
 * close-on-exec; the child gets exactly stdin/stdout/stderr as configured. A failing set-up step
 * (dup2, chdir, dropping privileges, exec) is carried back with its errno through a close-on-exec
 * pipe, so child_start() fails naming it instead of a child exiting 127. Children are always
 * reaped by child_wait*().
 */
#ifndef KLPQ_SPAWN_H
#define KLPQ_SPAWN_H

#include <sys/types.h>
#include "util.h"

struct child {
	const char *const *argv;  /* NULL-terminated; argv[0] is looked up in PATH */
	const char *cwd;          /* or NULL */
	const char *const *env;   /* "KEY=VALUE" entries, NULL-terminated, or NULL: merged into
				   * klpq's environment by key (an entry replaces that key) */
	int in_fd;                /* -1: /dev/null */
	int out_fd;               /* -1: /dev/null */
	int err_fd;               /* -1: same as out_fd */
	int pdeathsig;            /* signal sent to the child when klpq dies (0: none) */
	int new_pgroup;           /* 1: child leads its own process group (Ctrl-C reaches klpq only) */
	pid_t pid;                /* set by child_start */
	int drop_privs;           /* 1: run as as_uid/as_gid, no supplementary groups, no new
				   * privileges (root building untrusted patch sources) */
	uid_t as_uid;
	gid_t as_gid;
};
#define CHILD_INIT { NULL, NULL, NULL, -1, -1, -1, 0, 0, -1, 0, 0, 0 }

int child_start(struct child *c, struct kerr *e);
/* A child that runs fn(ctx) instead of a program (a cell's process): forked with every signal
 * blocked across the fork, given c->pdeathsig (and ended at once should klpq be gone already),
 * the signal mask restored, then _exit(fn(ctx)). Only pdeathsig and pid of c are used. 0 with
 * c->pid set, or -1 with e set. */
int child_fork(struct child *c, int (*fn)(void *ctx), void *ctx, struct kerr *e);
/* Waits for exit; returns the raw wait status, or -1 with errno. */
int child_wait(struct child *c);
/* 1 and *status when it exited within ms, 0 when still running, -1 on error. */
int child_wait_timeout(struct child *c, unsigned ms, int *status);
/* Describes a wait status: "exited with 2", "killed by signal 9". */
void describe_status(int status, char *buf, size_t len);

/* How a run_capture child ended: only RUN_FAILED (ran, exited nonzero) is the command's own
 * verdict; the others are the harness's or the operator's business. */
enum run_end { RUN_OK, RUN_FAILED, RUN_SIGNALED, RUN_TIMED_OUT, RUN_NOT_STARTED, RUN_STOPPED,
	       RUN_LOST /* poll failed: klpq could not watch it, so it was killed */ };

struct run_opts {
	const char *cwd;          /* or NULL */
	const char *const *env;   /* extra "KEY=VALUE", NULL-terminated, or NULL */
	unsigned timeout_ms;      /* 0: no limit */
	int stop_fd;              /* readable -> kill the child and return RUN_STOPPED; -1: none */
	enum run_end end;         /* out */
	int drop_privs;           /* as in struct child */
	uid_t as_uid;
	gid_t as_gid;
};
#define RUN_OPTS_INIT { NULL, NULL, 0, -1, RUN_NOT_STARTED, 0, 0, 0 }

/* Runs argv to completion in its own process group (so Ctrl-C reaches klpq, which decides),
 * stdout and stderr captured into out (at most 1 MiB kept, the tail). On a timeout or a stop
 * the whole process group is killed. 0 when it exited 0; else -1 with a message naming the
 * command, how it ended and the last lines of its output, and o->end saying how. */
int run_capture(const char *const *argv, struct run_opts *o, struct sb *out, struct kerr *e);

#endif
