// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_modobj_s1: a cumulative patch with an object for a module (klpq example livepatch).
 *
 * Real cumulative patches carry fixes for modules (kvm, ext4, nf_*, drivers). Livepatch lists
 * every object under /sys/kernel/livepatch/<patch>/, and an object for a module that is not
 * loaded stays "patched 0" until the module loads, when the kernel applies it. Here the module
 * is isofs, which the test guest never loads; its replacement function is never called there.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/statfs.h>

static int klpq_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klpq.fix1\n");
	return 0;
}

/* isofs_statfs(): only reached if isofs is loaded and a statfs(2) hits it */
static int klpq_isofs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	return -ENOSYS;
}

static struct klp_func klpq_vmlinux_funcs[] = {
	{ .old_name = "cmdline_proc_show", .new_func = klpq_cmdline_proc_show },
	{ }
};

static struct klp_func klpq_isofs_funcs[] = {
	{ .old_name = "isofs_statfs", .new_func = klpq_isofs_statfs },
	{ }
};

static struct klp_object klpq_objs[] = {
	{ .funcs = klpq_vmlinux_funcs },
	{ .name = "isofs", .funcs = klpq_isofs_funcs },
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
MODULE_DESCRIPTION("klpq example: a patch with an object for a module that is not loaded");
