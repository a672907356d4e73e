/* cell-guest.c: recording checks, crash reports from the console and kernel log, whose fault a
 * dead or silent guest is, the agent call (cell.h).
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

void cr_progress(struct cellrun *cr, const char *fmt, ...)
{
	va_list ap;

	if (!cr->rn->progress)
		return;
	fprintf(cr->rn->progress, "[%s] ", cr->cell->id);
	va_start(ap, fmt);
	vfprintf(cr->rn->progress, fmt, ap);
	va_end(ap);
	fputc('\n', cr->rn->progress);
	fflush(cr->rn->progress);
}

struct check_result *cr_add(struct cellrun *cr, const char *step, const char *name,
			    enum verdict v, uint64_t ms, const char *fmt, ...)
{
	struct sb t = SB_INIT;
	struct check_result *r;
	va_list ap;

	va_start(ap, fmt);
	sb_vaddf(&t, fmt, ap);
	va_end(ap);
	/* A title is one line; a multi-line message (a command's output) continues as evidence. */
	char *nl = strchr(t.buf, '\n');
	if (nl)
		*nl = '\0';
	r = cell_add(cr->cell, step, name, v, ms, "%s", t.buf);
	if (nl)
		check_evidence_text(r, "", nl + 1, 60);
	cr_progress(cr, "%-10s %-24s %-5s %s", step, name, verdict_name(v), t.buf);
	sb_release(&t);
	return r;
}

void on_console(void *ctx, const char *buf, size_t len)
{
	struct cellrun *cr = ctx;
	cr->console_bytes += len;
	cscan_feed(cr->console, buf, len);
}

static void console_tail(struct cellrun *cr, struct check_result *r)
{
	struct sb log = SB_INIT;
	struct kerr ignore = KERR_INIT;

	if (!cr->console_path || read_file(cr->console_path, &log, 0, &ignore) < 0) {
		sb_release(&log);
		return;
	}
	if (cscan_in_capture(cr->console)) {
		/* the tested kernel's last lines are the ones before the capture kernel's banner */
		char *b = log.buf;

		for (uint64_t n = 1; b && n < cscan_capture_line(cr->console); n++)
			if ((b = strchr(b, '\n')))
				b++;
		if (b)
			*b = '\0';
		check_evidence(r, "last console lines before the kdump capture boot (%s):",
			       cr->console_path);
	} else {
		check_evidence(r, "last console lines (%s):", cr->console_path);
	}
	check_evidence_text(r, "  ", log.buf, CONSOLE_TAIL_LINES);
	sb_release(&log);
}

static int title_seen(struct cellrun *cr, const char *title)
{
	for (size_t i = 0; i < cr->nr_titles; i++)
		if (!strcmp(cr->titles[i], title))
			return 1;
	cr->titles = xrealloc(cr->titles, (cr->nr_titles + 1) * sizeof(*cr->titles));
	cr->titles[cr->nr_titles++] = xstrdup(title);
	return 0;
}

void report_crashes(struct cellrun *cr, const char *step, const char *source,
		    struct cscan *c, size_t from)
{
	for (size_t i = from; i < cscan_nr_reports(c); i++) {
		const struct crash_report *rep = cscan_report(c, i);
		if (title_seen(cr, rep->title))
			continue;
		struct check_result *r = cr_add(cr, step, "crash", V_FAIL, 0, "%s", rep->title);
		check_evidence(r, "%s, line %llu, signature %s", source,
			       (unsigned long long)rep->line_no, crash_kind_name(rep->kind));
		for (size_t j = 0; j < rep->nr_evidence; j++)
			check_evidence(r, "  %s", rep->evidence[j]);
	}
}

/* Tells a scanner the cell's livepatch modules: a frame in one names a crash title first. */
void scan_patch_modules(struct cellrun *cr, struct cscan *c)
{
	const struct patchset *ps = &cr->sc->patchset;

	for (size_t i = 0; cr->mods && i < ps->nr_steps; i++)
		if (ps->steps[i].kind == STEP_PATCH && cr->mods[i].name)
			cscan_livepatch_module(c, cr->mods[i].name);
}

void console_crashes(struct cellrun *cr, const char *step)
{
	report_crashes(cr, step, "console", cr->console, cr->console_seen);
	cr->console_seen = cscan_nr_reports(cr->console);
}

/* The guest failed to answer: decide whose fault it is, record it, and stop using the guest. */
/* A guest that stopped answering is still running: keep what can be had before it is
 * killed (QMP status and registers into hang-dump.txt, SysRq dumps into console.log). */
