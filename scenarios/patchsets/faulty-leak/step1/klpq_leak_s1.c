// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_leak_s1: a leak of 4 KiB per call on a hot path (klpq example livepatch, faulty corpus).
 *
 * DELIBERATELY BROKEN. Every call of the replacement cmdline_proc_show() allocates 4 KiB and
 * never frees it. Output and probes are right; only memory grows: kmalloc-4k slab (SUnreclaim in
 * /proc/meminfo) by 4 KiB per read of /proc/cmdline. klpq's leak check (apply/disable cycles,
 * exercising the patched path each cycle) must fail it with the growth per cycle.
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

static void *volatile klpq_sink;

/* the fix itself is simple on purpose: /proc/cmdline reads "klpq.fix1" (saved_command_line is
 * not exported to modules; the demo patch set shows how to keep the real text) */
static int klpq_cmdline_proc_show(struct seq_file *m, void *v)
{
	klpq_sink = kmalloc(4096, GFP_KERNEL); /* never freed */
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
MODULE_DESCRIPTION("klpq faulty corpus: a leak of 4 KiB per call on a hot path");
