/* report.c: JUnit XML, TAP 13, KCIDB JSON and an HTML page from a run (see report.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "checks.h"
#include "report.h"

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond Unicode, and the XML-invalid U+FFFE/U+FFFF */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || cp == 0xfffe || cp == 0xffff)
		return 0;
	return n;
}

void report_xml_escape(struct sb *out, const char *text)
{
	const unsigned char *s = (const unsigned char *)(text ? text : "");

	while (*s) {
		size_t n = utf8_len(s);

		if (!n) {
			sb_adds(out, "\xef\xbf\xbd"); /* U+FFFD for a byte that is not UTF-8 */
			s++;
			continue;
		}
		if (n == 1) {
			switch (*s) {
			case '&': sb_adds(out, "&amp;"); break;
			case '<': sb_adds(out, "&lt;"); break;
			case '>': sb_adds(out, "&gt;"); break;
			case '"': sb_adds(out, "&quot;"); break;
			case '\'': sb_adds(out, "&#39;"); break;
			case '\t': case '\n': sb_addch(out, (char)*s); break;
			default:
				if (*s < 0x20 || *s == 0x7f)
					sb_addf(out, "\\x%02x", *s); /* invalid in XML 1.0: shown, not kept */
				else
					sb_addch(out, (char)*s);
			}
		} else {
			sb_add(out, s, n);
		}
		s += n;
	}
}

static int write_sb(const char *path, struct sb *sb, struct kerr *e)
{
	int r = write_file_atomic(path, sb->buf, sb->len, e);

	sb_release(sb);
	return r;
}

/* ---- JUnit XML --------------------------------------------------------------------- */

static void attr(struct sb *o, const char *name, const char *value)
{
	sb_addf(o, " %s=\"", name);
	report_xml_escape(o, value);
	sb_addch(o, '"');
}

static void evidence_text(struct sb *o, const struct check_result *k)
{
	report_xml_escape(o, k->title);
	sb_addch(o, '\n');
	for (size_t i = 0; i < k->nr_evidence; i++) {
		report_xml_escape(o, k->evidence[i]);
		sb_addch(o, '\n');
	}
}

