/* scenario.c: loads scenario files (see scenario.h and docs/scenario.md); the YAML reader is
 * yfile.c, patch sets patchset.c, the kernels list scenario-kernels.c. */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "perf.h"
#include "vm.h"
#include "proto.h"
#include "yfile.h"

/* Kernel order of the taint flags: bit n is taint_letters[n]. */
static const char taint_letters[] = "PFSRMBUDAWCIOELKXTN";

#define TAINT_DEFAULT ((1u << 15) | (1u << 13) | (1u << 12)) /* K, E, O */

/* ---- scenarios --------------------------------------------------------------------- */

static const char *const scenario_keys[] = {
	"name", "description", "kernels", "vm", "vms", "patchset", "patchsets", "exclude",
	"include", "timeouts", "taint", "rollback", "workloads", "perf", "leak", "stall_recovery",
	"sources_outside_patchset", "livepatch_debug", "hosts", "guest", "count_calls", NULL
};
static const char *const guest_keys[] = { "image", "path", "root", "distro", "packages",
					   "mirror", "keep_overlay_mb", "kdump", NULL };
static const char *const leak_keys[] = { "cycles", "threshold_kb", "load_threshold_kb",
					 "exercise", NULL };
static const char *const perf_keys[] = {
	"warmup_s", "phase_s", "pairs", "threshold_pct", "thresholds", "transition_pct",
	"confidence", "resamples", NULL
};
static const char *const vm_keys[] = {
	"backend", "uri", "memory_mb", "cpus", "accel", "cmdline", "network", "requires", NULL
};
static const char *const vms_keys[] = {
	"name", "backend", "uri", "memory_mb", "cpus", "accel", "cmdline", "network", "requires",
	NULL
};
static const char *const exclude_keys[] = {
	"kernel", "abi", "flavor", "series", "patchset", "vm", NULL
};
static const char *const include_keys[] = { "kernel", "patchset", "vm", NULL };

static const char *const timeout_keys[] = {
	"boot_s", "console_s", "transition_s", "probe_s", "agent_s", NULL
};
static const char *const taint_keys[] = { "allow", NULL };

static void kernel_spec_release(struct kernel_spec *k)
{
	free(k->label);
	free(k->vmlinuz);
	free(k->modules);
	free(k->build);
	free(k->release);
}

static void rule_release(struct matrix_rule *r)
{
	free(r->kernel);
	free(r->abi);
	free(r->flavor);
	free(r->series);
	free(r->patchset);
	free(r->vm);
}

void scenario_release(struct scenario *s)
{
	size_t i;

	free(s->file);
	free(s->name);
	free(s->description);
	for (i = 0; i < s->nr_kernels; i++)
		kernel_spec_release(&s->kernels[i]);
	free(s->kernels);
	for (i = 0; i < s->nr_vms; i++) {
		free(s->vms[i].name);
		free(s->vms[i].extra_cmdline);
		free(s->vms[i].uri);
		for (size_t j = 0; j < s->vms[i].nr_requires; j++)
			free(s->vms[i].requires[j]);
		free(s->vms[i].requires);
	}
	pool_release(&s->pool);
	free(s->guest.path);
	free(s->guest.root);
	free(s->guest.distro);
	free(s->guest.mirror);
	for (i = 0; i < s->guest.nr_packages; i++)
		free(s->guest.packages[i]);
	free(s->guest.packages);
	free(s->vms);
	for (i = 0; i < s->nr_patchsets; i++)
		patchset_release(&s->patchsets[i]);
	free(s->patchsets);
	for (i = 0; i < s->nr_workloads; i++) {
		for (size_t j = 0; j < s->workloads[i].nr_args; j++)
			free(s->workloads[i].args[j]);
		free(s->workloads[i].args);
		free(s->workloads[i].name);
	}
	free(s->workloads);
	for (i = 0; i < s->perf.nr_thresholds; i++)
		free(s->perf.thresholds[i].metric);
	free(s->perf.thresholds);
	free(s->leak.exercise);
	for (i = 0; i < s->nr_exclude; i++)
		rule_release(&s->exclude[i]);
	free(s->exclude);
	for (i = 0; i < s->nr_include; i++)
		rule_release(&s->include[i]);
	free(s->include);
	memset(s, 0, sizeof(*s));
}

