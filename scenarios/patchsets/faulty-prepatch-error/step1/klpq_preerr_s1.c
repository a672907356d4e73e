// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_preerr_s1: a pre-patch callback that refuses (klpq example livepatch, faulty corpus).
 *
 * DELIBERATELY BROKEN. The pre_patch callback returns -EINVAL (as a patch does when the system
 * is not in the state it was written for): the kernel refuses the load ("pre-patch callback
 * failed for object 'vmlinux'"). The patch set says the step loads, so klpq must FAIL it.
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

static int klpq_preerr_pre_patch(struct klp_object *obj)
{
	pr_err("pre_patch: refusing: the system is not in the expected state\n");
	return -EINVAL;
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
		.callbacks = { .pre_patch = klpq_preerr_pre_patch },
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
MODULE_DESCRIPTION("klpq faulty corpus: a pre-patch callback that refuses");