static void hang_dump(struct cellrun *cr, struct check_result *r)
{
	struct sb out = SB_INIT;
	struct kerr e = KERR_INIT;
	char *path = path_join(cr->cell->dir, "hang-dump.txt");

	cr_progress(cr, "guest hung: collecting QMP status, registers and SysRq dumps");
	cscan_diagnostics(cr->console); /* the dumps' stacks are not crashes */
	if (vm_dump(cr->vm, &out, &e) < 0)
		sb_addf(&out, "(dump incomplete: %s)\n", e.msg);
	kerr_clear(&e);
	if (write_file_atomic(path, out.buf, out.len, &e) == 0)
		check_evidence(r, "QMP status and registers of every CPU in hang-dump.txt; SysRq t/w/l "
			       "output in console.log");
	{
		const char *st = strstr(out.buf, "\"status\": \"");
		if (st)
			check_evidence(r, "QMP: %.40s", st);
	}
	sb_release(&out);
	free(path);
}

/* guest.kdump: after a panic or an oops (kdump-tools sets panic_on_oops) the capture kernel
 * boots in the same VM, saves the dmesg and a vmcore to the disk and reboots, which ends QEMU
 * (-no-reboot). Killing the VM first would lose the dump: wait for that end, up to
 * KDUMP_WAIT_MS. Returns the VM's state then; cr->kdump_wait says what was seen. */
static enum vm_wait_result await_capture(struct cellrun *cr, enum vm_wait_result w)
{
	uint64_t t0 = now_ms();
	struct kerr e = KERR_INIT;
	int ended = w == VM_GONE || vm_exit_reason(cr->vm);

	if (!cr->sc->guest.kdump || !cscan_fatal(cr->console))
		return w;
	if (!ended) {
		cr_progress(cr, "kernel crash: waiting up to %d s for the kdump capture boot to end "
			    "the VM", KDUMP_WAIT_MS / 1000);
		while (!ended && now_ms() - t0 < KDUMP_WAIT_MS) {
			enum vm_wait_result p = vm_pump(cr->vm, POLL_MS * 4, &e);

			kerr_clear(&e);
			if (p == VM_STOPPED)
				return VM_STOPPED;
			ended = p == VM_GONE || vm_exit_reason(cr->vm);
		}
		cr->kdump_ms = now_ms() - t0;
	}
	if (!ended) {
		cr->kdump_wait = KDUMP_STUCK;
		return w;
	}
	if (!cscan_in_capture(cr->console)) {
		cr->kdump_wait = KDUMP_MISSED; /* the VM ended with no capture kernel's banner */
		return VM_GONE;
	}
	cr->kdump_wait = KDUMP_ENDED;
	if (cr->kdump_ms) {
		cr_progress(cr, "kdump: the capture boot ended the VM after %.1f s",
			    cr->kdump_ms / 1000.0);
		json_object_object_add(cr->cell->metrics, "kdump_ms",
				       json_object_new_int64((int64_t)cr->kdump_ms));
	}
	return VM_GONE;
}

void guest_trouble(struct cellrun *cr, const char *step, const char *name,
		   enum vm_wait_result w, const struct kerr *e)
{
	struct check_result *r;
	const char *why = vm_exit_reason(cr->vm);

