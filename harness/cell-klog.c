/* cell-klog.c: the kernel log: marks, reading it back, transcripts, a step's log: assertion,
 * the module lines, crashes and taint (cell.h).
 */
#define _GNU_SOURCE
#include "cell.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- kernel log ---- */

int kmsg_mark(struct cellrun *cr, const char *step, const char *text, int64_t *seq)
{
	json_object *args = json_object_new_object();
	struct proto_msg m;

	json_object_object_add(args, "text", json_object_new_string(text));
	if (cr_call(cr, step, "mark", "mark", args, agent_ms(cr), &m) != VM_OK)
		return -1;
	*seq = m.ok ? proto_get_int(m.result, "seq", -1) : -1;
	if (*seq < 0)
		cr_add(cr, step, "mark", V_ERROR, 0, "agent could not mark the kernel log: %s",
		    m.error ? m.error : "no sequence number in the reply");
	proto_msg_release(&m);
	return *seq >= 0 ? 0 : -1;
}

/* All kernel log lines after seq, joined with newlines. */
int kmsg_since(struct cellrun *cr, const char *step, int64_t seq, struct sb *out)
{
	for (int round = 0; round < 64; round++) {
		json_object *args = json_object_new_object(), *recs, *tr;
		struct proto_msg m;
		json_object_object_add(args, "after", json_object_new_int64(seq));
		if (cr_call(cr, step, "kmsg", "kmsg", args, agent_ms(cr), &m) != VM_OK)
			return -1;
		if (!m.ok || !json_object_object_get_ex(m.result, "records", &recs) ||
		    !json_object_is_type(recs, json_type_array)) {
			cr_add(cr, step, "kmsg", V_ERROR, 0, "agent could not read the kernel log: %s",
			    m.error ? m.error : "no records array");
			proto_msg_release(&m);
			return -1;
		}
		for (size_t i = 0; i < json_object_array_length(recs); i++)
			sb_addf(out, "%s\n", proto_get_str(json_object_array_get_idx(recs, i),
							   "text", ""));
		int more = json_object_object_get_ex(m.result, "truncated", &tr) &&
			   json_object_get_boolean(tr);
		int64_t last = proto_get_int(m.result, "last", seq);
		proto_msg_release(&m);
		if (!more || last <= seq)
			break;
		seq = last;
	}
	return 0;
}

/* Checks the kernel log since a mark: the livepatch transcript (expected lines in order, when
 * given) and crash signatures. */
void check_klog(struct cellrun *cr, const char *step, int64_t seq,
		const char *const *expect, size_t nr_expect)
{
	struct sb log = SB_INIT;
	struct cscan *c;
	const char *pos;
	size_t i;

	if (cr->down || kmsg_since(cr, step, seq, &log) < 0) {
		sb_release(&log);
		return;
	}
	if (nr_expect) {
		struct check_result *r;
		for (i = 0, pos = log.buf; i < nr_expect; i++) {
			const char *hit = strstr(pos, expect[i]);
			if (!hit)
				break;
			pos = hit + strlen(expect[i]);
		}
		if (i == nr_expect)
			r = cr_add(cr, step, "transcript", V_PASS, 0, "livepatch log lines as expected");
		else
			r = cr_add(cr, step, "transcript", V_FAIL, 0,
				"livepatch log is missing \"%s\"", expect[i]);
		const char *line;
		size_t len;
		for (pos = log.buf; next_line(&pos, &line, &len);)
			if (memmem(line, len, "livepatch", 9))
				check_evidence(r, "%.*s", (int)len, line);
	}
	c = cscan_new();
	scan_patch_modules(cr, c);
	cscan_feed(c, log.buf, log.len);
	cscan_finish(c);
	report_crashes(cr, step, "kernel log", c, 0);
	cscan_free(c);
	sb_release(&log);
}

/* Taint flags stay set once set: a flag that is not allowed fails the first check that sees it
 * (the phase it appeared in); later checks fail only for flags new since. */
