/* scheduler.c: runs a plan's cells in parallel processes (see scheduler.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scheduler.h"
#include "spawn.h"
#include "vm-libvirt.h"

#define VM_OVERHEAD_MB 256  /* QEMU's own memory beside the guest's, measured ~150 MB (TCG) */
#define HOST_RESERVE_MB 512 /* left to the host and to klpq itself */
#define PROBE_MAX_MS 120000 /* a pool host's health check, at most */

struct slot {
	pid_t pid;
	int fd;                 /* read end of the cell's progress pipe, or -1 */
	size_t pc;              /* index into the plan's cells */
	size_t rc;              /* index into run->cells */
	int attempt;
	int host;               /* the pool's host running it, or -1 */
	uint64_t started;
	struct sb partial;      /* a progress line not yet ended */
	char last[160];         /* the cell's latest event, for the live display */
};

struct sched {
	const struct runner *rn;
	const struct plan *p;
	struct run_result *run;
	const struct sched_opts *o;
	struct slot *slots;
	size_t running;
	size_t *queue, q_head, q_len; /* plan indices; a retried cell goes to the back */
	int *attempts;          /* per plan cell: attempts started */
	int *host_attempts;     /* per plan cell: attempts ended by a host's fault */
	char **host_err;        /* per plan cell: how its last such attempt ended, or NULL */
	size_t done, todo;      /* cells ended in this run / to run in this run */
	size_t pass, fail, error;
	uint64_t t0, busy_ms;   /* sum of finished cells' durations, for the estimate */
	unsigned live_lines;    /* lines of the live display now on the terminal */
	uint64_t last_draw;
	int stopping;
	int write_failed;
};

long sched_mem_available_mb(void);

long sched_mem_available_mb(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

unsigned sched_default_jobs(unsigned vm_mb)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN), mem = sched_mem_available_mb();
	long by_mem = mem < 0 ? cpus : (mem - HOST_RESERVE_MB) / (long)(vm_mb + VM_OVERHEAD_MB);
	long j = cpus < by_mem ? cpus : by_mem;

	return j < 1 ? 1 : (unsigned)j;
}

/* ---- output ------------------------------------------------------------------------ */

static void erase_live(struct sched *s)
{
	if (s->o->live && s->live_lines) {
		fprintf(s->o->out, "\033[%uF\033[J", s->live_lines);
		s->live_lines = 0;
	}
}

static void fmt_duration(uint64_t ms, char *out, size_t len)
{
	uint64_t sec = ms / 1000;

	if (sec >= 3600)
		snprintf(out, len, "%lluh%02llum", (unsigned long long)(sec / 3600),
			 (unsigned long long)(sec / 60 % 60));
	else
		snprintf(out, len, "%llum%02llus", (unsigned long long)(sec / 60),
			 (unsigned long long)(sec % 60));
}

static void draw_live(struct sched *s, int force)
{
	uint64_t now = now_ms();
	char el[32], eta[64] = "";
	size_t queued = s->q_len - s->q_head;

	if (!s->o->live || s->o->quiet || (!force && now - s->last_draw < 250))
		return;
	s->last_draw = now;
	erase_live(s);
	fmt_duration(now - s->t0, el, sizeof(el));
	if (s->done) {
		uint64_t per = s->busy_ms / s->done;
		uint64_t left = per * (queued + s->running) / (s->o->jobs ? s->o->jobs : 1);
		char l[32];

		fmt_duration(left, l, sizeof(l));
		snprintf(eta, sizeof(eta), ", about %s left", l);
	}
	fprintf(s->o->out, "klpq: %zu/%zu done (%zu PASS, %zu FAIL, %zu ERROR), %zu running, "
		"%zu queued, %s elapsed%s\n", s->done, s->todo, s->pass, s->fail, s->error,
		s->running, queued, el, eta);
	s->live_lines = 1;
	for (unsigned i = 0; i < s->o->jobs; i++) {
		struct slot *sl = &s->slots[i];
		char t[32];

		if (!sl->pid)
			continue;
		fmt_duration(now - sl->started, t, sizeof(t));
		fprintf(s->o->out, "  %-44.44s %7s  %.90s\n", s->p->cells[sl->pc].id, t, sl->last);
		s->live_lines++;
	}
	fflush(s->o->out);
}

