/* fuzz_scenario.c: libFuzzer target for the scenario and patch-set loaders (harness/scenario.c,
 * patchset.c, yfile.c).
 *
 * Once per process a scratch folder is made:
 *   DIR/scenario.yaml                        <- the input (loaded with scenario_load)
 *   DIR/fuzz/patchset.yaml                   <- the input again (loaded with patchset_load)
 *   DIR/fuzz/{step1,step2,step3,prebuilt/step3.ko}
 *   DIR/patchsets/demo-cumulative/patchset.yaml  a fixed valid patch set, so that a scenario
 *   DIR/patchsets/demo-cumulative/{step1,step2,step3,prebuilt/step3.ko}  naming it loads fully
 * A scenario may also name "fuzz" as its patch set, which loads the input as a patch set too.
 * Every result is released; LeakSanitizer reports anything that is not.
 * KLPQ_FUZZ_VERBOSE=1 prints each load's outcome (to check that seeds reach the success paths).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scenario.h"

static const char fixed_patchset[] =
	"name: demo-cumulative\n"
	"steps:\n"
	"  - name: step1\n"
	"    source: step1\n"
	"    probes:\n"
	"      - name: p1\n"
	"        run: \"true\"\n"
	"  - name: step3\n"
	"    module: prebuilt/step3.ko\n"
	"    expect: load-fails\n"
	"    refusal: { errno: EINVAL }\n";

static char *scratch;        /* the folder, made once */
static char *scenario_path;  /* DIR/scenario.yaml */
static char *fuzz_ps_dir;    /* DIR/fuzz */
static char *fuzz_ps_file;   /* DIR/fuzz/patchset.yaml */
static int verbose;

static void die(const char *what)
{
	perror(what);
	abort();
}

static void put_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		die(path);
	if (len && fwrite(data, 1, len, f) != len)
		die(path);
	if (fclose(f))
		die(path);
}

static void make_dir(const char *path)
{
	if (mkdir(path, 0700) && !is_dir(path))
		die(path);
}

/* A patch-set folder with the step paths the fixtures use. */
static void make_patchset_dir(const char *dir)
{
	static const char *const subdirs[] = { "step1", "step2", "step3", "prebuilt" };
	char *p;

	make_dir(dir);
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		p = path_join(dir, subdirs[i]);
		make_dir(p);
		free(p);
	}
	p = path_join(dir, "prebuilt/step3.ko");
	put_file(p, "", 0);
	free(p);
}

static void cleanup(void)
{
	if (scratch)
		rm_rf(scratch);
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char *tmpl, *p;

	tmpl = xasprintf("%s/klpq-fuzz-scenario-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(tmpl))
		die(tmpl);
	scratch = tmpl;
	atexit(cleanup);
	verbose = getenv("KLPQ_FUZZ_VERBOSE") && *getenv("KLPQ_FUZZ_VERBOSE") == '1';

	scenario_path = path_join(scratch, "scenario.yaml");
	fuzz_ps_dir = path_join(scratch, "fuzz");
	fuzz_ps_file = path_join(fuzz_ps_dir, "patchset.yaml");
	make_patchset_dir(fuzz_ps_dir);

	p = path_join(scratch, "patchsets");
	make_dir(p);
	free(p);
	p = path_join(scratch, "patchsets/demo-cumulative");
	make_patchset_dir(p);
	free(p);
	p = path_join(scratch, "patchsets/demo-cumulative/patchset.yaml");
	put_file(p, fixed_patchset, sizeof(fixed_patchset) - 1);
	free(p);
}

static void check_error(const struct kerr *e)
{
	/* A failure always leaves exactly one NUL-terminated message. */
	if (!e->set || !memchr(e->msg, '\0', sizeof(e->msg)) || !e->msg[0])
		abort();
}

static void check_patchset(const struct patchset *p)
{
	size_t i, j;

	if (!p->name || !name_is_safe(p->name) || !p->dir || !p->file || !p->nr_steps || !p->steps)
		abort();
	for (i = 0; i < p->nr_steps; i++) {
		const struct step *st = &p->steps[i];

		if (!st->name || !name_is_safe(st->name) || (!st->source == !st->module))
			abort();
		for (j = 0; j < st->nr_probes; j++)
			if (!st->probes[j].name || !st->probes[j].run)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kerr e = KERR_INIT;
	struct scenario s;
	struct patchset ps;

	if (!scratch)
		setup();
	put_file(scenario_path, data, size);
	put_file(fuzz_ps_file, data, size);

	if (scenario_load(scenario_path, &s, &e) == 0) {
		size_t i;

		if (verbose)
			fprintf(stderr, "scenario: ok (%zu kernels, %zu steps)\n", s.nr_kernels,
				s.patchset.nr_steps);

		if (e.set || !s.file || !s.name || !s.nr_kernels || !s.kernels)
			abort();
		for (i = 0; i < s.nr_kernels; i++)
			if (!s.kernels[i].label)
				abort();
		check_patchset(&s.patchset);
		scenario_release(&s);
	} else {
		check_error(&e);
		if (verbose)
			fprintf(stderr, "scenario: %s\n", e.msg);
	}

	kerr_clear(&e);
	if (patchset_load(fuzz_ps_dir, &ps, &e) == 0) {
		if (e.set)
			abort();
		if (verbose)
			fprintf(stderr, "patchset: ok (%zu steps)\n", ps.nr_steps);
		check_patchset(&ps);
		patchset_release(&ps);
	} else {
		check_error(&e);
		if (verbose)
			fprintf(stderr, "patchset: %s\n", e.msg);
	}
	return 0;
}
