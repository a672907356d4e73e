/* spawn.c: see spawn.h. */
#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Runs in the child between fork and exec: async-signal-safe calls only. */
/* In the child: become as_uid/as_gid with no supplementary groups, keeping only
 * CAP_DAC_READ_SEARCH (read any file, as root could: the kernel headers may sit in root's
 * home), as an ambient capability so it survives the exec; no new privileges after it. The
 * program can read what root reads but write only what as_uid owns. */
static int drop_privileges(const struct child *c)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (setgroups(0, NULL) < 0 || setgid(c->as_gid) < 0 ||
	    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setuid(c->as_uid) < 0)
		return -1;
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = d[0].inheritable = 1u << CAP_DAC_READ_SEARCH;
	if (syscall(SYS_capset, &h, d) < 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH, 0, 0) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return 0;
}

/* The step of the child's set-up that failed, carried back with its errno through the pipe. */
enum child_step { CS_PGROUP, CS_PDEATHSIG, CS_DUP2, CS_PRIVS, CS_CHDIR, CS_EXEC };
static const char *const child_step_name[] = { "setpgid", "prctl(PR_SET_PDEATHSIG)", "dup2",
					       "dropping privileges", "chdir", "exec" };
struct child_failure {
	int step;
	int err;
};

/* Runs in the child between fork and exec: async-signal-safe calls only (the program's path and
 * the environment were made before the fork). */
static void child_setup_and_exec(const struct child *c, const char *path, int errpipe,
				 pid_t parent, int devnull, char *const *envp)
{
	int in = c->in_fd >= 0 ? c->in_fd : devnull;
	int out = c->out_fd >= 0 ? c->out_fd : devnull;
	int err = c->err_fd >= 0 ? c->err_fd : out;
	struct child_failure f = { CS_EXEC, 0 };

	/* Default dispositions first, then an empty mask: every signal was blocked across the fork
	 * so that none of klpq's handlers runs in the child. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	{
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}
	if (c->new_pgroup && setpgid(0, 0) < 0) {
		f.step = CS_PGROUP;
		goto fail;
	}
	if (c->pdeathsig) {
		if (prctl(PR_SET_PDEATHSIG, c->pdeathsig) < 0) {
			f.step = CS_PDEATHSIG;
			goto fail;
		}
		if (getppid() != parent) /* parent already gone: do not outlive it */
			_exit(127);
	}
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
		f.step = CS_DUP2;
		goto fail;
	}
	/* Nothing above stderr reaches the program, whatever klpq's caller left open without
	 * close-on-exec (a lock QEMU would otherwise hold): marked close-on-exec, not closed, so
	 * the exec-error pipe still works until the exec. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	if (c->drop_privs && drop_privileges(c) < 0) {
		f.step = CS_PRIVS;
		goto fail;
	}
	if (c->cwd && chdir(c->cwd) < 0) {
		f.step = CS_CHDIR;
		goto fail;
	}
	execve(path, (char *const *)c->argv, envp);
fail:
	f.err = errno;
	while (write(errpipe, &f, sizeof(f)) < 0 && errno == EINTR)
		;
	_exit(127);
}

/* argv[0] as execvp(3) would find it, looked up before the fork: a name with a '/' as it is,
 * else the first executable regular file of that name in PATH. NULL with errno (ENOENT,
 * EACCES) when there is none. */
static char *resolve_program(const char *name)
{
	const char *path = getenv("PATH"), *p, *end;
	int seen_eacces = 0;

	if (strchr(name, '/'))
		return xstrdup(name);
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path;; p = end + 1) {
		struct stat st;
		char *cand;

		end = strchr(p, ':');
		if (!end)
			end = p + strlen(p);
		cand = xasprintf("%.*s%s%s", (int)(end - p), p, end > p ? "/" : "", name);
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0)
				return cand;
			seen_eacces = 1;
		}
		free(cand);
		if (!*end)
			break;
	}
	errno = seen_eacces ? EACCES : ENOENT;
	return NULL;
}

/* environ with the child's extra "KEY=VALUE" entries merged in by key (an extra entry replaces
 * the inherited one of the same key). The strings stay the caller's and environ's. */
