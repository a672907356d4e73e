/* results.c: see results.h. */
#define _GNU_SOURCE
#include "checks.h"
#include "perf.h"
#include "results.h"
#include "proto.h"

#include <stdarg.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_EVIDENCE 400

const char *verdict_name(enum verdict v)
{
	switch (v) {
	case V_PASS: return "PASS";
	case V_FAIL: return "FAIL";
	case V_ERROR: return "ERROR";
	case V_SKIP: return "SKIP";
	}
	return "?";
}

enum verdict cell_verdict(const struct cell_result *c)
{
	enum verdict v = V_PASS;

	for (size_t i = 0; i < c->nr_checks; i++)
		if (c->checks[i].status == V_FAIL)
			return V_FAIL;
		else if (c->checks[i].status == V_ERROR)
			v = V_ERROR;
	if (!c->finished && v == V_PASS)
		v = V_ERROR;
	return v;
}

void cell_init(struct cell_result *c, const char *id, const char *dir, const char *kernel,
	       const char *patchset)
{
	memset(c, 0, sizeof(*c));
	c->id = xstrdup(id);
	c->dir = xstrdup(dir);
	c->kernel = xstrdup(kernel);
	c->release = xstrdup("");
	c->patchset = xstrdup(patchset);
	c->accel = xstrdup("");
	c->accel_reason = xstrdup("");
	c->qemu_version = xstrdup("");
	c->metrics = json_object_new_object();
	c->started_wall_ms = wall_ms();
}

void cell_release(struct cell_result *c)
{
	for (size_t i = 0; i < c->nr_checks; i++) {
		struct check_result *r = &c->checks[i];
		free(r->step);
		free(r->name);
		free(r->title);
		for (size_t j = 0; j < r->nr_evidence; j++)
			free(r->evidence[j]);
		free(r->evidence);
	}
	free(c->checks);
	free(c->id);
	free(c->dir);
	free(c->kernel);
	free(c->release);
	free(c->patchset);
	free(c->accel);
	free(c->accel_reason);
	free(c->no_retry);
	free(c->host);
	free(c->host_fault);
	free(c->patchset_sha256);
	free(c->kernel_image);
	free(c->kernel_sha256);
	free(c->qemu_version);
	json_object_put(c->metrics);
	json_object_put(c->postmortem);
	memset(c, 0, sizeof(*c));
}

struct check_result *cell_add(struct cell_result *c, const char *step, const char *name,
			      enum verdict v, uint64_t duration_ms, const char *fmt, ...)
{
	struct check_result *r;
	struct sb t = SB_INIT;
	va_list ap;

	c->checks = xrealloc(c->checks, (c->nr_checks + 1) * sizeof(*c->checks));
	r = &c->checks[c->nr_checks++];
	memset(r, 0, sizeof(*r));
	r->step = xstrdup(step);
	r->name = xstrdup(name);
	r->status = v;
	r->duration_ms = duration_ms;
	va_start(ap, fmt);
	sb_vaddf(&t, fmt, ap);
	va_end(ap);
	r->title = sb_detach(&t, NULL);
	return r;
}

void check_evidence(struct check_result *r, const char *fmt, ...)
{
	struct sb t = SB_INIT;
	va_list ap;

	if (!r || r->nr_evidence >= MAX_EVIDENCE)
		return;
	va_start(ap, fmt);
	sb_vaddf(&t, fmt, ap);
	va_end(ap);
	r->evidence = xrealloc(r->evidence, (r->nr_evidence + 1) * sizeof(*r->evidence));
	r->evidence[r->nr_evidence++] = sb_detach(&t, NULL);
}

void check_evidence_text(struct check_result *r, const char *prefix, const char *text,
			 size_t max_lines)
{
	size_t total = 0, skip;
	const char *p;

	for (p = text; *p; p++)
		if (*p == '\n')
			total++;
	if (p > text && p[-1] != '\n')
		total++;
	skip = total > max_lines ? total - max_lines : 0;
	if (skip)
		check_evidence(r, "%s... (%zu earlier lines left out)", prefix, skip);
	const char *line;
	size_t len;
	for (p = text; next_line(&p, &line, &len);) {
		if (skip)
			skip--;
		else
			check_evidence(r, "%s%.*s", prefix, (int)len, line);
	}
}

static json_object *jstr(const char *s)
{
	return json_object_new_string(s ? s : "");
}

