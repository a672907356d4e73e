/* cmd-checks.c: klpq checks [ID...]: the table of checks (checks.h), as docs/checks.md has it,
 * or what one check id is; klpq checks --verify FILE...: the checks of results.json files held
 * to the table. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include "checks.h"
#include "cli.h"

static const char *jget(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		? json_object_get_string(v) : NULL;
}

/* Each check of a cell's results.json has a row at its step, and a FAIL or ERROR of it is one
 * the row allows (or a lost guest's, which any waiting check may record). The real-boot tests
 * run this on every cell they made. 1 when all hold, else 0 with each breach on stderr. */
static int verify_file(const char *path)
{
	json_object *o = json_object_from_file(path), *checks;
	int ok = 1;

	if (!o || !json_object_object_get_ex(o, "checks", &checks) ||
	    !json_object_is_type(checks, json_type_array)) {
		fprintf(stderr, "%s: not a cell's results.json (no \"checks\" list)\n", path);
		json_object_put(o);
		return 0;
	}
	for (size_t i = 0; i < json_object_array_length(checks); i++) {
		json_object *k = json_object_array_get_idx(checks, i);
		const char *step = jget(k, "step"), *name = jget(k, "check");
		const char *status = jget(k, "status"), *title = jget(k, "title");
		const struct check_def *d;
		int fail;

		if (!step || !name || !status) {
			fprintf(stderr, "%s: checks[%zu]: no step, check or status\n", path, i);
			ok = 0;
			continue;
		}
		d = check_def_at(step, name);
		if (!d) {
			fprintf(stderr, "%s: checks[%zu]: %s/%s: no row of the table of checks has "
				"this check at this step\n", path, i, step, name);
			ok = 0;
			continue;
		}
		fail = !strcmp(status, "FAIL");
		if ((fail || !strcmp(status, "ERROR")) && !check_def_allows(d, fail) &&
		    !checks_guest_loss(title ? title : "")) {
			fprintf(stderr, "%s: checks[%zu]: %s/%s is %s ('%s'), which its row (%s) "
				"does not allow: %s\n", path, i, step, name, status, title ? title : "",
				check_def_doc(d), d->classes);
			ok = 0;
		}
	}
	json_object_put(o);
	return ok;
}

int cmd_checks(int argc, char **argv)
{
	int ret = EXIT_PASS;

	if (argc > 1 && !strcmp(argv[1], "--verify")) {
		if (argc < 3) {
			fprintf(stderr, "klpq checks --verify: name one or more cells' results.json\n");
			return EXIT_HARNESS;
		}
		for (int i = 2; i < argc; i++)
			if (!verify_file(argv[i]))
				ret = EXIT_FAIL;
		return ret;
	}
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
			       "  FAIL / ERROR: %s\n  doc: %s\n", argv[i], d->check, d->steps,
			       *d->classes ? d->classes : "as named there", d->pass,
			       *d->bad ? d->bad : "-", check_def_doc(d));
		}
	}
	return ret;
}