static char **merged_env(const char *const *extra)
{
	size_t n = 0, k = 0;
	char **envp;

	while (environ[n])
		n++;
	while (extra[k])
		k++;
	envp = xcalloc(n + k + 1, sizeof(*envp));
	n = 0;
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t kl = eq ? (size_t)(eq - *e) + 1 : strlen(*e);
		int replaced = 0;

		for (size_t i = 0; extra[i] && !replaced; i++)
			replaced = !strncmp(extra[i], *e, kl);
		if (!replaced)
			envp[n++] = *e;
	}
	for (size_t i = 0; i < k; i++)
		envp[n++] = (char *)extra[i];
	return envp;
}

int child_start(struct child *c, struct kerr *e)
{
	int pipefd[2], devnull;
	pid_t parent = getpid();
	char **envp = environ, *path;
	struct child_failure f;
	sigset_t all, old;

	if (!c->argv || !c->argv[0])
		return kerr_set(e, "internal error: empty command");
	path = resolve_program(c->argv[0]);
	if (!path)
		return kerr_errno(e, "cannot run %s: not %s in PATH", c->argv[0],
				  errno == EACCES ? "executable" : "found");
	if (c->env)
		envp = merged_env(c->env);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
		kerr_errno(e, "cannot start %s", c->argv[0]);
		if (devnull >= 0)
			close(devnull);
		goto out_fail;
	}
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	c->pid = fork();
	if (c->pid == 0)
		child_setup_and_exec(c, path, pipefd[1], parent, devnull, envp);
	f.err = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(pipefd[1]);
	close(devnull);
	if (c->pid < 0) {
		close(pipefd[0]);
		errno = f.err;
		kerr_errno(e, "cannot fork for %s", c->argv[0]);
		goto out_fail;
	}
	if (xread(pipefd[0], &f, sizeof(f)) == sizeof(f)) {
		close(pipefd[0]);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
		c->pid = -1;
		errno = f.err;
		if (f.step == CS_EXEC)
			kerr_errno(e, "cannot run %s", c->argv[0]);
		else if (f.step == CS_CHDIR)
			kerr_errno(e, "cannot run %s: chdir %s", c->argv[0], c->cwd);
		else
			kerr_errno(e, "cannot run %s: %s", c->argv[0],
				   f.step >= 0 && f.step <= CS_EXEC ? child_step_name[f.step] : "?");
		goto out_fail;
	}
	close(pipefd[0]);
	if (envp != environ)
		free(envp);
	free(path);
	return 0;
out_fail:
	if (envp != environ)
		free(envp);
	free(path);
	return -1;
}

int child_fork(struct child *c, int (*fn)(void *ctx), void *ctx, struct kerr *e)
{
	pid_t parent = getpid();
	sigset_t all, old;
	int err;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	c->pid = fork();
	if (c->pid == 0) {
		if (c->pdeathsig) {
			prctl(PR_SET_PDEATHSIG, c->pdeathsig);
			if (getppid() != parent) /* parent already gone: do not outlive it */
				_exit(127);
		}
		sigprocmask(SIG_SETMASK, &old, NULL);
		_exit(fn(ctx));
	}
	err = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (c->pid < 0) {
		errno = err;
		return kerr_errno(e, "cannot fork");
	}
	return 0;
}

int child_wait(struct child *c)
{
	int status;

	if (c->pid <= 0) {
		errno = ECHILD;
		return -1;
	}
	while (waitpid(c->pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	c->pid = -1;
	return status;
}

int child_wait_timeout(struct child *c, unsigned ms, int *status)
{
	uint64_t deadline = now_ms() + ms;

	if (c->pid <= 0) {
		errno = ECHILD;
		return -1;
	}
	for (;;) {
		pid_t r = waitpid(c->pid, status, WNOHANG);
		if (r == c->pid) {
			c->pid = -1;
			return 1;
		}
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline)
			return 0;
		sleep_ms(10);
	}
}


void describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status),
			 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "ended with status 0x%x", status);
}

/* Keeps the last `keep` bytes of the output. */
static void keep_tail(struct sb *out, size_t keep)
{
	if (out->len <= keep)
		return;
	memmove(out->buf, out->buf + out->len - keep, keep);
	out->len = keep;
	out->buf[keep] = '\0';
}

