/* checks.c: the table of checks (checks.h). docs/checks.md's table is this table, written by
 * `klpq checks` (the unit suite checks tests that the two agree). */
#include "checks.h"

#include <stdio.h>
#include <string.h>

const struct check_def check_defs[] = {
	{ "kernel", "prepare",
	  "`kernel`",
	  "ERROR",
	  "the kernel is fetched and unpacked (or found in the cache)",
	  "ERROR: download, unpack or depmod failed" },
	{ "build", "*step*",
	  "`build`",
	  "FAIL or ERROR",
	  "the step's module builds against the kernel's headers (or comes from the "
	  "cache)",
	  "FAIL: the compiler's last lines; ERROR: no headers" },
	{ "program", "prepare", "`program`", "FAIL or ERROR",
	  "each of the patch set's `programs:` compiles statically for the guest (or comes from the cache)",
	  "FAIL: the compiler's last lines; ERROR: the compiler could not run" },
	{ "host-memory", "prepare", "`host-memory`", "ERROR",
	  "(only reported when it fails)",
	  "ERROR: \"host out of memory: MemAvailable is N MB, a VM of M MB needs about K MB\"; the cell does not start" },
	{ "pool-host", "prepare", "`host`", "ERROR",
	  "(only reported when it fails; with a pool, docs/pool.md)",
	  "ERROR: \"no host in the pool has the label(s) L that the cell requires\", \"no host of the pool is left "
	  "for this cell: H: reason\" or \"not run: every host of the pool is down: H: reason; ...\"; not retried" },
	{ "results", "prepare, end", "`results`, `process`", "ERROR",
	  "(only reported when it fails)",
	  "ERROR: the cell's folder or progress pipe could not be made, or its process could not be started; "
	  "at `end`: \"the cell's klpq process was killed by signal N\" or \"exited with status N before finishing\"" },
	{ "kmod", "*step*", "`kmod`", "FAIL or ERROR",
	  "a `kmod` step's module and its dependencies are found in the kernel's modules.dep",
	  "FAIL: \"kernel R has no module M\" or \"M is built into kernel R\"; ERROR: modules.dep cannot be read" },
	{ "initramfs", "prepare",
	  "`initramfs`",
	  "ERROR",
	  "(only reported when it fails)",
	  "ERROR" },
	{ "disk-image", "prepare", "`disk-image`", "ERROR",
	  "a disk guest's image (docs/scenario.md, \"guest\"): `distro:` built once and cached (debootstrap "
	  "and libguestfs), or `path:` inspected with libguestfs before boot",
	  "ERROR: the build failed (the log is named), or the user's image cannot serve: no Linux root, "
	  "its root not ext4 on a plain device, no systemd, not the cell's kernel in /lib/modules "
	  "(not retried); also a disk guest on a remote host" },
	{ "disk", "prepare", "`disk`", "ERROR",
	  "(only reported when it fails)",
	  "ERROR: the cell's qcow2 overlay of the image could not be made (qemu-img's message)" },
	{ "accel", "boot",
	  "`accel`",
	  "ERROR",
	  "(only reported when it fails)",
	  "ERROR: `accel: kvm` but the KVM trial boot says KVM cannot run this kernel "
	  "(the reason says what QEMU did); not retried" },
	{ "qemu", "boot",
	  "`qemu`",
	  "ERROR",
	  "(only reported when it fails)",
	  "ERROR: QEMU would not start: \"QEMU exited with N / aborted (signal 6) during "
	  "start-up: <QEMU's first error line>\", QEMU's own lines from qemu.log as "
	  "evidence; not retried when QEMU ended by itself" },
	{ "console", "boot",
	  "`console`",
	  "ERROR",
	  "(only reported when it fails)",
	  "ERROR: not one byte on the serial console within `timeouts.console_s` (the "
	  "kernel never started: an unusable accelerator, a boot hung at once)" },
	{ "agent", "boot",
	  "`agent`",
	  "FAIL or ERROR",
	  "the agent reports ready, on the expected kernel release, within "
	  "`timeouts.boot_s`",
	  "ERROR: never ready (a crash during boot also adds a `crash` FAIL)" },
	{ "system", "boot", "`system`", "ERROR",
	  "a disk guest's systemd finished starting (`systemctl is-system-running --wait`: running, or "
	  "degraded when a unit of the image failed) before any patch",
	  "ERROR: still starting at `timeouts.boot_s`, or stopping" },
	{ "kdump", "boot", "`kdump`", "ERROR",
	  "with `guest.kdump`: the capture kernel is loaded (`/sys/kernel/kexec_crash_loaded` is 1) "
	  "before any patch",
	  "ERROR: not loaded (kdump-tools' status as evidence; not retried)" },
	{ "baseline-probe", "baseline",
	  "`probe:NAME`",
	  "FAIL",
	  "each probe with `rollback: true` fails before any patch (else it cannot tell "
	  "patched from unpatched)",
	  "FAIL: \"still passes without the patch\"" },
	{ "taint", "baseline, *step*, reapply, end",
	  "`taint`",
	  "FAIL",
	  "no taint flag outside `taint.allow`; checked before any patch, after each step, after "
	  "the rollback and reapply, and at the end (after the perf pairs and the leak cycles); a "
	  "flag fails the first check that sees it, later checks only fail for new flags",
	  "FAIL, naming the letters" },
	{ "params", "*step*", "`params`", "FAIL",
	  "a `params_file` names one line in the guest, appended to the load's parameters",
	  "FAIL: \"params_file F cannot be read\", \"is empty\" or \"holds more than one line\"" },
	{ "mark", "any", "`mark`, `kmsg`", "ERROR",
	  "(only reported when it fails) the agent marks the kernel log at a step's start and reads it back",
	  "ERROR: \"agent could not mark the kernel log\" / \"could not read the kernel log\"" },
	{ "sysctl", "*step*", "`sysctl`, `tasks`", "FAIL or ERROR",
	  "(only reported when the guest stops answering during the sysctl write, or while the tasks of a stalled transition are listed)",
	  "as for a guest that stops answering (above)" },
	{ "load", "*step*",
	  "`load`",
	  "FAIL",
	  "the module loads (or, with `expect: load-fails`, is refused; then the probes "
	  "of the step left live run again, and a refused last step leaves rollback, "
	  "reapply, pairs and leak cycles to that step)",
	  "FAIL: refused, with errno and the kernel log" },
	{ "transition", "*step*",
	  "`transition`",
	  "FAIL",
	  "the patch is enabled and `transition` is 0 within `timeouts.transition_s`; "
	  "time is load start to settled",
	  "FAIL: `transition stall: 'P' did not settle within N s (blocked by COMM:PID, "
	  "...)`, every task not yet switched with its stack as evidence" },
	{ "recovery", "*step*",
	  "`recovery`",
	  "FAIL",
	  "(after a stall, unless `stall_recovery: none`) writing 1 to the patch's "
	  "`signal` attribute lets the transition settle; with `stall_recovery: reverse`, "
	  "writing 0 to `enabled` mid-transition reverses it and it settles",
	  "FAIL: `did not recover: ...` (the stall itself stays a FAIL either way)" },
	{ "sysfs", "*step*",
	  "`sysfs`",
	  "FAIL",
	  "the patch is enabled, not in transition, and each object is `patched` exactly "
	  "while its module is loaded (vmlinux always; the agent reads "
	  "`/sys/module/<name>/initstate`); with `replace` it is the only patch listed. "
	  "The title names the objects whose module is absent (\"1 object(s) patched; 1 "
	  "not loaded, not patched: isofs\")",
	  "FAIL, with every patch's sysfs state (objects, patched, loaded, absent)" },
	{ "replaced", "*step*",
	  "`replaced`",
	  "FAIL",
	  "each earlier patch is gone from /sys/kernel/livepatch and its module can be "
	  "removed",
	  "FAIL: still listed, or rmmod refused" },
	{ "probe", "*step*",
	  "`probe:NAME`",
	  "FAIL",
	  "this step's probes and every earlier step's probes exit 0",
	  "FAIL: \"earlier step's probe NAME failed after STEP\" (a cumulative patch that "
	  "dropped a fix), with output and exit code" },
	{ "transcript", "*step*",
	  "`transcript`",
	  "FAIL",
	  "the kernel log since the step began holds `enabling patch`, `starting patching "
	  "transition`, `patching complete`, in order",
	  "FAIL: the missing line; evidence: every livepatch line" },
	{ "exercised", "*step*, leak, perf",
	  "`exercised`",
	  "SKIP, FAIL or ERROR",
	  "every function the step's patch replaces (its sysfs folder) was called while the step "
	  "was tested: a kprobe event on each original function counts the calls from the patch "
	  "being live through the step's probes and the earlier steps' probes (docs/checks.md, "
	  "\"Was the patch exercised\"); the title gives the calls. At `perf`: every function "
	  "live after the last step was called by the workloads in a window after each of that "
	  "step's patched phases (the phases themselves run with the events off; the calls "
	  "after every phase in results.json, metrics `calls`)",
	  "SKIP: \"not exercised: NEW (replacing FUNC) was never called while STEP was "
	  "tested\" (what ran did not test the patch; at `perf`: \"... by the workloads in the "
	  "W s after each of P patched phase(s)\": the performance comparison did not measure "
	  "it), or "
	  "\"not counted: WHY\" (no kprobe "
	  "events in the kernel, a function that cannot be probed); ERROR: the agent could not "
	  "run the counting; FAIL or ERROR: the guest stopped answering while the calls were "
	  "counted (as for a guest that stops answering)" },
	{ "crash", "any",
	  "`crash`",
	  "FAIL",
	  "(only reported on a hit)",
	  "FAIL: a crash signature (below) in the kernel log since the step began or on "
	  "the console" },
	{ "disable", "rollback",
	  "`disable`",
	  "FAIL",
	  "writing 0 to `enabled` works",
	  "FAIL" },
	{ "method", "*step*",
	  "`method`",
	  "FAIL",
	  "the step's declared method holds: cumulative leaves none of the cell's earlier "
	  "patches listed (and `replace` is not 0 where the kernel has it), stacked "
	  "leaves every one listed (and `replace` is not 1, and its `stack_order` is the "
	  "top where the kernel has that attribute)",
	  "FAIL: `M is declared cumulative (atomic replace), but the kernel still lists "
	  "the earlier patch(es): it was stacked (built without .replace = true?)`, or "
	  "the stacked counterpart" },
	{ "transition-no-livepatch", "*step*",
	  "`transition` (no livepatch)",
	  "FAIL",
	  "a module that loaded is listed under /sys/kernel/livepatch (klp_enable_patch "
	  "runs in its init)",
	  "FAIL: `module M registered no livepatch: it loaded, but "
	  "/sys/kernel/livepatch/M never appeared`, within a second, instead of a "
	  "transition stall" },
	{ "action", "*step*",
	  "`action`",
	  "FAIL",
	  "a step that is not a livepatch load did what it says (docs/scenario.md, \"A "
	  "step\"): a helper or `kmod` module loaded (a `kmod` with its dependencies in "
	  "modules.dep order), a module removed, a patch disabled and gone from sysfs "
	  "(its `rollback: true` probes fail when no patch is left), a sysctl written, a "
	  "`run` command exited 0; with `expect: fails`, refused as `refusal` says",
	  "FAIL: refused (errno, the kernel's lines), or done where the kernel had to "
	  "refuse, or the refusal not the one expected; a failed action stops the later "
	  "steps" },
	{ "objects", "*step*",
	  "`objects`",
	  "FAIL",
	  "after a step that is not a livepatch load: every listed patch's objects are "
	  "patched exactly while their modules are loaded (a module loaded or removed by "
	  "the step must be followed)",
	  "FAIL, with every patch's objects, patched and loaded counts" },
	{ "klog", "*step*",
	  "`klog`",
	  "FAIL",
	  "the step's `log:` holds: the kernel lines since the step began, filtered by "
	  "`log_filter`, are exactly the listed ones in order",
	  "FAIL: \"kernel log differs at line N: expected 'A', got 'B'\", \"is missing "
	  "line N\", or \"has a line more\"; evidence: both lists" },
	{ "unpatch-transition", "rollback",
	  "`unpatch-transition`",
	  "FAIL",
	  "the patch leaves sysfs (or is disabled and settled) in time",
	  "FAIL: `unpatching stall ...` as above" },
	{ "rollback-probe", "rollback",
	  "`probe:NAME`",
	  "FAIL",
	  "with no other patch live, every `rollback: true` probe fails again; with "
	  "patches still live below (a stack), their probes still pass",
	  "FAIL: \"still passes without the patch\", or a lower patch's probe that failed" },
	{ "rollback-n", "rollback-*N*, reapply-*N*",
	  "as rollback and reapply",
	  "",
	  "a stack (several of the cell's patches live at the end) is rolled back top "
	  "down, `rollback` being the top and `rollback-2` the one below it..., each "
	  "disable checked as above, then pushed again bottom up (`reapply` is the top "
	  "again)",
	  "as for rollback and reapply" },
	{ "rollback-probes", "rollback", "`probes`", "SKIP",
	  "(only reported with other patches still live below the one rolled back)",
	  "SKIP: \"N other patch(es) still live: unpatched behaviour not checked; their own probes must still pass\"" },
	{ "rollback-transcript", "rollback",
	  "`transcript`",
	  "FAIL",
	  "`starting unpatching transition`, `unpatching complete`",
	  "FAIL" },
	{ "unload", "rollback",
	  "`unload`",
	  "FAIL",
	  "the disabled patch's module can be removed",
	  "FAIL" },
	{ "reapply", "reapply",
	  "`load`, `transition`, `probe:NAME`, `transcript`",
	  "FAIL",
	  "the same module loads and applies again, every probe passes",
	  "as for a step" },
	{ "leak", "leak, leak-cycle*N*",
	  "`memory`, `refcnt`, and each cycle's `disable`, `unload`, `load`, `transition`",
	  "FAIL",
	  "after the rollback, `leak.cycles` (3) cycles of the last step: disable, "
	  "settle, remove, load, settle, exercise (the probes, or `leak.exercise`), then "
	  "the memory counters after dropping caches, read from "
	  "`/sys/devices/system/node/node*/meminfo` (summed over nodes; `/proc/meminfo` "
	  "only on a kernel without it: a patch may change `meminfo_proc_show`, and the "
	  "check must not read through it; each measurement's source is in the evidence), "
	  "and `/sys/module/M/refcnt`. PASS when the median growth per cycle of "
	  "SUnreclaim is at most `leak.threshold_kb` (1024) and free memory (MemFree plus "
	  "what userland holds, AnonPages, Mapped and Shmem, plus the per-CPU free lists "
	  "of /proc/zoneinfo: a disk guest's daemons move megabytes between them) falls "
	  "by at most 4x that, or did not fall by more "
	  "than the threshold in every cycle (a leak takes pages each cycle; a guest's "
	  "noise moves both ways), and the refcount holds still; counters that cannot be read after a "
	  "patch are that patch's FAIL with what the guest printed, never an "
	  "infrastructure ERROR",
	  "FAIL: `leak: SUnreclaim grew N kB per cycle over C cycles of M (...)` or `leak: "
	  "free memory fell N kB per cycle over C cycles of M (...)`, every "
	  "measurement as evidence; SKIP `not exercised: no growth over C cycles of M, but "
	  "the exercise did not reach every patched function` when check `exercised` at "
	  "`leak` counted no call of one (a leak on a path nothing took cannot show)" },
	{ "exercise", "leak", "`exercise`", "ERROR",
	  "the `leak.exercise` command exits 0 in each cycle",
	  "ERROR: \"leak.exercise exited with N\"" },
	{ "perf-memory", "perf",
	  "`memory`",
	  "FAIL",
	  "(scenarios with workloads) the guest's memory, read at both ends of every perf "
	  "phase (node 0's meminfo, as the leak check reads it, or `/proc/meminfo`; and "
	  "`/proc/slabinfo`): no slab cache grows by `leak.load_threshold_kb` (128) or more in "
	  "every patched phase of the last step while growing by at most a quarter of that in "
	  "each unpatched phase (docs/checks.md, \"Leaks the workloads trigger\")",
	  "FAIL: `leak under load: slab cache C grew N kB or more in each of the P patched "
	  "phase(s) of S (...)`, each phase's SUnreclaim, MemFree and the caches that grew "
	  "most as evidence; SKIP `not measured: ...` (fewer than 2 patched phases: "
	  "`perf.pairs` below 2), or `not exercised: ...` when check `exercised` at `perf` "
	  "found a function the workloads never called" },
	{ "perf-guest", "perf", "`clock`, `samples`, `workload`", "FAIL or ERROR",
	  "(only reported when the guest stops answering while its clock is read, the workloads' samples are read or a workload phase runs)",
	  "as for a guest that stops answering (above)" },
	{ "workloads", "perf",
	  "`workloads`",
	  "ERROR",
	  "(scenarios with workloads) every workload started and wrote samples during the "
	  "warm-up",
	  "ERROR: which workload, with its stderr" },
	{ "perf", "perf",
	  "`perf:METRIC`",
	  "FAIL",
	  "docs/statistics.md: the 95% interval of the change (last step vs unpatched, "
	  "median of per-phase values, hierarchical bootstrap) lies within the metric's "
	  "threshold",
	  "FAIL: `METRIC regressed +N% (a -> b UNIT, 95% interval ..., threshold T%, P "
	  "pair(s))`; SKIP `inconclusive: ... noise +-N%` when the interval straddles the "
	  "threshold; SKIP `not compared` when a group has no samples or the unpatched "
	  "value is 0" },
	{ "perf-transition-max", "perf",
	  "`perf:gaming.transition_frame_max`, `perf:streaming.transition_stall_max`",
	  "FAIL",
	  "the worst frame time / stall inside the transition windows is within "
	  "`perf.transition_pct` of the worst unpatched one (or within a 2 ms / 50 ms "
	  "noise floor)",
	  "FAIL: `transition disruption: worst frame N ms in STEP-transition, against M "
	  "ms at worst unpatched`" },
	{ "perf-pair", "perf-pair*K*",
	  "`disable`, `unpatch-transition`, `unload`, `load`, `transition`",
	  "FAIL",
	  "the extra unpatched/patched pairs for the comparison",
	  "as for the rollback and a step" },
	{ "poweroff", "end",
	  "`poweroff`",
	  "FAIL or ERROR",
	  "the guest powers off when asked",
	  "FAIL (after a patch) / ERROR" },
	{ "agent-channel", "end",
	  "`agent-channel`",
	  "FAIL or ERROR",
	  "(only reported on a hit)",
	  "FAIL: the guest wrote lines over the 64 KiB bound or unparsable lines into the "
	  "agent channel (counts; see agent.log); ERROR when no patch had been loaded" },
	{ "logs", "end",
	  "`logs`",
	  "ERROR",
	  "(only reported on a hit)",
	  "ERROR: console.log or agent.log could not be written (a full disk)" },
	{ "interrupted", "any",
	  "`interrupted`",
	  "ERROR",
	  "(only reported on a hit)",
	  "ERROR: klpq was asked to stop" },
	{ "remaining", "end",
	  "`remaining`",
	  "SKIP",
	  "SKIP: steps not run after a step that stopped the cell",
	  "" },
};