static int parse_vm(struct yfile *f, const struct ynode *n, const char *w, struct vm_spec *vm)
{
	const struct ynode *v;
	char field[96];

#define FIELD(k) (snprintf(field, sizeof(field), "%s.%s", w, k), field)
	if (yf_check_map(f, n, w, strcmp(w, "vm") ? vms_keys : vm_keys))
		return -1;
	v = yf_get(n, "name");
	if (v && yf_name(f, v, FIELD("name"), &vm->name))
		return -1;
	v = yf_get(n, "backend");
	if (v) {
		if (v->kind != YN_SCALAR || yf_is_null(v))
			return yf_err(f, v, "%s.backend must be one of %s, not %s", w,
					vm_backend_names(), yf_describe(v));
		vm->backend = vm_backend_find(v->text);
		if (!vm->backend)
			return yf_err(f, v, "%s.backend must be one of %s, not '%.64s'", w,
					vm_backend_names(), v->text);
	}
	v = yf_get(n, "uri");
	if (v) {
		if (yf_string(f, v, FIELD("uri"), &vm->uri))
			return -1;
		if (!vm->backend || strcmp(vm->backend->name, "libvirt"))
			return yf_err(f, v, "%s.uri is libvirt's connection URI: it needs %s.backend: "
					"libvirt", w, w);
		if (!strstr(vm->uri, "://") || strlen(vm->uri) > 1024 ||
		    strpbrk(vm->uri, " \t\n\r\"'<>"))
			return yf_err(f, v, "%s.uri must be a libvirt URI such as qemu:///system or "
					"qemu+ssh://user@host/system, not '%.64s'", w, vm->uri);
	}
	v = yf_get(n, "memory_mb");
	if (v && yf_uint(f, v, FIELD("memory_mb"), 128, 65536, &vm->memory_mb))
		return -1;
	v = yf_get(n, "cpus");
	if (v && yf_uint(f, v, FIELD("cpus"), 1, 64, &vm->cpus))
		return -1;
	v = yf_get(n, "accel");
	if (v) {
		if (v->kind != YN_SCALAR || yf_is_null(v))
			return yf_err(f, v, "%s.accel must be auto, kvm or tcg, not %s",
					w, yf_describe(v));
		if (!strcmp(v->text, "auto"))
			vm->accel = ACCEL_AUTO;
		else if (!strcmp(v->text, "kvm"))
			vm->accel = ACCEL_KVM;
		else if (!strcmp(v->text, "tcg"))
			vm->accel = ACCEL_TCG;
		else
			return yf_err(f, v, "%s.accel must be auto, kvm or tcg, not '%.64s'",
					w, v->text);
	}
	v = yf_get(n, "cmdline");
	if (v) {
		const char *p;

		if (yf_string(f, v, FIELD("cmdline"), &vm->extra_cmdline))
			return -1;
		for (p = vm->extra_cmdline; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return yf_err(f, v, "%s.cmdline must be one line without control "
						"characters", w);
		if (strlen(vm->extra_cmdline) > CMDLINE_MAX)
			return yf_err(f, v, "%s.cmdline is longer than %d bytes", w,
					CMDLINE_MAX);
		if (!*vm->extra_cmdline) {
			free(vm->extra_cmdline);
			vm->extra_cmdline = NULL;
		}
	}
	v = yf_get(n, "network");
	if (v && yf_bool(f, v, FIELD("network"), &vm->network))
		return -1;
	v = yf_get(n, "requires");
	if (v && yf_names(f, v, FIELD("requires"), POOL_MAX_LABELS, &vm->requires,
			  &vm->nr_requires))
		return -1;
	return 0;
#undef FIELD
}

static int parse_guest(struct yfile *f, const struct ynode *n, struct guest_spec *g)
{
	const struct ynode *v;

	if (yf_check_map(f, n, "guest", guest_keys))
		return -1;
	v = yf_get(n, "image");
	if (v) {
		if (v->kind == YN_SCALAR && !strcmp(v->text, "initramfs"))
			g->disk = 0;
		else if (v->kind == YN_SCALAR && !strcmp(v->text, "disk"))
			g->disk = 1;
		else
			return yf_err(f, v, "guest.image must be initramfs or disk, not '%.64s'",
					v->kind == YN_SCALAR ? v->text : yf_describe(v));
	}
	if ((v = yf_get(n, "distro"))) {
		if (!g->disk)
			return yf_err(f, v, "guest.distro is a disk image klpq builds: it needs "
					"guest.image: disk");
		if (yf_line(f, v, "guest.distro", 64, &g->distro))
			return -1;
		if (strcmp(g->distro, "debian-bookworm"))
			return yf_err(f, v, "guest.distro: klpq builds debian-bookworm, not '%.64s'",
					g->distro);
	}
	v = yf_get(n, "path");
	if (v) {
		if (!g->disk)
			return yf_err(f, v, "guest.path is a disk image: it needs guest.image: disk");
		if (g->distro)
			return yf_err(f, v, "guest.path and guest.distro are two kinds of disk: give "
					"one");
		if (yf_existing(f, v, "guest.path", 0, &g->path))
			return -1;
	} else if (g->disk && !g->distro) {
		return yf_err(f, n, "guest.image: disk needs guest.distro (an image klpq builds) or "
				"guest.path (a qcow2 image of your own)");
	}
	if ((v = yf_get(n, "packages"))) {
		if (!g->distro)
			return yf_err(f, v, "guest.packages are installed into the image klpq builds: "
					"they need guest.distro");
		if (yf_seq(f, v, "guest.packages", 0))
			return -1;
		if (v->nr > 256)
			return yf_err(f, v, "guest.packages has %zu entries; at most 256", v->nr);
		g->packages = xcalloc(v->nr + 1, sizeof(*g->packages));
		for (size_t i = 0; i < v->nr; i++) {
			const struct ynode *p = v->kids[i];
			const char *t = p->kind == YN_SCALAR ? p->text : "";
			size_t k = 0;

			/* Debian policy 5.6.1: lower case letters, digits, + - . ; two or more */
			while (t[k] && (islower((unsigned char)t[k]) || isdigit((unsigned char)t[k]) ||
					(k && strchr("+-.", t[k]))))
				k++;
			if (p->kind != YN_SCALAR || k < 2 || t[k] || k > 100)
				return yf_err(f, p, "guest.packages[%zu] must be a Debian package name "
						"(lower case letters, digits, + - .), not '%.64s'", i,
						p->kind == YN_SCALAR ? t : yf_describe(p));
			g->packages[g->nr_packages++] = xstrdup(t);
		}
	}
	if ((v = yf_get(n, "mirror"))) {
		if (!g->distro)
			return yf_err(f, v, "guest.mirror is where the image klpq builds comes from: it "
					"needs guest.distro");
		if (yf_line(f, v, "guest.mirror", 400, &g->mirror))
			return -1;
		if ((strncmp(g->mirror, "http://", 7) && strncmp(g->mirror, "https://", 8)) ||
		    strpbrk(g->mirror, " \t'\"\\"))
			return yf_err(f, v, "guest.mirror must be an http:// or https:// URL of a "
					"Debian archive, not '%.64s'", g->mirror);
	}
	if ((v = yf_get(n, "kdump"))) {
		if (yf_bool(f, v, "guest.kdump", &g->kdump))
			return -1;
		if (g->kdump && !g->distro)
			return yf_err(f, v, "guest.kdump sets up kdump-tools in the image klpq builds: "
					"it needs guest.distro");
	}
	g->keep_overlay_mb = 1024;
	if ((v = yf_get(n, "keep_overlay_mb"))) {
		if (!g->disk)
			return yf_err(f, v, "guest.keep_overlay_mb is for disk guests: it needs "
					"guest.image: disk");
		if (yf_uint(f, v, "guest.keep_overlay_mb", 0, 1 << 20, &g->keep_overlay_mb))
			return -1;
	}
	v = yf_get(n, "root");
	if (v) {
		if (!g->disk)
			return yf_err(f, v, "guest.root is the disk's root device: it needs guest.image: "
					"disk");
		if (yf_line(f, v, "guest.root", 200, &g->root))
			return -1;
		g->root_given = 1;
		if (strncmp(g->root, "/dev/", 5) || strpbrk(g->root, " \t"))
			return yf_err(f, v, "guest.root must be a device path such as /dev/vda1, not "
					"'%.64s'", g->root);
	}
	if (g->disk && !g->root)
		g->root = xstrdup("/dev/vda1");
	return 0;
}

static int parse_timeouts(struct yfile *f, const struct ynode *n, struct timeouts *t)
{
	const struct ynode *v;

	if (yf_check_map(f, n, "timeouts", timeout_keys))
		return -1;
	if ((v = yf_get(n, "boot_s")) && yf_seconds(f, v, "timeouts.boot_s", &t->boot_ms))
		return -1;
	if ((v = yf_get(n, "console_s")) && yf_seconds(f, v, "timeouts.console_s", &t->console_ms))
		return -1;
	if ((v = yf_get(n, "transition_s")) &&
	    yf_seconds(f, v, "timeouts.transition_s", &t->transition_ms))
		return -1;
	if ((v = yf_get(n, "probe_s")) && yf_seconds(f, v, "timeouts.probe_s", &t->probe_ms))
		return -1;
	if ((v = yf_get(n, "agent_s")) && yf_seconds(f, v, "timeouts.agent_s", &t->agent_ms))
		return -1;
	return 0;
}

static int parse_taint(struct yfile *f, const struct ynode *n, unsigned *mask)
{
	const struct ynode *allow;
	size_t i;

	if (yf_check_map(f, n, "taint", taint_keys))
		return -1;
	allow = yf_get(n, "allow");
	if (!allow)
		return 0;
	if (yf_seq(f, allow, "taint.allow", 0))
		return -1;
	*mask = 0;
	for (i = 0; i < allow->nr; i++) {
		const struct ynode *l = allow->kids[i];
		int bit;

		if (l->kind != YN_SCALAR || yf_is_null(l))
			return yf_err(f, l, "taint.allow[%zu] must be a taint letter, not %s", i,
					yf_describe(l));
		bit = l->len == 1 ? taint_letter_bit(l->text[0]) : -1;
		if (bit < 0)
			return yf_err(f, l, "taint.allow[%zu]: unknown taint letter '%.16s' (known, "
					"in kernel order: %s)", i, l->text, taint_letters);
		*mask |= 1u << bit;
	}
	return 0;
}

/* Default name: the file name without .yaml (or .yml). */
static char *default_name(const char *path)
{
	char *base = scn_last_component(path);
	size_t len = strlen(base);

	if (len > 5 && !strcmp(base + len - 5, ".yaml"))
		base[len - 5] = '\0';
	else if (len > 4 && !strcmp(base + len - 4, ".yml"))
		base[len - 4] = '\0';
	return base;
}

/* A plain decimal number (12, 2.5) in [min, max]. */
static int get_number(struct yfile *f, const struct ynode *n, const char *field, double min,
		      double max, double *out)
{
	const char *p;
	char *end;
	double v;

	if (n->kind != YN_SCALAR || !n->plain || yf_is_null(n))
		return yf_err(f, n, "%s must be a number, not %s", field, yf_describe(n));
	p = n->text;
	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9')
		goto bad;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			goto bad;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		goto bad;
	v = strtod(n->text, &end);
	if (v < min || v > max)
		return yf_err(f, n, "%s must be from %g to %g, not %.64s", field, min, max,
				n->text);
	*out = v;
	return 0;
bad:
	return yf_err(f, n, "%s must be a plain number like 5 or 2.5, not '%.64s'", field,
			n->text);
}

/* workloads: [gaming, {name: streaming, bitrate_kbps: 4000}, ...] */
static int parse_workloads(struct yfile *f, const struct ynode *n, struct scenario *s)
{
	if (yf_seq(f, n, "workloads", 1))
		return -1;
	s->workloads = xcalloc(n->nr, sizeof(*s->workloads));
	for (size_t i = 0; i < n->nr; i++) {
		const struct ynode *w = n->kids[i], *name = w;
		struct workload_spec *ws = &s->workloads[i];
		char where[32];

		s->nr_workloads = i + 1;
		snprintf(where, sizeof(where), "workloads[%zu]", i);
		ws->line = w->line;
		ws->col = w->col;
		if (w->kind == YN_MAP) {
			if (yf_need(f, w, where, "name", &name))
				return -1;
		} else if (w->kind != YN_SCALAR || yf_is_null(w)) {
			return yf_err(f, w, "%s must be a workload name or a mapping with 'name', "
					"not %s", where, yf_describe(w));
		}
		if (name->kind != YN_SCALAR || yf_is_null(name) || !perf_workload_known(name->text))
			return yf_err(f, name, "%s: unknown workload '%.64s' (known: %s)", where,
					name->kind == YN_SCALAR ? name->text : "", perf_workload_names());
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->workloads[j].name, name->text))
				return yf_err(f, name, "%s: workload '%s' is listed twice", where,
						name->text);
		ws->name = xstrdup(name->text);
		if (w->kind != YN_MAP)
			continue;
		ws->args = xcalloc(w->nr + 1, sizeof(*ws->args));
		for (size_t k = 0; k < w->nr; k += 2) {
			const struct ynode *key = w->kids[k], *val = w->kids[k + 1];
			const struct perf_option *opt;
			char *field, *flag;

			if (key->kind != YN_SCALAR || !strcmp(key->text, "name"))
				continue;
			opt = perf_option_find(ws->name, key->text);
			if (!opt) {
				struct sb known = SB_INIT;
				int r;

				perf_option_names(ws->name, &known);
				r = yf_err(f, key, "unknown key '%.64s' in %s (a %s workload takes: "
					     "name, %s)", key->text, where, ws->name, known.buf);
				sb_release(&known);
				return r;
			}
			for (size_t j = 0; j < k; j += 2)
				if (!strcmp(w->kids[j]->text, key->text))
					return yf_err(f, key, "duplicate key '%s' in %s", key->text,
							where);
			field = yf_field(where, key->text);
			if (opt->min <= opt->max) {
				unsigned v;
				int r = yf_uint(f, val, field, (unsigned)opt->min, (unsigned)opt->max,
						 &v);
				free(field);
				if (r)
					return -1;
				ws->args[ws->nr_args + 1] = xasprintf("%u", v);
			} else {
				char *v = NULL;
				int ok = 1;

				if (yf_string(f, val, field, &v)) {
					free(field);
					return -1;
				}
				if (opt->choices) {
					ok = 0;
					for (const char *const *c = opt->choices; *c; c++)
						ok |= !strcmp(*c, v);
				}
				if (!ok || !*v || v[0] == '-') {
					yf_err(f, val, "%s: '%.64s' is not allowed here", field, v);
					free(v);
					free(field);
					return -1;
				}
				free(field);
				ws->args[ws->nr_args + 1] = v;
			}
			flag = xasprintf("--%s", key->text);
			for (char *c = flag; *c; c++)
				if (*c == '_')
					*c = '-';
			ws->args[ws->nr_args] = flag;
			ws->nr_args += 2;
		}
	}
	return 0;
}

