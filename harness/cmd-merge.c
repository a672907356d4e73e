/* cmd-merge.c: klpq merge -o OUT_RUN_DIR RUN_DIR...
 *
 * Joins runs into one run folder: typically the shards of one nightly matrix, run on several
 * machines (klpq run --shard I/N). Each cell folder is copied; a cell present in two runs is
 * an error naming both, unless the copies are the same result (same start time: a shard
 * merged twice). The merged results.json lists where it came from; the reports are written
 * and the exit code is the merged run's (0 pass, 1 some check failed, 2 harness error or an
 * incomplete shard). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report.h"
#include "spawn.h"

static void usage(void)
{
	fprintf(stderr, "usage: klpq merge -o OUT_RUN_DIR RUN_DIR...\n");
}

/* cp -a FROM TO, through the one spawn module: argv only, no shell. */
static int copy_tree(const char *from, const char *to, struct kerr *e)
{
	const char *argv[] = { "cp", "-a", "--", from, to, NULL };
	struct run_opts o = RUN_OPTS_INIT;
	struct sb out = SB_INIT;
	int r;

	o.timeout_ms = 600000;
	r = run_capture(argv, &o, &out, e);
	sb_release(&out);
	return r;
}

int cmd_merge(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *outdir = NULL;
	struct run_result m;
	struct kerr e = KERR_INIT;
	char **origin = NULL; /* for each merged cell, the run folder it came from */
	int c, ret = EXIT_HARNESS;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': outdir = optarg; break;
		case 'h': usage(); return EXIT_PASS;
		default: usage(); return EXIT_HARNESS;
		}
	}
	if (!outdir || optind >= argc) {
		usage();
		return EXIT_HARNESS;
	}
	if (path_exists(outdir)) {
		fprintf(stderr, "klpq: %s exists: merge into a new folder\n", outdir);
		return EXIT_HARNESS;
	}
	memset(&m, 0, sizeof(m));
	m.dir = xstrdup(outdir);
	{
		const char *slash = strrchr(outdir, '/');
		m.id = xstrdup(slash && slash[1] ? slash + 1 : outdir);
	}
	for (int i = optind; i < argc; i++) {
		struct run_result r;

		if (run_read(&r, argv[i], &e) < 0) {
			fprintf(stderr, "klpq: %s\n", e.msg);
			goto out;
		}
		if (!m.scenario) {
			m.scenario = xstrdup(r.scenario);
			m.scenario_name = xstrdup(r.scenario_name);
			m.started_wall_ms = r.started_wall_ms;
		} else if (strcmp(m.scenario_name, r.scenario_name)) {
			fprintf(stderr, "klpq: %s ran scenario '%s', %s ran '%s': not one matrix\n",
				argv[i], r.scenario_name, origin && m.nr_merged_from ?
				m.merged_from[0] : "the first run", m.scenario_name);
			run_release(&r);
			goto out;
		}
		if (r.started_wall_ms && r.started_wall_ms < m.started_wall_ms)
			m.started_wall_ms = r.started_wall_ms;
		if (r.duration_ms > m.duration_ms)
			m.duration_ms = r.duration_ms; /* shards run side by side */
		m.interrupted |= r.interrupted;
		m.unfinished |= r.unfinished;
		if (r.error && !m.error)
			m.error = xasprintf("%s: %s", argv[i], r.error);
		m.planned += r.planned;
		m.merged_from = xrealloc(m.merged_from, (m.nr_merged_from + 1) * sizeof(char *));
		m.merged_from[m.nr_merged_from++] = xstrdup(r.dir);
		for (size_t k = 0; k < r.nr_cells; k++) {
			struct cell_result *cell = &r.cells[k];
			size_t j;

			for (j = 0; j < m.nr_cells; j++)
				if (!strcmp(m.cells[j].id, cell->id))
					break;
			if (j < m.nr_cells) {
				if (m.cells[j].started_wall_ms == cell->started_wall_ms)
					continue; /* the same result, merged twice */
				fprintf(stderr, "klpq: cell %s has two different results: in %s and in %s\n",
					cell->id, origin[j], r.dir);
				run_release(&r);
				goto out;
			}
			m.cells = xrealloc(m.cells, (m.nr_cells + 1) * sizeof(*m.cells));
			origin = xrealloc(origin, (m.nr_cells + 1) * sizeof(*origin));
			origin[m.nr_cells] = xstrdup(r.dir);
			m.cells[m.nr_cells++] = *cell;
			memset(cell, 0, sizeof(*cell)); /* moved: run_release frees nothing of it */
		}
		run_release(&r);
	}
	if (mkdir_p(m.dir, 0755, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		goto out;
	}
	for (size_t j = 0; j < m.nr_cells; j++) {
		char *to = path_join(m.dir, m.cells[j].id);

		if (copy_tree(m.cells[j].dir, to, &e) < 0) {
			fprintf(stderr, "klpq: copying %s: %s\n", m.cells[j].dir, e.msg);
			free(to);
			goto out;
		}
		free(m.cells[j].dir);
		m.cells[j].dir = to;
	}
	if (run_write(&m, &e) < 0 || report_write_all(&m, 1, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		goto out;
	}
	run_print_table(&m, stdout, 0);
	printf("klpq: merged %zu run(s), %zu cell(s) into %s\n", m.nr_merged_from, m.nr_cells,
	       m.dir);
	ret = run_exit_code(&m);
out:
	for (size_t j = 0; origin && j < m.nr_cells; j++)
		free(origin[j]);
	free(origin);
	run_release(&m);
	return ret;
}