/* A progress line from a cell: printed as is, or kept for the live display. */
static void cell_line(struct sched *s, struct slot *sl, const char *line)
{
	const char *ev = line;

	if (line[0] == '[' && (ev = strchr(line, ']')) && ev[1] == ' ')
		ev += 2;
	else
		ev = line;
	snprintf(sl->last, sizeof(sl->last), "%s", ev);
	if (s->o->quiet || s->o->live)
		return;
	fprintf(s->o->out, "%s\n", line);
	fflush(s->o->out);
}

static void drain(struct sched *s, struct slot *sl)
{
	char buf[4096];
	ssize_t n;

	while (sl->fd >= 0) {
		n = read(sl->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(sl->fd);
			sl->fd = -1;
			break;
		}
		sb_add(&sl->partial, buf, (size_t)n);
		for (;;) {
			char *nl = memchr(sl->partial.buf, '\n', sl->partial.len);
			size_t len;

			if (!nl)
				break;
			*nl = '\0';
			cell_line(s, sl, sl->partial.buf);
			len = (size_t)(nl + 1 - sl->partial.buf);
			memmove(sl->partial.buf, nl + 1, sl->partial.len - len);
			sl->partial.len -= len;
			sl->partial.buf[sl->partial.len] = '\0';
		}
		if (sl->partial.len > 8192) /* a runaway line: cut it */
			sb_reset(&sl->partial);
	}
	if (sl->partial.len) {
		cell_line(s, sl, sl->partial.buf);
		sb_reset(&sl->partial);
	}
}

/* ---- cells ------------------------------------------------------------------------- */

static size_t run_cell_index(struct run_result *run, const char *id)
{
	for (size_t i = 0; i < run->nr_cells; i++)
		if (!strcmp(run->cells[i].id, id))
			return i;
	return (size_t)-1;
}

/* The run's entry for plan cell pc, (re)initialised for a new attempt; its folder emptied
 * of what an earlier, unfinished attempt left. Returns its index in run->cells. */
static size_t fresh_cell(struct sched *s, size_t pc)
{
	const struct plan_cell *c = &s->p->cells[pc];
	size_t rc = run_cell_index(s->run, c->id);
	char *dir = path_join(s->run->dir, c->id);
	struct cell_result *cell;

	if (rc == (size_t)-1) {
		s->run->cells = xrealloc(s->run->cells, (s->run->nr_cells + 1) *
					 sizeof(*s->run->cells));
		rc = s->run->nr_cells++;
	} else {
		cell_release(&s->run->cells[rc]);
	}
	cell = &s->run->cells[rc];
	cell_init(cell, c->id, dir, c->kernel->label, c->patchset->name);
	s->attempts[pc]++;
	cell->attempts = s->attempts[pc];
	rm_rf(dir);
	free(dir);
	return rc;
}

static void save_run(struct sched *s)
{
	struct kerr e = KERR_INIT;

	s->run->duration_ms = now_ms() - s->t0;
	if (run_write(s->run, &e) < 0) {
		erase_live(s);
		fprintf(s->o->out, "klpq: %s\n", e.msg);
		if (!s->run->error)
			s->run->error = xstrdup(e.msg);
	}
}

/* In the child: run the cell, exit 0 / 3 interrupted / 4 results not written. */
static void child_main(struct sched *s, size_t pc, int host, int wfd)
{
	const struct plan_cell *c = &s->p->cells[pc];
	struct scenario sc = *s->rn->sc;
	struct runner rn = *s->rn;
	struct cell_result cell;
	FILE *progress;
	char *dir = path_join(s->run->dir, c->id);
	int r;

	for (unsigned i = 0; i < s->o->jobs; i++)
		if (s->slots[i].fd >= 0)
			close(s->slots[i].fd);
	rn.stop_fd = s->o->child_setup();
	if (rn.stop_fd < 0)
		_exit(4);
	progress = fdopen(wfd, "w");
	if (!progress)
		_exit(4);
	setvbuf(progress, NULL, _IOLBF, 0);
	sc.patchset = *c->patchset;
	sc.vm = *c->vm;
	if (s->o->pool && host >= 0) {
		/* the pool's host: over libvirt, its URI */
		const struct pool_host *h = &s->o->pool->hosts[host];
		const char *kvm = "kvm";

		sc.vm.backend = &vm_backend_libvirt;
		sc.vm.uri = h->uri;
		sc.vm.host = h->name;
		sc.vm.host_kvm = pool_host_has(h, &kvm, 1);
	}
	rn.sc = &sc;
	rn.progress = progress;
	cell_init(&cell, c->id, dir, c->kernel->label, c->patchset->name);
	cell.attempts = s->attempts[pc];
	r = runner_run_cell(&rn, c->kernel, &cell);
	fflush(progress);
	fflush(stderr);
	_exit(r == 0 ? 0 : r == -1 ? 3 : 4);
}

