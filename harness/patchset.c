/* patchset.c: loads patch-set files (scenario.h, docs/scenario.md, "Patch-set keys"). */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"
#include "yfile.h"

/* ---- patch sets -------------------------------------------------------------------- */

static const char *const patchset_keys[] = { "name", "description", "method", "log_filter",
					      "programs", "steps", NULL };
static const char *const program_keys[] = { "name", "source", NULL };
static const char *const step_keys[] = { "name", "source", "module", "kmod", "disable",
					  "unload", "sysctl", "run", "helper", "params", "params_file", "wait",
					  "expect", "refusal", "method", "probes", "log", NULL };

/* method: cumulative (atomic replace: the step replaces every earlier patch) or stacked (it
 * adds to them). -1 on a bad value (the error is set). */
static int get_method(struct yfile *f, const struct ynode *v, const char *field, int *stacked)
{
	if (v->kind == YN_SCALAR && !strcmp(v->text, "cumulative"))
		*stacked = 0;
	else if (v->kind == YN_SCALAR && !strcmp(v->text, "stacked"))
		*stacked = 1;
	else
		return yf_err(f, v, "%s must be cumulative or stacked, not %s%.64s%s", field,
				v->kind == YN_SCALAR ? "'" : "", v->kind == YN_SCALAR ? v->text :
				yf_describe(v), v->kind == YN_SCALAR ? "'" : "");
	return 0;
}
static const char *const refusal_keys[] = { "errno", "log", NULL };

/* The errno names a refused module load can give, and their numbers (x86_64 Linux). */
static const struct { const char *name; int num; } errno_names[] = {
	{ "EPERM", 1 }, { "ENOENT", 2 }, { "ENOEXEC", 8 }, { "EAGAIN", 11 }, { "ENOMEM", 12 },
	{ "EACCES", 13 }, { "EFAULT", 14 }, { "EBUSY", 16 }, { "EEXIST", 17 }, { "ENODEV", 19 },
	{ "EINVAL", 22 }, { "ENOSPC", 28 }, { "ENOSYS", 38 }, { "ENODATA", 61 },
	{ "EOPNOTSUPP", 95 }, { "ETIMEDOUT", 110 }, { "EKEYREJECTED", 129 },
};

const char *errno_name(int num)
{
	for (size_t i = 0; i < ARRAY_SIZE(errno_names); i++)
		if (errno_names[i].num == num)
			return errno_names[i].name;
	return NULL;
}
static const char *const probe_keys[] = { "name", "run", "timeout_s", "rollback", "expect",
					   "recheck", NULL };

static void probe_release(struct probe *pr)
{
	free(pr->name);
	free(pr->run);
}

static void step_release(struct step *st)
{
	size_t i;

	free(st->name);
	free(st->source);
	free(st->module);
	free(st->refusal_log);
	free(st->params);
	free(st->params_file);
	free(st->kmod);
	free(st->sysctl_key);
	free(st->sysctl_value);
	free(st->run);
	for (i = 0; i < st->nr_log; i++)
		free(st->log[i]);
	free(st->log);
	for (i = 0; i < st->nr_probes; i++)
		probe_release(&st->probes[i]);
	free(st->probes);
}

void patchset_release(struct patchset *p)
{
	size_t i;

	free(p->name);
	free(p->dir);
	free(p->file);
	free(p->description);
	for (i = 0; i < p->nr_log_filter; i++)
		free(p->log_filter[i]);
	free(p->log_filter);
	for (i = 0; i < p->nr_programs; i++) {
		free(p->programs[i].name);
		free(p->programs[i].source);
	}
	free(p->programs);
	for (i = 0; i < p->nr_steps; i++)
		step_release(&p->steps[i]);
	free(p->steps);
	memset(p, 0, sizeof(*p));
}

static int parse_probe(struct yfile *f, const struct ynode *n, const char *where,
		       struct seen_names *seen, struct probe *pr)
{
	const struct ynode *v;
	char *field = NULL;
	int ret = -1;

	pr->rollback_check = 1;
	if (yf_check_map(f, n, where, probe_keys))
		return -1;

	field = yf_field(where, "name");
	if (yf_need(f, n, where, "name", &v) || yf_name(f, v, field, &pr->name) ||
	    yf_seen(f, seen, v, field, "probe"))
		goto out;
	free(field);

