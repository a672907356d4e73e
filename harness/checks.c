/* checks.c: the table of checks (checks.h). docs/checks.md's table is this table, written by
 * `klpq checks` (the unit suite checks tests that the two agree). */
#include "checks.h"

#include <string.h>

const struct check_def check_defs[] = {
	{ "prepare",
	  "`kernel`",
	  "ERROR",
	  "the kernel is fetched and unpacked (or found in the cache)",
	  "ERROR: download, unpack or depmod failed" },
	{ "*step*",
	  "`build`",
	  "FAIL or ERROR",
	  "the step's module builds against the kernel's headers (or comes from the "
	  "cache)",
	  "FAIL: the compiler's last lines; ERROR: no headers" },
	{ "prepare", "`program`", "FAIL or ERROR",
	  "each of the patch set's `programs:` compiles statically for the guest (or comes from the cache)",
	  "FAIL: the compiler's last lines; ERROR: the compiler could not run" },
	{ "prepare", "`host-memory`", "ERROR",
	  "(only reported when it fails)",
	  "ERROR: \"host out of memory: MemAvailable is N MB, a VM of M MB needs about K MB\"; the cell does not start" },
	{ "prepare", "`results`, `process`", "ERROR",
	  "(only reported when it fails)",
	  "ERROR: the cell's folder or progress pipe could not be made, or its process could not be started" },
	{ "*step*", "`kmod`", "FAIL or ERROR",
	  "a `kmod` step's module and its dependencies are found in the kernel's modules.dep",
	  "FAIL: \"kernel R has no module M\" or \"M is built into kernel R\"; ERROR: modules.dep cannot be read" },
	{ "prepare",
	  "`initramfs`",
	  "ERROR",
	  "(only reported when it fails)",
	  "ERROR" },
	{ "boot",
	  "`accel`",
	  "ERROR",
	  "(only reported when it fails)",
	  "ERROR: `accel: kvm` but the KVM trial boot says KVM cannot run this kernel "
	  "(the reason says what QEMU did); not retried" },
	{ "boot",
	  "`qemu`",
	  "ERROR",
	  "(only reported when it fails)",
	  "ERROR: QEMU would not start: \"QEMU exited with N / aborted (signal 6) during "
	  "start-up: <QEMU's first error line>\", QEMU's own lines from qemu.log as "
	  "evidence; not retried when QEMU ended by itself" },
	{ "boot",
	  "`console`",
	  "ERROR",
	  "(only reported when it fails)",
	  "ERROR: not one byte on the serial console within `timeouts.console_s` (the "
	  "kernel never started: an unusable accelerator, a boot hung at once)" },
	{ "boot",
	  "`agent`",
	  "FAIL or ERROR",
	  "the agent reports ready, on the expected kernel release, within "
	  "`timeouts.boot_s`",
	  "ERROR: never ready (a crash during boot also adds a `crash` FAIL)" },
	{ "baseline",
	  "`probe:NAME`",
	  "FAIL",
	  "each probe with `rollback: true` fails before any patch (else it cannot tell "
	  "patched from unpatched)",
	  "FAIL: \"still passes without the patch\"" },
	{ "baseline, *step*",
	  "`taint`",
	  "FAIL",
	  "no taint flag outside `taint.allow`",
	  "FAIL, naming the letters" },
	{ "*step*", "`params`", "FAIL",
	  "a `params_file` names one line in the guest, appended to the load's parameters",
	  "FAIL: \"params_file F cannot be read\", \"is empty\" or \"holds more than one line\"" },
	{ "any", "`mark`, `kmsg`", "ERROR",
	  "(only reported when it fails) the agent marks the kernel log at a step's start and reads it back",
	  "ERROR: \"agent could not mark the kernel log\" / \"could not read the kernel log\"" },
	{ "*step*", "`sysctl`, `tasks`", "FAIL or ERROR",
	  "(only reported when the guest stops answering during the sysctl write, or while the tasks of a stalled transition are listed)",
	  "as for a guest that stops answering (above)" },
	{ "*step*",
	  "`load`",
	  "FAIL",
	  "the module loads (or, with `expect: load-fails`, is refused; then the probes "
	  "of the step left live run again, and a refused last step leaves rollback, "
	  "reapply, pairs and leak cycles to that step)",
	  "FAIL: refused, with errno and the kernel log" },
	{ "*step*",
	  "`transition`",
	  "FAIL",
	  "the patch is enabled and `transition` is 0 within `timeouts.transition_s`; "
	  "time is load start to settled",
	  "FAIL: `transition stall: 'P' did not settle within N s (blocked by COMM:PID, "
	  "...)`, every task not yet switched with its stack as evidence" },
	{ "*step*",
	  "`recovery`",
	  "FAIL",
	  "(after a stall, unless `stall_recovery: none`) writing 1 to the patch's "
	  "`signal` attribute lets the transition settle; with `stall_recovery: reverse`, "
	  "writing 0 to `enabled` mid-transition reverses it and it settles",
	  "FAIL: `did not recover: ...` (the stall itself stays a FAIL either way)" },
	{ "*step*",
	  "`sysfs`",
	  "FAIL",
	  "the patch is enabled, not in transition, and each object is `patched` exactly "
	  "while its module is loaded (vmlinux always; the agent reads "
	  "`/sys/module/<name>/initstate`); with `replace` it is the only patch listed. "
	  "The title names the objects whose module is absent (\"1 object(s) patched; 1 "
	  "not loaded, not patched: isofs\")",
	  "FAIL, with every patch's sysfs state (objects, patched, loaded, absent)" },
	{ "*step*",
	  "`replaced`",
	  "FAIL",
	  "each earlier patch is gone from /sys/kernel/livepatch and its module can be "
	  "removed",
	  "FAIL: still listed, or rmmod refused" },
	{ "*step*",
	  "`probe:NAME`",
	  "FAIL",
	  "this step's probes and every earlier step's probes exit 0",
	  "FAIL: \"earlier step's probe NAME failed after STEP\" (a cumulative patch that "
	  "dropped a fix), with output and exit code" },
	{ "*step*",
	  "`transcript`",
	  "FAIL",
	  "the kernel log since the step began holds `enabling patch`, `starting patching "
	  "transition`, `patching complete`, in order",
	  "FAIL: the missing line; evidence: every livepatch line" },
	{ "any",
	  "`crash`",
	  "FAIL",
	  "(only reported on a hit)",
	  "FAIL: a crash signature (below) in the kernel log since the step began or on "
	  "the console" },
	{ "rollback",
	  "`disable`",
	  "FAIL",
	  "writing 0 to `enabled` works",
	  "FAIL" },
	{ "*step*",
	  "`method`",
	  "FAIL",
	  "the step's declared method holds: cumulative leaves none of the cell's earlier "
	  "patches listed (and `replace` is not 0 where the kernel has it), stacked "
	  "leaves every one listed (and `replace` is not 1, and its `stack_order` is the "
	  "top where the kernel has that attribute)",
	  "FAIL: `M is declared cumulative (atomic replace), but the kernel still lists "
	  "the earlier patch(es): it was stacked (built without .replace = true?)`, or "
	  "the stacked counterpart" },
	{ "*step*",
	  "`transition` (no livepatch)",
	  "FAIL",
	  "a module that loaded is listed under /sys/kernel/livepatch (klp_enable_patch "
	  "runs in its init)",
	  "FAIL: `module M registered no livepatch: it loaded, but "
	  "/sys/kernel/livepatch/M never appeared`, within a second, instead of a "
	  "transition stall" },
	{ "*step*",
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
	{ "*step*",
	  "`objects`",
	  "FAIL",
	  "after a step that is not a livepatch load: every listed patch's objects are "
	  "patched exactly while their modules are loaded (a module loaded or removed by "
	  "the step must be followed)",
	  "FAIL, with every patch's objects, patched and loaded counts" },
	{ "*step*",
	  "`klog`",
	  "FAIL",
	  "the step's `log:` holds: the kernel lines since the step began, filtered by "
	  "`log_filter`, are exactly the listed ones in order",
	  "FAIL: \"kernel log differs at line N: expected 'A', got 'B'\", \"is missing "
	  "line N\", or \"has a line more\"; evidence: both lists" },
	{ "rollback",
	  "`unpatch-transition`",
	  "FAIL",
	  "the patch leaves sysfs (or is disabled and settled) in time",
	  "FAIL: `unpatching stall ...` as above" },
	{ "rollback",
	  "`probe:NAME`",
	  "FAIL",
	  "with no other patch live, every `rollback: true` probe fails again; with "
	  "patches still live below (a stack), their probes still pass",
	  "FAIL: \"still passes without the patch\", or a lower patch's probe that failed" },
	{ "rollback-*N*, reapply-*N*",
	  "as rollback and reapply",
	  "",
	  "a stack (several of the cell's patches live at the end) is rolled back top "
	  "down, `rollback` being the top and `rollback-2` the one below it..., each "
	  "disable checked as above, then pushed again bottom up (`reapply` is the top "
	  "again)",
	  "as for rollback and reapply" },
	{ "rollback", "`probes`", "SKIP",
	  "(only reported with other patches still live below the one rolled back)",
	  "SKIP: \"N other patch(es) still live: unpatched behaviour not checked; their own probes must still pass\"" },
	{ "rollback",
	  "`transcript`",
	  "FAIL",
	  "`starting unpatching transition`, `unpatching complete`",
	  "FAIL" },
	{ "rollback",
	  "`unload`",
	  "FAIL",
	  "the disabled patch's module can be removed",
	  "FAIL" },
	{ "reapply",
	  "`load`, `transition`, `probe:NAME`, `transcript`",
	  "",
	  "the same module loads and applies again, every probe passes",
	  "as for a step" },
	{ "leak, leak-cycle*N*",
	  "`memory`, `refcnt`, and each cycle's `disable`, `unload`, `load`, `transition`",
	  "FAIL",
	  "after the rollback, `leak.cycles` (3) cycles of the last step: disable, "
	  "settle, remove, load, settle, exercise (the probes, or `leak.exercise`), then "
	  "the memory counters after dropping caches, read from "
	  "`/sys/devices/system/node/node*/meminfo` (summed over nodes; `/proc/meminfo` "
	  "only on a kernel without it: a patch may change `meminfo_proc_show`, and the "
	  "check must not read through it; each measurement's source is in the evidence), "
	  "and `/sys/module/M/refcnt`. PASS when the median growth per cycle of "
	  "SUnreclaim is at most `leak.threshold_kb` (1024) and MemFree falls by at most "
	  "4x that, and the refcount holds still; counters that cannot be read after a "
	  "patch are that patch's FAIL with what the guest printed, never an "
	  "infrastructure ERROR",
	  "FAIL: `leak: SUnreclaim grew N kB per cycle over C cycles of M (...)`, every "
	  "measurement as evidence" },
	{ "leak", "`exercise`", "ERROR",
	  "the `leak.exercise` command exits 0 in each cycle",
	  "ERROR: \"leak.exercise exited with N\"" },
	{ "perf", "`clock`, `samples`, `workload`", "FAIL or ERROR",
	  "(only reported when the guest stops answering while its clock is read, the workloads' samples are read or a workload phase runs)",
	  "as for a guest that stops answering (above)" },
	{ "perf",
	  "`workloads`",
	  "ERROR",
	  "(scenarios with workloads) every workload started and wrote samples during the "
	  "warm-up",
	  "ERROR: which workload, with its stderr" },
	{ "perf",
	  "`perf:METRIC`",
	  "FAIL",
	  "docs/statistics.md: the 95% interval of the change (last step vs unpatched, "
	  "median of per-phase values, hierarchical bootstrap) lies within the metric's "
	  "threshold",
	  "FAIL: `METRIC regressed +N% (a -> b UNIT, 95% interval ..., threshold T%, P "
	  "pair(s))`; SKIP `inconclusive: ... noise +-N%` when the interval straddles the "
	  "threshold; SKIP `not compared` when a group has no samples or the unpatched "
	  "value is 0" },
	{ "perf",
	  "`perf:gaming.transition_frame_max`, `perf:streaming.transition_stall_max`",
	  "FAIL",
	  "the worst frame time / stall inside the transition windows is within "
	  "`perf.transition_pct` of the worst unpatched one (or within a 2 ms / 50 ms "
	  "noise floor)",
	  "FAIL: `transition disruption: worst frame N ms in STEP-transition, against M "
	  "ms at worst unpatched`" },
	{ "perf-pair*K*",
	  "`disable`, `unpatch-transition`, `unload`, `load`, `transition`",
	  "",
	  "the extra unpatched/patched pairs for the comparison",
	  "as for the rollback and a step" },
	{ "end",
	  "`poweroff`",
	  "FAIL or ERROR",
	  "the guest powers off when asked",
	  "FAIL (after a patch) / ERROR" },
	{ "end",
	  "`agent-channel`",
	  "FAIL or ERROR",
	  "(only reported on a hit)",
	  "FAIL: the guest wrote lines over the 64 KiB bound or unparsable lines into the "
	  "agent channel (counts; see agent.log); ERROR when no patch had been loaded" },
	{ "end",
	  "`logs`",
	  "ERROR",
	  "(only reported on a hit)",
	  "ERROR: console.log or agent.log could not be written (a full disk)" },
	{ "any",
	  "`interrupted`",
	  "ERROR",
	  "(only reported on a hit)",
	  "ERROR: klpq was asked to stop" },
	{ "end",
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

void checks_doc_table(struct sb *out)
{
	sb_adds(out, "| step | check | PASS when | FAIL / ERROR |\n|---|---|---|---|\n");
	for (size_t i = 0; i < nr_check_defs; i++) {
		const struct check_def *d = &check_defs[i];

		sb_addf(out, "| %s | %s | %s |%s%s |\n", d->steps, d->check, d->pass,
			*d->bad ? " " : "", d->bad);
	}
}