struct cell_proc {
	struct sched *s;
	size_t pc;
	int host;
	int rfd, wfd; /* the progress pipe: the parent reads, the cell writes */
};

/* The cell's process (spawn.c's child_fork): never returns. */
static int cell_process(void *arg)
{
	struct cell_proc *cp = arg;

	close(cp->rfd);
	child_main(cp->s, cp->pc, cp->host, cp->wfd);
	return 4;
}

static int start_cell(struct sched *s, struct slot *sl, size_t pc, int host)
{
	struct child proc = CHILD_INIT;
	struct cell_proc ctx;
	size_t rc = fresh_cell(s, pc);
	struct cell_result *cell = &s->run->cells[rc];
	struct kerr e = KERR_INIT;
	int pfd[2];
	pid_t pid;

	if (host >= 0)
		cell->host = xstrdup(s->o->pool->hosts[host].name);
	if (mkdir_p(cell->dir, 0755, &e) < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
		if (!e.msg[0])
			kerr_errno(&e, "pipe");
		cell_add(cell, "prepare", "results", V_ERROR, 0, "%s", e.msg);
		cell->finished = 1;
		return -1;
	}
	fflush(NULL);
	ctx = (struct cell_proc){ s, pc, host, pfd[0], pfd[1] };
	proc.pdeathsig = SIGTERM;
	if (child_fork(&proc, cell_process, &ctx, &e) < 0) {
		cell_add(cell, "prepare", "process", V_ERROR, 0, "cannot start the cell's process: %s",
			 e.msg);
		cell->finished = 1;
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	pid = proc.pid;
	close(pfd[1]);
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	sl->pid = pid;
	sl->fd = pfd[0];
	sl->pc = pc;
	sl->rc = rc;
	sl->attempt = s->attempts[pc];
	sl->host = host;
	if (host >= 0) {
		s->o->pool->hosts[host].running++;
		s->o->pool->hosts[host].started++;
	}
	sl->started = now_ms();
	snprintf(sl->last, sizeof(sl->last), "starting");
	s->running++;
	return 0;
}

static void count(struct sched *s, const struct cell_result *c)
{
	switch (cell_verdict(c)) {
	case V_FAIL: s->fail++; break;
	case V_ERROR: s->error++; break;
	default: s->pass++; break;
	}
}

/* The cell ended (its process, or it never started): take its results, retry an ERROR. */
static void cell_ended(struct sched *s, size_t pc, size_t rc, int status, uint64_t started,
		       int host)
{
	const struct plan_cell *c = &s->p->cells[pc];
	struct cell_result got, *cell = &s->run->cells[rc];
	struct kerr e = KERR_INIT;
	int attempts = s->attempts[pc];
	int interrupted = WIFEXITED(status) && WEXITSTATUS(status) == 3;
	int host_retry = 0;
	const char *col = "", *end = "";

	if (status != -1 && cell_read(&got, c->id, cell->dir, &e) == 0) {
		cell_release(cell);
		*cell = got;
	}
	cell->attempts = attempts;
	if (status != -1 && !cell->finished && !interrupted && !s->stopping) {
		/* the cell's process died without finishing: OOM killer, a crash of klpq */
		if (WIFSIGNALED(status))
			cell_add(cell, "end", "process", V_ERROR, 0, "the cell's klpq process was "
				 "killed by signal %d (%s)", WTERMSIG(status),
				 strsignal(WTERMSIG(status)));
		else
			cell_add(cell, "end", "process", V_ERROR, 0, "the cell's klpq process exited "
				 "with status %d before finishing", WEXITSTATUS(status));
		cell->finished = 1;
	}
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 4) {
		if (!s->run->error)
			s->run->error = xasprintf("the results of cell %s could not be written", c->id);
		/* a full or read-only results disk: another VM could not write either, and moving
		 * the folder aside would lose the last results.json that did get written */
		if (!cell->no_retry)
			cell->no_retry = xstrdup("its results could not be written");
	}
	if (!cell->duration_ms)
		cell->duration_ms = now_ms() - started;
	if (host >= 0) {
		struct pool *pool = s->o->pool;
		struct pool_host *h = &pool->hosts[host];

		h->running--;
		if (!cell->host)
			cell->host = xstrdup(h->name);
		if (cell->finished && cell_verdict(cell) == V_ERROR && cell->host_fault) {
			/* the first ERROR says what the host did; later ones are its consequences
			 * ("N step(s) not run after the loss of the guest") */
			const char *title = "";

			for (size_t k = 0; k < cell->nr_checks && !*title; k++)
				if (cell->checks[k].status == V_ERROR)
					title = cell->checks[k].title;
			if (pool_fault(pool, (size_t)host, cell->host_fault, title, now_ms()) &&
			    !s->o->quiet) {
				erase_live(s);
				fprintf(s->o->out, "klpq: host %s is out of the pool: %s (health check "
					"in %u s)\n", h->name, h->reason, pool->health_s);
			}
			free(s->host_err[pc]);
			s->host_err[pc] = xasprintf("attempt %d ended on host %s (%s): %s",
						    s->attempts[pc], h->name, cell->host_fault, title);
			if (!s->stopping && !cell->no_retry &&
			    s->host_attempts[pc] < (int)pool->nr) {
				s->host_attempts[pc]++;
				host_retry = 1;
			}
		}
	}
	attempts -= s->host_attempts[pc]; /* --retries counts the others */
	kerr_clear(&e);
	if (cell_write(cell, &e) < 0 && !s->run->error)
		s->run->error = xstrdup(e.msg);

	if (cell->finished && cell_verdict(cell) == V_ERROR && !s->stopping && !host_retry &&
	    attempts <= (int)s->o->retries && cell->no_retry && !s->o->quiet) {
		erase_live(s);
		fprintf(s->o->out, "klpq: %s: ERROR (%s); not retried: %s\n", c->id,
			cell->nr_checks ? cell->checks[cell->nr_checks - 1].title : "",
			cell->no_retry);
	}
	if (host_retry || (cell->finished && cell_verdict(cell) == V_ERROR && !s->stopping &&
			   attempts <= (int)s->o->retries && !cell->no_retry)) {
		/* infrastructure trouble: keep this attempt aside and queue the cell again */
		char *aside_dir = path_join(s->run->dir, ".attempts");
		char *aside = xasprintf("%s/%s.%d", aside_dir, c->id, s->attempts[pc]);

		if (mkdir_p(aside_dir, 0755, &e) == 0) {
			rm_rf(aside);
			if (rename(cell->dir, aside) < 0)
				rm_rf(cell->dir);
		}
		free(aside);
		free(aside_dir);
		s->queue[s->q_len++] = pc;
		if (!s->o->quiet && host_retry) {
			erase_live(s);
			fprintf(s->o->out, "klpq: %s: ERROR on host %s (%s); retrying on another "
				"host\n", c->id, cell->host, cell->nr_checks ?
				cell->checks[cell->nr_checks - 1].title : "");
		} else if (!s->o->quiet) {
			erase_live(s);
			fprintf(s->o->out, "klpq: %s: ERROR (%s); retrying (attempt %d of %u)\n",
				c->id, cell->nr_checks ? cell->checks[cell->nr_checks - 1].title : "",
				attempts + 1, s->o->retries + 1);
		}
		return;
	}
	if (cell->finished) {
		s->done++;
		s->busy_ms += cell->duration_ms;
		count(s, cell);
	}
	if (!s->o->quiet) {
		enum verdict v = cell_verdict(cell);
		char att[48] = "";

		if (s->attempts[pc] > 1)
			snprintf(att, sizeof(att), " (attempt %d)", s->attempts[pc]);
		if (s->o->color) {
			col = v == V_PASS ? "\033[32m" : v == V_FAIL ? "\033[31m" :
			      v == V_ERROR ? "\033[33m" : "";
			end = *col ? "\033[0m" : "";
		}
		erase_live(s);
		fprintf(s->o->out, "klpq: [%zu/%zu] %s: %s%s%s in %.1f s%s\n", s->done, s->todo,
			c->id, col, cell->finished ? verdict_name(v) : "INTERRUPTED", end,
			cell->duration_ms / 1000.0, att);
		fflush(s->o->out);
	}
	save_run(s);
}