void iso_time(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_object *cell_to_json(const struct cell_result *c)
{
	json_object *o = json_object_new_object(), *checks = json_object_new_array();
	char when[32];

	iso_time(c->started_wall_ms, when, sizeof(when));
	json_object_object_add(o, "format", jstr("klpq-cell-1"));
	json_object_object_add(o, "cell", jstr(c->id));
	json_object_object_add(o, "kernel", jstr(c->kernel));
	json_object_object_add(o, "release", jstr(c->release));
	json_object_object_add(o, "patchset", jstr(c->patchset));
	json_object_object_add(o, "accel", jstr(c->accel));
	json_object_object_add(o, "accel_reason", jstr(c->accel_reason));
	if (c->no_retry)
		json_object_object_add(o, "no_retry", jstr(c->no_retry));
	if (c->host)
		json_object_object_add(o, "host", jstr(c->host));
	if (c->host_fault)
		json_object_object_add(o, "host_fault", jstr(c->host_fault));
	if (c->patchset_sha256)
		json_object_object_add(o, "patchset_sha256", jstr(c->patchset_sha256));
	if (c->kernel_image) {
		json_object_object_add(o, "kernel_image", jstr(c->kernel_image));
		json_object_object_add(o, "kernel_sha256", jstr(c->kernel_sha256));
	}
	json_object_object_add(o, "qemu", jstr(c->qemu_version));
	if (c->postmortem)
		json_object_object_add(o, "postmortem", json_object_get(c->postmortem));
	json_object_object_add(o, "started", jstr(when));
	json_object_object_add(o, "started_ms", json_object_new_int64((int64_t)c->started_wall_ms));
	json_object_object_add(o, "duration_ms", json_object_new_int64((int64_t)c->duration_ms));
	json_object_object_add(o, "finished", json_object_new_boolean(c->finished));
	json_object_object_add(o, "attempts", json_object_new_int(c->attempts ? c->attempts : 1));
	json_object_object_add(o, "verdict", jstr(verdict_name(cell_verdict(c))));
	json_object_object_add(o, "metrics", json_object_get(c->metrics));
	for (size_t i = 0; i < c->nr_checks; i++) {
		const struct check_result *r = &c->checks[i];
		json_object *j = json_object_new_object(), *ev = json_object_new_array();
		const char *doc;

		json_object_object_add(j, "step", jstr(r->step));
		json_object_object_add(j, "check", jstr(r->name));
		json_object_object_add(j, "status", jstr(verdict_name(r->status)));
		json_object_object_add(j, "title", jstr(r->title));
		json_object_object_add(j, "duration_ms", json_object_new_int64((int64_t)r->duration_ms));
		for (size_t k = 0; k < r->nr_evidence; k++)
			json_object_array_add(ev, jstr(r->evidence[k]));
		json_object_object_add(j, "evidence", ev);
		doc = check_def_doc(check_def_for(r->step, r->name));
		if (doc)
			json_object_object_add(j, "doc", jstr(doc));
		json_object_array_add(checks, j);
	}
	json_object_object_add(o, "checks", checks);
	return o;
}

static int write_json(const char *dir, json_object *o, struct kerr *e)
{
	char *path = path_join(dir, "results.json");
	size_t len;
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	struct sb buf = SB_INIT;
	int ret;

	sb_add(&buf, s, len);
	sb_addch(&buf, '\n');
	ret = write_file_atomic(path, buf.buf, buf.len, e);
	sb_release(&buf);
	free(path);
	return ret;
}

static enum verdict verdict_parse(const char *s)
{
	if (!strcmp(s, "PASS"))
		return V_PASS;
	if (!strcmp(s, "SKIP"))
		return V_SKIP;
	if (!strcmp(s, "FAIL"))
		return V_FAIL;
	return V_ERROR;
}

int cell_read(struct cell_result *c, const char *id, const char *dir, struct kerr *e)
{
	char *path = path_join(dir, "results.json");
	json_object *o = json_object_from_file(path), *checks, *v;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    strcmp(proto_get_str(o, "format", ""), "klpq-cell-1")) {
		kerr_set(e, "%s: not a klpq cell result", path);
		json_object_put(o);
		free(path);
		return -1;
	}
	free(path);
	cell_init(c, id, dir, proto_get_str(o, "kernel", ""), proto_get_str(o, "patchset", ""));
	free(c->release);
	c->release = xstrdup(proto_get_str(o, "release", ""));
	free(c->accel);
	c->accel = xstrdup(proto_get_str(o, "accel", ""));
	free(c->accel_reason);
	c->accel_reason = xstrdup(proto_get_str(o, "accel_reason", ""));
	if (*proto_get_str(o, "no_retry", ""))
		c->no_retry = xstrdup(proto_get_str(o, "no_retry", ""));
	if (*proto_get_str(o, "host", ""))
		c->host = xstrdup(proto_get_str(o, "host", ""));
	if (*proto_get_str(o, "host_fault", ""))
		c->host_fault = xstrdup(proto_get_str(o, "host_fault", ""));
	{
		json_object *pm;

		if (json_object_object_get_ex(o, "postmortem", &pm) &&
		    json_object_is_type(pm, json_type_object))
			c->postmortem = json_object_get(pm);
	}
	if (*proto_get_str(o, "patchset_sha256", ""))
		c->patchset_sha256 = xstrdup(proto_get_str(o, "patchset_sha256", ""));
	if (*proto_get_str(o, "kernel_image", "")) {
		c->kernel_image = xstrdup(proto_get_str(o, "kernel_image", ""));
		c->kernel_sha256 = xstrdup(proto_get_str(o, "kernel_sha256", ""));
	}
	free(c->qemu_version);
	c->qemu_version = xstrdup(proto_get_str(o, "qemu", ""));
	c->duration_ms = (uint64_t)proto_get_int(o, "duration_ms", 0);
	c->started_wall_ms = (uint64_t)proto_get_int(o, "started_ms", (int64_t)c->started_wall_ms);
	c->attempts = (int)proto_get_int(o, "attempts", 1);
	c->finished = json_object_object_get_ex(o, "finished", &v) && json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "metrics", &v) && json_object_is_type(v, json_type_object)) {
		json_object_put(c->metrics);
		c->metrics = json_object_get(v);
	}
	if (json_object_object_get_ex(o, "checks", &checks) &&
	    json_object_is_type(checks, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(checks); i++) {
			json_object *k = json_object_array_get_idx(checks, i), *ev;
			struct check_result *r = cell_add(c, proto_get_str(k, "step", ""), proto_get_str(k, "check", ""),
							  verdict_parse(proto_get_str(k, "status", "")),
							  (uint64_t)proto_get_int(k, "duration_ms", 0), "%s",
							  proto_get_str(k, "title", ""));
			if (json_object_object_get_ex(k, "evidence", &ev) &&
			    json_object_is_type(ev, json_type_array))
				for (size_t j = 0; j < json_object_array_length(ev); j++)
					check_evidence(r, "%s", json_object_get_string(
						       json_object_array_get_idx(ev, j)));
		}
	}
	json_object_put(o);
	return 0;
}

