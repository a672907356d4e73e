// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_leakpg_s1: a leak of one page per call on a hot path (klpq example livepatch, faulty
 * corpus).
 *
 * DELIBERATELY BROKEN. Every call of the replacement cmdline_proc_show() takes a page from the
 * page allocator and never gives it back. Output and probes are right; no slab cache grows
 * (SUnreclaim holds still), only free memory falls, by 4 KiB per read of /proc/cmdline, and no
 * process holds those pages. klpq's leak check must fail it on free memory.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static struct page *volatile klpq_sink;

static int klpq_cmdline_proc_show(struct seq_file *m, void *v)
{
	klpq_sink = alloc_page(GFP_KERNEL); /* never freed */
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
MODULE_DESCRIPTION("klpq faulty corpus: a leak of one page per call on a hot path");