	field = yf_field(where, "run");
	if (yf_need(f, n, where, "run", &v) || yf_string(f, v, field, &pr->run))
		goto out;
	if (!pr->run[strspn(pr->run, " \t\r\n")]) {
		yf_err(f, v, "%s must not be empty", field);
		goto out;
	}
	{
		/* it travels JSON-escaped inside one agent request line: refuse here what the
		 * protocol would drop after a whole boot */
		json_object *j = json_object_new_string(pr->run);
		size_t sent = strlen(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));

		json_object_put(j);
		if (sent > PROBE_MAX_SENT) {
			yf_err(f, v, "%s is %zu bytes as sent to the guest (JSON-escaped); the agent "
				 "protocol allows at most %d: put the script in the guest another way",
				 field, sent, PROBE_MAX_SENT);
			goto out;
		}
	}
	free(field);

	field = yf_field(where, "timeout_s");
	v = yf_get(n, "timeout_s");
	if (v && yf_seconds(f, v, field, &pr->timeout_ms))
		goto out;
	free(field);

	field = yf_field(where, "rollback");
	v = yf_get(n, "rollback");
	if (v && yf_bool(f, v, field, &pr->rollback_check))
		goto out;
	free(field);

	pr->recheck = 1;
	field = yf_field(where, "recheck");
	v = yf_get(n, "recheck");
	if (v && yf_bool(f, v, field, &pr->recheck))
		goto out;
	free(field);

	field = yf_field(where, "expect");
	v = yf_get(n, "expect");
	if (v) {
		if (v->kind == YN_SCALAR && !strcmp(v->text, "passes")) {
			pr->expect_fail = 0;
		} else if (v->kind == YN_SCALAR && !strcmp(v->text, "fails")) {
			/* "this fix is gone now": checked after its own step only */
			pr->expect_fail = 1;
			pr->recheck = 0;
			pr->rollback_check = 0;
		} else {
			yf_err(f, v, "%s must be passes or fails, not %s%.64s%s", field,
				 v->kind == YN_SCALAR ? "'" : "", v->kind == YN_SCALAR ? v->text :
				 yf_describe(v), v->kind == YN_SCALAR ? "'" : "");
			goto out;
		}
	}
	ret = 0;
out:
	free(field);
	return ret;
}

/* The actions a step can take; exactly one per step. */
static const char *const step_actions[] = { "source", "module", "kmod", "disable", "unload",
					     "sysctl", "run", NULL };

/* params: "a=1 b=2" or a mapping {a: 1, b: 2} (its values plain scalars). */
static int get_params(struct yfile *f, const struct ynode *v, const char *field, char **out)
{
	struct sb b = SB_INIT;

	if (v->kind != YN_MAP)
		return yf_line(f, v, field, 1024, out);
	for (size_t i = 0; i + 1 < v->nr; i += 2) {
		const struct ynode *k = v->kids[i], *val = v->kids[i + 1];

		if (val->kind != YN_SCALAR || yf_is_null(val) || strpbrk(val->text, " \t\n\"")) {
			sb_release(&b);
			return yf_err(f, val, "%s.%s must be a value without spaces or quotes, not "
					"%s", field, k->text, val->kind == YN_SCALAR ? "that" :
					yf_describe(val));
		}
		if (!*k->text || strpbrk(k->text, " =\t\n\"")) {
			sb_release(&b);
			return yf_err(f, k, "%s: '%.64s' is not a module parameter name", field,
					k->text);
		}
		sb_addf(&b, "%s%s=%s", b.len ? " " : "", k->text, val->text);
	}
	if (b.len > 1024) {
		sb_release(&b);
		return yf_err(f, v, "%s is more than 1024 bytes", field);
	}
	*out = xstrdup(b.len ? b.buf : "");
	sb_release(&b);
	return 0;
}

