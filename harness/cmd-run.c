/* cmd-run.c: klpq run [-o RESULTS] [--cache DIR] SCENARIO
 *
 * Owns the run: the results folder, the signal handling (SIGINT/SIGTERM stop every VM and
 * still write what was gathered), one cell per kernel, the summary and the table. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "kernel.h"
#include "proto.h"
#include "results.h"
#include "runner.h"
#include "scenario.h"

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

static void cell_id(const struct kernel_spec *ks, const char *patchset, char *out, size_t len)
{
	const char *rel = ks->kind == KERNEL_DEBIAN ? ks->deb.release : ks->release;

	snprintf(out, len, "%s_%s", rel ? rel : "kernel", patchset);
	for (char *p = out; *p; p++)
		if (!name_char_ok(*p))
			*p = '-';
}

static void usage(void)
{
	fprintf(stderr, "usage: klpq run [-o RESULTS_DIR] [--cache DIR] [--quiet] SCENARIO.yaml\n"
			"       klpq run --resume RESULTS_DIR/RUN_ID [--cache DIR] [--quiet]\n");
}

/* The scenario file a run was started with, from its results.json. malloc'd or NULL. */
static char *resume_scenario(const char *rundir, struct kerr *e)
{
	char *path = path_join(rundir, "results.json");
	json_object *o = json_object_from_file(path);
	const char *scen = proto_get_str(o, "scenario", "");
	char *ret = NULL;

	if (!strcmp(proto_get_str(o, "format", ""), "klpq-run-1") && *scen)
		ret = xstrdup(scen);
	else
		kerr_set(e, "%s: not a klpq run summary (nothing to resume)", path);
	json_object_put(o);
	free(path);
	return ret;
}

static int id_used(const struct run_result *run, const char *id)
{
	for (size_t i = 0; i < run->nr_cells; i++)
		if (!strcmp(run->cells[i].id, id))
			return 1;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "cache", required_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "resume", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *outdir = "results", *resume = NULL;
	char *cache = NULL, *agent = NULL, *busybox = NULL, *scen = NULL;
	struct scenario sc;
	struct run_result run;
	struct runner rn;
	struct kerr e = KERR_INIT;
	int c, quiet = 0, ret, outdir_set = 0;
	char id[96], when[32];
	time_t now = time(NULL);
	struct tm tm;
	uint64_t t0 = now_ms();

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:c:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'o': outdir = optarg; outdir_set = 1; break;
		case 'c': cache = xstrdup(optarg); break;
		case 'q': quiet = 1; break;
		case 'r': resume = optarg; break;
		case 'h': usage(); return EXIT_PASS;
		default: usage(); return EXIT_HARNESS;
		}
	}
	if (resume ? optind != argc || outdir_set : optind != argc - 1) {
		usage();
		free(cache);
		return EXIT_HARNESS;
	}
	scen = resume ? resume_scenario(resume, &e) : xstrdup(argv[optind]);
	if (!scen || scenario_load(scen, &sc, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		free(cache);
		free(scen);
		return EXIT_HARNESS;
	}
	free(scen);
	if (!cache)
		cache = klpq_cache_dir();
	agent = env_or("KLPQ_AGENT", beside_exe("klpq-agent"));
	busybox = env_or("KLPQ_BUSYBOX", xstrdup("/bin/busybox"));
	memset(&run, 0, sizeof(run));
	ret = EXIT_HARNESS;
	if (!path_exists(agent)) {
		fprintf(stderr, "klpq: guest agent %s not found (build it with make, or set "
			"KLPQ_AGENT)\n", agent);
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
		sweep_dead(t && *t ? t : "/tmp", "klpq-cell-");
		sweep_dead("/tmp", "klpq-vm-");
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
	if (mkdir_p(run.dir, 0755, &e) < 0 || mkdir_p(cache, 0755, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		goto out;
	}
	memset(&rn, 0, sizeof(rn));
	rn.sc = &sc;
	rn.cache = cache;
	rn.agent = agent;
	rn.busybox = busybox;
	rn.stop_fd = stop_pipe[0];
	rn.progress = quiet ? NULL : stdout;
	if (!quiet)
		printf("klpq: run %s: scenario %s, %zu cell(s), results in %s\n", run.id, sc.file,
		       sc.nr_kernels, run.dir);
	/* Written before the first cell, so even a run killed early leaves a summary. */
	if (run_write(&run, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		goto out;
	}
	for (size_t i = 0; i < sc.nr_kernels && !stop_signal; i++) {
		char cid[256];
		char *cdir;
		struct cell_result *cell;

		cell_id(&sc.kernels[i], sc.patchset.name, cid, sizeof(cid));
		/* debian: and local: kernels of one release would share a folder: number them.
		 * Ids depend only on the scenario, so --resume finds the same folders. */
		for (int n = 2; id_used(&run, cid); n++) {
			char base[256];
			snprintf(base, sizeof(base), "%s", cid);
			snprintf(cid, sizeof(cid), "%.200s-%d", base, n);
		}
		cdir = path_join(run.dir, cid);
		run.cells = xrealloc(run.cells, (run.nr_cells + 1) * sizeof(*run.cells));
		cell = &run.cells[run.nr_cells++];
		memset(cell, 0, sizeof(*cell));
		if (resume) {
			struct kerr re = KERR_INIT;
			/* kept only when it is this kernel's and this patch set's cell: a scenario
			 * edited between the runs must not pass old results off as new */
			if (cell_read(cell, cid, cdir, &re) == 0 && cell->finished &&
			    !strcmp(cell->kernel, sc.kernels[i].label) &&
			    !strcmp(cell->patchset, sc.patchset.name)) {
				if (!quiet)
					printf("[%s] already finished: %s (kept)\n", cid,
					       verdict_name(cell_verdict(cell)));
				free(cdir);
				continue;
			}
			if (cell->id)
				cell_release(cell);
			rm_rf(cdir); /* unfinished: run it again from the start */
		}
		cell_init(cell, cid, cdir, sc.kernels[i].label, sc.patchset.name);
		free(cdir);
		if (mkdir_p(cell->dir, 0755, &e) < 0) {
			cell_add(cell, "prepare", "results", V_ERROR, 0, "%s", e.msg);
			run.error = xstrdup(e.msg);
			break;
		}
		if (runner_run_cell(&rn, &sc.kernels[i], cell) == -2 && !run.error)
			run.error = xasprintf("the results of cell %s could not be written", cid);
		run.duration_ms = now_ms() - t0;
		kerr_clear(&e);
		if (run_write(&run, &e) < 0) {
			fprintf(stderr, "klpq: %s\n", e.msg);
			if (!run.error)
				run.error = xstrdup(e.msg);
		}
	}
	if (stop_signal) {
		run.interrupted = 1;
		fprintf(stderr, "klpq: stopped by signal %d; results so far are in %s\n",
			(int)stop_signal, run.dir);
	}
	run.duration_ms = now_ms() - t0;
	kerr_clear(&e);
	if (run_write(&run, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		if (!run.error)
			run.error = xstrdup(e.msg);
	}
	run_print_table(&run, stdout, isatty(1) && !getenv("NO_COLOR"));
	if (run.error)
		fprintf(stderr, "klpq: %s: results are incomplete\n", run.error);
	ret = run_exit_code(&run);
out:
	run_release(&run);
	scenario_release(&sc);
	free(cache);
	free(agent);
	free(busybox);
	return ret;
}