static int parse_leak(struct yfile *f, const struct ynode *n, struct leak_spec *l)
{
	const struct ynode *v;

	if (yf_check_map(f, n, "leak", leak_keys))
		return -1;
	if ((v = yf_get(n, "cycles")) && yf_uint(f, v, "leak.cycles", 0, 50, &l->cycles))
		return -1;
	if ((v = yf_get(n, "threshold_kb")) &&
	    yf_uint(f, v, "leak.threshold_kb", 1, 10000000, &l->threshold_kb))
		return -1;
	if ((v = yf_get(n, "load_threshold_kb")) &&
	    yf_uint(f, v, "leak.load_threshold_kb", 1, 10000000, &l->load_threshold_kb))
		return -1;
	if ((v = yf_get(n, "exercise"))) {
		if (yf_string(f, v, "leak.exercise", &l->exercise))
			return -1;
		if (!*l->exercise)
			return yf_err(f, v, "leak.exercise must not be empty");
	}
	return 0;
}

static int parse_perf(struct yfile *f, const struct ynode *n, struct perf_spec *pf)
{
	const struct ynode *v;
	double d;

	if (yf_check_map(f, n, "perf", perf_keys))
		return -1;
	if ((v = yf_get(n, "warmup_s")) && yf_seconds(f, v, "perf.warmup_s", &pf->warmup_ms))
		return -1;
	if ((v = yf_get(n, "phase_s")) && yf_seconds(f, v, "perf.phase_s", &pf->phase_ms))
		return -1;
	if ((v = yf_get(n, "pairs")) && yf_uint(f, v, "perf.pairs", 1, 20, &pf->pairs))
		return -1;
	if ((v = yf_get(n, "resamples")) &&
	    yf_uint(f, v, "perf.resamples", 100, 100000, &pf->resamples))
		return -1;
	if ((v = yf_get(n, "threshold_pct")) &&
	    get_number(f, v, "perf.threshold_pct", 0.01, 1000, &pf->threshold_pct))
		return -1;
	if ((v = yf_get(n, "transition_pct")) &&
	    get_number(f, v, "perf.transition_pct", 0.01, 100000, &pf->transition_pct))
		return -1;
	if ((v = yf_get(n, "confidence")) && get_number(f, v, "perf.confidence", 0.5, 0.999, &d))
		return -1;
	if (v)
		pf->confidence = d;
	if ((v = yf_get(n, "thresholds"))) {
		if (v->kind != YN_MAP)
			return yf_err(f, v, "perf.thresholds must be a mapping of metric: percent, "
					"not %s", yf_describe(v));
		pf->thresholds = xcalloc(v->nr / 2 + 1, sizeof(*pf->thresholds));
		for (size_t i = 0; i < v->nr; i += 2) {
			const struct ynode *key = v->kids[i];
			char *field;
			int r;

			if (key->kind != YN_SCALAR || !perf_metric_find(key->text)) {
				struct sb known = SB_INIT;
				size_t nm;
				const struct perf_metric *m = perf_metrics(&nm);

				for (size_t k = 0; k < nm; k++)
					sb_addf(&known, "%s%s", k ? ", " : "", m[k].name);
				r = yf_err(f, key, "perf.thresholds: unknown metric '%.64s' (known: %s)",
					     key->kind == YN_SCALAR ? key->text : "", known.buf);
				sb_release(&known);
				return r;
			}
			for (size_t j = 0; j < i; j += 2)
				if (!strcmp(v->kids[j]->text, key->text))
					return yf_err(f, key, "duplicate key '%s' in perf.thresholds",
							key->text);
			field = yf_field("perf.thresholds", key->text);
			r = get_number(f, v->kids[i + 1], field, 0.01, 1000, &d);
			free(field);
			if (r)
				return -1;
			pf->thresholds[pf->nr_thresholds].metric = xstrdup(key->text);
			pf->thresholds[pf->nr_thresholds++].pct = d;
		}
	}
	return 0;
}