void check_taint(struct cellrun *cr, const char *step)
{
	struct proto_msg m;
	char letters[64], bad[64], known[64];
	unsigned long t, notok, fresh;

	if (cr->down)
		return;
	if (cr_call(cr, step, "taint", "taint", NULL, agent_ms(cr), &m) != VM_OK)
		return;
	if (!m.ok || proto_get_int(m.result, "taint", -1) < 0) {
		cr_add(cr, step, "taint", V_ERROR, 0, "agent could not read the taint: %s",
		    m.error ? m.error : "no taint in the reply");
		proto_msg_release(&m);
		return;
	}
	t = (unsigned long)proto_get_int(m.result, "taint", 0);
	proto_msg_release(&m);
	notok = t & ~(unsigned long)cr->sc->taint_allow;
	fresh = notok & ~cr->taint_reported;
	taint_format(t, letters, sizeof(letters));
	taint_format(fresh, bad, sizeof(bad));
	taint_format(notok & cr->taint_reported, known, sizeof(known));
	if (fresh) {
		cr_add(cr, step, "taint", V_FAIL, 0, "taint %lu (%s) has flags not allowed: %s", t,
		    letters, bad);
		cr->taint_reported |= fresh;
		snprintf(cr->taint_step, sizeof(cr->taint_step), "%s", step);
	} else if (notok) {
		cr_add(cr, step, "taint", V_PASS, 0, "taint %lu (%s): no new flag; %s not allowed, "
		    "failed at %s", t, letters, known, cr->taint_step);
	} else {
		cr_add(cr, step, "taint", V_PASS, 0, "taint %lu (%s)", t, letters[0] ? letters : "-");
	}
}

/* Whether a kernel line belongs to the patch set's transcript: it holds one of the patch
 * set's log_filter texts (default "livepatch:" and the names of its modules, as the kernel's
 * selftests filter); klpq's own marks and the taint notices are never part of it. */
static int klog_wanted(const struct cellrun *cr, const char *line, size_t len)
{
	const struct patchset *ps = &cr->sc->patchset;
	char buf[1024];

	snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), line);
	if (!strncmp(buf, "klpq-mark: ", 11) || strstr(buf, "tainting kernel") ||
	    strstr(buf, "taints kernel"))
		return 0;
	if (ps->nr_log_filter) {
		for (size_t i = 0; i < ps->nr_log_filter; i++)
			if (strstr(buf, ps->log_filter[i]))
				return 1;
		return 0;
	}
	if (strstr(buf, "livepatch:"))
		return 1;
	for (size_t i = 0; i < ps->nr_steps; i++) {
		const char *m = step_module(cr, i);

		if (m && strstr(buf, m))
			return 1;
	}
	return 0;
}

/* A step's `log:`: the filtered kernel lines since the step began must be exactly these, in
 * this order. Lines a transition prints just after sysfs settles may lag: short ones are read
 * again for up to a second. */
