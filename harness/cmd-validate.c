/* cmd-validate.c: klpq validate FILE... */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "scenario.h"

int cmd_validate(int argc, char **argv)
{
	int ret = EXIT_PASS;

	if (argc < 2) {
		fprintf(stderr, "usage: klpq validate SCENARIO.yaml...\n");
		return EXIT_HARNESS;
	}
	for (int i = 1; i < argc; i++) {
		struct scenario sc;
		struct kerr e = KERR_INIT;
		size_t probes = 0;

		if (scenario_load(argv[i], &sc, &e) < 0) {
			fprintf(stderr, "%s\n", e.msg);
			ret = EXIT_HARNESS;
			continue;
		}
		for (size_t s = 0; s < sc.patchset.nr_steps; s++)
			probes += sc.patchset.steps[s].nr_probes;
		printf("%s: ok: scenario %s, %zu kernel(s), patch set %s with %zu step(s) and %zu "
		       "probe(s)\n", argv[i], sc.name, sc.nr_kernels, sc.patchset.name,
		       sc.patchset.nr_steps, probes);
		scenario_release(&sc);
	}
	return ret;
}