/* A patch-set folder named at node ps (relative to the scenario as given, so that messages
 * keep the caller's spelling), loaded into out. */
static int load_patchset_at(struct yfile *f, const char *path, const struct ynode *ps,
			    const char *field, struct patchset *out)
{
	char *ps_dir = NULL, *ps_file = NULL, *given_dir = NULL;
	int ret = -1;

	if (yf_path(f, ps, field, &ps_dir))
		return -1;
	given_dir = path_dirname(path);
	free(ps_dir);
	ps_dir = path_join(given_dir, ps->text);
	if (!is_dir(ps_dir)) {
		yf_err(f, ps, "%s '%.200s' is not a folder (looked for %s)", field, ps->text,
			 ps_dir);
		goto out;
	}
	ps_file = path_join(ps_dir, "patchset.yaml");
	if (!path_exists(ps_file)) {
		yf_err(f, ps, "%s '%.200s' holds no patchset.yaml", field, ps->text);
		goto out;
	}
	ret = patchset_load_opts(ps_dir, f->sources_anywhere, out, f->e);
out:
	free(given_dir);
	free(ps_dir);
	free(ps_file);
	return ret;
}

static int parse_vms(struct yfile *f, const struct ynode *root, struct scenario *s)
{
	const struct ynode *one = yf_get(root, "vm"), *many = yf_get(root, "vms");
	size_t i, j;

	if (one && many)
		return yf_err(f, many, "give either 'vm' (one VM) or 'vms' (a matrix axis), "
				"not both");
	if (many && yf_seq(f, many, "vms", 1))
		return -1;
	s->nr_vms = many ? many->nr : 1;
	s->vms = xcalloc(s->nr_vms, sizeof(*s->vms));
	for (i = 0; i < s->nr_vms; i++) {
		struct vm_spec *vm = &s->vms[i];
		char w[32];

		vm->backend = vm_backend_default();
		vm->memory_mb = 1024;
		vm->cpus = 2;
		vm->accel = ACCEL_AUTO;
		if (!many) {
			if (one && parse_vm(f, one, "vm", vm))
				return -1;
			continue;
		}
		snprintf(w, sizeof(w), "vms[%zu]", i);
		if (parse_vm(f, many->kids[i], w, vm))
			return -1;
		if (!vm->name)
			return yf_err(f, many->kids[i], "missing required key 'name' in %s", w);
		for (j = 0; j < i; j++)
			if (!strcmp(s->vms[j].name, vm->name))
				return yf_err(f, many->kids[i], "%s: the name '%s' is used twice", w,
						vm->name);
	}
	return 0;
}