static void add_last_lines(struct sb *msg, const struct sb *out, int lines)
{
	size_t i = out->len;
	int n = 0;

	while (i > 0 && n <= lines) {
		i--;
		if (out->buf[i] == '\n' && i + 1 < out->len)
			n++;
	}
	if (n > lines)
		i++;
	if (i < out->len)
		sb_addf(msg, ":\n%.*s", (int)(out->len - i), out->buf + i);
}

static void describe_command(struct sb *msg, const char *const *argv)
{
	sb_adds(msg, argv[0]);
	for (size_t i = 1; argv[i] && i < 4; i++)
		sb_addf(msg, " %s", argv[i]);
	if (argv[1] && argv[2] && argv[3] && argv[4])
		sb_adds(msg, " ...");
}

int run_capture(const char *const *argv, struct run_opts *o, struct sb *out, struct kerr *e)
{
	struct child c = CHILD_INIT;
	int pipefd[2], status = 0;
	uint64_t deadline = o->timeout_ms ? now_ms() + o->timeout_ms : 0;
	char buf[8192], how[128];
	const size_t keep = 1 << 20;
	struct sb msg = SB_INIT;

	o->end = RUN_NOT_STARTED;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return kerr_errno(e, "cannot run %s", argv[0]);
	c.argv = argv;
	c.cwd = o->cwd;
	c.env = o->env;
	c.drop_privs = o->drop_privs;
	c.as_uid = o->as_uid;
	c.as_gid = o->as_gid;
	c.out_fd = pipefd[1];
	c.pdeathsig = SIGKILL;
	c.new_pgroup = 1;
	if (child_start(&c, e) < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	close(pipefd[1]);
	o->end = RUN_OK;
	for (;;) {
		struct pollfd p[2] = { { pipefd[0], POLLIN, 0 }, { o->stop_fd, POLLIN, 0 } };
		int wait = -1;
		if (deadline) {
			uint64_t now = now_ms();
			if (now >= deadline) {
				o->end = RUN_TIMED_OUT;
				break;
			}
			wait = (int)(deadline - now);
		}
		int r = poll(p, o->stop_fd >= 0 ? 2 : 1, wait);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			o->end = RUN_LOST; /* cannot watch it any more: end it, do not spin */
			break;
		}
		if (r == 0)
			continue;
		if (o->stop_fd >= 0 && (p[1].revents & POLLIN)) {
			o->end = RUN_STOPPED;
			break;
		}
		ssize_t n = xread(pipefd[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		sb_add(out, buf, (size_t)n);
		if (out->len > 2 * keep)
			keep_tail(out, keep);
	}
	close(pipefd[0]);
	keep_tail(out, keep);
	if (o->end == RUN_OK) {
		/* stdout closed: the child is exiting; a child that closed it and hangs is killed
		 * at the deadline like any other */
		int r;
		if (deadline) {
			uint64_t now = now_ms();
			r = child_wait_timeout(&c, deadline > now ? (unsigned)(deadline - now) : 0,
					       &status);
		} else {
			status = child_wait(&c);
			r = status < 0 ? -1 : 1;
		}
		if (r == 0)
			o->end = RUN_TIMED_OUT;
		else if (r < 0 || status < 0)
			return kerr_errno(e, "waiting for %s", argv[0]);
	}
	if (o->end != RUN_OK) {
		kill(-c.pid, SIGKILL); /* the whole group: make's gcc, apt's methods */
		child_wait(&c);
	}
	if (o->end == RUN_OK && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	describe_command(&msg, argv);
	if (o->end == RUN_TIMED_OUT) {
		sb_addf(&msg, " did not finish within %u s", o->timeout_ms / 1000);
	} else if (o->end == RUN_STOPPED) {
		sb_adds(&msg, " interrupted: klpq was asked to stop");
	} else if (o->end == RUN_LOST) {
		sb_adds(&msg, " killed: klpq could not watch its output (poll failed)");
	} else {
		o->end = WIFEXITED(status) ? RUN_FAILED : RUN_SIGNALED;
		describe_status(status, how, sizeof(how));
		sb_addf(&msg, " %s", how);
	}
	add_last_lines(&msg, out, 8);
	kerr_set(e, "%s", msg.buf);
	sb_release(&msg);
	return -1;
}