/* ---- the pool's hosts ------------------------------------------------------------- */

struct probe_proc {
	const char *uri;
	int wfd;
};

/* A health check's process: the check's message down the pipe, exit 0 when it passed. */
static int probe_process(void *arg)
{
	struct probe_proc *pp = arg;
	struct kerr e = KERR_INIT;
	int r;

	/* klpq's stop handlers are not this process's: SIGTERM ends it */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	r = vm_libvirt_health(pp->uri, &e);

	if (r < 0)
		write_all(pp->wfd, e.msg, strlen(e.msg));
	_exit(r < 0 ? 1 : 0);
}

/* Health checks of the hosts that are out and due for one. */
static void probes_start(struct sched *s)
{
	struct pool *pool = s->o->pool;
	uint64_t now = now_ms();

	for (size_t i = 0; i < pool->nr; i++) {
		struct pool_host *h = &pool->hosts[i];
		struct child proc = CHILD_INIT;
		struct kerr e = KERR_INIT;
		struct probe_proc pp;
		int pfd[2];

		if (h->probe_pid && now > h->probe_started_ms + PROBE_MAX_MS) {
			/* a health check that hangs (a connect to a host that drops packets) */
			kill(h->probe_pid, SIGKILL);
			continue; /* reaped as a failed check */
		}
		if (!h->down || h->probe_pid || now < h->probe_at_ms)
			continue;
		h->probe_at_ms = now + (uint64_t)pool->health_s * 1000;
		if (pipe2(pfd, O_CLOEXEC) < 0)
			continue;
		pp = (struct probe_proc){ h->uri, pfd[1] };
		proc.pdeathsig = SIGTERM;
		fflush(NULL);
		if (child_fork(&proc, probe_process, &pp, &e) < 0) {
			close(pfd[0]);
			close(pfd[1]);
			continue;
		}
		close(pfd[1]);
		h->probe_pid = proc.pid;
		h->probe_started_ms = now;
		h->probe_fd = pfd[0];
	}
}

