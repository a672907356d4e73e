// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_kprobe: a helper module (not a livepatch) of good-kprobe-refusal. It puts a kprobe with
 * a post handler on cmdline_proc_show. A post handler needs the function's ftrace call site
 * with IPMODIFY, which a livepatch of the same function needs too: while this probe is set the
 * kernel must refuse such a livepatch (EBUSY), and accept it once the probe is gone.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/module.h>

static unsigned long hits;

static void klpq_post(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
	hits++;
}

static struct kprobe klpq_kp = {
	.symbol_name = "cmdline_proc_show",
	.post_handler = klpq_post,
};

static int __init klpq_kprobe_init(void)
{
	int ret = register_kprobe(&klpq_kp);

	if (!ret)
		pr_info("kprobe with a post handler set on %s\n", klpq_kp.symbol_name);
	return ret;
}

static void __exit klpq_kprobe_exit(void)
{
	unregister_kprobe(&klpq_kp);
	pr_info("kprobe removed after %lu hit(s)\n", hits);
}

module_init(klpq_kprobe_init);
module_exit(klpq_kprobe_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klpq test helper: a kprobe with a post handler on cmdline_proc_show");
