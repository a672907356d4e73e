// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_stall_s1: a livepatch whose transition can never settle.
 *
 * It replaces msleep() with an identical implementation, and before enabling the patch starts a
 * kthread that sleeps inside msleep() forever (uninterruptibly, so the kernel's fake signals do
 * not move it). The livepatch consistency model cannot switch a task whose stack holds a
 * patched function, so the transition stays pending: the harness must report a stall that
 * names the kthread "klpq_stall" with msleep on its stack.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/sched.h>

static struct task_struct *sleeper;

/* Same behaviour as the kernel's msleep(). */
static void klpq_stall_msleep(unsigned int msecs)
{
	unsigned long timeout = msecs_to_jiffies(msecs) + 1;

	while (timeout)
		timeout = schedule_timeout_uninterruptible(timeout);
}

static int klpq_stall_thread(void *unused)
{
	while (!kthread_should_stop())
		msleep(3600 * 1000);
	return 0;
}

static struct klp_func funcs[] = {
	{ .old_name = "msleep", .new_func = klpq_stall_msleep, },
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

static int klpq_stall_init(void)
{
	int i;

	sleeper = kthread_run(klpq_stall_thread, NULL, "klpq_stall");
	if (IS_ERR(sleeper))
		return PTR_ERR(sleeper);
	/* Make sure it is asleep inside msleep() before the transition starts. */
	for (i = 0; i < 200 && READ_ONCE(sleeper->__state) != TASK_UNINTERRUPTIBLE; i++)
		schedule_timeout_uninterruptible(msecs_to_jiffies(10));
	pr_info("sleeper pid %d is inside msleep()\n", task_pid_nr(sleeper));
	return klp_enable_patch(&patch);
}

static void klpq_stall_exit(void)
{
}

module_init(klpq_stall_init);
module_exit(klpq_stall_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("klpq faulty patch: a transition that never settles");