const size_t nr_check_defs = sizeof(check_defs) / sizeof(check_defs[0]);

/* 1 when name is one of def's ids: `load`, or `probe:NAME` for any probe:X */
int check_def_is(const struct check_def *d, const char *name)
{
	for (const char *p = d->check; (p = strchr(p, '`')); ) {
		const char *end = strchr(++p, '`');
		size_t len, wild;

		if (!end)
			break;
		len = (size_t)(end - p);
		/* NAME and METRIC stand for any name after the prefix */
		wild = len > 4 && !strncmp(end - 4, "NAME", 4) ? 4 :
		       len > 6 && !strncmp(end - 6, "METRIC", 6) ? 6 : 0;
		if (wild ? !strncmp(name, p, len - wild) && strlen(name) > len - wild :
			   strlen(name) == len && !strncmp(name, p, len))
			return 1;
		p = end + 1;
	}
	return 0;
}

const struct check_def *check_def_find(const char *name)
{
	for (size_t i = 0; i < nr_check_defs; i++)
		if (check_def_is(&check_defs[i], name))
			return &check_defs[i];
	return NULL;
}

/* The kind of step a step's name is, as the table's step column spells it: the fixed steps
 * by name, their numbered repeats by pattern, anything else a patch set's step. */
static const char *step_kind(const char *step)
{
	static const char *const fixed[] = { "prepare", "boot", "baseline", "rollback", "reapply",
					     "leak", "perf", "end" };
	static const struct { const char *prefix, *kind; } numbered[] = {
		{ "rollback-", "rollback" }, { "reapply-", "reapply" },
		{ "leak-cycle", "leak-cycle*N*" }, { "perf-pair", "perf-pair*K*" },
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (!strcmp(step, fixed[i]))
			return fixed[i];
	for (size_t i = 0; i < sizeof(numbered) / sizeof(numbered[0]); i++) {
		size_t n = strlen(numbered[i].prefix);

		if (!strncmp(step, numbered[i].prefix, n) && step[n] &&
		    strspn(step + n, "0123456789") == strlen(step + n))
			return numbered[i].kind;
	}
	return "*step*";
}

/* 1 when the entry's step column ("baseline, *step*", "any") covers this kind of step */
static int runs_at(const struct check_def *d, const char *kind)
{
	size_t n = strlen(kind);

	for (const char *p = d->steps; *p; ) {
		size_t len = strcspn(p, ",");

		if ((len == n && !strncmp(p, kind, n)) || (len == 3 && !strncmp(p, "any", 3)))
			return 1;
		p += len;
		p += strspn(p, ", ");
	}
	return 0;
}

const struct check_def *check_def_at(const char *step, const char *name)
{
	const char *kind = step_kind(step);

	for (size_t i = 0; i < nr_check_defs; i++)
		if (check_def_is(&check_defs[i], name) && runs_at(&check_defs[i], kind))
			return &check_defs[i];
	return NULL;
}

const struct check_def *check_def_for(const char *step, const char *name)
{
	const struct check_def *d = check_def_at(step, name);

	return d ? d : check_def_find(name);
}

int check_def_allows(const struct check_def *d, int is_fail)
{
	return strstr(d->classes, is_fail ? "FAIL" : "ERROR") != NULL;
}

int checks_guest_loss(const char *title)
{
	/* cell-guest.c's guest_trouble: the titles of a guest lost while a check waited */
	static const char *const loss[] = {
		"guest died", "guest stopped answering", "QEMU ended from outside the guest",
		"QEMU itself stopped answering", "interrupted: ", "harness error: ",
	};

	for (size_t i = 0; i < sizeof(loss) / sizeof(loss[0]); i++)
		if (!strncmp(title, loss[i], strlen(loss[i])))
			return 1;
	return 0;
}

const char *check_def_doc(const struct check_def *d)
{
	static char buf[96];

	if (!d)
		return NULL;
	snprintf(buf, sizeof(buf), "docs/checks.md#check-%s", d->anchor);
	return buf;
}

void checks_doc_table(struct sb *out)
{
	sb_adds(out, "| step | check | PASS when | FAIL / ERROR |\n|---|---|---|---|\n");
	for (size_t i = 0; i < nr_check_defs; i++) {
		const struct check_def *d = &check_defs[i];

		sb_addf(out, "| %s | <a id=\"check-%s\"></a>%s | %s |%s%s |\n", d->steps, d->anchor,
			d->check, d->pass, *d->bad ? " " : "", d->bad);
	}
}