/* The earlier step a disable/unload names; -1 with the error set. */
static int earlier_step(struct yfile *f, const struct ynode *v, const char *field,
			const struct step *steps, size_t idx, int patch_only, size_t *out)
{
	if (v->kind != YN_SCALAR || yf_is_null(v))
		return yf_err(f, v, "%s must be the name of an earlier step, not %s", field,
				yf_describe(v));
	for (size_t i = 0; i < idx; i++) {
		if (strcmp(steps[i].name, v->text))
			continue;
		if (patch_only ? steps[i].kind != STEP_PATCH :
		    steps[i].kind != STEP_PATCH && steps[i].kind != STEP_HELPER &&
		    steps[i].kind != STEP_KMOD)
			return yf_err(f, v, "%s: step '%s' (line %d) %s", field, v->text,
					steps[i].line, patch_only ? "loads no livepatch" :
					"loads no module");
		*out = i;
		return 0;
	}
	return yf_err(f, v, "%s: no earlier step is named '%.64s'", field, v->text);
}

static int parse_step(struct yfile *f, const struct ynode *n, const char *where,
		      struct seen_names *step_names, struct seen_names *probe_names,
		      struct step *steps, size_t idx)
{
	struct step *st = &steps[idx];
	const struct ynode *v, *act = NULL;
	const char *act_key = NULL;
	char *field = NULL;
	size_t i;
	int ret = -1, helper = 0, loads;

	if (yf_check_map(f, n, where, step_keys))
		return -1;
	st->line = n->line;

	field = yf_field(where, "name");
	if (yf_need(f, n, where, "name", &v) || yf_name(f, v, field, &st->name) ||
	    yf_seen(f, step_names, v, field, "step"))
		goto out;
	free(field);
	field = NULL;

	for (i = 0; step_actions[i]; i++) {
		const struct ynode *a = yf_get(n, step_actions[i]);

		if (!a)
			continue;
		if (act) {
			yf_err(f, a->line > act->line ? a : act, "%s: give one of '%s' and '%s', "
				 "not both", where, act_key, step_actions[i]);
			goto out;
		}
		act = a;
		act_key = step_actions[i];
	}
	if (!act) {
		yf_err(f, n, "%s: missing what the step does: 'source' (a folder with C source and "
			 "Kbuild), 'module' (a prebuilt .ko), 'kmod' (a module of the kernel), "
			 "'disable', 'unload', 'sysctl' or 'run'", where);
		goto out;
	}
	field = yf_field(where, act_key);
	if (!strcmp(act_key, "source") || !strcmp(act_key, "module")) {
		st->kind = STEP_PATCH;
		if (act_key[0] == 's' ? yf_existing(f, act, field, 1, &st->source) :
					yf_existing(f, act, field, 0, &st->module))
			goto out;
	} else if (!strcmp(act_key, "kmod")) {
		st->kind = STEP_KMOD;
		if (yf_name(f, act, field, &st->kmod))
			goto out;
	} else if (!strcmp(act_key, "disable") || !strcmp(act_key, "unload")) {
		st->kind = act_key[0] == 'd' ? STEP_DISABLE : STEP_UNLOAD;
		if (earlier_step(f, act, field, steps, idx, st->kind == STEP_DISABLE, &st->target))
			goto out;
	} else if (!strcmp(act_key, "sysctl")) {
		const struct ynode *k;

		st->kind = STEP_SYSCTL;
		if (act->kind != YN_MAP || act->nr != 2) {
			yf_err(f, act, "%s must be a mapping of one key to its value "
				 "({kernel.ftrace_enabled: 0}), not %s", field, yf_describe(act));
			goto out;
		}
		k = act->kids[0];
		if (!*k->text || strspn(k->text, "abcdefghijklmnopqrstuvwxyz0123456789_.-") !=
				     strlen(k->text) || strstr(k->text, "..") || *k->text == '.') {
			yf_err(f, k, "%s: '%.64s' is not a sysctl name (kernel.ftrace_enabled)",
				 field, k->text);
			goto out;
		}
		st->sysctl_key = xstrdup(k->text);
		if (yf_line(f, act->kids[1], field, 256, &st->sysctl_value))
			goto out;
	} else {
		st->kind = STEP_RUN;
		if (yf_string(f, act, field, &st->run))
			goto out;
		if (!st->run[strspn(st->run, " \t\r\n")]) {
			yf_err(f, act, "%s must not be empty", field);
			goto out;
		}
	}
	free(field);
	field = NULL;

	v = yf_get(n, "helper");
	if (v && (yf_bool(f, v, "helper", &helper) ||
		  (st->kind != STEP_PATCH &&
		   yf_err(f, v, "%s.helper is for a step with source or module", where))))
		goto out;
	if (helper)
		st->kind = STEP_HELPER;
	loads = st->kind == STEP_PATCH || st->kind == STEP_HELPER || st->kind == STEP_KMOD;

