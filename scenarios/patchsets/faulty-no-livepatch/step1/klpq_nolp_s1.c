// SPDX-License-Identifier: GPL-2.0
/* klpq_nolp_s1: DELIBERATELY BROKEN: an ordinary module where a livepatch was meant (the
 * klp_enable_patch() call forgotten). klpq must say so, not wait for a transition. */
#include <linux/kernel.h>
#include <linux/module.h>

static int __init klpq_init(void)
{
	pr_info("klpq_nolp_s1: loaded, but no livepatch registered\n");
	return 0;
}

static void __exit klpq_exit(void)
{
}

module_init(klpq_init);
module_exit(klpq_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klpq faulty corpus: a module that registers no livepatch");
