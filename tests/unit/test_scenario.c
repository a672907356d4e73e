/* test_scenario.c: scenario and patch-set loading, against tests/fixtures/scenario/. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scenario.h"
#include "vm.h"

#ifndef KLPQ_SRCDIR
#error "KLPQ_SRCDIR must name the source tree"
#endif

#define FIXTURES KLPQ_SRCDIR "/tests/fixtures/scenario"

/* Absolute, symlink-free path of a fixture, as the loader stores it. Caller frees. */
static char *fixture_real(const char *rel)
{
	char *p = xasprintf("%s/%s", FIXTURES, rel);
	char *r = realpath(p, NULL);

	ck_assert_msg(r != NULL, "fixture %s is missing", p);
	free(p);
	return r;
}

static void load_ok(const char *rel, struct scenario *s)
{
	struct kerr e = KERR_INIT;
	char *path = xasprintf("%s/%s", FIXTURES, rel);
	int ret = scenario_load(path, s, &e);

	ck_assert_msg(ret == 0, "%s: %s", rel, e.msg);
	ck_assert_int_eq(e.set, 0);
	free(path);
}

START_TEST(test_full)
{
	struct scenario s;
	char *file = fixture_real("good-full.yaml");
	char *psdir = fixture_real("patchsets/demo-cumulative");
	char *step1 = fixture_real("patchsets/demo-cumulative/step1");
	char *step2 = fixture_real("patchsets/demo-cumulative/step2");
	char *step3 = fixture_real("patchsets/demo-cumulative/prebuilt/step3.ko");
	char *psfile = xasprintf("%s/patchset.yaml", psdir);
	const struct step *st;

	load_ok("good-full.yaml", &s);
	ck_assert_str_eq(s.file, file);
	ck_assert_str_eq(s.name, "full-example");
	ck_assert_str_eq(s.description, "Two kernels and the demo cumulative patch set");

	ck_assert_uint_eq(s.nr_kernels, 3);
	ck_assert_int_eq(s.kernels[0].kind, KERNEL_DEBIAN);
	ck_assert_str_eq(s.kernels[0].label, "debian:6.1.0-56-amd64");
	ck_assert_str_eq(s.kernels[0].deb.release, "6.1.0-56-amd64");
	ck_assert_str_eq(s.kernels[0].deb.series, "6.1");
	ck_assert_int_eq(s.kernels[0].line, 5);
	ck_assert_ptr_null(s.kernels[0].vmlinuz);
	ck_assert_int_eq(s.kernels[1].kind, KERNEL_DEBIAN);
	ck_assert_str_eq(s.kernels[1].label, "debian:6.12.117+deb12-cloud-amd64");
	ck_assert_str_eq(s.kernels[1].deb.flavor, "cloud-amd64");
	ck_assert_int_eq(s.kernels[2].kind, KERNEL_LOCAL);
	ck_assert_str_eq(s.kernels[2].label, "local:6.1.0-56-custom");
	ck_assert_str_eq(s.kernels[2].vmlinuz, "/boot/vmlinuz-6.1.0-56-amd64");
	ck_assert_str_eq(s.kernels[2].modules, "/lib/modules/6.1.0-56-amd64");
	ck_assert_str_eq(s.kernels[2].build, "/lib/modules/6.1.0-56-amd64/build");
	ck_assert_str_eq(s.kernels[2].release, "6.1.0-56-custom");
	ck_assert_int_eq(s.kernels[2].line, 7);

	ck_assert_uint_eq(s.vm.memory_mb, 2048);
	ck_assert_uint_eq(s.vm.cpus, 4);
	ck_assert_int_eq(s.vm.accel, ACCEL_TCG);
	ck_assert_str_eq(s.vm.extra_cmdline, "quiet loglevel=3");
	ck_assert_int_eq(s.vm.network, 1);

	ck_assert_uint_eq(s.timeouts.boot_ms, 300000);
	ck_assert_uint_eq(s.timeouts.transition_ms, 90500);
	ck_assert_uint_eq(s.timeouts.probe_ms, 20000);
	ck_assert_uint_eq(s.timeouts.agent_ms, 1);
	ck_assert_uint_eq(s.timeouts.console_ms, 7500);
	ck_assert_uint_eq(s.taint_allow, (1u << 15) | (1u << 13) | (1u << 12) | (1u << 9));
	ck_assert_int_eq(s.rollback, 0);

	ck_assert_str_eq(s.patchset.name, "demo-cumulative");
	ck_assert_str_eq(s.patchset.dir, psdir);
	ck_assert_str_eq(s.patchset.file, psfile);
	ck_assert_str_eq(s.patchset.description, "Two source steps and one prebuilt module");
	ck_assert_uint_eq(s.patchset.nr_steps, 3);

	st = &s.patchset.steps[0];
	ck_assert_str_eq(st->name, "step1");
	ck_assert_str_eq(st->source, step1);
	ck_assert_ptr_null(st->module);
	ck_assert_int_eq(st->expect_load_fail, 0);
	ck_assert_uint_eq(st->nr_probes, 1);
	ck_assert_str_eq(st->probes[0].name, "cmdline-fix1");
	ck_assert_str_eq(st->probes[0].run, "grep -q klpq.fix1 /proc/cmdline");
	ck_assert_uint_eq(st->probes[0].timeout_ms, 5000);
	ck_assert_int_eq(st->probes[0].rollback_check, 1);

	st = &s.patchset.steps[1];
	ck_assert_str_eq(st->name, "step2");
	ck_assert_str_eq(st->source, step2);
	ck_assert_int_eq(st->expect_load_fail, 0);
	ck_assert_uint_eq(st->nr_probes, 2);
	ck_assert_str_eq(st->probes[0].name, "cmdline-fix2");
	ck_assert_str_eq(st->probes[0].run, "grep -q klpq.fix2 /proc/cmdline\n");
	ck_assert_uint_eq(st->probes[0].timeout_ms, 0);
	ck_assert_int_eq(st->probes[0].rollback_check, 0);
	ck_assert_str_eq(st->probes[1].name, "cmdline-fix1-still");
	ck_assert_uint_eq(st->probes[1].timeout_ms, 250);

	st = &s.patchset.steps[2];
	ck_assert_str_eq(st->name, "step3-refused");
	ck_assert_ptr_null(st->source);
	ck_assert_str_eq(st->module, step3);
	ck_assert_int_eq(st->expect_load_fail, 1);
	ck_assert_uint_eq(st->nr_probes, 0);

	scenario_release(&s);
	ck_assert_ptr_null(s.file);
	ck_assert_uint_eq(s.nr_kernels, 0);
	scenario_release(&s); /* released twice is harmless */
	free(file);
	free(psdir);
	free(step1);
	free(step2);
	free(step3);
	free(psfile);
}
END_TEST

