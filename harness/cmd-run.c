/* cmd-run.c: klpq run [-o RESULTS] [-j N] [--shard I/N] [--retries N] [--hosts FILE]
 *            [--cache DIR] SCENARIO
 *
 * Owns the run: the results folder, the signal handling (SIGINT/SIGTERM stop every VM and
 * still write what was gathered), the plan of cells (plan.c) handed to the scheduler
 * (scheduler.c), the summary and the table. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "kernel.h"
#include "pbuild.h"
#include "plan.h"
#include "report.h"
#include "proto.h"
#include "results.h"
#include "runner.h"
#include "scenario.h"
#include "scheduler.h"

/* The only process-wide state: a signal handler can reach nothing else. */
static int stop_pipe[2] = { -1, -1 };
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	int saved = errno;
	char c = 1;

	stop_signal = sig;
	if (write(stop_pipe[1], &c, 1) < 0) {
		/* the pipe is full: a stop is already pending */
	}
	errno = saved;
}

static int install_signals(void)
{
	struct sigaction sa;

	if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* In a cell's process (scheduler.c forks one per cell): its own stop pipe, so that a stop reaches
 * every cell and no cell drains another's. */
static int child_signals(void)
{
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	stop_signal = 0;
	if (install_signals() < 0)
		return -1;
	return stop_pipe[0];
}

/* <exe dir>/NAME, else <exe dir>/../lib/klpq/NAME. */
static char *beside_exe(const char *name)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *dir, *p;

	if (n <= 0)
		return xstrdup(name);
	exe[n] = '\0';
	dir = path_dirname(exe);
	p = path_join(dir, name);
	if (!path_exists(p)) {
		free(p);
		p = xasprintf("%s/../lib/klpq/%s", dir, name);
	}
	free(dir);
	return p;
}

static char *env_or(const char *var, char *fallback)
{
	const char *v = getenv(var);

	if (v && *v) {
		free(fallback);
		return xstrdup(v);
	}
	return fallback;
}

static void usage(void)
{
	fprintf(stderr, "usage: klpq run [-o RESULTS_DIR] [-j N] [--shard I/N] [--retries N] "
			"[--hosts FILE] [--tap] [--cache DIR] [--quiet] SCENARIO.yaml\n"
			"       klpq run --resume RESULTS_DIR/RUN_ID [-j N] [--hosts FILE] "
			"[--cache DIR] [--quiet]\n");
}

/* The scenario file a run was started with, and its shard ("I/N" or NULL, into *shard),
 * from its results.json. malloc'd or NULL. */
static char *resume_scenario(const char *rundir, char **shard, struct kerr *e)
{
	char *path = path_join(rundir, "results.json");
	json_object *o = json_object_from_file(path);
	const char *scen = proto_get_str(o, "scenario", "");
	char *ret = NULL;

	if (!strcmp(proto_get_str(o, "format", ""), "klpq-run-1") && *scen) {
		ret = xstrdup(scen);
		if (*proto_get_str(o, "shard", ""))
			*shard = xstrdup(proto_get_str(o, "shard", ""));
	} else {
		kerr_set(e, "%s: not a klpq run summary (nothing to resume)", path);
	}
	json_object_put(o);
	free(path);
	return ret;
}

/* Why a finished cell of an earlier run is not this plan cell's result any more (a kernel or
 * patch set renamed, or changed under the same name), or NULL when it still is. */
static const char *same_content(const struct cell_result *c, const struct plan_cell *pc)
{
	char sum[65];
	struct kerr e = KERR_INIT;

	if (strcmp(c->kernel, pc->kernel->label) || strcmp(c->patchset, pc->patchset->name))
		return "another kernel or patch set";
	if (c->patchset_sha256 && (pbuild_patchset_hash(pc->patchset, sum, &e) < 0 ||
				   strcmp(sum, c->patchset_sha256)))
		return "the patch set's content changed";
	if (c->kernel_image && (sha256_file(c->kernel_image, sum, &e) < 0 ||
				strcmp(sum, c->kernel_sha256)))
		return "the kernel image changed (or is gone)";
	return NULL;
}

