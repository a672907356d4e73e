// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_goodnet_s1: the only step of the good-netpath patch set (klpq example livepatch).
 *
 * A CORRECT patch on a hot path: replaces inet_sendmsg() (net/ipv4/af_inet.c, the entry of
 * every IPv4 TCP and UDP send) with the same body and a call counter. The companion of
 * slow-netpath: the same function, no delay. It must PASS, performance included (the
 * livepatch redirection itself costs nanoseconds against a send path of microseconds).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/indirect_call_wrapper.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <net/inet_common.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <net/udp.h>

static atomic64_t klpq_calls = ATOMIC64_INIT(0);

static int klpq_calls_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&klpq_calls));
}

static const struct kernel_param_ops klpq_calls_ops = { .get = klpq_calls_get };
module_param_cb(calls, &klpq_calls_ops, NULL, 0444);

/* 6.1's inet_sendmsg, counted */
static int klpq_good_inet_sendmsg(struct socket *sock, struct msghdr *msg, size_t size)
{
	struct sock *sk = sock->sk;

	atomic64_inc(&klpq_calls);
	if (unlikely(inet_send_prepare(sk)))
		return -EAGAIN;
	return INDIRECT_CALL_2(sk->sk_prot->sendmsg, tcp_sendmsg, udp_sendmsg, sk, msg, size);
}

static struct klp_func klpq_funcs[] = {
	{
		.old_name = "inet_sendmsg",
		.new_func = klpq_good_inet_sendmsg,
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
MODULE_DESCRIPTION("klpq example: inet_sendmsg, same behaviour, counted (a correct patch on a hot path)");