int cell_write(const struct cell_result *c, struct kerr *e)
{
	json_object *o = cell_to_json(c);
	int ret = write_json(c->dir, o, e);

	json_object_put(o);
	return ret;
}

void run_release(struct run_result *r)
{
	for (size_t i = 0; i < r->nr_cells; i++)
		cell_release(&r->cells[i]);
	free(r->cells);
	free(r->id);
	free(r->dir);
	free(r->scenario);
	free(r->scenario_name);
	free(r->error);
	free(r->shard);
	for (size_t i = 0; i < r->nr_merged_from; i++)
		free(r->merged_from[i]);
	free(r->merged_from);
	memset(r, 0, sizeof(*r));
}

int run_exit_code(const struct run_result *r)
{
	int fail = 0, error = r->interrupted || r->error || r->nr_cells == 0;

	for (size_t i = 0; i < r->nr_cells; i++) {
		enum verdict v = cell_verdict(&r->cells[i]);
		if (v == V_FAIL)
			fail = 1;
		else if (v == V_ERROR)
			error = 1;
	}
	if (r->interrupted || r->error || r->unfinished)
		return 2; /* incomplete (stopped, or results lost), whatever it found so far */
	if (fail)
		return 1;
	return error ? 2 : 0;
}

int run_write(const struct run_result *r, struct kerr *e)
{
	json_object *o = json_object_new_object(), *cells = json_object_new_array();
	int counts[4] = { 0 };
	char when[32];
	int ret;

	iso_time(r->started_wall_ms, when, sizeof(when));
	json_object_object_add(o, "format", jstr("klpq-run-1"));
	json_object_object_add(o, "run", jstr(r->id));
	json_object_object_add(o, "scenario", jstr(r->scenario));
	json_object_object_add(o, "scenario_name", jstr(r->scenario_name));
	json_object_object_add(o, "started", jstr(when));
	json_object_object_add(o, "started_ms", json_object_new_int64((int64_t)r->started_wall_ms));
	json_object_object_add(o, "duration_ms", json_object_new_int64((int64_t)r->duration_ms));
	/* a summary written while the run goes on says so: one a SIGKILL cut short stays that */
	json_object_object_add(o, "finished", json_object_new_boolean(!r->unfinished));
	json_object_object_add(o, "interrupted", json_object_new_boolean(r->interrupted ||
									  r->unfinished));
	if (r->shard)
		json_object_object_add(o, "shard", jstr(r->shard));
	json_object_object_add(o, "planned_cells", json_object_new_int64((int64_t)r->planned));
	if (r->merged_from) {
		json_object *m = json_object_new_array();
		for (size_t i = 0; i < r->nr_merged_from; i++)
			json_object_array_add(m, jstr(r->merged_from[i]));
		json_object_object_add(o, "merged_from", m);
	}
	if (r->error)
		json_object_object_add(o, "error", jstr(r->error));
	for (size_t i = 0; i < r->nr_cells; i++) {
		const struct cell_result *c = &r->cells[i];
		json_object *j = json_object_new_object();
		enum verdict v = cell_verdict(c);
		counts[v]++;
		json_object_object_add(j, "cell", jstr(c->id));
		json_object_object_add(j, "kernel", jstr(c->kernel));
		json_object_object_add(j, "patchset", jstr(c->patchset));
		json_object_object_add(j, "accel", jstr(c->accel));
		json_object_object_add(j, "accel_reason", jstr(c->accel_reason));
		json_object_object_add(j, "verdict", jstr(verdict_name(v)));
		if (c->host)
			json_object_object_add(j, "host", jstr(c->host));
		json_object_object_add(j, "duration_ms", json_object_new_int64((int64_t)c->duration_ms));
		char *rel = xasprintf("%s/results.json", c->id);
		json_object_object_add(j, "results", jstr(rel));
		free(rel);
		json_object_array_add(cells, j);
	}
	json_object_object_add(o, "cells", cells);
	{
		json_object *t = json_object_new_object();
		for (int v = 0; v < 4; v++)
			json_object_object_add(t, verdict_name((enum verdict)v),
					       json_object_new_int(counts[v]));
		json_object_object_add(o, "totals", t);
	}
	json_object_object_add(o, "exit_code", json_object_new_int(run_exit_code(r)));
	{
		/* klpq's own cost, QEMU excluded: what the harness adds to a run */
		struct rusage ru;
		json_object *h = json_object_new_object();
		int64_t user, sys, peak;

		/* this process, plus each cell's own process (its "harness" metrics) */
		getrusage(RUSAGE_SELF, &ru);
		user = (int64_t)ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000;
		sys = (int64_t)ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000;
		peak = ru.ru_maxrss;
		for (size_t i = 0; i < r->nr_cells; i++) {
			json_object *ch;

			if (!json_object_object_get_ex(r->cells[i].metrics, "harness", &ch))
				continue;
			user += proto_get_int(ch, "cpu_user_ms", 0);
			sys += proto_get_int(ch, "cpu_sys_ms", 0);
			if (proto_get_int(ch, "peak_rss_kb", 0) > peak)
				peak = proto_get_int(ch, "peak_rss_kb", 0);
		}
		json_object_object_add(h, "cpu_user_ms", json_object_new_int64(user));
		json_object_object_add(h, "cpu_sys_ms", json_object_new_int64(sys));
		json_object_object_add(h, "peak_rss_kb", json_object_new_int64(peak));
		json_object_object_add(o, "harness", h);
	}
	ret = write_json(r->dir, o, e);
	json_object_put(o);
	return ret;
}