START_TEST(test_defaults)
{
	struct scenario s;

	load_ok("good-minimal.yaml", &s);
	ck_assert_str_eq(s.name, "good-minimal");
	ck_assert_ptr_null(s.description);
	ck_assert_uint_eq(s.nr_kernels, 1);
	ck_assert_str_eq(s.kernels[0].deb.flavor, "rt-amd64");
	ck_assert_uint_eq(s.vm.memory_mb, 1024);
	ck_assert_uint_eq(s.vm.cpus, 2);
	ck_assert_int_eq(s.vm.accel, ACCEL_AUTO);
	ck_assert_ptr_eq(s.vm.backend, &vm_backend_qemu);
	ck_assert_ptr_null(s.vm.extra_cmdline);
	ck_assert_int_eq(s.vm.network, 0);
	ck_assert_uint_eq(s.timeouts.boot_ms, 180000);
	ck_assert_uint_eq(s.timeouts.transition_ms, 60000);
	ck_assert_uint_eq(s.timeouts.probe_ms, 10000);
	ck_assert_uint_eq(s.timeouts.agent_ms, 30000);
	ck_assert_uint_eq(s.timeouts.console_ms, 20000);
	ck_assert_uint_eq(s.taint_allow, (1u << 15) | (1u << 13) | (1u << 12));
	ck_assert_int_eq(s.rollback, 1);
	ck_assert_uint_eq(s.patchset.nr_steps, 3);
	scenario_release(&s);
}
END_TEST

START_TEST(test_local_relative)
{
	struct scenario s;
	char *dir = fixture_real(".");
	char *vmlinuz = xasprintf("%s/kernel/vmlinuz", dir);
	char *modules = xasprintf("%s/kernel/lib/modules/6.1.0-99-amd64/", dir);
	char *psdir = fixture_real("patchsets/demo-cumulative");

	load_ok("good-local.yaml", &s);
	ck_assert_str_eq(s.name, "local-relative");
	ck_assert_uint_eq(s.nr_kernels, 1);
	ck_assert_int_eq(s.kernels[0].kind, KERNEL_LOCAL);
	ck_assert_str_eq(s.kernels[0].vmlinuz, vmlinuz);
	ck_assert_str_eq(s.kernels[0].modules, modules);
	ck_assert_ptr_null(s.kernels[0].build);
	ck_assert_str_eq(s.kernels[0].release, "6.1.0-99-amd64");
	ck_assert_str_eq(s.kernels[0].label, "local:6.1.0-99-amd64");
	ck_assert_uint_eq(s.vm.memory_mb, 1024);
	ck_assert_uint_eq(s.timeouts.boot_ms, 3600000);
	ck_assert_uint_eq(s.taint_allow, 0);
	ck_assert_int_eq(s.rollback, 1);
	ck_assert_str_eq(s.patchset.dir, psdir);
	scenario_release(&s);
	free(dir);
	free(vmlinuz);
	free(modules);
	free(psdir);
}
END_TEST

/* guest: a disk image klpq builds, with Debian packages (names with + and .) and a mirror. */
START_TEST(test_guest_disk)
{
	struct scenario s;

	load_ok("good-disk.yaml", &s);
	ck_assert_int_eq(s.guest.disk, 1);
	ck_assert_str_eq(s.guest.distro, "debian-bookworm");
	ck_assert_ptr_null(s.guest.path);
	ck_assert_uint_eq(s.guest.nr_packages, 3);
	ck_assert_str_eq(s.guest.packages[1], "libstdc++6");
	ck_assert_str_eq(s.guest.packages[2], "python3.11");
	ck_assert_str_eq(s.guest.mirror, "http://deb.debian.org/debian");
	ck_assert_uint_eq(s.guest.keep_overlay_mb, 64);
	ck_assert_int_eq(s.guest.kdump, 1);
	ck_assert_str_eq(s.guest.root, "/dev/vda1");
	ck_assert_int_eq(s.guest.root_given, 0);
	scenario_release(&s);
}
END_TEST

/* A relative scenario path: errors keep the caller's spelling, stored paths are absolute. */
START_TEST(test_relative_path)
{
	char cwd[PATH_MAX];
	struct scenario s;
	struct kerr e = KERR_INIT;
	char *file = fixture_real("good-minimal.yaml");
	int ret;

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(chdir(FIXTURES), 0);
	ret = scenario_load("good-minimal.yaml", &s, &e);
	ck_assert_msg(ret == 0, "%s", e.msg);
	ck_assert_str_eq(s.file, file);
	ck_assert_int_eq(s.patchset.dir[0], '/');
	scenario_release(&s);

	ret = scenario_load("bad/patchset-bad.yaml", &s, &e);
	ck_assert_int_eq(ret, -1);
	ck_assert_msg(!strncmp(e.msg, "bad/../bad-patchsets/step-unknown-key/patchset.yaml:6:5: ",
			       strlen("bad/../bad-patchsets/step-unknown-key/patchset.yaml:6:5: ")),
		      "got: %s", e.msg);
	ck_assert_int_eq(chdir(cwd), 0);
	free(file);
}
END_TEST

START_TEST(test_missing_file)
{
	struct scenario s;
	struct kerr e = KERR_INIT;
	const char *path = FIXTURES "/no-such-scenario.yaml";

	ck_assert_int_eq(scenario_load(path, &s, &e), -1);
	ck_assert_msg(!strncmp(e.msg, path, strlen(path)) && strstr(e.msg, "cannot open"),
		      "got: %s", e.msg);
	ck_assert_ptr_null(s.file);
	ck_assert_ptr_null(s.kernels);

	kerr_clear(&e);
	ck_assert_int_eq(scenario_load(FIXTURES "/patchsets", &s, &e), -1);
	ck_assert_msg(strstr(e.msg, "not a regular file") != NULL, "got: %s", e.msg);
}
END_TEST

