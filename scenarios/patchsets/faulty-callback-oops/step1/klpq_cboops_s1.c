// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_cboops_s1: a NULL dereference in a pre-patch callback (klpq example livepatch, faulty corpus).
 *
 * DELIBERATELY BROKEN. The object's pre_patch callback reads through a NULL pointer. Callbacks
 * run in the task that enables the patch (the agent's module load), while the patch is being
 * enabled: the Oops ("BUG: kernel NULL pointer dereference", RIP in klpq_cboops_pre_patch)
 * happens inside the load and takes the loading task with it.
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

static int *volatile klpq_null_ptr;

static int klpq_cboops_pre_patch(struct klp_object *obj)
{
	return *klpq_null_ptr;
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
		.callbacks = { .pre_patch = klpq_cboops_pre_patch },
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
MODULE_DESCRIPTION("klpq faulty corpus: a NULL dereference in a pre-patch callback");