	if (w == VM_STOPPED) {
		cr->interrupted = 1;
		r = cr_add(cr, step, name, V_ERROR, 0, "interrupted: klpq was asked to stop");
		cr->down = 1;
		return;
	}
	/* give the console a moment: the oops text may still be in flight */
	if (!why) {
		struct kerr ignore = KERR_INIT;
		vm_pump(cr->vm, 1000, &ignore);
		why = vm_exit_reason(cr->vm);
	}
	if ((w = await_capture(cr, w)) == VM_STOPPED) {
		cr->interrupted = 1;
		cr_add(cr, step, name, V_ERROR, 0, "interrupted: klpq was asked to stop");
		cr->down = 1;
		return;
	}
	why = vm_exit_reason(cr->vm);
	console_crashes(cr, step);
	if (w == VM_BROKEN && why)
		w = VM_GONE; /* the channel broke because QEMU was on its way out */
	if (w == VM_BROKEN) {
		r = cr_add(cr, step, name, V_ERROR, 0, "harness error: %s", e->msg);
	} else if (w == VM_TIMEOUT && !vm_alive(cr->vm, 3000)) {
		/* a hung guest inside a running QEMU still has QMP answering; QEMU frozen is not
		 * the kernel's doing (a stopped process, a host in trouble): ERROR, retried */
		r = cr_add(cr, step, name, V_ERROR, 0, "QEMU itself stopped answering (QMP silent for "
			"3 s too): %s", e->msg);
		check_evidence(r, "%s", e->msg);
		console_tail(cr, r);
		cr->down = 1;
		return;
	} else if (w == VM_TIMEOUT && cr->instrumenting && !cscan_fatal(cr->console)) {
		/* klpq's own kprobe events were being changed on a livepatched function: once a
		 * TCG guest wedged there with no message; that is not the patch's verdict */
		r = cr_add(cr, step, name, V_ERROR, 0, "guest stopped answering while klpq changed "
			   "its kprobe events (counting calls, count_calls): %s", e->msg);
		hang_dump(cr, r);
	} else if (w == VM_GONE && vm_host_ended(cr->vm)) {
		/* killed from outside (OOM killer, an operator, a CI timeout): not the kernel's doing */
		r = cr_add(cr, step, name, V_ERROR, 0, "QEMU ended from outside the guest: %s", why);
	} else if (cr->patched) {
		if (w == VM_GONE && cr->kdump_wait == KDUMP_ENDED)
			r = cr_add(cr, step, name, V_FAIL, 0, "guest died: kernel %s, then the kdump "
				   "capture (%s)", cscan_panicked(cr->console) ? "panic" : "crash", why);
		else if (w == VM_GONE && vm_guest_reset(cr->vm) && cscan_panicked(cr->console))
			r = cr_add(cr, step, name, V_FAIL, 0, "guest died: kernel panic (%s)", why);
		else if (w == VM_GONE && vm_guest_reset(cr->vm))
			r = cr_add(cr, step, name, V_FAIL, 0, "guest died: reset without a panic: reboot "
				"or triple fault (%s)", why);
		else if (w == VM_GONE)
			r = cr_add(cr, step, name, V_FAIL, 0, "guest died: %s", why ? why : e->msg);
		else
			r = cr_add(cr, step, name, V_FAIL, 0, "guest stopped answering: %s", e->msg);
		if (w == VM_TIMEOUT)
			hang_dump(cr, r);
	} else {
		r = cr_add(cr, step, name, V_ERROR, 0, "guest %s before any patch: %s",
			w == VM_GONE ? "died" : "stopped answering", why ? why : e->msg);
	}
	check_evidence(r, "%s", e->msg);
	if (cr->kdump_wait == KDUMP_ENDED && cr->kdump_ms)
		check_evidence(r, "kdump: the capture kernel booted (console.log line %llu) and ended "
			       "the VM %.1f s after klpq saw the crash; what it saved is in "
			       "postmortem/crash/", (unsigned long long)cscan_capture_line(cr->console),
			       cr->kdump_ms / 1000.0);
	else if (cr->kdump_wait == KDUMP_ENDED)
		check_evidence(r, "kdump: the capture kernel booted (console.log line %llu) and had "
			       "ended the VM when klpq looked; what it saved is in postmortem/crash/",
			       (unsigned long long)cscan_capture_line(cr->console));
	else if (cr->kdump_wait == KDUMP_MISSED)
		check_evidence(r, "kdump: the VM ended after the crash with no capture kernel booting "
			       "(console.log has no second kernel banner)");
	else if (cr->kdump_wait == KDUMP_STUCK)
		check_evidence(r, "kdump: the capture boot%s had not ended the VM %.0f s after the "
			       "crash; killed (its console is in console.log)",
			       cscan_in_capture(cr->console) ? "" : " (no banner yet)",
			       cr->kdump_ms / 1000.0);
	console_tail(cr, r);
	cr->down = 1;
}

/* An agent call that records trouble itself. VM_OK or the failure. */
enum vm_wait_result cr_call(struct cellrun *cr, const char *step, const char *name,
			    const char *op, json_object *args, unsigned timeout_ms,
			    struct proto_msg *reply)
{
	struct kerr e = KERR_INIT;
	enum vm_wait_result w;

	if (cr->down) {
		json_object_put(args);
		memset(reply, 0, sizeof(*reply));
		return VM_GONE;
	}
	w = vm_agent_call(cr->vm, op, args, timeout_ms, reply, &e);
	if (w != VM_OK)
		guest_trouble(cr, step, name, w, &e);
	return w;
}

unsigned agent_ms(const struct cellrun *cr)
{
	return cr->sc->timeouts.agent_ms;
}