/* What only a boot would have refused: a probe longer than one agent request, a name of
 * 100,000 characters. validate refuses both, naming file, line, column and the limit. */
START_TEST(test_limits)
{
	char dir[] = "/tmp/klpq-test-limits-XXXXXX";
	struct scenario s;
	struct patchset p;
	struct kerr e = KERR_INIT;
	char *path, *want;
	FILE *o;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = path_join(dir, "x.ko");
	o = fopen(path, "w");
	fclose(o);
	free(path);
	path = path_join(dir, "patchset.yaml");
	o = fopen(path, "w");
	fputs("name: big\nsteps:\n  - name: step1\n    module: x.ko\n    probes:\n"
	      "      - name: p\n        run: \"", o);
	for (int i = 0; i < 70000; i++)
		fputc('a', o);
	fputs("\"\n", o);
	fclose(o);
	ck_assert_int_eq(patchset_load(dir, &p, &e), -1);
	want = xasprintf("%s:7:14: steps[0].probes[0].run is 70002 bytes as sent to the guest "
			 "(JSON-escaped); the agent protocol allows at most 61440", path);
	ck_assert_msg(strstr(e.msg, want) != NULL, "got: %s", e.msg);
	free(want);
	free(path);

	path = path_join(dir, "s.yaml");
	o = fopen(path, "w");
	fputs("name: ", o);
	for (int i = 0; i < 100000; i++)
		fputc('n', o);
	fputs("\nkernels:\n  - debian:6.1.0-56-amd64\npatchset: .\n", o);
	fclose(o);
	kerr_clear(&e);
	ck_assert_int_eq(scenario_load(path, &s, &e), -1);
	want = xasprintf("%s:1:7: name is 100000 characters long; at most 64", path);
	ck_assert_msg(strstr(e.msg, want) != NULL, "got: %s", e.msg);
	free(want);
	free(path);
	rm_rf(dir);
}
END_TEST

/* A step source outside its patch set's folder (../, a symlink): refused unless the scenario
 * says sources_outside_patchset: true. */
START_TEST(test_source_outside)
{
	char dir[] = "/tmp/klpq-test-outside-XXXXXX";
	struct patchset p;
	struct scenario s;
	struct kerr e = KERR_INIT;
	char *ps, *secret, *yaml, *want, *sc;
	FILE *o;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ps = path_join(dir, "ps");
	secret = path_join(dir, "secret");
	ck_assert_int_eq(mkdir(ps, 0700), 0);
	ck_assert_int_eq(mkdir(secret, 0700), 0);
	yaml = path_join(ps, "patchset.yaml");
	o = fopen(yaml, "w");
	fputs("name: out\nsteps:\n  - name: step1\n    source: ../secret\n", o);
	fclose(o);
	ck_assert_int_eq(patchset_load(ps, &p, &e), -1);
	want = xasprintf("%s:4:13: steps[0].source '../secret' resolves to %s, outside the patch "
			 "set's folder %s", yaml, secret, ps);
	ck_assert_msg(strstr(e.msg, want) != NULL, "got: %s", e.msg);
	free(want);
	/* a symlink inside that points out: the same */
	o = fopen(yaml, "w");
	fputs("name: out\nsteps:\n  - name: step1\n    source: link\n", o);
	fclose(o);
	want = path_join(ps, "link");
	ck_assert_int_eq(symlink(secret, want), 0);
	kerr_clear(&e);
	ck_assert_int_eq(patchset_load(ps, &p, &e), -1);
	ck_assert_msg(strstr(e.msg, "outside the patch set's folder") != NULL, "got: %s", e.msg);
	free(want);
	/* trusted by the scenario */
	sc = path_join(dir, "s.yaml");
	o = fopen(sc, "w");
	fputs("kernels:\n  - debian:6.1.0-56-amd64\npatchset: ps\nsources_outside_patchset: true\n", o);
	fclose(o);
	kerr_clear(&e);
	ck_assert_msg(scenario_load(sc, &s, &e) == 0, "%s", e.msg);
	scenario_release(&s);
	rm_rf(dir);
	free(ps);
	free(secret);
	free(yaml);
	free(sc);
}
END_TEST

/* The step kinds the kernel's selftests need: helpers, kernel modules, disable, unload, sysctl,
 * run, params, wait: false and log:, each with its rules. */
static const char *steps_try(const char *dir, const char *text, struct patchset *p,
			     struct kerr *e)
{
	char *yaml = path_join(dir, "patchset.yaml");
	FILE *o = fopen(yaml, "w");

	fputs(text, o);
	fclose(o);
	free(yaml);
	kerr_clear(e);
	if (patchset_load(dir, p, e) == 0)
		return NULL;
	return e->msg;
}