static const char *vcolor(enum verdict v, int color)
{
	if (!color)
		return "";
	switch (v) {
	case V_PASS: return "\033[32m";
	case V_FAIL: return "\033[31;1m";
	case V_ERROR: return "\033[35;1m";
	case V_SKIP: return "\033[33m";
	}
	return "";
}

/* Under load: the headline metric of each workload, unpatched -> patched. */
static void print_headlines(const struct cell_result *c, FILE *out)
{
	json_object *perf, *metrics, *m;
	const struct perf_metric *pm;
	size_t n;

	if (!json_object_object_get_ex(c->metrics, "perf", &perf) ||
	    !json_object_object_get_ex(perf, "metrics", &metrics))
		return;
	pm = perf_metrics(&n);
	for (size_t i = 0; i < n; i++) {
		if (!pm[i].headline || !json_object_object_get_ex(metrics, pm[i].name, &m))
			continue;
		if (!json_object_object_get_ex(m, "a", NULL)) {
			fprintf(out, "perf %-26s %s\n", pm[i].name, proto_get_str(m, "verdict", "?"));
			continue;
		}
		fprintf(out, "perf %-26s %.4g -> %.4g %s (%+.1f%%, noise +-%.1f%%, %d pair(s)): "
			"%s\n", pm[i].name,
			json_object_get_double(json_object_object_get(m, "a")),
			json_object_get_double(json_object_object_get(m, "b")), pm[i].unit,
			json_object_get_double(json_object_object_get(m, "change_pct")),
			json_object_get_double(json_object_object_get(m, "noise_pct")),
			(int)proto_get_int(m, "pairs", 0), proto_get_str(m, "verdict", "?"));
	}
}

