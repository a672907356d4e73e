// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_leakload_s1: the only step of the faulty-leak-load patch set (klpq test livepatch).
 *
 * FAULTY ON PURPOSE: replaces inet_sendmsg() (net/ipv4/af_inet.c, the entry of every IPv4 TCP
 * and UDP send) with the same body, plus 512 bytes allocated and never freed on every call. A
 * probe that sends once leaks half a kilobyte; the gaming and streaming workloads send hundreds
 * of times a second, so the leak shows in the slab counters only while they run.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/indirect_call_wrapper.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <net/inet_common.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <net/udp.h>

/* the last block, so that the allocation is kept (never freed: the fault) */
static void *klpq_last;

static int klpq_leak_inet_sendmsg(struct socket *sock, struct msghdr *msg, size_t size)
{
	struct sock *sk = sock->sk;
	void *p = kmalloc(512, GFP_ATOMIC);

	if (p) {
		memset(p, 0x6b, 512);
		WRITE_ONCE(klpq_last, p);
	}
	if (unlikely(inet_send_prepare(sk)))
		return -EAGAIN;
	return INDIRECT_CALL_2(sk->sk_prot->sendmsg, tcp_sendmsg, udp_sendmsg, sk, msg, size);
}

static struct klp_func klpq_funcs[] = {
	{
		.old_name = "inet_sendmsg",
		.new_func = klpq_leak_inet_sendmsg,
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
MODULE_DESCRIPTION("klpq test: inet_sendmsg leaking 512 bytes per call (a leak only a load shows)");
