// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_cbspin_s1: a post-patch callback that spins with preemption off (klpq example livepatch,
 * faulty corpus).
 *
 * DELIBERATELY BROKEN. The patch works, but its post_patch callback busy-waits 20 s with
 * preemption disabled, as a callback that polls for a hardware or data state might. The kernel's
 * stall detectors report it: with the scenario's rcupdate.rcu_cpu_stall_timeout=7 first an RCU
 * stall ("rcu: INFO: rcu_preempt self-detected stall on CPU"), whose RIP or Call Trace runs
 * through klpq_cbspin_post_patch, then with watchdog_thresh=5 a soft lockup. klpq must fail the
 * step with a title naming the callback, not a bare "RCU stall". The loop ends by itself, so the
 * guest lives on and the step's probes still run.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/seq_file.h>

static void klpq_cbspin_post_patch(struct klp_object *obj)
{
	unsigned long end = jiffies + 20 * HZ;

	preempt_disable();
	while (time_before(jiffies, end))
		cpu_relax();
	preempt_enable();
	pr_info("post-patch callback done\n");
}

/* the fix itself is simple on purpose: /proc/cmdline reads "klpq.fix1" (saved_command_line is
 * not exported to modules; the demo patch set shows how to keep the real text) */
static int klpq_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klpq.fix1\n");
	return 0;
}

static struct klp_func klpq_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = klpq_cmdline_proc_show,
	},
	{ }
};

static struct klp_object klpq_objs[] = {
	{
		.funcs = klpq_funcs,
		.callbacks = { .post_patch = klpq_cbspin_post_patch },
	},
	{ }
};

static struct klp_patch klpq_patch = {
	.mod = THIS_MODULE,
	.objs = klpq_objs,
	.replace = true,
};

static int __init klpq_init(void)
{
	return klp_enable_patch(&klpq_patch);
}

static void __exit klpq_exit(void)
{
}

module_init(klpq_init);
module_exit(klpq_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("klpq faulty corpus: a post-patch callback spinning with preemption off");
