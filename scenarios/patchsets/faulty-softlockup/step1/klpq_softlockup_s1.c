// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_softlockup_s1: a busy loop without rescheduling (klpq example livepatch, faulty corpus).
 *
 * DELIBERATELY BROKEN. The replacement cmdline_proc_show() spins for 24 s with preemption
 * disabled (no cond_resched()): the soft lockup watchdog reports "watchdog: BUG: soft lockup -
 * CPU#N stuck for NNs! [cat:PID]" with the RIP in klpq_cmdline_proc_show. The loop ends by itself,
 * so the guest lives on. The scenario sets watchdog_thresh=5 (reports after 10 s).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

/* the fix itself is simple on purpose: /proc/cmdline reads "klpq.fix1" (saved_command_line is
 * not exported to modules; the demo patch set shows how to keep the real text) */
static int klpq_cmdline_proc_show(struct seq_file *m, void *v)
{
	unsigned long end = jiffies + 24 * HZ;

	preempt_disable();
	while (time_before(jiffies, end))
		cpu_relax();
	preempt_enable();
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
MODULE_DESCRIPTION("klpq faulty corpus: a busy loop without rescheduling");