void run_print_table(const struct run_result *r, FILE *out, int color)
{
	const char *reset = color ? "\033[0m" : "";

	for (size_t i = 0; i < r->nr_cells; i++) {
		const struct cell_result *c = &r->cells[i];
		enum verdict cv = cell_verdict(c);
		fprintf(out, "\n%-24s %-10s %-26s %-6s %8s  %s\n", "KERNEL", "STEP", "CHECK",
			"RESULT", "TIME", "TITLE");
		for (size_t k = 0; k < c->nr_checks; k++) {
			const struct check_result *ck = &c->checks[k];
			fprintf(out, "%-24.24s %-10.10s %-26.26s %s%-6s%s %7.1fs  %s\n", c->kernel,
				ck->step, ck->name, vcolor(ck->status, color),
				verdict_name(ck->status), reset, ck->duration_ms / 1000.0, ck->title);
		}
		print_headlines(c, out);
		fprintf(out, "cell %s: %s%s%s in %.1f s (accel %s, results in %s)\n", c->id,
			vcolor(cv, color), verdict_name(cv), reset, c->duration_ms / 1000.0,
			c->accel[0] ? c->accel : "-", c->dir);
		if (c->accel[0] && c->accel_reason[0])
			fprintf(out, "accel %s: %s\n", c->accel, c->accel_reason);
		if (cv == V_ERROR && c->no_retry)
			fprintf(out, "not retried: %s\n", c->no_retry);
	}
	fprintf(out, "run %s: exit code %d, results in %s/results.json\n", r->id,
		run_exit_code(r), r->dir);
}

int run_read(struct run_result *r, const char *dir, struct kerr *e)
{
	char *path = path_join(dir, "results.json");
	json_object *o = json_object_from_file(path), *cells, *v;
	const char *slash;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	if (!o || strcmp(proto_get_str(o, "format", ""), "klpq-run-1")) {
		kerr_set(e, "%s: not a klpq run summary", path);
		goto out;
	}
	r->dir = xstrdup(dir);
	while (strlen(r->dir) > 1 && r->dir[strlen(r->dir) - 1] == '/')
		r->dir[strlen(r->dir) - 1] = '\0';
	slash = strrchr(r->dir, '/');
	r->id = xstrdup(proto_get_str(o, "run", slash ? slash + 1 : r->dir));
	r->scenario = xstrdup(proto_get_str(o, "scenario", ""));
	r->scenario_name = xstrdup(proto_get_str(o, "scenario_name", ""));
	r->duration_ms = (uint64_t)proto_get_int(o, "duration_ms", 0);
	r->started_wall_ms = (uint64_t)proto_get_int(o, "started_ms", 0);
	r->interrupted = proto_get_bool(o, "interrupted", 0);
	r->unfinished = !proto_get_bool(o, "finished", 1);
	r->planned = (size_t)proto_get_int(o, "planned_cells", 0);
	if (*proto_get_str(o, "shard", ""))
		r->shard = xstrdup(proto_get_str(o, "shard", ""));
	if (*proto_get_str(o, "error", ""))
		r->error = xstrdup(proto_get_str(o, "error", ""));
	if (json_object_object_get_ex(o, "cells", &cells) &&
	    json_object_is_type(cells, json_type_array)) {
		size_t n = json_object_array_length(cells);

		r->cells = xcalloc(n + 1, sizeof(*r->cells));
		for (size_t i = 0; i < n; i++) {
			const char *id = proto_get_str(json_object_array_get_idx(cells, i), "cell", "");
			char *cdir;

			if (!*id || !name_is_safe(id)) {
				kerr_set(e, "%s: cell %zu has no usable name", path, i + 1);
				goto out;
			}
			cdir = path_join(r->dir, id);
			if (cell_read(&r->cells[r->nr_cells], id, cdir, e) < 0) {
				free(cdir);
				goto out;
			}
			free(cdir);
			r->nr_cells++;
		}
	}
	(void)v;
	ret = 0;
out:
	json_object_put(o);
	free(path);
	if (ret)
		run_release(r);
	return ret;
}
