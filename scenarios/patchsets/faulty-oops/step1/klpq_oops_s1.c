// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_oops_s1: the only step of the faulty-oops patch set (klpq example livepatch).
 *
 * DELIBERATELY BROKEN. Replaces cmdline_proc_show() with a function that reads through a
 * NULL pointer. The module loads and the transition completes; the first read of
 * /proc/cmdline then Oopses ("BUG: kernel NULL pointer dereference", RIP in
 * klpq_oops_cmdline_proc_show [klpq_oops_s1]) and the reading process is killed, so the
 * probe fails and the console carries the crash signature.
 * The pointer is volatile so the compiler cannot drop or fold the load.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int *volatile klpq_null_ptr;

static int klpq_oops_cmdline_proc_show(struct seq_file *m, void *v)
{
	int *p = klpq_null_ptr;

	seq_printf(m, "%d klpq.fix1\n", *p);
	return 0;
}

static struct klp_func klpq_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = klpq_oops_cmdline_proc_show,
	},
	{ }
};

static struct klp_object klpq_objs[] = {
	{
		/* name == NULL: the function is in vmlinux */
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
MODULE_DESCRIPTION("klpq faulty-oops (broken on purpose): cmdline_proc_show replacement dereferences NULL");
MODULE_INFO(livepatch, "Y");
