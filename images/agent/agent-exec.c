/* agent-exec.c: running commands (probes) with bounded output and timeouts (agent.h). */
#define _GNU_SOURCE
#include "agent.h"

/* Runs in the forked child: only async-signal-safe calls until execvp. Never returns. */
static void __attribute__((noreturn)) probe_child(char *const argv[], int out_fd, int err_fd)
{
	sigset_t none;
	int null_fd, e;
	ssize_t ignored;

	/* The agent blocks SIGCHLD (for its signalfd) and ignores SIGPIPE; masks and ignored
	 * signals survive exec, and a probe expects the defaults. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	/* Its own process group, so a timeout kills whatever it started too. */
	setsid();
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd >= 0 && dup2(null_fd, STDIN_FILENO) >= 0 && dup2(out_fd, STDOUT_FILENO) >= 0 &&
	    dup2(out_fd, STDERR_FILENO) >= 0)
		execvp(argv[0], argv);
	e = errno;
	ignored = write(err_fd, &e, sizeof(e));
	(void)ignored;
	_exit(127);
}

/*
 * Forks and execs argv with stdout and stderr on one pipe. A close-on-exec pipe carries the
 * child's errno back when exec fails, so that becomes an error reply rather than a probe that
 * "exited 127". -1 with errno on failure.
 */
static int probe_start(struct probe *pr, char *const argv[])
{
	int out[2], ep[2], child_errno, saved;
	ssize_t n;
	pid_t pid;

	if (pipe2(out, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(ep, O_CLOEXEC) < 0)
		goto fail_out;
	pid = fork();
	if (pid < 0)
		goto fail_ep;
	if (pid == 0)
		probe_child(argv, out[1], ep[1]);
	close(out[1]);
	close(ep[1]);
	do
		n = read(ep[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n == (ssize_t)sizeof(child_errno)) {
		/* The child is about to _exit(127): waiting for this one pid is short and
		 * cannot take another child's status. */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(out[0]);
		errno = child_errno;
		return -1;
	}
	if (set_nonblock(out[0]) < 0) {
		/* Blocking reads would stall the loop; a probe we cannot watch is killed. */
		saved = errno;
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(out[0]);
		errno = saved;
		return -1;
	}
	pr->pid = pid;
	pr->out_fd = out[0];
	return 0;

fail_ep:
	saved = errno;
	close(ep[0]);
	close(ep[1]);
	errno = saved;
fail_out:
	saved = errno;
	close(out[0]);
	close(out[1]);
	errno = saved;
	return -1;
}

/* Reads what the pipe holds, at most max bytes this call so a chatty probe cannot starve the
 * loop; keeps EXEC_OUTPUT_MAX bytes and counts the rest as truncation. */
static void probe_read(struct probe *pr, size_t max)
{
	char scratch[4096];
	size_t done = 0;

	while (pr->out_fd >= 0 && done < max) {
		size_t room = sizeof(pr->out) - pr->out_len;
		char *dst = room ? pr->out + pr->out_len : scratch;
		ssize_t n = read(pr->out_fd, dst, room ? room : sizeof(scratch));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) { /* EOF, or an error that ends the output all the same */
			close(pr->out_fd);
			pr->out_fd = -1;
			return;
		}
		if (room)
			pr->out_len += (size_t)n;
		else
			pr->truncated = 1;
		done += (size_t)n;
	}
}

static void probe_kill(struct probe *pr)
{
	/* The group first (setsid made the probe its leader); the pid too, in case the child
	 * had not reached setsid yet. */
	kill(-pr->pid, SIGKILL);
	kill(pr->pid, SIGKILL);
}

/*
 * Waits for the probe: collects output, sends heartbeats, reaps, and kills the process group
 * at the timeout. Output is collected until the probe itself exits, not until EOF: a
 * background child keeping the pipe open must not turn a finished probe into a timeout.
 */
static void probe_wait(struct agent *a, struct probe *pr, uint64_t timeout_ms)
{
	uint64_t deadline = mono_ms() + timeout_ms, kill_deadline = 0;

	while (!pr->exited) {
		struct pollfd p[2] = { { a->sig_fd, POLLIN, 0 }, { pr->out_fd, POLLIN, 0 } };
		uint64_t now = mono_ms(), wake;
		int r;

		if (!pr->timed_out && now >= deadline) {
			probe_kill(pr);
			pr->timed_out = 1;
			kill_deadline = now + KILL_GRACE_MS;
		}
		if (pr->timed_out && now >= kill_deadline) {
			/* Stuck in the kernel (D state). reap() collects it whenever it ends. */
			send_log(a, "probe %d still alive %d ms after SIGKILL; not waiting longer",
				 (int)pr->pid, KILL_GRACE_MS);
			break;
		}
		heartbeat_if_due(a);
		wake = pr->timed_out ? kill_deadline : deadline;
		if (a->next_beat < wake)
			wake = a->next_beat;
		r = poll(p, pr->out_fd >= 0 ? 2 : 1, ms_until(wake));
		if (r < 0 && errno != EINTR) {
			send_log(a, "exec: poll: %s; killing probe %d", strerror(errno),
				 (int)pr->pid);
			probe_kill(pr);
			pr->timed_out = 1;
			kill_deadline = mono_ms() + KILL_GRACE_MS;
			sleep_ms(100); /* do not spin if poll keeps failing */
			continue;
		}
		if (r <= 0)
			continue;
		if (pr->out_fd >= 0 && p[1].revents)
			probe_read(pr, 64 * 1024);
		if (p[0].revents)
			reap(a, pr);
	}
	/* What the probe wrote before it exited is in the pipe already. */
	probe_read(pr, 256 * 1024);
	if (pr->out_fd >= 0) {
		close(pr->out_fd);
		pr->out_fd = -1;
	}
}

#ifdef KLPQ_AGENT_FAULTS
/*
 * Test builds only (build/klpq-agent-faults; the images klpq builds use the plain agent): a
 * probe whose text contains "klpq-agent-fault" makes the agent itself abuse the channel before
 * it runs the probe, as a corrupted or hostile guest could. A guest process cannot do this on
 * its own: the port admits one opener, and the agent holds it.
 */
static void inject_faults(struct agent *a)
{
	static char chunk[65536];
	static const char stray_reply[] = "{\"v\":1,\"id\":99999,\"ok\":true,\"result\":{}}\n";
	static const char other_version[] = "{\"v\":2,\"event\":\"ready\"}\n";
	unsigned seed = 12345;

	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 48; i++) /* one 3 MiB line: over the 64 KiB bound */
		port_send(a, chunk, sizeof(chunk));
	port_send(a, "\n", 1);
	for (int line = 0; line < 200; line++) { /* binary garbage, one short line each */
		char g[128];
		for (size_t i = 0; i < sizeof(g) - 1; i++) {
			seed = seed * 1103515245u + 12345u;
			g[i] = (char)((seed >> 16) & 0xff);
			if (g[i] == '\n')
				g[i] = '?';
		}
		g[sizeof(g) - 1] = '\n';
		port_send(a, g, sizeof(g));
	}
	port_send(a, stray_reply, sizeof(stray_reply) - 1);
	port_send(a, other_version, sizeof(other_version) - 1);
}
#endif