static void probe_ended(struct sched *s, pid_t pid, int status)
{
	struct pool *pool = s->o->pool;

	for (size_t i = 0; i < pool->nr; i++) {
		struct pool_host *h = &pool->hosts[i];
		char msg[400] = "";
		ssize_t n;

		if (h->probe_pid != pid)
			continue;
		h->probe_pid = 0;
		n = read(h->probe_fd, msg, sizeof(msg) - 1);
		msg[n > 0 ? n : 0] = '\0';
		close(h->probe_fd);
		h->probe_fd = -1;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			h->down = 0;
			h->start_faults = 0;
			if (!s->o->quiet) {
				erase_live(s);
				fprintf(s->o->out, "klpq: host %s is back in the pool (its health check "
					"passed)\n", h->name);
			}
		} else if (!s->o->quiet) {
			erase_live(s);
			fprintf(s->o->out, "klpq: host %s stays out of the pool: health check: %s\n",
				h->name, *msg ? msg : "its process failed");
		}
	}
}

static size_t cell_reqs(const struct plan_cell *c, const char **req)
{
	size_t n = 0;

	for (size_t i = 0; i < c->vm->nr_requires; i++)
		req[n++] = c->vm->requires[i];
	if (c->vm->accel == ACCEL_KVM)
		req[n++] = "kvm";
	return n;
}