static int parse_patchsets(struct yfile *f, const char *path, const struct ynode *root,
			   struct scenario *s)
{
	const struct ynode *one = yf_get(root, "patchset"), *many = yf_get(root, "patchsets");
	size_t i, j;

	if (one && many)
		return yf_err(f, many, "give either 'patchset' or 'patchsets', not both");
	if (!one && !many)
		return yf_err(f, root, "missing required key 'patchset' (or 'patchsets') in "
				"the scenario");
	if (many && yf_seq(f, many, "patchsets", 1))
		return -1;
	s->nr_patchsets = many ? many->nr : 1;
	s->patchsets = xcalloc(s->nr_patchsets, sizeof(*s->patchsets));
	for (i = 0; i < s->nr_patchsets; i++) {
		char w[32];

		snprintf(w, sizeof(w), "patchsets[%zu]", i);
		if (load_patchset_at(f, path, many ? many->kids[i] : one, many ? w : "patchset",
				     &s->patchsets[i]))
			return -1;
		for (j = 0; j < i; j++)
			if (!strcmp(s->patchsets[j].name, s->patchsets[i].name))
				return yf_err(f, many->kids[i], "%s: patch set name '%s' is used "
						"twice (cell names would clash)", w,
						s->patchsets[i].name);
	}
	return 0;
}

