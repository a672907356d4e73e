// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_slowtcp_s1: the only step of the slow-tcpsend patch set (klpq example livepatch).
 *
 * DELIBERATELY SLOW: a small performance regression on a hot path. Replaces tcp_sendmsg()
 * (net/ipv4/tcp.c, every send on a TCP socket) with the same body plus a busy wait of
 * delay_us microseconds (module parameter, default 5; the patch set loads it with 50) before
 * the socket lock is taken.
 * Functionally correct: every probe passes. A few microseconds disappear in the latency of a
 * paced stream's segments; the streaming workload's saturate mode (many small writes, as fast
 * as the path takes them) must show them as a lower throughput (docs/statistics.md).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <net/sock.h>
#include <net/tcp.h>

static unsigned int delay_us = 5;
module_param(delay_us, uint, 0444);
MODULE_PARM_DESC(delay_us, "busy wait added to every tcp_sendmsg() call, in microseconds");

/* tcp_sendmsg of 6.1 and 6.12, plus the delay */
static int klpq_slow_tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
{
	int ret;

	if (delay_us)
		udelay(delay_us);
	lock_sock(sk);
	ret = tcp_sendmsg_locked(sk, msg, size);
	release_sock(sk);
	return ret;
}

static struct klp_func klpq_funcs[] = {
	{
		.old_name = "tcp_sendmsg",
		.new_func = klpq_slow_tcp_sendmsg,
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
MODULE_DESCRIPTION("klpq example: tcp_sendmsg with a few microseconds added (a small regression)");
