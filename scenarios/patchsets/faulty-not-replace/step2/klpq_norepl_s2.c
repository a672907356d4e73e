// SPDX-License-Identifier: GPL-2.0
/* klpq_norepl_s2: DELIBERATELY BROKEN: step 2 of a cumulative set built without .replace = true (it stacks on step 1, and leaves out its fix) (klpq example livepatch). */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int klpq_version_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klpq.fix2\n");
	return 0;
}

static struct klp_func klpq_funcs[] = {
	{ .old_name = "version_proc_show", .new_func = klpq_version_proc_show },
	{ }
};

static struct klp_object klpq_objs[] = {
	{ .funcs = klpq_funcs },
	{ }
};

static struct klp_patch klpq_patch = {
	.mod = THIS_MODULE,
	.objs = klpq_objs,
	.replace = false,
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
MODULE_DESCRIPTION("klpq example: DELIBERATELY BROKEN: step 2 of a cumulative set built without .replace = true (it stacks on step 1, and leaves out its fix)");