/* exclude: / include: entries. */
static int parse_rules(struct yfile *f, const struct ynode *n, const char *what, int include,
		       struct matrix_rule **out, size_t *nr)
{
	size_t i;

	if (yf_seq(f, n, what, 0))
		return -1;
	*out = xcalloc(n->nr ? n->nr : 1, sizeof(**out));
	for (i = 0; i < n->nr; i++) {
		const struct ynode *r = n->kids[i];
		struct matrix_rule *m = &(*out)[i];
		char w[32];
		const struct ynode *v;
		struct { const char *key; char **dst; } fields[] = {
			{ "kernel", &m->kernel }, { "abi", &m->abi }, { "flavor", &m->flavor },
			{ "series", &m->series }, { "patchset", &m->patchset }, { "vm", &m->vm },
		};

		*nr = i + 1;
		snprintf(w, sizeof(w), "%s[%zu]", what, i);
		if (yf_check_map(f, r, w, include ? include_keys : exclude_keys))
			return -1;
		if (!r->nr)
			return yf_err(f, r, "%s must name at least one of its keys", w);
		m->line = r->line;
		m->col = r->col;
		for (size_t k = 0; k < ARRAY_SIZE(fields); k++) {
			char *field;
			int bad;

			if (!(v = yf_get(r, fields[k].key)))
				continue;
			field = yf_field(w, fields[k].key);
			bad = yf_string(f, v, field, fields[k].dst) ||
			      (!**fields[k].dst && yf_err(f, v, "%s must not be empty", field));
			free(field);
			if (bad)
				return -1;
		}
		if (include && !m->kernel)
			return yf_err(f, r, "missing required key 'kernel' in %s", w);
	}
	return 0;
}

