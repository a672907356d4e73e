// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_refuse_s2: an incompatible system state (version 1 after 2) (klpq example livepatch, faulty corpus).
 *
 * DELIBERATELY BROKEN. Step 2 declares the same system state at version 1, lower than the live
 * patch's version 2: the kernel refuses the cumulative replacement ("Livepatch patch
 * (klpq_refuse_s2) is not compatible with the already installed livepatches.", -EINVAL). The
 * patch set says it loads, so klpq must FAIL it, and step 1's fix must stay live.
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

#define KLPQ_STATE_ID 0x6b6c71UL

static struct klp_state klpq_states[] = {
	{ .id = KLPQ_STATE_ID, .version = 1 },
	{ }
};

static struct klp_patch klpq_patch = {
	.mod = THIS_MODULE,
	.objs = klpq_objs,
	.replace = true,
	.states = klpq_states,
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
MODULE_DESCRIPTION("klpq faulty corpus: an incompatible system state (version 1 after 2)");