START_TEST(test_step_kinds)
{
	char dir[] = "/tmp/klpq-test-kinds-XXXXXX";
	struct patchset p;
	struct kerr e = KERR_INIT;
	const char *m;
	char *ko;
	FILE *o;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ko = path_join(dir, "x.ko");
	o = fopen(ko, "w");
	fclose(o);
	m = steps_try(dir, "name: k\nlog_filter: [\"livepatch:\", test_klp]\nsteps:\n"
		      "  - {name: dbg, run: \"echo hi\"}\n"
		      "  - {name: tgt, module: x.ko, helper: true, params: {block: Y, n: 2}}\n"
		      "  - {name: lp, module: x.ko, params: \"replace=0\", wait: false,\n"
		      "     log: [\"livepatch: enabling patch 'x'\"],\n"
		      "     probes: [{name: gone, run: \"false\", expect: fails},\n"
		      "              {name: once, run: \"true\", recheck: false}]}\n"
		      "  - {name: iso, kmod: isofs}\n"
		      "  - {name: ft, sysctl: {kernel.ftrace_enabled: 0}, expect: fails,\n"
		      "     refusal: {errno: EBUSY}}\n"
		      "  - {name: off, disable: lp}\n"
		      "  - {name: rm, unload: tgt}\n", &p, &e);
	ck_assert_msg(m == NULL, "got: %s", m);
	ck_assert_uint_eq(p.nr_steps, 7);
	ck_assert_int_eq(p.steps[0].kind, STEP_RUN);
	ck_assert_int_eq(p.steps[1].kind, STEP_HELPER);
	ck_assert_str_eq(p.steps[1].params, "block=Y n=2");
	ck_assert_int_eq(p.steps[2].kind, STEP_PATCH);
	ck_assert_int_eq(p.steps[2].nowait, 1);
	ck_assert_uint_eq(p.steps[2].nr_log, 1);
	ck_assert_int_eq(p.steps[2].probes[0].expect_fail, 1);
	ck_assert_int_eq(p.steps[2].probes[0].recheck, 0);
	ck_assert_int_eq(p.steps[2].probes[1].recheck, 0);
	ck_assert_int_eq(p.steps[3].kind, STEP_KMOD);
	ck_assert_str_eq(p.steps[3].kmod, "isofs");
	ck_assert_int_eq(p.steps[4].kind, STEP_SYSCTL);
	ck_assert_str_eq(p.steps[4].sysctl_key, "kernel.ftrace_enabled");
	ck_assert_str_eq(p.steps[4].sysctl_value, "0");
	ck_assert_int_eq(p.steps[4].refusal_errno, 16);
	ck_assert_int_eq(p.steps[5].kind, STEP_DISABLE);
	ck_assert_uint_eq(p.steps[5].target, 2);
	ck_assert_int_eq(p.steps[6].kind, STEP_UNLOAD);
	ck_assert_uint_eq(p.steps[6].target, 1);
	ck_assert_uint_eq(p.nr_log_filter, 2);
	patchset_release(&p);

	{
		char *c = path_join(dir, "hammer.c");

		o = fopen(c, "w");
		fclose(o);
		m = steps_try(dir, "name: k\nprograms:\n  - {name: hammer, source: hammer.c}\n"
			      "steps:\n  - {name: lp, module: x.ko, params: a=1, params_file: "
			      "/tmp/pids}\n", &p, &e);
		ck_assert_msg(m == NULL, "got: %s", m);
		ck_assert_uint_eq(p.nr_programs, 1);
		ck_assert_str_eq(p.programs[0].name, "hammer");
		ck_assert_str_eq(p.programs[0].source, c);
		ck_assert_str_eq(p.steps[0].params_file, "/tmp/pids");
		patchset_release(&p);
		m = steps_try(dir, "name: k\nprograms:\n  - {name: hammer, source: hammer.c}\n"
			      "  - {name: hammer, source: hammer.c}\nsteps:\n  - {name: lp, module: "
			      "x.ko}\n", &p, &e);
		ck_assert_msg(m && strstr(m, "programs[1].name: program name 'hammer' is used "
					   "twice"), "got: %s", m);
		m = steps_try(dir, "name: k\nprograms:\n  - {name: h, source: /etc/passwd}\n"
			      "steps:\n  - {name: lp, module: x.ko}\n", &p, &e);
		ck_assert_msg(m && strstr(m, "outside the patch set's folder"), "got: %s", m);
		m = steps_try(dir, "name: k\nsteps:\n  - {name: r, run: ls, params_file: /x}\n",
			      &p, &e);
		ck_assert_msg(m && strstr(m, "steps[0].params_file is for a step that loads a "
					   "module"), "got: %s", m);
		m = steps_try(dir, "name: k\nsteps:\n  - {name: lp, module: x.ko, params_file: "
			      "pids}\n", &p, &e);
		ck_assert_msg(m && strstr(m, "must be an absolute path in the guest"), "got: %s", m);
		unlink(c);
		free(c);
	}
	m = steps_try(dir, "name: k\nsteps:\n  - {name: off, disable: lp}\n"
		      "  - {name: lp, module: x.ko}\n", &p, &e);
	ck_assert_msg(m && strstr(m, ":3:26: steps[0].disable: no earlier step is named 'lp'"),
		      "got: %s", m);
	m = steps_try(dir, "name: k\nsteps:\n  - {name: t, module: x.ko, helper: true}\n"
		      "  - {name: off, disable: t}\n", &p, &e);
	ck_assert_msg(m && strstr(m, "steps[1].disable: step 't' (line 3) loads no livepatch"),
		      "got: %s", m);
	m = steps_try(dir, "name: k\nsteps:\n  - {name: r, run: \"true\", params: a=1}\n", &p,
		      &e);
	ck_assert_msg(m && strstr(m, "steps[0].params is for a step that loads a module"),
		      "got: %s", m);
	m = steps_try(dir, "name: k\nsteps:\n  - {name: t, module: x.ko, helper: true, wait: "
		      "false}\n", &p, &e);
	ck_assert_msg(m && strstr(m, "steps[0].wait is for a step that loads a livepatch"),
		      "got: %s", m);
	m = steps_try(dir, "name: k\nsteps:\n  - {name: t, module: x.ko, run: ls}\n", &p, &e);
	ck_assert_msg(m && strstr(m, "give one of 'module' and 'run', not both"), "got: %s", m);
	m = steps_try(dir, "name: k\nsteps:\n  - {name: s, sysctl: {kernel/x: 1}}\n", &p, &e);
	ck_assert_msg(m && strstr(m, "'kernel/x' is not a sysctl name"), "got: %s", m);
	m = steps_try(dir, "name: k\nsteps:\n  - {name: s, run: \"x\", log: [\"\"]}\n", &p, &e);
	ck_assert_msg(m && strstr(m, "steps[0].log[0] must not be empty"), "got: %s", m);
	m = steps_try(dir, "name: k\nsteps:\n  - {name: s, run: \"x\", expect: fails}\n", &p,
		      &e);
	ck_assert_msg(m && strstr(m, "a run step fails by its exit status"), "got: %s", m);
	m = steps_try(dir, "name: k\nsteps:\n  - {name: s, module: x.ko, params: \"a\\tb\"}\n",
		      &p, &e);
	ck_assert_msg(m && strstr(m, "params must be one line without control characters"),
		      "got: %s", m);
	unlink(ko);
	free(ko);
	{
		char *y = path_join(dir, "patchset.yaml");
		unlink(y);
		free(y);
	}
	rmdir(dir);
}
END_TEST

