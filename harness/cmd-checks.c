/* cmd-checks.c: klpq checks [ID...]: the table of checks (checks.h), as docs/checks.md has it,
 * or what one check id is. */
#include <stdio.h>
#include "checks.h"
#include "cli.h"

int cmd_checks(int argc, char **argv)
{
	int ret = EXIT_PASS;

	if (argc < 2) {
		struct sb t = SB_INIT;

		checks_doc_table(&t);
		fputs(t.buf, stdout);
		sb_release(&t);
		return ret;
	}
	for (int i = 1; i < argc; i++) {
		if (!check_def_find(argv[i])) {
			fprintf(stderr, "klpq checks: no check '%s' (klpq checks lists them)\n",
				argv[i]);
			ret = EXIT_HARNESS;
			continue;
		}
		/* an id can run at several places (load: at a step and at reapply) */
		for (size_t k = 0; k < nr_check_defs; k++) {
			const struct check_def *d = &check_defs[k];

			if (!check_def_is(d, argv[i]))
				continue;
			printf("%s (%s)\n  runs at: %s\n  failure: %s\n  PASS when: %s\n"
			       "  FAIL / ERROR: %s\n", argv[i], d->check, d->steps,
			       *d->classes ? d->classes : "as named there", d->pass,
			       *d->bad ? d->bad : "-");
		}
	}
	return ret;
}