/* Queued cell pc cannot run anywhere (why): ERROR, written, not retried. */
static void cell_unrunnable(struct sched *s, size_t pc, const char *why)
{
	size_t rc = fresh_cell(s, pc);
	struct cell_result *cell = &s->run->cells[rc];
	struct kerr e = KERR_INIT;

	struct check_result *r;

	mkdir_p(cell->dir, 0755, &e);
	r = cell_add(cell, "prepare", "host", V_ERROR, 0, "%s", why);
	if (s->host_err[pc])
		check_evidence(r, "its %s (kept in .attempts/)", s->host_err[pc]);
	cell->no_retry = xstrdup("no host of the pool can run it");
	cell->finished = 1;
	cell_ended(s, pc, rc, -1, now_ms(), -1);
}

/* The next queued cell a host can take now: moved to the queue's head, its host returned; -1
 * when none can start yet. Cells no host can ever run end here as ERROR. */
static int pool_next(struct sched *s)
{
	struct pool *pool = s->o->pool;

	for (size_t k = s->q_head; k < s->q_len; k++) {
		size_t pc = s->queue[k];
		const char *req[POOL_MAX_LABELS + 2];
		size_t nr = cell_reqs(&s->p->cells[pc], req);
		int h;

		if (!pool_up(pool))
			return -1;
		h = pool_pick(pool, req, nr, 0);
		if (h < 0 && !pool_can(pool, req, nr, 0)) {
			struct sb why = SB_INIT;
			char *down = pool_down_reasons(pool);

			if (!pool_any_has(pool, req, nr)) {
				sb_adds(&why, "no host in the pool has the label(s)");
				for (size_t i = 0; i < nr; i++)
					sb_addf(&why, " %s", req[i]);
				sb_addf(&why, " that the cell requires (%s)", pool->file ?
					pool->file : "hosts:");
			} else {
				sb_addf(&why, "no host of the pool is left for this cell%s%s",
					*down ? ": " : "", down);
			}
			s->queue[k] = s->queue[s->q_head];
			s->queue[s->q_head++] = pc;
			cell_unrunnable(s, pc, why.buf);
			sb_release(&why);
			free(down);
			k = s->q_head - 1;
			continue;
		}
		if (h < 0)
			continue;
		s->queue[k] = s->queue[s->q_head];
		s->queue[s->q_head] = pc;
		return h;
	}
	return -1;
}

/* Every host is out: the cells left end as ERROR, and so does the run (exit 2). */
static void pool_all_down(struct sched *s)
{
	char *down = pool_down_reasons(s->o->pool);

	if (!s->run->error)
		s->run->error = xasprintf("every host of the pool is down: %s", down);
	if (!s->o->quiet) {
		erase_live(s);
		fprintf(s->o->out, "klpq: every host of the pool is down: %s\n", down);
	}
	while (s->q_head < s->q_len) {
		size_t pc = s->queue[s->q_head++];
		char *why = xasprintf("not run: every host of the pool is down: %s", down);

		cell_unrunnable(s, pc, why);
		free(why);
	}
	free(down);
}

static void reap(struct sched *s)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < s->o->jobs; i++) {
			struct slot *sl = &s->slots[i];

			if (sl->pid != pid)
				continue;
			drain(s, sl);
			if (sl->fd >= 0)
				close(sl->fd);
			sl->fd = -1;
			sl->pid = 0;
			s->running--;
			cell_ended(s, sl->pc, sl->rc, status, sl->started, sl->host);
			break;
		}
		if (s->o->pool)
			probe_ended(s, pid, status);
	}
}

/* Room for one more VM of vm_mb in MemAvailable (what the kernel says it can give without
 * swapping), keeping a reserve for the host. */
static int memory_ok(const struct vm_spec *vm, long *avail)
{
	*avail = sched_mem_available_mb();
	return *avail < 0 || *avail >= (long)(vm->memory_mb + VM_OVERHEAD_MB + HOST_RESERVE_MB / 2);
}