/* expect: load-fails names what the kernel must answer (refusal: errno and/or log). */
START_TEST(test_refusal)
{
	char dir[] = "/tmp/klpq-test-refusal-XXXXXX";
	struct patchset p;
	struct kerr e = KERR_INIT;
	char *ko, *yaml;
	FILE *o;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ko = path_join(dir, "x.ko");
	o = fopen(ko, "w");
	fclose(o);
	yaml = path_join(dir, "patchset.yaml");
	o = fopen(yaml, "w");
	fputs("name: r\nsteps:\n  - name: s1\n    module: x.ko\n    expect: load-fails\n", o);
	fclose(o);
	ck_assert_int_eq(patchset_load(dir, &p, &e), -1);
	ck_assert_msg(strstr(e.msg, "patchset.yaml:5:13: steps[0]: 'expect: load-fails' needs "
			  "'refusal'") != NULL, "got: %s", e.msg);
	o = fopen(yaml, "w");
	fputs("name: r\nsteps:\n  - name: s1\n    module: x.ko\n    expect: load-fails\n"
	      "    refusal: { errno: EWHAT }\n", o);
	fclose(o);
	kerr_clear(&e);
	ck_assert_int_eq(patchset_load(dir, &p, &e), -1);
	ck_assert_msg(strstr(e.msg, ":6:23: steps[0].refusal.errno 'EWHAT' is not an errno") != NULL,
		      "got: %s", e.msg);
	o = fopen(yaml, "w");
	fputs("name: r\nsteps:\n  - name: s1\n    module: x.ko\n    refusal: { errno: 22 }\n", o);
	fclose(o);
	kerr_clear(&e);
	ck_assert_int_eq(patchset_load(dir, &p, &e), -1);
	ck_assert_msg(strstr(e.msg, "steps[0].refusal is for a step with 'expect: fails'") !=
		      NULL, "got: %s", e.msg);
	o = fopen(yaml, "w");
	fputs("name: r\nsteps:\n  - name: s1\n    module: x.ko\n    expect: load-fails\n"
	      "    refusal: { errno: EINVAL, log: incompatible state }\n", o);
	fclose(o);
	kerr_clear(&e);
	ck_assert_msg(patchset_load(dir, &p, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(p.steps[0].refusal_errno, 22);
	ck_assert_str_eq(p.steps[0].refusal_log, "incompatible state");
	ck_assert_str_eq(errno_name(22), "EINVAL");
	patchset_release(&p);
	rm_rf(dir);
	free(ko);
	free(yaml);
}
END_TEST

/* method: cumulative (default) or stacked, per patch set and per step. */
START_TEST(test_method)
{
	char dir[] = "/tmp/klpq-test-method-XXXXXX";
	struct patchset p;
	struct kerr e = KERR_INIT;
	char *ko, *yaml;
	FILE *o;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ko = path_join(dir, "x.ko");
	o = fopen(ko, "w");
	fclose(o);
	yaml = path_join(dir, "patchset.yaml");
	o = fopen(yaml, "w");
	fputs("name: m\nmethod: stacked\nsteps:\n  - name: s1\n    module: x.ko\n"
	      "  - name: s2\n    module: x.ko\n    method: cumulative\n  - name: s3\n"
	      "    module: x.ko\n", o);
	fclose(o);
	ck_assert_msg(patchset_load(dir, &p, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(p.steps[0].stacked, 1);
	ck_assert_int_eq(p.steps[1].stacked, 0);
	ck_assert_int_eq(p.steps[2].stacked, 1);
	patchset_release(&p);
	o = fopen(yaml, "w");
	fputs("name: m\nsteps:\n  - name: s1\n    module: x.ko\n", o);
	fclose(o);
	ck_assert_msg(patchset_load(dir, &p, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(p.steps[0].stacked, 0); /* cumulative by default */
	patchset_release(&p);
	o = fopen(yaml, "w");
	fputs("name: m\nmethod: layered\nsteps:\n  - name: s1\n    module: x.ko\n", o);
	fclose(o);
	ck_assert_int_eq(patchset_load(dir, &p, &e), -1);
	ck_assert_msg(strstr(e.msg, "patchset.yaml:2:9: method must be cumulative or stacked, not "
			  "'layered'") != NULL, "got: %s", e.msg);
	rm_rf(dir);
	free(ko);
	free(yaml);
}
END_TEST

/* A FIFO as the scenario or as patchset.yaml: refused at once, not a wait for a writer (the
 * test's timeout would catch a hang). */
START_TEST(test_fifo_refused)
{
	char dir[] = "/tmp/klpq-test-fifo-XXXXXX";
	struct scenario s;
	struct patchset p;
	struct kerr e = KERR_INIT;
	char *fifo, *ps;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	fifo = path_join(dir, "s.yaml");
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(scenario_load(fifo, &s, &e), -1);
	ck_assert_msg(strstr(e.msg, "s.yaml: not a regular file (a FIFO)") != NULL, "got: %s", e.msg);
	ps = path_join(dir, "patchset.yaml");
	ck_assert_int_eq(mkfifo(ps, 0600), 0);
	kerr_clear(&e);
	ck_assert_int_eq(patchset_load(dir, &p, &e), -1);
	ck_assert_msg(strstr(e.msg, "patchset.yaml: not a regular file (a FIFO)") != NULL, "got: %s",
		      e.msg);
	rm_rf(dir);
	free(fifo);
	free(ps);
}
END_TEST

START_TEST(test_patchset_direct)
{
	struct patchset p;
	struct kerr e = KERR_INIT;
	char *dir = fixture_real("patchsets/demo-cumulative");

	ck_assert_msg(patchset_load(FIXTURES "/patchsets/demo-cumulative", &p, &e) == 0, "%s",
		      e.msg);
	ck_assert_str_eq(p.dir, dir);
	ck_assert_str_eq(p.name, "demo-cumulative");
	ck_assert_uint_eq(p.nr_steps, 3);
	patchset_release(&p);
	ck_assert_ptr_null(p.steps);
	patchset_release(&p);
	free(dir);
}
END_TEST

struct bad_case {
	const char *file;   /* under tests/fixtures/scenario/ */
	int line, col;
	const char *word;   /* must appear in the message */
	const char *shown;  /* file named by the message, when not `file` */
};

static const struct bad_case bad_scenarios[] = {
	{ "bad/syntax-tab.yaml", 2, 1, "syntax error", NULL },
	{ "bad/syntax-unclosed.yaml", 2, 9, "syntax error", NULL },
	{ "bad/syntax-indent.yaml", 3, 2, "syntax error", NULL },
	{ "bad/bad-utf8.yaml", 3, 19, "UTF-8", NULL },
	{ "bad/empty.yaml", 1, 1, "empty", NULL },
	{ "bad/comments-only.yaml", 1, 1, "empty", NULL },
	{ "bad/empty-document.yaml", 2, 1, "mapping", NULL },
	{ "bad/root-list.yaml", 1, 1, "mapping", NULL },
	{ "bad/root-scalar.yaml", 1, 1, "mapping", NULL },
	{ "bad/two-documents.yaml", 3, 1, "one YAML document", NULL },
	{ "bad/alias.yaml", 3, 5, "aliases", NULL },
	{ "bad/tag.yaml", 4, 14, "tags", NULL },
	{ "bad/deep.yaml", 3, 36, "nesting", NULL },
	{ "bad/key-list.yaml", 3, 3, "keys", NULL },
	{ "bad/key-null.yaml", 3, 1, "keys", NULL },
	{ "bad/nul-byte.yaml", 3, 14, "NUL", NULL },
	{ "bad/unknown-key.yaml", 3, 1, "unknown key 'colour' in the scenario", NULL },
	{ "bad/unknown-key-vm.yaml", 5, 3, "unknown key 'memry_mb' in vm", NULL },
	{ "bad/duplicate-key.yaml", 5, 1, "duplicate key 'vm'", NULL },
	{ "bad/duplicate-key-vm.yaml", 3, 31, "duplicate key 'cpus' in vm", NULL },
	{ "bad/missing-kernels.yaml", 2, 1, "missing required key 'kernels'", NULL },
	{ "bad/missing-patchset.yaml", 1, 1, "missing required key 'patchset'", NULL },
	{ "bad/name-space.yaml", 1, 7, "safe name", NULL },
	{ "bad/name-dotdot.yaml", 1, 7, "safe name", NULL },
	{ "bad/name-empty.yaml", 1, 7, "safe name", NULL },
	{ "bad/name-list.yaml", 1, 7, "name must be a string", NULL },
	{ "bad/default@name.yaml", 1, 1, "name", NULL },
	{ "bad/description-mapping.yaml", 1, 14, "description must be a string", NULL },
	{ "bad/kernels-empty.yaml", 1, 10, "kernels must not be empty", NULL },
	{ "bad/kernels-not-list.yaml", 1, 10, "kernels must be a list", NULL },
	{ "bad/kernels-null.yaml", 1, 9, "kernels must be a list", NULL },
	{ "bad/kernel-flavor.yaml", 3, 5, "kernels[1]: unknown flavor", NULL },
	{ "bad/kernel-abi.yaml", 2, 5, "malformed ABI", NULL },
	{ "bad/kernel-prefix.yaml", 2, 5, "debian:", NULL },
	{ "bad/kernel-debian-mapping.yaml", 2, 5, "one string", NULL },
	{ "bad/kernel-twice.yaml", 4, 5, "twice", NULL },
	{ "bad/kernel-list-item.yaml", 2, 5, "kernels[0]", NULL },
	{ "bad/local-missing-modules.yaml", 3, 7, "missing required key 'modules'", NULL },
	{ "bad/local-unknown-key.yaml", 5, 7, "unknown key 'initrd' in kernels[0].local", NULL },
	{ "bad/local-extra-key.yaml", 5, 5, "unknown key 'label' in kernels[0]", NULL },
	{ "bad/local-release-unsafe.yaml", 5, 16, "kernels[0].local.release", NULL },
	{ "bad/local-modules-root.yaml", 4, 16, "release", NULL },
	{ "bad/local-empty-path.yaml", 3, 16, "vmlinuz must not be empty", NULL },
	{ "bad/vm-scalar.yaml", 3, 5, "vm must be a mapping", NULL },
	{ "bad/vm-null.yaml", 3, 4, "vm must be a mapping", NULL },
	{ "bad/vm-list.yaml", 3, 5, "vm must be a mapping", NULL },
	{ "bad/memory-low.yaml", 4, 14, "vm.memory_mb 64 is out of range", NULL },
	{ "bad/memory-high.yaml", 4, 14, "out of range", NULL },
	{ "bad/memory-garbage.yaml", 4, 14, "whole number", NULL },
	{ "bad/memory-quoted.yaml", 4, 14, "quoted", NULL },
	{ "bad/memory-overflow.yaml", 4, 14, "out of range", NULL },
	{ "bad/memory-leading-zero.yaml", 4, 14, "leading zero", NULL },
	{ "bad/memory-decimal.yaml", 4, 14, "whole number", NULL },
	{ "bad/memory-list.yaml", 4, 14, "vm.memory_mb", NULL },
	{ "bad/cpus-zero.yaml", 4, 9, "vm.cpus 0 is out of range", NULL },
	{ "bad/cpus-negative.yaml", 4, 9, "vm.cpus must be a whole number", NULL },
	{ "bad/cpus-high.yaml", 4, 9, "out of range", NULL },
	{ "bad/accel-bad.yaml", 4, 10, "vm.accel", NULL },
	{ "bad/backend-bad.yaml", 4, 12, "vm.backend must be one of qemu, libvirt, not 'xen'", NULL },
	{ "bad/backend-list.yaml", 5, 14, "vms[0].backend must be one of qemu, libvirt", NULL },
	{ "bad/uri-without-libvirt.yaml", 4, 8, "vm.uri is libvirt's connection URI: it needs "
	  "vm.backend: libvirt", NULL },
	{ "bad/hosts-and-uri.yaml", 6, 8, "hosts: and vm.uri exclude each other", NULL },
	{ "bad/hosts-capacity.yaml", 5, 15, "hosts[0].capacity must be a whole number", NULL },
	{ "bad/requires-scalar.yaml", 4, 13, "vm.requires must be a list", NULL },
	{ "bad/guest-no-path.yaml", 4, 3, "guest.image: disk needs guest.distro (an image klpq "
	  "builds) or guest.path", NULL },
	{ "bad/guest-distro-other.yaml", 5, 11, "guest.distro: klpq builds debian-bookworm, not "
	  "'fedora-40'", NULL },
	{ "bad/guest-kdump-path.yaml", 6, 10, "guest.kdump sets up kdump-tools in the image klpq "
	  "builds: it needs guest.distro", NULL },
	{ "bad/guest-kdump-memory.yaml", 7, 10, "guest.kdump reserves 256 MB for the capture "
	  "kernel: vm.memory_mb must be at least 768, not 512", NULL },
	{ "bad/guest-kdump-word.yaml", 6, 10, "guest.kdump must be true or false", NULL },
	{ "bad/guest-package-bad.yaml", 6, 21, "guest.packages[1] must be a Debian package name", NULL },
	{ "bad/guest-image-bad.yaml", 3, 16, "guest.image must be initramfs or disk, not 'vm'", NULL },
	{ "bad/uri-bad.yaml", 5, 8, "vm.uri must be a libvirt URI", NULL },
	{ "bad/network-word.yaml", 4, 12, "vm.network must be true or false", NULL },
	{ "bad/network-quoted.yaml", 4, 12, "quoted", NULL },
	{ "bad/network-number.yaml", 4, 12, "true or false", NULL },
	{ "bad/cmdline-newline.yaml", 4, 12, "vm.cmdline", NULL },
	{ "bad/cmdline-map.yaml", 4, 12, "vm.cmdline must be a string", NULL },
	{ "bad/timeout-zero.yaml", 4, 11, "timeouts.boot_s must be more than 0", NULL },
	{ "bad/timeout-zero-decimal.yaml", 4, 12, "more than 0", NULL },
	{ "bad/timeout-tiny.yaml", 4, 12, "more than 0", NULL },
	{ "bad/timeout-negative.yaml", 4, 17, "timeouts.transition_s must be more than 0", NULL },
	{ "bad/timeout-high.yaml", 4, 12, "timeouts.agent_s 3601 is out of range", NULL },
	{ "bad/timeout-high-decimal.yaml", 4, 12, "out of range", NULL },
	{ "bad/timeout-unit.yaml", 4, 11, "seconds", NULL },
	{ "bad/timeout-exponent.yaml", 4, 11, "seconds", NULL },
	{ "bad/timeout-dot.yaml", 4, 11, "seconds", NULL },
	{ "bad/timeout-quoted.yaml", 4, 11, "quoted", NULL },
	{ "bad/timeout-unknown.yaml", 4, 3, "unknown key 'shutdown_s' in timeouts", NULL },
	{ "bad/taint-letter.yaml", 4, 17, "unknown taint letter 'Z'", NULL },
	{ "bad/taint-lowercase.yaml", 4, 11, "unknown taint letter 'k'", NULL },
	{ "bad/taint-word.yaml", 4, 11, "taint letter", NULL },
	{ "bad/taint-not-list.yaml", 4, 10, "taint.allow must be a list", NULL },
	{ "bad/taint-unknown-key.yaml", 4, 3, "unknown key 'deny' in taint", NULL },
	{ "bad/rollback-number.yaml", 3, 11, "rollback must be true or false", NULL },
	{ "bad/rollback-on.yaml", 3, 11, "true or false", NULL },
	{ "bad/patchset-missing.yaml", 2, 11, "not a folder", NULL },
	{ "bad/patchset-is-file.yaml", 2, 11, "not a folder", NULL },
	{ "bad/patchset-no-file.yaml", 2, 11, "patchset.yaml", NULL },
	{ "bad/patchset-empty.yaml", 2, 11, "patchset must not be empty", NULL },
	{ "bad/patchset-list.yaml", 2, 11, "patchset must be a string", NULL },
	/* An error inside the patch set names the patch set's file, not the scenario. */
	{ "bad/patchset-bad.yaml", 6, 5, "unknown key 'sources' in steps[1]",
	  "bad/../bad-patchsets/step-unknown-key/patchset.yaml" },
};

static const struct bad_case bad_patchsets[] = {
	{ "bad-patchsets/syntax", 5, 1, "syntax error", NULL },
	{ "bad-patchsets/empty", 1, 1, "empty", NULL },
	{ "bad-patchsets/missing-name", 1, 1, "missing required key 'name'", NULL },
	{ "bad-patchsets/name-unsafe", 1, 7, "safe name", NULL },
	{ "bad-patchsets/unknown-key", 2, 1, "unknown key 'version' in the patch set", NULL },
	{ "bad-patchsets/steps-missing", 1, 1, "missing required key 'steps'", NULL },
	{ "bad-patchsets/steps-empty", 2, 8, "steps must not be empty", NULL },
	{ "bad-patchsets/step-not-mapping", 3, 5, "steps[0] must be a mapping", NULL },
	{ "bad-patchsets/step-unknown-key", 6, 5, "unknown key 'sources' in steps[1]", NULL },
	{ "bad-patchsets/step-name-missing", 3, 5, "missing required key 'name' in steps[0]", NULL },
	{ "bad-patchsets/step-name-unsafe", 3, 11, "steps[0].name", NULL },
	{ "bad-patchsets/step-name-twice", 7, 11, "used twice (first at line 3)", NULL },
	{ "bad-patchsets/step-both", 5, 13, "not both", NULL },
	{ "bad-patchsets/step-neither", 3, 5, "missing what the step does", NULL },
	{ "bad-patchsets/step-source-missing", 4, 13, "steps[0].source", NULL },
	{ "bad-patchsets/step-source-file", 4, 13, "not a folder", NULL },
	{ "bad-patchsets/step-module-folder", 4, 13, "not a regular file", NULL },
	{ "bad-patchsets/step-module-missing", 4, 13, "does not exist", NULL },
	{ "bad-patchsets/expect-bad", 5, 13, "steps[0].expect", NULL },
	{ "bad-patchsets/probes-not-list", 6, 7, "steps[0].probes must be a list", NULL },
	{ "bad-patchsets/probe-name-twice", 13, 15, "probe name 'fix1' is used twice", NULL },
	{ "bad-patchsets/probe-run-empty", 7, 14, "run must not be empty", NULL },
	{ "bad-patchsets/probe-run-missing", 6, 9, "missing required key 'run'", NULL },
	{ "bad-patchsets/probe-timeout-zero", 8, 20, "timeout_s must be more than 0", NULL },
	{ "bad-patchsets/probe-timeout-garbage", 8, 20, "timeout_s", NULL },
	{ "bad-patchsets/probe-rollback-bad", 6, 43, "rollback must be true or false", NULL },
	{ "bad-patchsets/probe-unknown-key", 8, 9, "unknown key 'expected' in steps[0].probes[0]",
	  NULL },
};

static void check_bad(const struct bad_case *c, const char *shown, int ret, const struct kerr *e)
{
	char *prefix = xasprintf("%s/%s:%d:%d: ", FIXTURES, shown, c->line, c->col);

	ck_assert_msg(ret == -1, "%s: loaded, expected an error", c->file);
	ck_assert_int_eq(e->set, 1);
	ck_assert_msg(!strncmp(e->msg, prefix, strlen(prefix)), "%s: want prefix '%s', got '%s'",
		      c->file, prefix, e->msg);
	ck_assert_msg(strstr(e->msg + strlen(prefix), c->word) != NULL,
		      "%s: want '%s' in '%s'", c->file, c->word, e->msg);
	free(prefix);
}

START_TEST(test_bad_scenario)
{
	const struct bad_case *c = &bad_scenarios[_i];
	struct scenario s;
	struct kerr e = KERR_INIT;
	char *path = xasprintf("%s/%s", FIXTURES, c->file);
	int ret = scenario_load(path, &s, &e);

	check_bad(c, c->shown ? c->shown : c->file, ret, &e);
	/* On failure the scenario is already released. */
	ck_assert_ptr_null(s.file);
	ck_assert_ptr_null(s.name);
	ck_assert_ptr_null(s.kernels);
	ck_assert_ptr_null(s.patchset.steps);
	scenario_release(&s);
	free(path);
}
END_TEST

START_TEST(test_bad_patchset)
{
	const struct bad_case *c = &bad_patchsets[_i];
	struct patchset p;
	struct kerr e = KERR_INIT;
	char *dir = xasprintf("%s/%s", FIXTURES, c->file);
	char *shown = xasprintf("%s/patchset.yaml", c->file);
	int ret = patchset_load(dir, &p, &e);

	check_bad(c, shown, ret, &e);
	ck_assert_ptr_null(p.name);
	ck_assert_ptr_null(p.steps);
	ck_assert_uint_eq(p.nr_steps, 0);
	patchset_release(&p);
	free(dir);
	free(shown);
}
END_TEST

START_TEST(test_patchset_no_file)
{
	struct patchset p;
	struct kerr e = KERR_INIT;
	const char *want = FIXTURES "/bad-patchsets/no-file/patchset.yaml: cannot open";

	ck_assert_int_eq(patchset_load(FIXTURES "/bad-patchsets/no-file", &p, &e), -1);
	ck_assert_msg(!strncmp(e.msg, want, strlen(want)), "got: %s", e.msg);
	ck_assert_ptr_null(p.dir);
}
END_TEST

START_TEST(test_taint_letters)
{
	static const char order[] = "PFSRMBUDAWCIOELKXTN";
	size_t i;

	for (i = 0; i < strlen(order); i++)
		ck_assert_int_eq(taint_letter_bit(order[i]), (int)i);
	ck_assert_int_eq(taint_letter_bit('P'), 0);
	ck_assert_int_eq(taint_letter_bit('E'), 13);
	ck_assert_int_eq(taint_letter_bit('K'), 15);
	ck_assert_int_eq(taint_letter_bit('N'), 18);
	ck_assert_int_eq(taint_letter_bit('G'), -1);
	ck_assert_int_eq(taint_letter_bit('k'), -1);
	ck_assert_int_eq(taint_letter_bit(' '), -1);
	ck_assert_int_eq(taint_letter_bit('\0'), -1);
}
END_TEST

START_TEST(test_taint_format)
{
	char buf[32];

	taint_format(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
	taint_format(1, buf, sizeof(buf));
	ck_assert_str_eq(buf, "P");
	taint_format((1ul << 15) | (1ul << 13) | (1ul << 12), buf, sizeof(buf));
	ck_assert_str_eq(buf, "OEK");
	taint_format(32768 | 8192, buf, sizeof(buf));
	ck_assert_str_eq(buf, "EK");
	taint_format((1ul << 19) - 1, buf, sizeof(buf));
	ck_assert_str_eq(buf, "PFSRMBUDAWCIOELKXTN");
	/* Bits the kernel has no letter for here are left out. */
	taint_format((1ul << 19) | (1ul << 30) | 1ul, buf, sizeof(buf));
	ck_assert_str_eq(buf, "P");
	/* Truncated, never overrun. */
	taint_format((1ul << 19) - 1, buf, 4);
	ck_assert_str_eq(buf, "PFS");
	buf[0] = 'x';
	taint_format(1, buf, 1);
	ck_assert_str_eq(buf, "");
}
END_TEST

Suite *scenario_suite(void); /* called by the shared unit-test runner */

Suite *scenario_suite(void)
{
	Suite *s = suite_create("scenario");
	TCase *tc;

	tc = tcase_create("good");
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_guest_disk);
	tcase_add_test(tc, test_fifo_refused);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_source_outside);
	tcase_add_test(tc, test_refusal);
	tcase_add_test(tc, test_step_kinds);
	tcase_add_test(tc, test_method);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_local_relative);
	tcase_add_test(tc, test_relative_path);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_patchset_direct);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad");
	tcase_add_loop_test(tc, test_bad_scenario, 0, (int)ARRAY_SIZE(bad_scenarios));
	tcase_add_loop_test(tc, test_bad_patchset, 0, (int)ARRAY_SIZE(bad_patchsets));
	tcase_add_test(tc, test_patchset_no_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("taint");
	tcase_add_test(tc, test_taint_letters);
	tcase_add_test(tc, test_taint_format);
	suite_add_tcase(s, tc);
	return s;
}