int report_junit(const struct run_result *r, const char *path, struct kerr *e)
{
	struct sb o = SB_INIT;
	size_t tests = 0, fail = 0, err = 0, skip = 0;

	for (size_t i = 0; i < r->nr_cells; i++)
		for (size_t k = 0; k < r->cells[i].nr_checks; k++) {
			enum verdict v = r->cells[i].checks[k].status;
			tests++;
			fail += v == V_FAIL;
			err += v == V_ERROR;
			skip += v == V_SKIP;
		}
	sb_adds(&o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
	attr(&o, "name", r->scenario_name ? r->scenario_name : "");
	sb_addf(&o, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" time=\"%.3f\">\n",
		tests, fail, err, skip, r->duration_ms / 1000.0);
	for (size_t i = 0; i < r->nr_cells; i++) {
		const struct cell_result *c = &r->cells[i];
		size_t cf = 0, ce = 0, cs = 0;
		char when[32];

		for (size_t k = 0; k < c->nr_checks; k++) {
			cf += c->checks[k].status == V_FAIL;
			ce += c->checks[k].status == V_ERROR;
			cs += c->checks[k].status == V_SKIP;
		}
		iso_time(c->started_wall_ms, when, sizeof(when));
		sb_adds(&o, "  <testsuite");
		attr(&o, "name", c->id);
		sb_addf(&o, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" "
			"time=\"%.3f\" timestamp=\"%s\">\n", c->nr_checks, cf, ce, cs,
			c->duration_ms / 1000.0, when);
		sb_adds(&o, "    <properties>\n");
		{
			const char *props[][2] = {
				{ "kernel", c->kernel }, { "release", c->release },
				{ "patchset", c->patchset }, { "accel", c->accel },
				{ "accel_reason", c->accel_reason }, { "qemu", c->qemu_version }, { "verdict", verdict_name(cell_verdict(c)) },
			};
			for (size_t p = 0; p < ARRAY_SIZE(props); p++) {
				sb_adds(&o, "      <property");
				attr(&o, "name", props[p][0]);
				attr(&o, "value", props[p][1] ? props[p][1] : "");
				sb_adds(&o, "/>\n");
			}
		}
		sb_adds(&o, "    </properties>\n");
		for (size_t k = 0; k < c->nr_checks; k++) {
			const struct check_result *ck = &c->checks[k];
			struct sb cls = SB_INIT;
			const char *doc;

			sb_addf(&cls, "%s.%s", c->id, ck->step);
			sb_adds(&o, "    <testcase");
			attr(&o, "classname", cls.buf);
			attr(&o, "name", ck->name);
			sb_addf(&o, " time=\"%.3f\"", ck->duration_ms / 1000.0);
			sb_release(&cls);
			if (ck->status == V_PASS) {
				sb_adds(&o, "/>\n");
				continue;
			}
			sb_adds(&o, ">\n");
			doc = check_def_doc(check_def_for(ck->step, ck->name));
			if (doc) {
				sb_adds(&o, "      <properties><property name=\"doc\"");
				attr(&o, "value", doc);
				sb_adds(&o, "/></properties>\n");
			}
			sb_adds(&o, "      <");
			sb_adds(&o, ck->status == V_FAIL ? "failure" : ck->status == V_ERROR ? "error"
							     : "skipped");
			attr(&o, "message", ck->title);
			if (ck->status == V_SKIP) {
				sb_adds(&o, "/>\n    </testcase>\n");
				continue;
			}
			sb_addf(&o, " type=\"%s\">", verdict_name(ck->status));
			evidence_text(&o, ck);
			sb_addf(&o, "</%s>\n    </testcase>\n", ck->status == V_FAIL ? "failure" : "error");
		}
		sb_adds(&o, "  </testsuite>\n");
	}
	sb_adds(&o, "</testsuites>\n");
	return write_sb(path, &o, e);
}

/* ---- TAP 13 ------------------------------------------------------------------------ */

/* One line of YAML-safe text: a double-quoted scalar with escapes. */
static void yaml_str(struct sb *o, const char *s)
{
	sb_addch(o, '"');
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			sb_addf(o, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			sb_addf(o, "\\x%02x", *p);
		else
			sb_addch(o, (char)*p);
	}
	sb_addch(o, '"');
}

/* A description on a TAP line: no newline, and '#' would start a directive. */
static void tap_desc(struct sb *o, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
		sb_addch(o, *p == '#' ? '_' : *p < 0x20 ? ' ' : (char)*p);
}

int report_tap(const struct run_result *r, const char *path, struct kerr *e)
{
	struct sb o = SB_INIT;
	size_t n = 0, total = 0;

	for (size_t i = 0; i < r->nr_cells; i++)
		total += r->cells[i].nr_checks;
	sb_addf(&o, "TAP version 13\n1..%zu\n", total);
	for (size_t i = 0; i < r->nr_cells; i++) {
		const struct cell_result *c = &r->cells[i];

		if (c->accel && *c->accel) {
			sb_adds(&o, "# ");
			tap_desc(&o, c->id);
			sb_addf(&o, ": accel %s: ", c->accel);
			tap_desc(&o, c->accel_reason ? c->accel_reason : "");
			sb_addch(&o, '\n');
		}
		for (size_t k = 0; k < c->nr_checks; k++) {
			const struct check_result *ck = &c->checks[k];
			int ok = ck->status == V_PASS || ck->status == V_SKIP;
			const struct check_def *def = check_def_for(ck->step, ck->name);

			sb_addf(&o, "%sok %zu - ", ok ? "" : "not ", ++n);
			tap_desc(&o, c->id);
			sb_addch(&o, ' ');
			tap_desc(&o, ck->step);
			sb_addch(&o, ' ');
			tap_desc(&o, ck->name);
			if (ck->status == V_SKIP) {
				sb_adds(&o, " # SKIP ");
				tap_desc(&o, ck->title);
			}
			sb_addch(&o, '\n');
			if (ok)
				continue;
			sb_addf(&o, "  ---\n  status: %s\n  title: ", verdict_name(ck->status));
			yaml_str(&o, ck->title);
			sb_addf(&o, "\n  kernel: ");
			yaml_str(&o, c->kernel);
			if (def) {
				sb_adds(&o, "\n  class: ");
				yaml_str(&o, def->classes);
				sb_adds(&o, "\n  doc: ");
				yaml_str(&o, check_def_doc(def));
			}
			sb_adds(&o, "\n  evidence:\n");
			for (size_t v = 0; v < ck->nr_evidence; v++) {
				sb_adds(&o, "    - ");
				yaml_str(&o, ck->evidence[v]);
				sb_addch(&o, '\n');
			}
			if (!ck->nr_evidence)
				sb_adds(&o, "    []\n");
			sb_adds(&o, "  ...\n");
		}
	}
	return write_sb(path, &o, e);
}

/* ---- KCIDB ------------------------------------------------------------------------- */

/* A KCIDB path component: letters, digits, '_' and '-' only (the '.' separates). */
static void path_part(struct sb *o, const char *s)
{
	for (const char *p = s; *p; p++)
		sb_addch(o, (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || *p == '-' ? *p : '_');
}

static const char *flavor_of(const char *release)
{
	static const char *const fl[] = { "cloud-amd64", "rt-amd64", "amd64", "cloud-arm64",
					  "rt-arm64", "arm64" };
	size_t n = strlen(release);

	for (size_t i = 0; i < ARRAY_SIZE(fl); i++) {
		size_t m = strlen(fl[i]);
		if (n > m && release[n - m - 1] == '-' && !strcmp(release + n - m, fl[i]))
			return fl[i];
	}
	return "";
}

int report_kcidb(const struct run_result *r, const char *path, struct kerr *e)
{
	json_object *o = json_object_new_object(), *ver = json_object_new_object();
	json_object *checkouts = json_object_new_array(), *builds = json_object_new_array();
	json_object *tests = json_object_new_array(), *co = json_object_new_object();
	char *checkout_id = xasprintf("klpq:%s", r->id);
	char when[32];
	const char *s;
	int ret;

	json_object_object_add(ver, "major", json_object_new_int(4));
	json_object_object_add(ver, "minor", json_object_new_int(0));
	json_object_object_add(o, "version", ver);
	iso_time(r->started_wall_ms, when, sizeof(when));
	json_object_object_add(co, "id", json_object_new_string(checkout_id));
	json_object_object_add(co, "origin", json_object_new_string("klpq"));
	json_object_object_add(co, "start_time", json_object_new_string(when));
	json_object_object_add(co, "valid", json_object_new_boolean(1));
	json_object_object_add(co, "comment", json_object_new_string(
		r->scenario_name ? r->scenario_name : ""));
	json_object_array_add(checkouts, co);
	for (size_t i = 0; i < r->nr_cells; i++) {
		const struct cell_result *c = &r->cells[i];
		json_object *b = json_object_new_object(), *bm = json_object_new_object();
		char *build_id = xasprintf("klpq:%s:%s", r->id, c->id);

		iso_time(c->started_wall_ms, when, sizeof(when));
		json_object_object_add(b, "id", json_object_new_string(build_id));
		json_object_object_add(b, "checkout_id", json_object_new_string(checkout_id));
		json_object_object_add(b, "origin", json_object_new_string("klpq"));
		json_object_object_add(b, "start_time", json_object_new_string(when));
		json_object_object_add(b, "architecture", json_object_new_string(
			strstr(c->release, "arm64") ? "arm64" : "x86_64"));
		s = flavor_of(c->release);
		if (*s)
			json_object_object_add(b, "config_name", json_object_new_string(s));
		json_object_object_add(b, "valid", json_object_new_boolean(1));
		json_object_object_add(b, "comment", json_object_new_string(c->kernel));
		json_object_object_add(bm, "release", json_object_new_string(c->release));
		json_object_object_add(bm, "patchset", json_object_new_string(c->patchset));
		json_object_object_add(bm, "cell", json_object_new_string(c->id));
		json_object_object_add(b, "misc", bm);
		json_object_array_add(builds, b);
		for (size_t k = 0; k < c->nr_checks; k++) {
			const struct check_result *ck = &c->checks[k];
			json_object *t = json_object_new_object(), *tm = json_object_new_object();
			json_object *env = json_object_new_object(), *ev = json_object_new_array();
			struct sb tp = SB_INIT;
			char *test_id = xasprintf("klpq:%s:%s:%zu", r->id, c->id, k + 1);
			const char *doc;

			sb_adds(&tp, "klpq.");
			path_part(&tp, c->patchset);
			sb_addch(&tp, '.');
			path_part(&tp, ck->step);
			sb_addch(&tp, '.');
			path_part(&tp, ck->name);
			json_object_object_add(t, "id", json_object_new_string(test_id));
			json_object_object_add(t, "build_id", json_object_new_string(build_id));
			json_object_object_add(t, "origin", json_object_new_string("klpq"));
			json_object_object_add(t, "path", json_object_new_string(tp.buf));
			json_object_object_add(t, "status", json_object_new_string(
				verdict_name(ck->status)));
			json_object_object_add(t, "start_time", json_object_new_string(when));
			json_object_object_add(t, "duration", json_object_new_double(
				ck->duration_ms / 1000.0));
			{
				char *cm = *c->accel ? xasprintf("accel %s: %s", c->accel,
								 c->accel_reason) : xstrdup("qemu");
				json_object_object_add(env, "comment", json_object_new_string(cm));
				free(cm);
			}
			json_object_object_add(t, "environment", env);
			json_object_object_add(t, "comment", json_object_new_string(ck->title));
			for (size_t v = 0; v < ck->nr_evidence; v++)
				json_object_array_add(ev, json_object_new_string(ck->evidence[v]));
			json_object_object_add(tm, "title", json_object_new_string(ck->title));
			json_object_object_add(tm, "evidence", ev);
			if ((doc = check_def_doc(check_def_for(ck->step, ck->name))))
				json_object_object_add(tm, "doc", json_object_new_string(doc));
			json_object_object_add(t, "misc", tm);
			json_object_array_add(tests, t);
			sb_release(&tp);
			free(test_id);
		}
		free(build_id);
	}
	json_object_object_add(o, "checkouts", checkouts);
	json_object_object_add(o, "builds", builds);
	json_object_object_add(o, "tests", tests);
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	ret = write_file_atomic(path, s, strlen(s), e);
	json_object_put(o);
	free(checkout_id);
	return ret;
}

/* ---- HTML -------------------------------------------------------------------------- */

int report_html(const struct run_result *r, const char *path, struct kerr *e)
{
	struct sb o = SB_INIT;

	sb_adds(&o, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>klpq ");
	report_xml_escape(&o, r->id);
	sb_adds(&o, "</title>\n<style>body{font-family:sans-serif;margin:1em}table{border-collapse:"
		    "collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;"
		    "vertical-align:top}.PASS{background:#dfd}.FAIL{background:#fbb}.ERROR{"
		    "background:#fd9}.SKIP{background:#eee}pre{margin:0;white-space:pre-wrap}"
		    "</style></head><body>\n<h1>klpq run ");
	report_xml_escape(&o, r->id);
	sb_adds(&o, "</h1>\n<p>Scenario ");
	report_xml_escape(&o, r->scenario ? r->scenario : "");
	sb_addf(&o, "; %zu cell(s); %.1f s; exit code %d%s</p>\n<table><tr><th>cell</th>"
		"<th>kernel</th><th>patch set</th><th>accel</th><th>verdict</th><th>time</th></tr>\n",
		r->nr_cells, r->duration_ms / 1000.0, run_exit_code(r),
		r->interrupted ? " (interrupted)" : "");
	for (size_t i = 0; i < r->nr_cells; i++) {
		const struct cell_result *c = &r->cells[i];
		const char *v = verdict_name(cell_verdict(c));
		char *acc = *c->accel_reason ? xasprintf("%s (%s)", c->accel, c->accel_reason)
					     : xstrdup(c->accel);
		const char *cols[] = { c->id, c->kernel, c->patchset, acc };

		sb_adds(&o, "<tr>");
		for (size_t k = 0; k < ARRAY_SIZE(cols); k++) {
			sb_adds(&o, k == 0 ? "<td><a href=\"#c" : "<td>");
			if (k == 0) {
				sb_addf(&o, "%zu\">", i);
				report_xml_escape(&o, cols[k]);
				sb_adds(&o, "</a></td>");
				continue;
			}
			report_xml_escape(&o, cols[k]);
			sb_adds(&o, "</td>");
		}
		sb_addf(&o, "<td class=\"%s\">%s</td><td>%.1f s</td></tr>\n", v, v,
			c->duration_ms / 1000.0);
		free(acc);
	}
	sb_adds(&o, "</table>\n");
	for (size_t i = 0; i < r->nr_cells; i++) {
		const struct cell_result *c = &r->cells[i];

		sb_addf(&o, "<h2 id=\"c%zu\">", i);
		report_xml_escape(&o, c->id);
		sb_adds(&o, "</h2>\n<table><tr><th>step</th><th>check</th><th>result</th><th>time</th>"
			    "<th>title and evidence</th></tr>\n");
		for (size_t k = 0; k < c->nr_checks; k++) {
			const struct check_result *ck = &c->checks[k];
			const char *v = verdict_name(ck->status);
			const struct check_def *def = check_def_for(ck->step, ck->name);

			sb_adds(&o, "<tr><td>");
			report_xml_escape(&o, ck->step);
			sb_adds(&o, "</td><td");
			if (def) {
				/* what the check is, from the table of checks, on hover */
				struct sb tip = SB_INIT;

				sb_addf(&tip, "PASS when %s. %s: %s. (%s)", def->pass, def->classes,
					def->bad, check_def_doc(def));
				attr(&o, "title", tip.buf);
				sb_release(&tip);
			}
			sb_adds(&o, ">");
			report_xml_escape(&o, ck->name);
			sb_addf(&o, "</td><td class=\"%s\">%s</td><td>%.1f s</td><td>", v, v,
				ck->duration_ms / 1000.0);
			if (ck->nr_evidence) {
				sb_adds(&o, "<details><summary>");
				report_xml_escape(&o, ck->title);
				sb_adds(&o, "</summary><pre>");
				for (size_t v2 = 0; v2 < ck->nr_evidence; v2++) {
					report_xml_escape(&o, ck->evidence[v2]);
					sb_addch(&o, '\n');
				}
				sb_adds(&o, "</pre></details>");
			} else {
				report_xml_escape(&o, ck->title);
			}
			sb_adds(&o, "</td></tr>\n");
		}
		sb_adds(&o, "</table>\n");
	}
	sb_adds(&o, "</body></html>\n");
	return write_sb(path, &o, e);
}

int report_write_all(const struct run_result *r, int tap, struct kerr *e)
{
	static const struct {
		const char *file;
		int (*fn)(const struct run_result *, const char *, struct kerr *);
	} w[] = {
		{ "junit.xml", report_junit }, { "kcidb.json", report_kcidb },
		{ "report.html", report_html }, { "results.tap", report_tap },
	};
	int ret = 0;

	for (size_t i = 0; i < ARRAY_SIZE(w); i++) {
		char *p;

		if (w[i].fn == report_tap && !tap)
			continue;
		p = path_join(r->dir, w[i].file);
		if (w[i].fn(r, p, e) < 0)
			ret = -1;
		free(p);
	}
	return ret;
}