/* --resume: the finished cells of an earlier run of this plan are kept, when they are still
 * this kernel's and this patch set's cell (a scenario edited between the runs must not pass
 * old results off as new); the rest run again. */
static void keep_finished(struct run_result *run, const struct plan *p, int quiet)
{
	for (size_t i = 0; i < p->nr; i++) {
		const struct plan_cell *pc = &p->cells[i];
		char *dir = path_join(run->dir, pc->id);
		struct cell_result c;
		struct kerr e = KERR_INIT;

		if (cell_read(&c, pc->id, dir, &e) == 0) {
			const char *why = same_content(&c, pc);

			if (c.finished && !why && cell_verdict(&c) == V_ERROR)
				why = "it ended in ERROR (infrastructure): run again";
			if (c.finished && !why) {
				run->cells = xrealloc(run->cells, (run->nr_cells + 1) *
						      sizeof(*run->cells));
				run->cells[run->nr_cells++] = c;
				if (!quiet)
					printf("[%s] already finished: %s (kept)\n", pc->id,
					       verdict_name(cell_verdict(&c)));
			} else {
				if (c.finished && !quiet)
					printf("[%s] finished before, not kept: %s\n", pc->id, why);
				cell_release(&c);
			}
		}
		free(dir);
	}
}

static int parse_count(const char *opt, const char *text, unsigned lo, unsigned hi,
		       unsigned *out)
{
	char *end;
	unsigned long v = strtoul(text, &end, 10);

	if (end == text || *end || text[0] == '-' || v < lo || v > hi) {
		fprintf(stderr, "klpq: %s wants a number from %u to %u, not '%s'\n", opt, lo, hi,
			text);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "cache", required_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "resume", required_argument, NULL, 'r' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "shard", required_argument, NULL, 's' },
		{ "retries", required_argument, NULL, 'R' },
		{ "tap", no_argument, NULL, 'T' },
		{ "hosts", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *outdir = "results", *resume = NULL, *shard = NULL, *hosts = NULL;
	char *cache = NULL, *agent = NULL, *busybox = NULL, *workload = NULL, *scen = NULL;
	char *resume_shard = NULL;
	struct scenario sc;
	struct plan plan;
	struct run_result run;
	struct runner rn;
	struct sched_opts so;
	struct kerr e = KERR_INIT;
	int c, quiet = 0, ret, outdir_set = 0, tap = 0;
	unsigned jobs = 0, retries = 1, si = 1, sn = 1;
	char id[96], when[32];
	time_t now = time(NULL);
	struct tm tm;
	uint64_t t0 = now_ms();

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:c:qj:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': outdir = optarg; outdir_set = 1; break;
		case 'c': free(cache); cache = xstrdup(optarg); break;
		case 'q': quiet = 1; break;
		case 'r': resume = optarg; break;
		case 's': shard = optarg; break;
		case 'T': tap = 1; break;
		case 'H': hosts = optarg; break;
		case 'j':
			if (parse_count("-j", optarg, 1, 256, &jobs) < 0)
				goto bad_usage;
			break;
		case 'R':
			if (parse_count("--retries", optarg, 0, 10, &retries) < 0)
				goto bad_usage;
			break;
		case 'h': usage(); free(cache); return EXIT_PASS;
		default: goto bad_usage;
		}
	}
	if (resume ? optind != argc || outdir_set || shard : optind != argc - 1) {
		usage();
		goto bad_usage;
	}
	if (shard && plan_parse_shard(shard, &si, &sn, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		goto bad_usage;
	}
	scen = resume ? resume_scenario(resume, &resume_shard, &e) : xstrdup(argv[optind]);
	if (!scen || scenario_load(scen, &sc, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		free(cache);
		free(scen);
		free(resume_shard);
		return EXIT_HARNESS;
	}
	free(scen);
	memset(&run, 0, sizeof(run));
	memset(&plan, 0, sizeof(plan));
	ret = EXIT_HARNESS;
	if (hosts) {
		/* --hosts FILE: the pool, in place of the scenario's hosts: */
		struct pool pool;

		if (pool_load(hosts, &pool, &e) < 0) {
			fprintf(stderr, "klpq: %s\n", e.msg);
			goto out;
		}
		for (size_t i = 0; i < sc.nr_vms; i++)
			if (sc.vms[i].uri) {
				fprintf(stderr, "klpq: --hosts and the scenario's vm.uri exclude each "
					"other: a pool gives each cell its host's URI\n");
				pool_release(&pool);
				goto out;
			}
		pool_release(&sc.pool);
		sc.pool = pool;
	}
	if (resume_shard) {
		/* the shard the run was started with */
		if (plan_parse_shard(resume_shard, &si, &sn, &e) == 0)
			run.shard = resume_shard;
		else
			free(resume_shard);
		resume_shard = NULL;
	} else if (shard) {
		run.shard = xasprintf("%u/%u", si, sn);
	}
	if (plan_build(&sc, &plan, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		goto out;
	}
	plan_shard(&plan, si, sn);
	if (!cache)
		cache = klpq_cache_dir();
	agent = env_or("KLPQ_AGENT", beside_exe("klpq-agent"));
	busybox = env_or("KLPQ_BUSYBOX", xstrdup("/bin/busybox"));
	if (!path_exists(agent)) {
		fprintf(stderr, "klpq: guest agent %s not found (build it with make, or set "
			"KLPQ_AGENT)\n", agent);
		goto out;
	}
	workload = env_or("KLPQ_WORKLOAD", beside_exe("klpq-workload"));
	if (sc.nr_workloads && !path_exists(workload)) {
		fprintf(stderr, "klpq: workload program %s not found (build it with make, or set "
			"KLPQ_WORKLOAD)\n", workload);
		goto out;
	}
	if (!path_exists(busybox)) {
		fprintf(stderr, "klpq: static busybox %s not found (apt-get install busybox-static, "
			"or set KLPQ_BUSYBOX)\n", busybox);
		goto out;
	}
	/* what a klpq killed outright (SIGKILL, OOM) left: its image and socket folders */
	{
		const char *t = getenv("TMPDIR");
		struct kerr pe = KERR_INIT;
		char *cells = private_tmp_parent(t && *t ? t : "/tmp", &pe);
		char *vms = cells ? private_tmp_parent("/tmp", &pe) : NULL;

		if (!vms) {
			fprintf(stderr, "klpq: %s\n", pe.msg);
			free(cells);
			goto out;
		}
		sweep_dead(cells, "cell-");
		sweep_dead(vms, "vm-");
		free(cells);
		free(vms);
	}
	if (install_signals() < 0) {
		perror("klpq: pipe");
		goto out;
	}
	if (resume) {
		const char *slash;
		run.dir = xstrdup(resume);
		while (strlen(run.dir) > 1 && run.dir[strlen(run.dir) - 1] == '/')
			run.dir[strlen(run.dir) - 1] = '\0';
		slash = strrchr(run.dir, '/');
		run.id = xstrdup(slash ? slash + 1 : run.dir);
	} else {
		localtime_r(&now, &tm);
		strftime(when, sizeof(when), "%Y%m%d-%H%M%S", &tm);
		snprintf(id, sizeof(id), "%s-%s", when, sc.name);
		run.id = xstrdup(id);
		run.dir = path_join(outdir, id);
		for (int n = 2; path_exists(run.dir); n++) {
			free(run.dir);
			free(run.id);
			run.id = xasprintf("%s-%d", id, n);
			run.dir = path_join(outdir, run.id);
		}
	}
	run.scenario = xstrdup(sc.file);
	run.scenario_name = xstrdup(sc.name);
	run.started_wall_ms = wall_ms();
	run.planned = plan.nr;
	if (mkdir_p(cache, 0755, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		goto out;
	}
	{
		/* what is in the cache becomes code klpq runs (the headers' Makefiles, the
		 * modules it loads): only this user may write it */
		struct stat cst;

		if (stat(cache, &cst) < 0 || cst.st_uid != geteuid() || (cst.st_mode & 022)) {
			fprintf(stderr, "klpq: the cache %s must belong to user %ld and be writable by "
				"it alone (owner %ld, mode %04o): its kernels and modules are code klpq "
				"runs; chmod go-w it or use another --cache\n", cache, (long)geteuid(),
				(long)cst.st_uid, (unsigned)(cst.st_mode & 07777));
			goto out;
		}
	}
	if (mkdir_p(run.dir, 0755, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		goto out;
	}
	if (resume)
		keep_finished(&run, &plan, quiet);
	if (!jobs) {
		unsigned most = 0;
		for (size_t i = 0; i < sc.nr_vms; i++)
			if (sc.vms[i].memory_mb > most)
				most = sc.vms[i].memory_mb;
		/* a pool's hosts run the VMs: their capacity, not this machine's memory */
		jobs = sc.pool.nr ? pool_capacity(&sc.pool) : sched_default_jobs(most);
	}
	if (jobs > plan.nr)
		jobs = plan.nr ? (unsigned)plan.nr : 1;
	memset(&rn, 0, sizeof(rn));
	rn.sc = &sc;
	rn.cache = cache;
	rn.agent = agent;
	rn.busybox = busybox;
	rn.workload = workload;
	rn.stop_fd = stop_pipe[0];
	if (!quiet) {
		printf("klpq: run %s: scenario %s, %zu cell(s)", run.id, sc.file, plan.nr);
		if (sn > 1)
			printf(" (shard %u/%u of %zu)", si, sn, plan.total);
		printf(", %u at once", jobs);
		if (sc.pool.nr)
			printf(" on a pool of %zu host(s)", sc.pool.nr);
		printf(", results in %s\n", run.dir);
		fflush(stdout);
	}
	/* Written before the first cell, so even a run killed early leaves a summary; it says
	 * "finished": false (and "interrupted": true) until the last write below. */
	run.unfinished = 1;
	if (run_write(&run, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		goto out;
	}
	memset(&so, 0, sizeof(so));
	so.jobs = jobs;
	so.retries = retries;
	so.quiet = quiet;
	so.live = isatty(1) && !getenv("KLPQ_PLAIN");
	so.color = isatty(1) && !getenv("NO_COLOR");
	so.out = stdout;
	so.child_setup = child_signals;
	so.stop_signal = &stop_signal;
	so.pool = sc.pool.nr ? &sc.pool : NULL;
	sched_run(&rn, &plan, &run, &so);
	if (stop_signal) {
		run.interrupted = 1;
		fprintf(stderr, "klpq: stopped by signal %d; results so far are in %s (continue "
			"with: klpq run --resume %s)\n", (int)stop_signal, run.dir, run.dir);
	}
	/* the summary in plan order, whatever order the cells ended in */
	{
		struct cell_result *sorted = xcalloc(run.nr_cells + 1, sizeof(*sorted));
		size_t n = 0;
		for (size_t i = 0; i < plan.nr; i++)
			for (size_t j = 0; j < run.nr_cells; j++)
				if (run.cells[j].id && !strcmp(run.cells[j].id, plan.cells[i].id)) {
					sorted[n++] = run.cells[j];
					run.cells[j].id = NULL;
					break;
				}
		for (size_t j = 0; j < run.nr_cells; j++)
			if (run.cells[j].id)
				sorted[n++] = run.cells[j];
		free(run.cells);
		run.cells = sorted;
		run.nr_cells = n;
	}
	run.duration_ms = now_ms() - t0;
	run.unfinished = 0;
	kerr_clear(&e);
	if (run_write(&run, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		if (!run.error)
			run.error = xstrdup(e.msg);
	}
	kerr_clear(&e);
	if (report_write_all(&run, tap, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		if (!run.error)
			run.error = xstrdup(e.msg);
	}
	run_print_table(&run, stdout, so.color);
	if (run.error)
		fprintf(stderr, "klpq: %s: results are incomplete\n", run.error);
	ret = run_exit_code(&run);
out:
	run_release(&run);
	plan_release(&plan);
	scenario_release(&sc);
	free(cache);
	free(agent);
	free(busybox);
	free(workload);
	return ret;
bad_usage:
	free(cache);
	return EXIT_HARNESS;
}
