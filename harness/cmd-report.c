/* cmd-report.c: klpq report RUN_DIR [--junit F] [--tap F] [--kcidb F] [--html F]
 *
 * Writes the CI formats again from a run folder (results.json and its cells): all of them
 * into the folder when no file is named, else just the ones asked for. */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "report.h"

static void usage(void)
{
	fprintf(stderr, "usage: klpq report RUN_DIR [--junit FILE] [--tap FILE] [--kcidb FILE] "
			"[--html FILE]\n");
}

int cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "junit", required_argument, NULL, 'j' },
		{ "tap", required_argument, NULL, 't' },
		{ "kcidb", required_argument, NULL, 'k' },
		{ "html", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *junit = NULL, *tap = NULL, *kcidb = NULL, *html = NULL;
	struct run_result run;
	struct kerr e = KERR_INIT;
	int c, r = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': junit = optarg; break;
		case 't': tap = optarg; break;
		case 'k': kcidb = optarg; break;
		case 'H': html = optarg; break;
		case 'h': usage(); return EXIT_PASS;
		default: usage(); return EXIT_HARNESS;
		}
	}
	if (optind != argc - 1) {
		usage();
		return EXIT_HARNESS;
	}
	if (run_read(&run, argv[optind], &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		return EXIT_HARNESS;
	}
	if (!junit && !tap && !kcidb && !html)
		r = report_write_all(&run, 1, &e);
	if (junit && report_junit(&run, junit, &e) < 0)
		r = -1;
	if (tap && report_tap(&run, tap, &e) < 0)
		r = -1;
	if (kcidb && report_kcidb(&run, kcidb, &e) < 0)
		r = -1;
	if (html && report_html(&run, html, &e) < 0)
		r = -1;
	if (r < 0)
		fprintf(stderr, "klpq: %s\n", e.msg);
	else
		printf("klpq: reports of %s written (%zu cell(s))\n", run.dir, run.nr_cells);
	run_release(&run);
	return r < 0 ? EXIT_HARNESS : EXIT_PASS;
}
