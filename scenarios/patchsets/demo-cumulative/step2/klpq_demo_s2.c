// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_demo_s2: step 2 of the demo-cumulative patch set (klpq example livepatch).
 *
 * Cumulative: keeps step 1's fix and adds a second one.
 *  - cmdline_proc_show() (fs/proc/cmdline.c): /proc/cmdline prints the real command line
 *    followed by " klpq.fix1" (as step 1);
 *  - version_proc_show() (fs/proc/version.c): /proc/version prints the real banner
 *    followed by " klpq.fix2".
 * With .replace = true this module takes over from step 1, whose module can then be removed.
 *
 * saved_command_line and linux_proc_banner are not exported to modules, and calling an
 * original function from its replacement would land back in the replacement. So the module
 * takes snapshots of /proc/cmdline and /proc/version while it loads, before the patch is
 * enabled, and prints those. Markers of an earlier klpq patch that is still active are
 * stripped from the snapshots so they are not printed twice.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/string.h>

#define KLPQ_SNAP_SIZE 4096

static char klpq_cmdline[KLPQ_SNAP_SIZE];
static char klpq_version[KLPQ_SNAP_SIZE];

/* Reads the whole of PATH into BUF as a string without its final newline. */
static int klpq_snapshot(const char *path, char *buf, size_t size)
{
	struct file *f;
	loff_t pos = 0;
	size_t len = 0;
	ssize_t n;

	f = filp_open(path, O_RDONLY, 0);
	if (IS_ERR(f))
		return PTR_ERR(f);
	for (;;) {
		if (len >= size - 1) {
			filp_close(f, NULL);
			return -E2BIG;
		}
		n = kernel_read(f, buf + len, size - 1 - len, &pos);
		if (n < 0) {
			filp_close(f, NULL);
			return n;
		}
		if (n == 0)
			break;
		len += n;
	}
	filp_close(f, NULL);
	buf[len] = '\0';
	if (len && buf[len - 1] == '\n')
		buf[len - 1] = '\0';
	return 0;
}

/*
 * Cuts the last MARKER off S when only klpq output follows it: nothing, or
 * " klpq.reads=<digits>" (what the demo's step 3 prints).
 */
static void klpq_strip_marker(char *s, const char *marker)
{
	static const char reads[] = " klpq.reads=";
	char *p, *last = NULL, *q;

	for (p = strstr(s, marker); p; p = strstr(p + 1, marker))
		last = p;
	if (!last)
		return;
	q = last + strlen(marker);
	if (!strncmp(q, reads, sizeof(reads) - 1)) {
		q += sizeof(reads) - 1;
		if (!isdigit(*q))
			return;
		while (isdigit(*q))
			q++;
	}
	if (*q == '\0')
		*last = '\0';
}

static int klpq_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s klpq.fix1\n", klpq_cmdline);
	return 0;
}

static int klpq_version_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s klpq.fix2\n", klpq_version);
	return 0;
}

static struct klp_func klpq_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = klpq_cmdline_proc_show,
	},
	{
		.old_name = "version_proc_show",
		.new_func = klpq_version_proc_show,
	},
	{ }
};

static struct klp_object klpq_objs[] = {
	{
		/* name == NULL: the function is in vmlinux */
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
	int ret;

	ret = klpq_snapshot("/proc/cmdline", klpq_cmdline, sizeof(klpq_cmdline));
	if (ret) {
		pr_err("cannot snapshot /proc/cmdline (is /proc mounted?): %d\n", ret);
		return ret;
	}
	klpq_strip_marker(klpq_cmdline, " klpq.fix1");

	ret = klpq_snapshot("/proc/version", klpq_version, sizeof(klpq_version));
	if (ret) {
		pr_err("cannot snapshot /proc/version (is /proc mounted?): %d\n", ret);
		return ret;
	}
	klpq_strip_marker(klpq_version, " klpq.fix2");

	return klp_enable_patch(&klpq_patch);
}

static void __exit klpq_exit(void)
{
}

module_init(klpq_init);
module_exit(klpq_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klpq demo-cumulative step 2: keeps \" klpq.fix1\" in /proc/cmdline, adds \" klpq.fix2\" to /proc/version");
MODULE_INFO(livepatch, "Y");