static int parse_scenario(struct yfile *f, const char *path, const struct ynode *root,
			  struct scenario *s)
{
	const struct ynode *v;

	if (yf_check_map(f, root, "the scenario", scenario_keys))
		return -1;
	v = yf_get(root, "name");
	if (v) {
		if (yf_name(f, v, "name", &s->name))
			return -1;
	} else {
		s->name = default_name(path);
		if (!name_is_safe(s->name) || strlen(s->name) > NAME_MAX_LEN)
			return yf_err(f, root, "the file name gives no safe scenario name ('%.64s'); "
					"add 'name:'", s->name);
	}
	v = yf_get(root, "description");
	if (v && yf_string(f, v, "description", &s->description))
		return -1;
	if (yf_need(f, root, "the scenario", "kernels", &v) || parse_kernels(f, v, s))
		return -1;
	if (parse_vms(f, root, s))
		return -1;
	s->vm = s->vms[0];
	if ((v = yf_get(root, "hosts"))) {
		if (pool_parse(f, v, "hosts", &s->pool))
			return -1;
		for (size_t i = 0; i < s->nr_vms; i++)
			if (s->vms[i].uri)
				return yf_err(f, v, "hosts: and %s exclude each other: a pool "
						"gives each cell its host's URI", s->vms[i].name ?
						"vms[].uri" : "vm.uri");
	}
	if ((v = yf_get(root, "guest")) && parse_guest(f, v, &s->guest))
		return -1;
	for (size_t i = 0; s->guest.kdump && i < s->nr_vms; i++)
		if (s->vms[i].memory_mb < KDUMP_MIN_MEMORY_MB)
			return yf_err(f, yf_get(v, "kdump"), "guest.kdump reserves %u MB for the "
					"capture kernel: %s.memory_mb must be at least %u, not %u",
					KDUMP_CRASHKERNEL_MB, s->vms[i].name ? "vms[]" : "vm",
					KDUMP_MIN_MEMORY_MB, s->vms[i].memory_mb);
	if ((v = yf_get(root, "timeouts")) && parse_timeouts(f, v, &s->timeouts))
		return -1;
	if ((v = yf_get(root, "taint")) && parse_taint(f, v, &s->taint_allow))
		return -1;
	if ((v = yf_get(root, "livepatch_debug")) &&
	    yf_bool(f, v, "livepatch_debug", &s->livepatch_debug))
		return -1;
	if ((v = yf_get(root, "rollback")) && yf_bool(f, v, "rollback", &s->rollback))
		return -1;
	if ((v = yf_get(root, "count_calls")) && yf_bool(f, v, "count_calls", &s->count_calls))
		return -1;
	if ((v = yf_get(root, "leak")) && parse_leak(f, v, &s->leak))
		return -1;
	if ((v = yf_get(root, "stall_recovery"))) {
		if (v->kind == YN_SCALAR && !strcmp(v->text, "none"))
			s->stall_recovery = RECOVER_NONE;
		else if (v->kind == YN_SCALAR && !strcmp(v->text, "signal"))
			s->stall_recovery = RECOVER_SIGNAL;
		else if (v->kind == YN_SCALAR && !strcmp(v->text, "reverse"))
			s->stall_recovery = RECOVER_REVERSE;
		else
			return yf_err(f, v, "stall_recovery must be none, signal or reverse, not "
					"'%.64s'", v->kind == YN_SCALAR ? v->text : yf_describe(v));
	}
	if ((v = yf_get(root, "workloads")) && parse_workloads(f, v, s))
		return -1;
	if ((v = yf_get(root, "perf")) && parse_perf(f, v, &s->perf))
		return -1;
	if (yf_get(root, "perf") && !s->nr_workloads)
		return yf_err(f, yf_get(root, "perf"), "perf needs 'workloads' to measure");
	if ((v = yf_get(root, "exclude")) &&
	    parse_rules(f, v, "exclude", 0, &s->exclude, &s->nr_exclude))
		return -1;
	if ((v = yf_get(root, "include")) &&
	    parse_rules(f, v, "include", 1, &s->include, &s->nr_include))
		return -1;

