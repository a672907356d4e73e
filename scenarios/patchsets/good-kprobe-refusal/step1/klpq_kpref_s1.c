// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_kpref_s1: the patch of good-kprobe-refusal (klpq example livepatch).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int klpq_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klpq.fix1\n");
	return 0;
}

static struct klp_func klpq_funcs[] = {
	{ .old_name = "cmdline_proc_show", .new_func = klpq_cmdline_proc_show },
	{ }
};

static struct klp_object klpq_objs[] = {
	{ .funcs = klpq_funcs },
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
MODULE_DESCRIPTION("klpq example: good-kprobe-refusal, the patch the kprobe stands in the way of");