void check_step_log(struct cellrun *cr, size_t i, int64_t seq)
{
	const struct step *st = &cr->sc->patchset.steps[i];
	struct sb log = SB_INIT, got = SB_INIT;
	struct check_result *r;
	const char *pos, *line;
	size_t len, n = 0, bad = (size_t)-1;

	if (!st->has_log || cr->down)
		return;
	for (int round = 0; round < 6; round++) {
		struct kerr ignore = KERR_INIT;

		sb_reset(&log);
		sb_reset(&got);
		n = 0;
		if (kmsg_since(cr, st->name, seq, &log) < 0)
			goto out;
		for (pos = log.buf; next_line(&pos, &line, &len);) {
			if (!klog_wanted(cr, line, len))
				continue;
			sb_addf(&got, "%.*s\n", (int)len, line);
			n++;
		}
		if (n >= st->nr_log)
			break;
		(void)vm_pump(cr->vm, 200, &ignore);
	}
	pos = got.buf;
	for (size_t k = 0; k < st->nr_log || k < n; k++) {
		int have = next_line(&pos, &line, &len);

		if (k >= st->nr_log || !have || len != strlen(st->log[k]) ||
		    memcmp(line, st->log[k], len)) {
			bad = k;
			break;
		}
	}
	if (bad == (size_t)-1) {
		r = cr_add(cr, st->name, "klog", V_PASS, 0, "kernel log as expected: %zu line(s)", n);
	} else {
		const char *gl = NULL;
		size_t gn = 0, k = 0;

		for (pos = got.buf; next_line(&pos, &line, &len) && k <= bad; k++)
			if (k == bad) {
				gl = line;
				gn = len;
			}
		if (bad >= st->nr_log)
			r = cr_add(cr, st->name, "klog", V_FAIL, 0, "kernel log has a line more than "
				"expected (line %zu): '%.*s'", bad + 1, (int)gn, gl);
		else if (!gl)
			r = cr_add(cr, st->name, "klog", V_FAIL, 0, "kernel log is missing line %zu: "
				"'%s'", bad + 1, st->log[bad]);
		else
			r = cr_add(cr, st->name, "klog", V_FAIL, 0, "kernel log differs at line %zu: "
				"expected '%s', got '%.*s'", bad + 1, st->log[bad], (int)gn, gl);
	}
	for (size_t k = 0; k < st->nr_log; k++)
		check_evidence(r, "expected: %s", st->log[k]);
	check_evidence_text(r, "kernel: ", got.buf, 60);
out:
	sb_release(&log);
	sb_release(&got);
}

/* After a module came (loading 1) or went: every listed patch with an object for it says so in
 * the kernel log ("applying patch 'P' to loading module 'M'", "reverting patch 'P' on unloading
 * module 'M'"), in any order between patches. -1 guest down. */
int check_module_lines(struct cellrun *cr, const char *step, const char *mod,
		       int loading, int64_t seq)
{
	struct lp_patch pp[32];
	struct sb log = SB_INIT, missing = SB_INIT;
	struct check_result *c;
	char key[80];
	size_t n, want = 0;

	if (lp_state(cr, step, "transcript", pp, ARRAY_SIZE(pp), &n) < 0)
		return -1;
	snprintf(key, sizeof(key), ",%s,", mod);
	for (size_t k = 0; k < n; k++)
		want += strstr(pp[k].objs, key) != NULL;
	if (!want)
		return 0;
	if (kmsg_since(cr, step, seq, &log) < 0) {
		sb_release(&log);
		return -1;
	}
	for (int round = 0; ; round++) {
		sb_reset(&missing);
		for (size_t k = 0; k < n; k++) {
			char line[320];

			if (!strstr(pp[k].objs, key))
				continue;
			snprintf(line, sizeof(line), loading ? "applying patch '%s' to loading module "
				 "'%s'" : "reverting patch '%s' on unloading module '%s'", pp[k].name,
				 mod);
			if (!strstr(log.buf, line))
				sb_addf(&missing, "%s%s", missing.len ? "; " : "", line);
		}
		if (!missing.len || round == 5)
			break;
		struct kerr ignore = KERR_INIT;
		(void)vm_pump(cr->vm, 200, &ignore);
		sb_reset(&log);
		if (kmsg_since(cr, step, seq, &log) < 0) {
			sb_release(&log);
			sb_release(&missing);
			return -1;
		}
	}
	if (missing.len)
		c = cr_add(cr, step, "transcript", V_FAIL, 0, "livepatch log is missing \"%s\"",
			missing.buf);
	else
		c = cr_add(cr, step, "transcript", V_PASS, 0, "%zu patch(es) %s module %s", want,
			loading ? "applied to the loading" : "reverted on the unloading", mod);
	{
		const char *pos, *line;
		size_t len;

		for (pos = log.buf; next_line(&pos, &line, &len);)
			if (memmem(line, len, "livepatch", 9))
				check_evidence(c, "%.*s", (int)len, line);
	}
	sb_release(&log);
	sb_release(&missing);
	return 0;
}