	/* The patch sets last, so that the scenario's own mistakes are reported first. */
	v = yf_get(root, "sources_outside_patchset");
	if (v && yf_bool(f, v, "sources_outside_patchset", &f->sources_anywhere))
		return -1;
	if (parse_patchsets(f, path, root, s))
		return -1;
	s->patchset = s->patchsets[0];
	return 0;
}

int scenario_load(const char *path, struct scenario *out, struct kerr *e)
{
	struct ynode *root = NULL;
	struct yfile f = { path, NULL, e, 0 };
	char *dir = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	out->timeouts.boot_ms = 180 * 1000;
	out->timeouts.console_ms = 20 * 1000;
	out->timeouts.transition_ms = 60 * 1000;
	out->timeouts.probe_ms = 10 * 1000;
	out->timeouts.agent_ms = 30 * 1000;
	out->taint_allow = TAINT_DEFAULT;
	out->perf.warmup_ms = 2000;
	out->perf.phase_ms = 10000;
	out->perf.pairs = 3;
	out->perf.threshold_pct = 5;
	out->perf.transition_pct = 100;
	out->perf.confidence = 0.95;
	out->perf.resamples = 2000;
	out->leak.cycles = 3;
	out->stall_recovery = RECOVER_SIGNAL;
	out->leak.threshold_kb = 1024;
	out->leak.load_threshold_kb = 128;
	out->rollback = 1;

	if (yf_load_tree(path, &root, e))
		goto out;
	if (!root) {
		kerr_set(e, "%s:1:1: the file is empty; a scenario needs 'kernels' and 'patchset'",
			 path);
		goto out;
	}
	out->file = realpath(path, NULL);
	if (!out->file) {
		kerr_errno(e, "%s: cannot resolve", path);
		goto out;
	}
	dir = path_dirname(out->file);
	f.dir = dir;
	ret = parse_scenario(&f, path, root, out);
out:
	if (ret)
		scenario_release(out);
	yf_free(root);
	free(dir);
	return ret;
}

/* ---- taint ------------------------------------------------------------------------- */

int taint_letter_bit(char letter)
{
	const char *p;

	if (!letter)
		return -1;
	p = strchr(taint_letters, letter);
	return p ? (int)(p - taint_letters) : -1;
}

void taint_format(unsigned long taint, char *out, size_t outlen)
{
	size_t i, n = 0;

	if (!outlen)
		return;
	for (i = 0; i < sizeof(taint_letters) - 1 && n + 1 < outlen; i++)
		if (taint & (1ul << i))
			out[n++] = taint_letters[i];
	out[n] = '\0';
}