	field = yf_field(where, "params");
	v = yf_get(n, "params");
	if (v && !loads) {
		yf_err(f, v, "%s is for a step that loads a module", field);
		goto out;
	}
	if (v && get_params(f, v, field, &st->params))
		goto out;
	free(field);

	field = yf_field(where, "params_file");
	v = yf_get(n, "params_file");
	if (v && (!loads ? yf_err(f, v, "%s is for a step that loads a module", field) :
		  yf_line(f, v, field, 256, &st->params_file)))
		goto out;
	if (st->params_file && *st->params_file != '/') {
		yf_err(f, v, "%s must be an absolute path in the guest, not '%.64s'", field,
			 st->params_file);
		goto out;
	}
	free(field);

	field = yf_field(where, "wait");
	v = yf_get(n, "wait");
	if (v) {
		int w = 1;

		if (yf_bool(f, v, field, &w))
			goto out;
		if (st->kind != STEP_PATCH) {
			yf_err(f, v, "%s is for a step that loads a livepatch", field);
			goto out;
		}
		st->nowait = !w;
	}
	free(field);

	field = yf_field(where, "expect");
	v = yf_get(n, "expect");
	if (v) {
		if (v->kind == YN_SCALAR && (!strcmp(v->text, "loads") || !strcmp(v->text, "ok"))) {
			st->expect_load_fail = 0;
		} else if (v->kind == YN_SCALAR && (!strcmp(v->text, "load-fails") ||
						    !strcmp(v->text, "fails"))) {
			st->expect_load_fail = 1;
		} else {
			yf_err(f, v, "%s must be 'ok' (or loads) or 'fails' (or load-fails), not "
				 "%s%.64s%s", field, v->kind == YN_SCALAR ? "'" : "",
				 v->kind == YN_SCALAR ? v->text : yf_describe(v),
				 v->kind == YN_SCALAR ? "'" : "");
			goto out;
		}
		if (st->expect_load_fail && st->kind == STEP_RUN) {
			yf_err(f, v, "%s: a run step fails by its exit status; say the failing "
				 "command's test in the shell instead", field);
			goto out;
		}
		if (st->expect_load_fail && st->nowait) {
			yf_err(f, v, "%s: a refused load has no transition to leave waiting", field);
			goto out;
		}
	}
	free(field);

	field = yf_field(where, "method");
	v = yf_get(n, "method");
	st->stacked = -1; /* the patch set's method */
	if (v && st->kind != STEP_PATCH) {
		yf_err(f, v, "%s is for a step that loads a livepatch", field);
		goto out;
	}
	if (v && get_method(f, v, field, &st->stacked))
		goto out;
	free(field);

	field = yf_field(where, "log");
	v = yf_get(n, "log");
	if (v) {
		if (yf_seq(f, v, field, 0))
			goto out;
		st->has_log = 1;
		st->log = xcalloc(v->nr + 1, sizeof(*st->log));
		for (i = 0; i < v->nr; i++) {
			char *lf = xasprintf("%s[%zu]", field, i);
			int bad = yf_line(f, v->kids[i], lf, 1000, &st->log[i]);

			free(lf);
			st->nr_log = i + !bad;
			if (bad)
				goto out;
			if (!*st->log[i]) {
				yf_err(f, v->kids[i], "%s[%zu] must not be empty", field, i);
				goto out;
			}
		}
	}
	free(field);

