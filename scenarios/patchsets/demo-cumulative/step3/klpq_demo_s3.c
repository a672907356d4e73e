// SPDX-License-Identifier: GPL-2.0
/*
 * klpq_demo_s3: step 3 of the demo-cumulative patch set (klpq example livepatch).
 *
 * Cumulative: keeps the fixes of steps 1 and 2 and shows the advanced livepatch features.
 *  - cmdline_proc_show(): /proc/cmdline prints the real command line, " klpq.fix1" and
 *    " klpq.reads=N", N counting the reads of /proc/cmdline since this patch was enabled;
 *  - version_proc_show(): /proc/version prints the real banner and " klpq.fix2";
 *  - the counter lives in a shadow variable attached to the inode of /proc/cmdline
 *    (klp_shadow_get_or_alloc); it is created on first read and freed by the post_unpatch
 *    callback (klp_shadow_free_all) once nothing can use it any more;
 *  - a system state (klp_state: id KLPQ_STATE_READS, version 1) declares that this patch
 *    owns those shadow variables: a later cumulative patch must carry the same state id with
 *    a version >= 1 to replace it (the kernel refuses the load with -EINVAL otherwise);
 *  - pre_patch/post_patch/pre_unpatch/post_unpatch callbacks each log one line.
 * Notes: when a later cumulative patch replaces this one, only the new patch's callbacks run
 * (so the counters stay, for the new patch to take over). The counter is per proc inode:
 * another proc mount has its own, and an evicted inode restarts from 0 (its old shadow is
 * freed by post_unpatch).
 *
 * saved_command_line and linux_proc_banner are not exported to modules, and calling an
 * original function from its replacement would land back in the replacement. So the module
 * takes snapshots of /proc/cmdline and /proc/version while it loads, before the patch is
 * enabled, and prints those. Markers of an earlier klpq patch that is still active are
 * stripped from the snapshots so they are not printed twice.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/ctype.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/string.h>

#define KLPQ_SNAP_SIZE 4096

/* System state and shadow variable ids (around "klpq" in ASCII). */
#define KLPQ_STATE_READS	0x6b6c7071UL
#define KLPQ_STATE_READS_VERSION 1
#define KLPQ_SHADOW_READS	0x6b6c7072UL

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

static int klpq_reads_ctor(void *obj, void *shadow_data, void *ctor_data)
{
	atomic_long_t *reads = shadow_data;

	atomic_long_set(reads, 0);
	return 0;
}

static int klpq_cmdline_proc_show(struct seq_file *m, void *v)
{
	atomic_long_t *reads;
	long n = 0;

	/* Process context, seq_file lock held: GFP_KERNEL may sleep, which is fine here. */
	reads = klp_shadow_get_or_alloc(file_inode(m->file), KLPQ_SHADOW_READS,
					sizeof(*reads), GFP_KERNEL,
					klpq_reads_ctor, NULL);
	if (reads)
		n = atomic_long_inc_return(reads);
	seq_printf(m, "%s klpq.fix1 klpq.reads=%ld\n", klpq_cmdline, n);
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

static struct klp_patch klpq_patch;

static int klpq_pre_patch(struct klp_object *obj)
{
	struct klp_state *state = klp_get_state(&klpq_patch, KLPQ_STATE_READS);
	struct klp_state *prev = klp_get_prev_state(KLPQ_STATE_READS);

	if (!state)
		return -EINVAL;
	if (prev)
		pr_info("pre_patch: state %#lx version %u, taking over version %u\n",
			state->id, state->version, prev->version);
	else
		pr_info("pre_patch: state %#lx version %u, new\n",
			state->id, state->version);
	return 0;
}

static void klpq_post_patch(struct klp_object *obj)
{
	pr_info("post_patch: counting reads of /proc/cmdline\n");
}

static void klpq_pre_unpatch(struct klp_object *obj)
{
	pr_info("pre_unpatch: the counter stops with the transition\n");
}

static void klpq_post_unpatch(struct klp_object *obj)
{
	/* The transition is over: no task can run klpq_cmdline_proc_show() any more. */
	klp_shadow_free_all(KLPQ_SHADOW_READS, NULL);
	pr_info("post_unpatch: read counters freed\n");
}

static struct klp_object klpq_objs[] = {
	{
		/* name == NULL: the functions are in vmlinux */
		.funcs = klpq_funcs,
		.callbacks = {
			.pre_patch = klpq_pre_patch,
			.post_patch = klpq_post_patch,
			.pre_unpatch = klpq_pre_unpatch,
			.post_unpatch = klpq_post_unpatch,
		},
	},
	{ }
};

static struct klp_state klpq_states[] = {
	{
		.id = KLPQ_STATE_READS,
		.version = KLPQ_STATE_READS_VERSION,
	},
	{ }
};

static struct klp_patch klpq_patch = {
	.mod = THIS_MODULE,
	.objs = klpq_objs,
	.states = klpq_states,
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
MODULE_DESCRIPTION("klpq demo-cumulative step 3: steps 1+2, a /proc/cmdline read counter in a shadow variable, klp_state and callbacks");
MODULE_INFO(livepatch, "Y");
