/* klpq.c: main and the command table. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

#define KLPQ_VERSION "0.1.0"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct command commands[] = {
	{ "run", cmd_run, "run a scenario: klpq run [-o RESULTS] [--cache DIR] SCENARIO.yaml" },
	{ "plan", cmd_plan, "print a scenario's matrix of cells: klpq plan [--shard I/N] [--json] "
	  "SCENARIO.yaml" },
	{ "report", cmd_report, "write junit.xml, kcidb.json, report.html, results.tap again: "
	  "klpq report RUN_DIR" },
	{ "merge", cmd_merge, "join shard runs into one: klpq merge -o OUT_RUN RUN..." },
	{ "validate", cmd_validate, "check a scenario and its patch set: klpq validate SCENARIO.yaml" },
	{ "checks", cmd_checks, "the checks a cell reports, or one of them: klpq checks [ID...]; klpq checks --verify RESULTS.JSON..." },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: klpq COMMAND [ARGS]\n\nkernel livepatch qualification harness "
		     "%s\n\ncommands:\n", KLPQ_VERSION);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "\nexit codes: 0 all passed, 1 some check failed, 2 harness error or bad "
		     "input\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_HARNESS;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_PASS;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("klpq %s\n", KLPQ_VERSION);
		return EXIT_PASS;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "klpq: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_HARNESS;
}