	field = yf_field(where, "refusal");
	v = yf_get(n, "refusal");
	if (v && !st->expect_load_fail) {
		yf_err(f, v, "%s is for a step with 'expect: fails' (or load-fails)", field);
		goto out;
	}
	if (st->expect_load_fail && !v) {
		yf_err(f, yf_get(n, "expect"), "%s: 'expect: %s' needs 'refusal' naming what "
			 "the kernel must answer: errno (EINVAL, EBUSY, ... or a number) and/or log (a "
			 "text of the kernel's lines)", where, yf_get(n, "expect")->text);
		goto out;
	}
	if (v) {
		const struct ynode *en, *lg;

		if (yf_check_map(f, v, field, refusal_keys))
			goto out;
		en = yf_get(v, "errno");
		lg = yf_get(v, "log");
		if (!en && !lg) {
			yf_err(f, v, "%s needs errno and/or log", field);
			goto out;
		}
		if (en) {
			char *end;
			long num;

			if (en->kind != YN_SCALAR || yf_is_null(en)) {
				yf_err(f, en, "%s.errno must be an errno name or number, not %s", field,
					 yf_describe(en));
				goto out;
			}
			num = strtol(en->text, &end, 10);
			if (*en->text && !*end && num > 0 && num < 4096) {
				st->refusal_errno = (int)num;
			} else {
				for (size_t k = 0; k < ARRAY_SIZE(errno_names); k++)
					if (!strcmp(en->text, errno_names[k].name))
						st->refusal_errno = errno_names[k].num;
				if (!st->refusal_errno) {
					yf_err(f, en, "%s.errno '%.32s' is not an errno klpq knows (EPERM, "
						 "ENOENT, ENOEXEC, EAGAIN, ENOMEM, EACCES, EFAULT, EBUSY, "
						 "EEXIST, ENODEV, EINVAL, ENOSPC, ENOSYS, ENODATA, "
						 "EOPNOTSUPP, ETIMEDOUT, EKEYREJECTED, or a number)", field,
						 en->text);
					goto out;
				}
			}
		}
		if (lg) {
			char *lf = yf_field(field, "log");
			int bad = yf_string(f, lg, lf, &st->refusal_log);

			free(lf);
			if (bad)
				goto out;
			if (!*st->refusal_log) {
				yf_err(f, lg, "%s.log must not be empty", field);
				goto out;
			}
		}
	}
	free(field);

	field = yf_field(where, "probes");
	v = yf_get(n, "probes");
	if (v) {
		if (yf_seq(f, v, field, 0))
			goto out;
		st->probes = xcalloc(v->nr ? v->nr : 1, sizeof(*st->probes));
		st->nr_probes = v->nr;
		for (i = 0; i < v->nr; i++) {
			char *pwhere = xasprintf("%s[%zu]", field, i);
			int r = parse_probe(f, v->kids[i], pwhere, probe_names, &st->probes[i]);

			free(pwhere);
			if (r)
				goto out;
		}
	}
	ret = 0;
out:
	free(field);
	return ret;
}

static size_t count_probes(const struct ynode *steps)
{
	size_t i, nr = 0;

	for (i = 0; i < steps->nr; i++) {
		const struct ynode *pr;

		if (steps->kids[i]->kind != YN_MAP)
			continue;
		pr = yf_get(steps->kids[i], "probes");
		if (pr && pr->kind == YN_SEQ)
			nr += pr->nr;
	}
	return nr;
}