int do_exec(struct req *rq)
{
	struct agent *a = rq->a;
	char *argv[EXEC_MAX_ARGS + 1];
	json_object *jargv;
	struct probe *pr;
	int64_t timeout_ms;
	uint64_t start;
	size_t argc, out_len;

	if (!json_object_object_get_ex(rq->args, "argv", &jargv) ||
	    !json_object_is_type(jargv, json_type_array))
		return fail(rq, EINVAL, "exec: argument \"argv\" missing or not an array");
	argc = json_object_array_length(jargv);
	if (argc == 0 || argc > EXEC_MAX_ARGS)
		return fail(rq, EINVAL, "exec: argv must have 1 to %d strings", EXEC_MAX_ARGS);
	for (size_t i = 0; i < argc; i++) {
		json_object *s = json_object_array_get_idx(jargv, i);
		if (!json_object_is_type(s, json_type_string))
			return fail(rq, EINVAL, "exec: argv[%zu] is not a string", i);
		/* execvp does not write to argv; its prototype just predates const */
		argv[i] = (char *)json_object_get_string(s);
	}
	argv[argc] = NULL;
	if (arg_int(rq, "timeout_ms", 1, EXEC_MAX_TIMEOUT_MS, 0, 0, &timeout_ms) < 0)
		return -1;
#ifdef KLPQ_AGENT_FAULTS
	for (size_t i = 0; i < argc; i++)
		if (strstr(argv[i], "klpq-agent-fault")) {
			inject_faults(a);
			break;
		}
#endif

	pr = calloc(1, sizeof(*pr)); /* holds the 16 KiB of output */
	if (!pr)
		return fail(rq, ENOMEM, "exec: out of memory");
	pr->out_fd = -1;
	start = mono_ms();
	if (probe_start(pr, argv) < 0) {
		free(pr);
		return fail_errno(rq, "exec %s", argv[0]);
	}
	probe_wait(a, pr, (uint64_t)timeout_ms);

	out_len = json_fit(pr->out, pr->out_len, EXEC_OUTPUT_BUDGET);
	if (out_len < pr->out_len)
		pr->truncated = 1;
	put_int(rq->result, "exit",
		pr->exited && WIFEXITED(pr->status) ? WEXITSTATUS(pr->status) : -1);
	put_int(rq->result, "signal",
		pr->exited && WIFSIGNALED(pr->status) ? WTERMSIG(pr->status) : 0);
	put_bool(rq->result, "timed_out", pr->timed_out);
	put(rq->result, "output", json_object_new_string_len(pr->out, (int)out_len));
	put_bool(rq->result, "truncated", pr->truncated);
	put_int(rq->result, "duration_ms", (int64_t)(mono_ms() - start));
	free(pr);
	return 0;
}
