// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_panic_s1: the patched function panics the kernel
 *
 * Replaces cmdline_proc_show(); the replacement misbehaves on its first call, so loading
 * the patch succeeds and the step's probe (a read of /proc/cmdline) sets it off.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/panic.h>


static int klpq_cmdline_proc_show(struct seq_file *m, void *v)
{
	panic("klpq test: panic in the patched cmdline_proc_show");
	return 0;
}

static struct klp_func funcs[] = {
	{ .old_name = "cmdline_proc_show", .new_func = klpq_cmdline_proc_show, },
	{ }
};

static struct klp_object objs[] = {
	{ .funcs = funcs, },
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.replace = true,
};

static int klpq_init(void)
{
	return klp_enable_patch(&patch);
}

static void klpq_exit(void)
{
}

module_init(klpq_init);
module_exit(klpq_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("klpq faulty patch: the patched function panics the kernel");
