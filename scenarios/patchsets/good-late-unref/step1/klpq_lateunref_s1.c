// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_lateunref_s1: a correct patch whose module stays referenced for a second after it is
 * disabled (klpq example livepatch).
 *
 * Livepatch drops its own reference to a disabled patch's module from a workqueue, a moment
 * after the patch leaves sysfs; an rmmod in that moment fails with EAGAIN although nothing is
 * wrong. This module makes that moment one second long: its post_unpatch callback takes a
 * reference and a delayed work drops it. A harness must wait for such a reference to go (for a
 * bounded time) before it calls the module unremovable.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/workqueue.h>

static void klpq_put_fn(struct work_struct *w)
{
	pr_info("dropping the late reference\n");
	module_put(THIS_MODULE);
}
static DECLARE_DELAYED_WORK(klpq_put_work, klpq_put_fn);

static void klpq_post_unpatch(struct klp_object *obj)
{
	__module_get(THIS_MODULE);
	schedule_delayed_work(&klpq_put_work, HZ);
	pr_info("post_unpatch: holding a reference for 1 s\n");
}

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
		.callbacks = { .post_unpatch = klpq_post_unpatch },
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
	/* the reference is gone, so the work has run; let it return before the text goes */
	flush_delayed_work(&klpq_put_work);
}

module_init(klpq_init);
module_exit(klpq_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("klpq example: a module reference dropped late after disable");
