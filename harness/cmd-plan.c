/* cmd-plan.c: klpq plan [--shard I/N] [--json] SCENARIO.yaml
 *
 * Expands the scenario's matrix and prints the cells without running anything: what a
 * nightly job will do, and which cells a shard gets. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "plan.h"
#include "scenario.h"

static void usage(void)
{
	fprintf(stderr, "usage: klpq plan [--shard I/N] [--json] SCENARIO.yaml\n");
}

static json_object *cell_json(const struct plan_cell *c)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(c->id));
	json_object_object_add(o, "index", json_object_new_int64((int64_t)c->index));
	json_object_object_add(o, "kernel", json_object_new_string(c->kernel->label));
	json_object_object_add(o, "patchset", json_object_new_string(c->patchset->name));
	json_object_object_add(o, "vm", c->vm->name ? json_object_new_string(c->vm->name) : NULL);
	json_object_object_add(o, "memory_mb", json_object_new_int((int)c->vm->memory_mb));
	json_object_object_add(o, "cpus", json_object_new_int((int)c->vm->cpus));
	return o;
}

int cmd_plan(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "shard", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct scenario sc;
	struct plan p;
	struct kerr e = KERR_INIT;
	unsigned si = 1, sn = 1;
	int c, json = 0;
	uint64_t t0 = now_ms();

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (plan_parse_shard(optarg, &si, &sn, &e)) {
				fprintf(stderr, "klpq: %s\n", e.msg);
				return EXIT_HARNESS;
			}
			break;
		case 'J': json = 1; break;
		case 'h': usage(); return EXIT_PASS;
		default: usage(); return EXIT_HARNESS;
		}
	}
	if (optind != argc - 1) {
		usage();
		return EXIT_HARNESS;
	}
	if (scenario_load(argv[optind], &sc, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		return EXIT_HARNESS;
	}
	if (plan_build(&sc, &p, &e) < 0) {
		fprintf(stderr, "klpq: %s\n", e.msg);
		scenario_release(&sc);
		return EXIT_HARNESS;
	}
	plan_shard(&p, si, sn);
	if (json) {
		json_object *o = json_object_new_object(), *cells = json_object_new_array();

		json_object_object_add(o, "format", json_object_new_string("klpq-plan-1"));
		json_object_object_add(o, "scenario", json_object_new_string(sc.file));
		json_object_object_add(o, "total", json_object_new_int64((int64_t)p.total));
		{
			char sh[32];
			snprintf(sh, sizeof(sh), "%u/%u", si, sn);
			json_object_object_add(o, "shard", json_object_new_string(sh));
		}
		for (size_t i = 0; i < p.nr; i++)
			json_object_array_add(cells, cell_json(&p.cells[i]));
		json_object_object_add(o, "cells", cells);
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		printf("%-6s %-52s %-40s %-22s %s\n", "#", "cell", "kernel", "patchset", "vm");
		for (size_t i = 0; i < p.nr; i++) {
			const struct plan_cell *pc = &p.cells[i];

			printf("%-6zu %-52s %-40s %-22s %s%s%uMB/%ucpu\n", pc->index + 1, pc->id,
			       pc->kernel->label, pc->patchset->name, pc->vm->name ? pc->vm->name : "",
			       pc->vm->name ? " " : "", pc->vm->memory_mb, pc->vm->cpus);
		}
		printf("klpq: %zu cell(s)", p.nr);
		if (sn > 1)
			printf(" in shard %u/%u of %zu", si, sn, p.total);
		printf(" (%zu kernel(s) x %zu patch set(s) x %zu vm(s), %zu excluded, %zu included); "
		       "expanded in %llu ms\n", sc.nr_kernels, sc.nr_patchsets, sc.nr_vms,
		       sc.nr_kernels * sc.nr_patchsets * sc.nr_vms + sc.nr_include - p.total,
		       sc.nr_include, (unsigned long long)(now_ms() - t0));
	}
	plan_release(&p);
	scenario_release(&sc);
	return EXIT_PASS;
}