int sched_run(const struct runner *rn, const struct plan *p, struct run_result *run,
	      const struct sched_opts *o)
{
	struct sched s;
	size_t i;

	memset(&s, 0, sizeof(s));
	s.rn = rn;
	s.p = p;
	s.run = run;
	s.o = o;
	s.t0 = now_ms();
	s.slots = xcalloc(o->jobs, sizeof(*s.slots));
	for (i = 0; i < o->jobs; i++) {
		s.slots[i].fd = -1;
		sb_init(&s.slots[i].partial);
	}
	/* each cell at most 1 + retries times */
	s.queue = xcalloc(p->nr * (o->retries + 1 + (o->pool ? o->pool->nr : 0)) + 1,
			  sizeof(*s.queue));
	s.attempts = xcalloc(p->nr + 1, sizeof(*s.attempts));
	s.host_attempts = xcalloc(p->nr + 1, sizeof(*s.host_attempts));
	s.host_err = xcalloc(p->nr + 1, sizeof(*s.host_err));
	for (i = 0; i < p->nr; i++) {
		size_t rc = run_cell_index(run, p->cells[i].id);

		if (rc != (size_t)-1 && run->cells[rc].finished)
			continue; /* --resume: kept */
		s.queue[s.q_len++] = i;
	}
	s.todo = s.q_len;

	for (;;) {
		struct pollfd *pf = xcalloc(o->jobs, sizeof(*pf));
		unsigned n = 0;

		if (!s.stopping && *o->stop_signal) {
			s.stopping = 1;
			for (i = 0; i < o->jobs; i++)
				if (s.slots[i].pid)
					kill(s.slots[i].pid, SIGTERM);
		}
		if (o->pool && !s.stopping) {
			probes_start(&s);
			if (!pool_up(o->pool) && s.q_head < s.q_len)
				pool_all_down(&s);
		}
		while (!s.stopping && s.running < o->jobs && s.q_head < s.q_len) {
			size_t pc;
			struct slot *sl = NULL;
			long avail;
			int host = -1;

			if (o->pool) {
				/* the remote hosts' memory is theirs: their capacity bounds it */
				host = pool_next(&s);
				if (host < 0)
					break;
				pc = s.queue[s.q_head];
			} else {
				pc = s.queue[s.q_head];
			}
			if (!o->pool && !memory_ok(p->cells[pc].vm, &avail)) {
				if (s.running)
					break; /* wait for a running cell to end */
				s.q_head++;
				{
					size_t rc = fresh_cell(&s, pc);
					struct cell_result *cell = &run->cells[rc];
					struct kerr e = KERR_INIT;

					mkdir_p(cell->dir, 0755, &e);
					cell_add(cell, "prepare", "host-memory", V_ERROR, 0,
						 "host out of memory: MemAvailable is %ld MB, a VM of %u MB "
						 "needs about %u MB", avail, p->cells[pc].vm->memory_mb,
						 p->cells[pc].vm->memory_mb + VM_OVERHEAD_MB +
						 HOST_RESERVE_MB / 2);
					cell->finished = 1;
					cell_ended(&s, pc, rc, -1, now_ms(), -1);
				}
				continue;
			}
			for (i = 0; i < o->jobs && !sl; i++)
				if (!s.slots[i].pid)
					sl = &s.slots[i];
			s.q_head++;
			if (start_cell(&s, sl, pc, host) < 0)
				cell_ended(&s, pc, run_cell_index(run, p->cells[pc].id), -1, now_ms(),
					   -1);
		}
		if (!s.running && (s.stopping || s.q_head == s.q_len)) {
			free(pf);
			break;
		}
		for (i = 0; i < o->jobs; i++)
			if (s.slots[i].fd >= 0) {
				pf[n].fd = s.slots[i].fd;
				pf[n].events = POLLIN;
				n++;
			}
		draw_live(&s, 0);
		if (poll(pf, n, 250) > 0)
			for (i = 0; i < o->jobs; i++)
				if (s.slots[i].fd >= 0)
					drain(&s, &s.slots[i]);
		free(pf);
		reap(&s);
	}
	erase_live(&s);
	for (i = 0; o->pool && i < o->pool->nr; i++) {
		struct pool_host *h = &o->pool->hosts[i];

		if (h->probe_pid) {
			/* a health check still running: the run is over, it is not needed */
			kill(h->probe_pid, SIGKILL);
			waitpid(h->probe_pid, NULL, 0);
			close(h->probe_fd);
			h->probe_pid = 0;
			h->probe_fd = -1;
		}
	}
	for (i = 0; i < o->jobs; i++)
		sb_release(&s.slots[i].partial);
	free(s.slots);
	free(s.queue);
	free(s.attempts);
	free(s.host_attempts);
	for (i = 0; i < p->nr; i++)
		free(s.host_err[i]);
	free(s.host_err);
	return run->error ? -1 : 0;
}
