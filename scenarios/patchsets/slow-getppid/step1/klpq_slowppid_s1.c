// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_slowppid_s1: the only step of the slow-getppid patch set (klpq example livepatch).
 *
 * DELIBERATELY SLOW: a small performance regression on a syscall path. Replaces the x86-64
 * entry of getppid(2), __x64_sys_getppid (kernel/sys.c), with the same body plus a busy wait
 * of delay_us microseconds (module parameter, default 5). Functionally correct: every probe
 * passes. The callbench workload (op getppid) measures the cost of each call and must show it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>

struct pt_regs;

static unsigned int delay_us = 5;
module_param(delay_us, uint, 0444);
MODULE_PARM_DESC(delay_us, "busy wait added to every getppid() call, in microseconds");

/* SYSCALL_DEFINE0(getppid) of 6.1 and 6.12, plus the delay */
static long klpq_slow_getppid(const struct pt_regs *regs)
{
	int pid;

	if (delay_us)
		udelay(delay_us);
	rcu_read_lock();
	pid = task_tgid_vnr(rcu_dereference(current->real_parent));
	rcu_read_unlock();
	return pid;
}

static struct klp_func klpq_funcs[] = {
	{
		.old_name = "__x64_sys_getppid",
		.new_func = klpq_slow_getppid,
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
MODULE_DESCRIPTION("klpq example: getppid() with a few microseconds added (a small regression)");