static int parse_patchset(struct yfile *f, const struct ynode *root, struct patchset *out)
{
	struct seen_names step_names = { NULL, 0 }, probe_names = { NULL, 0 };
	const struct ynode *v, *steps;
	size_t i;
	int ret = -1;

	if (yf_check_map(f, root, "the patch set", patchset_keys))
		return -1;
	if (yf_need(f, root, "the patch set", "name", &v) || yf_name(f, v, "name", &out->name))
		return -1;
	v = yf_get(root, "description");
	if (v && yf_string(f, v, "description", &out->description))
		return -1;
	if (yf_need(f, root, "the patch set", "steps", &steps) || yf_seq(f, steps, "steps", 1))
		return -1;
	v = yf_get(root, "method");
	if (v && get_method(f, v, "method", &out->stacked))
		return -1;
	v = yf_get(root, "log_filter");
	if (v) {
		if (yf_seq(f, v, "log_filter", 1))
			return -1;
		out->log_filter = xcalloc(v->nr, sizeof(*out->log_filter));
		for (i = 0; i < v->nr; i++) {
			char *lf = xasprintf("log_filter[%zu]", i);
			int bad = yf_line(f, v->kids[i], lf, 256, &out->log_filter[i]);

			free(lf);
			out->nr_log_filter = i + !bad;
			if (bad)
				return -1;
			if (!*out->log_filter[i])
				return yf_err(f, v->kids[i], "log_filter[%zu] must not be empty", i);
		}
	}

	v = yf_get(root, "programs");
	if (v) {
		struct seen_names pn = { NULL, 0 };

		if (yf_seq(f, v, "programs", 1))
			return -1;
		pn.nodes = xcalloc(v->nr, sizeof(*pn.nodes));
		out->programs = xcalloc(v->nr, sizeof(*out->programs));
		for (i = 0; i < v->nr; i++) {
			const struct ynode *pg = v->kids[i], *x;
			char *w = xasprintf("programs[%zu]", i), *fld = NULL;
			int bad = yf_check_map(f, pg, w, program_keys);

			out->nr_programs = i + 1;
			if (!bad) {
				fld = yf_field(w, "name");
				bad = yf_need(f, pg, w, "name", &x) ||
				      yf_name(f, x, fld, &out->programs[i].name) ||
				      yf_seen(f, &pn, x, fld, "program");
				free(fld);
			}
			if (!bad) {
				fld = yf_field(w, "source");
				bad = yf_need(f, pg, w, "source", &x) ||
				      yf_existing(f, x, fld, 0, &out->programs[i].source);
				if (!bad && !f->sources_anywhere &&
				    (strncmp(out->programs[i].source, f->dir, strlen(f->dir)) ||
				     out->programs[i].source[strlen(f->dir)] != '/'))
					bad = yf_err(f, x, "%s '%.200s' resolves to %s, outside the "
						       "patch set's folder %s", fld, x->text,
						       out->programs[i].source, f->dir);
				free(fld);
			}
			free(w);
			if (bad) {
				free(pn.nodes);
				return -1;
			}
		}
		free(pn.nodes);
	}

	/* check_map has not run on the steps yet: count generously, map_get only reads. */
	step_names.nodes = xcalloc(steps->nr, sizeof(*step_names.nodes));
	probe_names.nodes = xcalloc(count_probes(steps) + 1, sizeof(*probe_names.nodes));
	out->steps = xcalloc(steps->nr, sizeof(*out->steps));
	out->nr_steps = steps->nr;
	for (i = 0; i < steps->nr; i++) {
		char *where = xasprintf("steps[%zu]", i);
		int r = parse_step(f, steps->kids[i], where, &step_names, &probe_names,
				   out->steps, i);

		free(where);
		if (r)
			goto out;
	}
	for (i = 0; i < steps->nr; i++)
		if (out->steps[i].stacked < 0)
			out->steps[i].stacked = out->stacked;
	/* A step builds (or loads) the patch set's own files: `../../etc` or a symlink out of
	 * its folder would copy what it names into the module cache and run its Kbuild. The
	 * scenario may allow otherwise (sources_outside_patchset: true). Checked last, so the
	 * other errors of a file come first. */
	for (i = 0; i < steps->nr && !f->sources_anywhere; i++) {
		const struct step *st = &out->steps[i];
		const char *got = st->source ? st->source : st->module;
		const struct ynode *n = yf_get(steps->kids[i], st->source ? "source" : "module");
		size_t tl = strlen(f->dir);

		if (!got)
			continue; /* a step that builds nothing */
		if (strncmp(got, f->dir, tl) || got[tl] != '/') {
			yf_err(f, n, "steps[%zu].%s '%.200s' resolves to %s, outside the patch set's "
				 "folder %s (a scenario that trusts it says sources_outside_patchset: "
				 "true)", i, st->source ? "source" : "module", n->text, got, f->dir);
			goto out;
		}
	}
	ret = 0;
out:
	free(step_names.nodes);
	free(probe_names.nodes);
	return ret;
}

int patchset_load(const char *dir, struct patchset *out, struct kerr *e)
{
	return patchset_load_opts(dir, 0, out, e);
}

int patchset_load_opts(const char *dir, int sources_anywhere, struct patchset *out,
		       struct kerr *e)
{
	char *file = path_join(dir, "patchset.yaml");
	struct ynode *root = NULL;
	struct yfile f = { file, NULL, e, sources_anywhere };
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (yf_load_tree(file, &root, e))
		goto out;
	if (!root) {
		kerr_set(e, "%s:1:1: the file is empty; a patch set needs 'name' and 'steps'", file);
		goto out;
	}
	out->dir = realpath(dir, NULL);
	if (!out->dir) {
		kerr_errno(e, "%s: cannot resolve", dir);
		goto out;
	}
	out->file = path_join(out->dir, "patchset.yaml");
	f.dir = out->dir;
	ret = parse_patchset(&f, root, out);
out:
	if (ret)
		patchset_release(out);
	yf_free(root);
	free(file);
	return ret;
}
