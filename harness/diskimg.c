/* diskimg.c: disk-image guests with libguestfs (diskimg.h, docs/scenario.md "guest").
 *
 * The built image is two cached layers of work: the root tree of debootstrap, packed as a tar
 * with numeric owners (CACHE/disk/rootfs-KEY.tar: keyed by distro, mirror and packages, so a
 * matrix of kernels pays for debootstrap once), and the qcow2 image itself (keyed by that and
 * the kernel), made by libguestfs from the host: a partition, ext4, the tar, the kernel's
 * modules, a few settings. The agent is not in it: klpq's first stage (the initramfs) installs
 * it into each cell's overlay at boot, so a new agent does not make a new image. */
#include <errno.h>
#include <fcntl.h>
#include <guestfs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "diskimg.h"
#include "pbuild.h"
#include "spawn.h"

/* Bumped when what goes into a built image changes: every image is then rebuilt. */
#define DISKIMG_FORMAT "klpq-disk-2"
#define ROOTFS_FORMAT "klpq-rootfs-1"
#define SUITE "bookworm"
#define LABEL "klpq-root"

static void say(const struct diskimg_ctx *c, const char *fmt, ...) KLPQ_ATTR_FMT(2, 3);
static void say(const struct diskimg_ctx *c, const char *fmt, ...)
{
	struct sb s = SB_INIT;
	va_list ap;

	if (!c->log)
		return;
	va_start(ap, fmt);
	sb_vaddf(&s, fmt, ap);
	va_end(ap);
	c->log(c->log_ctx, s.buf);
	sb_release(&s);
}

void diskimg_guest_dev(const char *dev, char *out, size_t len)
{
	/* the appliance has virtio-scsi (sdX); klpq's guests virtio-blk (vdX) */
	if (!strncmp(dev, "/dev/sd", 7))
		snprintf(out, len, "/dev/vd%s", dev + 7);
	else
		snprintf(out, len, "%s", dev);
}

/* ---- the appliance ---------------------------------------------------------------------- */

static void gf_log_cb(guestfs_h *g, void *opaque, uint64_t event, int event_handle, int flags,
		      const char *buf, size_t buf_len, const uint64_t *array, size_t array_len)
{
	FILE *f = opaque;

	(void)g, (void)event, (void)event_handle, (void)flags, (void)array, (void)array_len;
	if (f && buf_len) {
		fwrite(buf, 1, buf_len, f);
		if (buf[buf_len - 1] != '\n')
			fputc('\n', f);
	}
}

/* A handle on the direct backend (no libvirt daemon), its appliance booting the cell's kernel
 * under TCG unless KVM was proven for it (libguestfs alone would trust an openable /dev/kvm),
 * its messages into logf. NULL with e set. */
static guestfs_h *gf_open(const struct diskimg_ctx *c, FILE *logf, struct kerr *e)
{
	/* per kernel build: supermin's --if-newer would not notice another kernel file */
	char *cachedir = xasprintf("%s/guestfs/%s-%.12s", c->cache, c->k->release,
				   c->kernel_sha256 ? c->kernel_sha256 : "");
	char *bs[] = { "force_tcg", NULL };
	guestfs_h *g = NULL;

	/* supermin copies the host's /lib/modules layout; a container may have none */
	if (!is_dir("/lib/modules")) {
		kerr_set(e, "libguestfs's appliance builder (supermin) needs a /lib/modules folder "
			 "on this host, which has none (a container?): mkdir /lib/modules, or run "
			 "ci/install-deps.sh --disk");
		goto out;
	}
	if (mkdir_p(cachedir, 0700, e) < 0)
		goto out;
	/* the appliance's kernel: the cell's, so no host kernel is needed (the process is the
	 * cell's own and single threaded: its environment is its own) */
	setenv("SUPERMIN_KERNEL", c->k->vmlinuz, 1);
	setenv("SUPERMIN_MODULES", c->k->modules, 1);
	setenv("SUPERMIN_KERNEL_VERSION", c->k->release, 1);
	g = guestfs_create_flags(GUESTFS_CREATE_NO_ENVIRONMENT);
	if (!g) {
		kerr_errno(e, "guestfs_create");
		goto out;
	}
	guestfs_set_error_handler(g, NULL, NULL);
	if (logf) {
		/* not verbose: a build's trace would be megabytes; the appliance's own messages */
		guestfs_set_event_callback(g, gf_log_cb, GUESTFS_EVENT_APPLIANCE |
					   GUESTFS_EVENT_LIBRARY | GUESTFS_EVENT_WARNING, 0, logf);
	}
	if (guestfs_set_backend(g, "direct") < 0 ||
	    (!c->kvm && guestfs_set_backend_settings(g, bs) < 0) ||
	    guestfs_set_cachedir(g, cachedir) < 0 || guestfs_set_memsize(g, 1024) < 0 ||
	    guestfs_set_smp(g, 2) < 0 || guestfs_set_network(g, 0) < 0) {
		kerr_set(e, "libguestfs: %s", guestfs_last_error(g));
		guestfs_close(g);
		g = NULL;
	}
out:
	free(cachedir);
	return g;
}

/* e from the handle's last error, naming what was being done and the log. -1. */
static int gf_err(guestfs_h *g, struct kerr *e, const char *log, const char *fmt, ...)
	KLPQ_ATTR_FMT(4, 5);
static int gf_err(guestfs_h *g, struct kerr *e, const char *log, const char *fmt, ...)
{
	struct sb s = SB_INIT;
	const char *le = g ? guestfs_last_error(g) : NULL;
	va_list ap;

	va_start(ap, fmt);
	sb_vaddf(&s, fmt, ap);
	va_end(ap);
	kerr_set(e, "libguestfs, %s: %s%s%s", s.buf, le ? le : "failed",
		 log ? "; see " : "", log ? log : "");
	sb_release(&s);
	return -1;
}

/* ---- the built image ---------------------------------------------------------------------- */

/* The archive debootstrap uses: guest.mirror, or this host's own Debian source. */
static char *pick_mirror(const struct guest_spec *g)
{
	struct sb s = SB_INIT;
	struct kerr ignore = KERR_INIT;
	const char *p, *line;
	size_t len;
	char *m = NULL;

	if (g->mirror)
		return xstrdup(g->mirror);
	if (read_file("/etc/apt/sources.list.d/debian.sources", &s, 1 << 20, &ignore) == 0) {
		p = s.buf;
		while (!m && next_line(&p, &line, &len)) {
			const char *u = line + 6;
			size_t n = len > 6 ? strcspn(u, " \t\n") : 0;

			if (len > 6 && !strncmp(line, "URIs: ", 6) && n && n <= len - 6) {
				char *cand = xstrndup(u, n);

				if (strstr(cand, "security") || !strstr(cand, "/debian"))
					free(cand);
				else
					m = cand;
			}
		}
	}
	sb_reset(&s);
	if (!m && read_file("/etc/apt/sources.list", &s, 1 << 20, &ignore) == 0) {
		p = s.buf;
		while (!m && next_line(&p, &line, &len)) {
			char url[512];

			/* a Debian archive only: not Ubuntu's, not a third party's */
			if (len < sizeof(url) && sscanf(line, "deb %511s", url) == 1 &&
			    (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)) &&
			    !strstr(url, "security") && strstr(url, "/debian") &&
			    !strstr(url, "ubuntu"))
				m = xstrdup(url);
		}
	}
	sb_release(&s);
	return m ? m : xstrdup("http://deb.debian.org/debian");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The packages debootstrap installs: what systemd and the agent need, kdump's (guest.kdump;
 * makedumpfile is only a Recommends of kdump-tools, which debootstrap skips), then
 * guest.packages. */
static char *include_list(const struct guest_spec *g)
{
	static const char base[] = "systemd-sysv,udev,kmod,procps";
	static const char kdump[] = ",kdump-tools,kexec-tools,makedumpfile";
	char **p = xcalloc(g->nr_packages + 1, sizeof(*p));
	struct sb s = SB_INIT;

	memcpy(p, g->packages, g->nr_packages * sizeof(*p));
	qsort(p, g->nr_packages, sizeof(*p), cmp_str);
	sb_adds(&s, base);
	if (g->kdump)
		sb_adds(&s, kdump);
	for (size_t i = 0; i < g->nr_packages; i++)
		if (!i || strcmp(p[i], p[i - 1]))
			sb_addf(&s, ",%s", p[i]);
	free(p);
	return sb_detach(&s, NULL);
}

/* What a killed debootstrap can leave mounted in its tree, detached before the tree goes. */
static void unmount_tree(const char *root)
{
	static const char *const sub[] = { "/proc", "/sys", "/dev/pts", "/dev/shm", "/dev", NULL };

	for (size_t i = 0; sub[i]; i++) {
		char *p = xasprintf("%s%s", root, sub[i]);

		umount2(p, MNT_DETACH); /* EINVAL when not a mount point */
		free(p);
	}
}

/* CACHE/disk/rootfs-KEY.tar: debootstrap's tree, packed with numeric owners (libguestfs's
 * tar_in would otherwise map owners by name through the appliance's own /etc/passwd). */
static int make_rootfs(const struct diskimg_ctx *c, const char *tar, const char *mirror,
		       const char *include, uint64_t *ms, struct kerr *e)
{
	char *tmp = xasprintf("%s.tmp.%d", tar, (int)getpid());
	char *root = xasprintf("%s.root.%d", tar, (int)getpid());
	char *log = xasprintf("%s.log", tar);
	char *inc = xasprintf("--include=%s", include);
	const char *deb[] = { "debootstrap", "--variant=minbase", inc, SUITE, root, mirror, NULL };
	const char *pack[] = { "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C",
			       root, "-cf", tmp, ".", NULL };
	struct run_opts o = RUN_OPTS_INIT;
	struct sb out = SB_INIT;
	uint64_t t0 = now_ms();
	int ret = -1;

	unmount_tree(root);
	say(c, "building the %s root with debootstrap from %s (once: later images reuse it)",
	    SUITE, mirror);
	rm_rf(root);
	o.timeout_ms = 30 * 60 * 1000;
	o.stop_fd = c->stop_fd;
	if (run_capture(deb, &o, &out, e) < 0) {
		struct kerr we = KERR_INIT;

		write_file_atomic(log, out.buf ? out.buf : "", out.len, &we);
		kerr_set(e, "debootstrap of %s from %s failed (%s); its output is in %s", SUITE,
			 mirror, o.end == RUN_TIMED_OUT ? "timed out after 30 minutes" :
			 o.end == RUN_STOPPED ? "stopped" : "see its last lines there", log);
		goto out;
	}
	write_file_atomic(log, out.buf ? out.buf : "", out.len, e);
	/* what a cell never needs from the image: the downloaded packages */
	{
		char *debs = xasprintf("%s/var/cache/apt/archives", root);
		const char *clean[] = { "find", debs, "-name", "*.deb", "-delete", NULL };
		struct run_opts co = RUN_OPTS_INIT;

		sb_reset(&out);
		run_capture(clean, &co, &out, e);
		kerr_clear(e);
		free(debs);
	}
	sb_reset(&out);
	o.timeout_ms = 10 * 60 * 1000;
	if (run_capture(pack, &o, &out, e) < 0)
		goto out;
	if (rename(tmp, tar) < 0) {
		kerr_errno(e, "rename %s", tar);
		goto out;
	}
	*ms = now_ms() - t0;
	ret = 0;
out:
	if (ret < 0)
		unlink(tmp);
	unmount_tree(root);
	rm_rf(root);
	sb_release(&out);
	free(tmp);
	free(root);
	free(log);
	free(inc);
	return ret;
}

/* The settings a built image gets, written by libguestfs after the root tree. */
static int write_settings(guestfs_h *g, const struct diskimg_ctx *c, const char *key,
			  const char *log, struct kerr *e)
{
	/* units that cost boot time in a test VM and do nothing useful there */
	static const char *const masked[] = {
		"getty@.service", "serial-getty@.service", "apt-daily.timer",
		"apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
		"fstrim.timer", "systemd-timesyncd.service",
		/* gettys on tty2-6 when logind is missing: fails with the gettys masked */
		"getty-static.service", NULL };
	static const char journald[] =
		"# klpq: the journal kept on disk and synced every second, for the post-mortem\n"
		"[Journal]\nStorage=persistent\nSyncIntervalSec=1s\nRateLimitBurst=0\n";
	static const char fstab[] =
		"LABEL=" LABEL " / ext4 rw,errors=remount-ro,commit=1 0 0\n";
	char machine_id[34];
	char *boot = xasprintf("/boot/vmlinuz-%s", c->k->release);
	int ret = -1;

	snprintf(machine_id, sizeof(machine_id), "%.32s\n", key);
	if (guestfs_write(g, "/etc/hostname", "klpq-guest\n", 11) < 0 ||
	    guestfs_write(g, "/etc/machine-id", machine_id, 33) < 0 ||
	    guestfs_write(g, "/etc/fstab", fstab, sizeof(fstab) - 1) < 0 ||
	    guestfs_mkdir_p(g, "/etc/systemd/journald.conf.d") < 0 ||
	    guestfs_write(g, "/etc/systemd/journald.conf.d/klpq.conf", journald,
			  sizeof(journald) - 1) < 0 ||
	    guestfs_mkdir_p(g, "/var/log/journal") < 0 || guestfs_mkdir_p(g, "/klpq") < 0 ||
	    guestfs_mkdir_p(g, "/boot") < 0 || guestfs_upload(g, c->k->vmlinuz, boot) < 0) {
		gf_err(g, e, log, "writing the image's settings");
		goto out;
	}
	for (size_t i = 0; masked[i]; i++) {
		char *p = xasprintf("/etc/systemd/system/%s", masked[i]);
		int r = guestfs_ln_sf(g, "/dev/null", p);

		free(p);
		if (r < 0) {
			gf_err(g, e, log, "masking %s", masked[i]);
			goto out;
		}
	}
	ret = 0;
out:
	free(boot);
	return ret;
}

/* guest.kdump: kdump-tools loads the cell's own kernel as the capture kernel (kexec -p) at
 * every boot, with klpq's first stage as its initrd (no initramfs-tools in the image: its
 * mkinitramfs would run at guest boot, and in the build appliance it picks the appliance's
 * disk). The capture boot inherits the command line (klpq.root=, console, panic=-1) and adds
 * Debian's reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll, saves the
 * dmesg and a filtered vmcore to /var/crash/STAMP/ and reboots, which ends QEMU (-no-reboot). */
static int write_kdump(guestfs_h *g, const struct diskimg_ctx *c, const char *log,
		       struct kerr *e)
{
	char *initrd = xasprintf("/boot/klpq-capture-%s.img", c->k->release);
	char *conf = xasprintf(
		"# written by klpq (guest.kdump: true), read by kdump-config as shell\n"
		"USE_KDUMP=1\n"
		"KDUMP_KERNEL=/boot/vmlinuz-%s\n"
		"KDUMP_INITRD=%s\n"
		"KDUMP_COREDIR=/var/crash\n"
		"KDUMP_DUMP_DMESG=1\n"
		/* kdump-config 1:1.8.1 escapes only the first double quote of /proc/cmdline
		 * before its eval, which breaks the kexec command of a line with dyndbg="..."
		 * (livepatch_debug): the same line with every one escaped */
		"KDUMP_CMDLINE=$(sed -re 's/(^| )(crashkernel|hugepages|hugepagesz|abm)=[^ ]*//g;"
		"s/\"/\\\\\"/g' /proc/cmdline)\n",
		c->k->release, initrd);
	/* kexec-tools' debconf default would turn every reboot into a kexec */
	static const char kexec[] = "# written by klpq\nLOAD_KEXEC=false\n";

	/* kdump-config's own links, so it neither looks for a Debian initrd (mkinitramfs) nor
	 * says "Invalid symlink": /var/lib/kdump/initrd.img-REL, and the sysctl file it compares
	 * with /etc/kdump/sysctl.conf before trusting that initrd */
	char *link = xasprintf("/var/lib/kdump/initrd.img-%s", c->k->release);
	char *sysctls = xasprintf("/var/lib/kdump/latest_sysctls-%s", c->k->release);
	int ret = 0;

	if (guestfs_upload(g, c->capture_initrd, initrd) < 0 ||
	    guestfs_mkdir_p(g, "/var/lib/kdump") < 0 || guestfs_ln_sf(g, initrd, link) < 0 ||
	    guestfs_cp(g, "/etc/kdump/sysctl.conf", sysctls) < 0 ||
	    guestfs_write(g, "/etc/default/kdump-tools", conf, strlen(conf)) < 0 ||
	    guestfs_write(g, "/etc/default/kexec", kexec, sizeof(kexec) - 1) < 0 ||
	    guestfs_mkdir_p(g, "/var/crash") < 0)
		ret = gf_err(g, e, log, "setting up kdump");
	free(initrd);
	free(conf);
	free(link);
	free(sysctls);
	return ret;
}

/* The image itself from the root tar: one appliance launch. */
static int make_image(const struct diskimg_ctx *c, const char *tar, const char *tmp,
		      const char *key, int kdump, const char *log, struct kerr *e)
{
	FILE *logf = fopen(log, "we");
	guestfs_h *g = gf_open(c, logf, e);
	int ret = -1;

	if (!g)
		goto out;
	if (guestfs_disk_create(g, tmp, "qcow2", 8LL << 30, GUESTFS_DISK_CREATE_PREALLOCATION,
				"off", -1) < 0) {
		gf_err(g, e, log, "creating %s", tmp);
		goto out;
	}
	if (guestfs_add_drive_opts(g, tmp, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "qcow2",
				   GUESTFS_ADD_DRIVE_OPTS_CACHEMODE, "unsafe", -1) < 0 ||
	    guestfs_launch(g) < 0) {
		gf_err(g, e, log, "starting the appliance");
		goto out;
	}
	if (guestfs_part_disk(g, "/dev/sda", "mbr") < 0 ||
	    guestfs_mkfs_opts(g, "ext4", "/dev/sda1", GUESTFS_MKFS_OPTS_LABEL, LABEL, -1) < 0 ||
	    guestfs_mount(g, "/dev/sda1", "/") < 0) {
		gf_err(g, e, log, "making the file system");
		goto out;
	}
	if (guestfs_tar_in_opts(g, tar, "/", GUESTFS_TAR_IN_OPTS_XATTRS, 1, -1) < 0) {
		gf_err(g, e, log, "unpacking %s", tar);
		goto out;
	}
	/* the kernel's modules, as its Debian package installs them (the tree has depmod's
	 * files already); /lib is merged into /usr on bookworm, a relative link */
	if (guestfs_mkdir_p(g, "/lib/modules") < 0 ||
	    guestfs_copy_in(g, c->k->modules, "/lib/modules") < 0) {
		gf_err(g, e, log, "copying in %s", c->k->modules);
		goto out;
	}
	if (write_settings(g, c, key, log, e) < 0)
		goto out;
	if (kdump && write_kdump(g, c, log, e) < 0)
		goto out;
	if (guestfs_umount_all(g) < 0 || guestfs_shutdown(g) < 0) {
		/* a failed shutdown may have lost writes: the image is not trusted */
		gf_err(g, e, log, "closing the image");
		goto out;
	}
	ret = 0;
out:
	if (g)
		guestfs_close(g);
	if (logf)
		fclose(logf);
	return ret;
}

int diskimg_build(const struct guest_spec *gs, const struct diskimg_ctx *c,
		  struct diskimg_built *out, struct kerr *e)
{
	char *dir = xasprintf("%s/disk", c->cache);
	char *mirror = pick_mirror(gs);
	char *include = include_list(gs);
	struct sb k = SB_INIT;
	char k0[65], k1[65];
	char *tar = NULL, *img = NULL, *tmp = NULL, *log = NULL, *lockp = NULL;
	int lock = -1, ret = -1;
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (mkdir_p(dir, 0755, e) < 0)
		goto out;
	sb_addf(&k, "%s\n%s\n%s\n%s\n", ROOTFS_FORMAT, SUITE, mirror, include);
	sha256_text(k.buf, k.len, k0);
	sb_reset(&k);
	sb_addf(&k, "%s\n%s\n%s\n%s\n", DISKIMG_FORMAT, k0, c->k->release,
		c->kernel_sha256 ? c->kernel_sha256 : "");
	if (gs->kdump) {
		if (!c->capture_initrd || !c->capture_key) {
			kerr_set(e, "guest.kdump: no capture initrd was made for the image");
			goto out;
		}
		sb_addf(&k, "kdump %s\n", c->capture_key);
	}
	sha256_text(k.buf, k.len, k1);
	tar = xasprintf("%s/rootfs-%.16s.tar", dir, k0);
	img = xasprintf("%s/%s-%s-%.12s.qcow2", dir, gs->distro, c->k->release, k1);
	tmp = xasprintf("%s.tmp", img);
	log = xasprintf("%s.log", img);
	lockp = xasprintf("%s/%.16s.lock", dir, k0);
	/* one builder per root: parallel cells of the matrix wait and reuse its work */
	lock = lock_path(lockp, c->stop_fd, e);
	if (lock < 0)
		goto out;
	if (stat(img, &st) == 0) {
		out->cached = 1;
	} else {
		uint64_t t0;

		if (!path_exists(tar) &&
		    make_rootfs(c, tar, mirror, include, &out->rootfs_ms, e) < 0)
			goto out;
		say(c, "building the disk image for %s with libguestfs", c->k->release);
		t0 = now_ms();
		unlink(tmp);
		if (make_image(c, tar, tmp, k1, gs->kdump, log, e) < 0) {
			unlink(tmp);
			goto out;
		}
		/* never written again: each cell boots its own overlay of it */
		if (chmod(tmp, 0444) < 0 || rename(tmp, img) < 0) {
			kerr_errno(e, "installing %s", img);
			unlink(tmp);
			goto out;
		}
		out->build_ms = now_ms() - t0;
		if (stat(img, &st) < 0) {
			kerr_errno(e, "stat %s", img);
			goto out;
		}
	}
	out->bytes = (int64_t)st.st_blocks * 512;
	out->path = img;
	img = NULL;
	ret = 0;
out:
	if (lock >= 0)
		close(lock);
	sb_release(&k);
	free(dir);
	free(mirror);
	free(include);
	free(tar);
	free(img);
	free(tmp);
	free(log);
	free(lockp);
	return ret;
}

void diskimg_built_release(struct diskimg_built *b)
{
	free(b->path);
	b->path = NULL;
}

/* ---- a user's image ----------------------------------------------------------------------- */

void diskimg_info_release(struct diskimg_info *i)
{
	free(i->os);
	free(i->root);
	free(i->kernels);
	memset(i, 0, sizeof(*i));
}

static void free_strings(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Mounts root's file systems read only as the guest would (inspection's mount points). */
static int mount_inspected(guestfs_h *g, const char *root)
{
	char **mp = guestfs_inspect_get_mountpoints(g, root);
	size_t n = 0;
	int ret = 0;

	if (!mp)
		return -1;
	while (mp[n])
		n += 2;
	/* shortest mount point first: / before /boot */
	for (size_t len = 1; len < 4096 && ret == 0; len++) {
		int more = 0;

		for (size_t i = 0; i < n; i += 2) {
			size_t l = strlen(mp[i]);

			if (l == len && guestfs_mount_ro(g, mp[i + 1], mp[i]) < 0 && len == 1)
				ret = -1;
			more |= l > len;
		}
		if (!more)
			break;
	}
	free_strings(mp);
	return ret;
}

int diskimg_inspect(const char *path, const struct diskimg_ctx *c, struct diskimg_info *out,
		    struct kerr *e)
{
	guestfs_h *g = gf_open(c, NULL, e);
	char **roots = NULL, **mods = NULL;
	char *type = NULL, *distro = NULL, *product = NULL, *mpath = NULL;
	struct sb ks = SB_INIT;
	char dev[64];
	int ret = -1, have = 0;

	memset(out, 0, sizeof(*out));
	if (!g)
		return -1;
	if (guestfs_add_drive_opts(g, path, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "qcow2",
				   GUESTFS_ADD_DRIVE_OPTS_READONLY, 1, -1) < 0 ||
	    guestfs_launch(g) < 0) {
		gf_err(g, e, NULL, "opening %s", path);
		goto out;
	}
	roots = guestfs_inspect_os(g);
	if (!roots) {
		gf_err(g, e, NULL, "inspecting %s", path);
		goto out;
	}
	ret = 1;
	if (!roots[0]) {
		kerr_set(e, "%s: libguestfs finds no operating system on it", path);
		goto out;
	}
	if (roots[1]) {
		kerr_set(e, "%s has more than one operating system (%s, %s): klpq boots one root",
			 path, roots[0], roots[1]);
		goto out;
	}
	type = guestfs_inspect_get_type(g, roots[0]);
	distro = guestfs_inspect_get_distro(g, roots[0]);
	product = guestfs_inspect_get_product_name(g, roots[0]);
	{
		char ver[32];

		snprintf(ver, sizeof(ver), "%d.%d", guestfs_inspect_get_major_version(g, roots[0]),
			 guestfs_inspect_get_minor_version(g, roots[0]));
		/* Debian's product name is its version: said once */
		out->os = product && strcmp(product, ver) && strcmp(product, "unknown") ?
			xasprintf("%s %s (%s)", distro ? distro : "?", ver, product) :
			xasprintf("%s %s", distro ? distro : "?", ver);
	}
	diskimg_guest_dev(roots[0], dev, sizeof(dev));
	out->root = xstrdup(dev);
	if (!type || strcmp(type, "linux")) {
		kerr_set(e, "%s holds %s, not Linux", path, out->os);
		goto out;
	}
	{
		/* the first stage mounts a plain partition or disk, with ext4 */
		char *fs = guestfs_vfs_type(g, roots[0]);
		int plain = !strncmp(roots[0], "/dev/sd", 7) &&
			    !strchr(roots[0] + 7, '/');

		if (!fs || strcmp(fs, "ext4") || !plain) {
			kerr_set(e, "%s: its root %s is %s%s; klpq's first stage mounts ext4 on a "
				 "plain partition or disk", path, roots[0], fs ? fs : "unknown",
				 plain ? "" : " (not a plain partition: LVM or a subvolume?)");
			free(fs);
			goto out;
		}
		free(fs);
	}
	if (mount_inspected(g, roots[0]) < 0) {
		gf_err(g, e, NULL, "mounting the root of %s", path);
		ret = -1;
		goto out;
	}
	if (guestfs_is_file_opts(g, "/lib/systemd/systemd", GUESTFS_IS_FILE_OPTS_FOLLOWSYMLINKS,
				 1, -1) <= 0 &&
	    guestfs_is_file_opts(g, "/usr/lib/systemd/systemd",
				 GUESTFS_IS_FILE_OPTS_FOLLOWSYMLINKS, 1, -1) <= 0) {
		kerr_set(e, "%s (%s) has no systemd (/lib/systemd/systemd): klpq starts its agent "
			 "as a systemd service", path, out->os);
		goto out;
	}
	mods = guestfs_is_dir(g, "/lib/modules") > 0 ? guestfs_ls(g, "/lib/modules") : NULL;
	for (size_t i = 0; mods && mods[i]; i++) {
		sb_addf(&ks, "%s%s", ks.len ? ", " : "", mods[i]);
		have |= !strcmp(mods[i], c->k->release);
	}
	out->kernels = xstrdup(ks.len ? ks.buf : "");
	mpath = xasprintf("/lib/modules/%s/modules.dep", c->k->release);
	if (!have || guestfs_is_file(g, mpath) <= 0) {
		kerr_set(e, "%s (%s) does not have the cell's kernel %s (/lib/modules/%s; it has "
			 "%s): install linux-image-%s in it, or give a matrix of the kernels it has",
			 path, out->os, c->k->release, c->k->release, ks.len ? ks.buf : "none",
			 c->k->release);
		goto out;
	}
	ret = 0;
out:
	free_strings(roots);
	free_strings(mods);
	free(type);
	free(distro);
	free(product);
	free(mpath);
	sb_release(&ks);
	if (g) {
		guestfs_shutdown(g);
		guestfs_close(g);
	}
	return ret;
}

/* ---- post-mortem -------------------------------------------------------------------------- */

#define JOURNAL_MAX (4u << 20)   /* journal.txt: the last 4 MiB */
#define LOG_TAIL (256u << 10)    /* each /var/log file: its last 256 KiB */
#define LOGS_MAX (8u << 20)      /* all of them together */
#define LOGS_FILES 64
#define CRASH_MAX (1u << 20)     /* each /var/crash dmesg file */

struct pm {
	guestfs_h *g;
	const char *dir;
	uint64_t since_ms;
	json_object *o;
};

static const char *field(struct guestfs_xattr_list *l, const char *name, size_t *len)
{
	for (uint32_t i = 0; i < l->len; i++)
		if (!strcmp(l->val[i].attrname, name)) {
			*len = l->val[i].attrval_len;
			return l->val[i].attrval;
		}
	*len = 0;
	return NULL;
}

/* journal.txt: the entries since the cell began, as journalctl -o short-monotonic prints
 * them (the boot's monotonic clock matches console.log's timestamps). */
static void pm_journal(struct pm *p)
{
	char *path = path_join(p->dir, "journal.txt");
	struct sb s = SB_INIT;
	int64_t since = (int64_t)p->since_ms * 1000 - 60 * 1000000LL; /* clock skew */
	size_t n = 0, dropped = 0;
	struct kerr e = KERR_INIT;

	if (guestfs_is_dir(p->g, "/var/log/journal") <= 0) {
		json_object_object_add(p->o, "journal", json_object_new_string(
			"none: the disk has no /var/log/journal"));
		goto out;
	}
	if (guestfs_journal_open(p->g, "/var/log/journal") < 0) {
		json_object_object_add(p->o, "journal", json_object_new_string(
			guestfs_last_error(p->g) ? guestfs_last_error(p->g) : "unreadable"));
		goto out;
	}
	guestfs_journal_set_data_threshold(p->g, 8192);
	while (guestfs_journal_next(p->g) > 0) {
		struct guestfs_xattr_list *l;
		const char *msg, *id, *pid, *mono;
		size_t lm, li, lp, lmo;
		int64_t rt = guestfs_journal_get_realtime_usec(p->g);

		if (rt >= 0 && rt < since)
			continue;
		l = guestfs_journal_get(p->g);
		if (!l)
			break;
		msg = field(l, "MESSAGE", &lm);
		id = field(l, "SYSLOG_IDENTIFIER", &li);
		if (!id)
			id = field(l, "_COMM", &li);
		pid = field(l, "_PID", &lp);
		mono = field(l, "_SOURCE_MONOTONIC_TIMESTAMP", &lmo);
		if (!mono)
			mono = field(l, "__MONOTONIC_TIMESTAMP", &lmo);
		if (msg) {
			char ts[32] = "";
			if (mono && lmo < 24) {
				char num[24];

				memcpy(num, mono, lmo);
				num[lmo] = 0;
				unsigned long long us = strtoull(num, NULL, 10);
				snprintf(ts, sizeof(ts), "[%5llu.%06llu] ", us / 1000000, us % 1000000);
			}
			sb_addf(&s, "%s%.*s", ts, id ? (int)li : 6, id ? id : "kernel");
			if (pid)
				sb_addf(&s, "[%.*s]", (int)lp, pid);
			sb_adds(&s, ": ");
			for (size_t i = 0; i < lm; i++)
				sb_addch(&s, msg[i] == '\n' ? ' ' : (unsigned char)msg[i] < 0x20 &&
					 msg[i] != '\t' ? '?' : msg[i]);
			sb_addch(&s, '\n');
			n++;
		}
		guestfs_free_xattr_list(l);
		/* bounded: keep the last JOURNAL_MAX bytes */
		if (s.len > 2 * JOURNAL_MAX) {
			size_t cut = s.len - JOURNAL_MAX;
			const char *nl = memchr(s.buf + cut, '\n', s.len - cut);

			cut = nl ? (size_t)(nl - s.buf) + 1 : cut;
			memmove(s.buf, s.buf + cut, s.len - cut);
			s.len -= cut;
			s.buf[s.len] = 0;
			dropped++;
		}
	}
	guestfs_journal_close(p->g);
	if (write_file_atomic(path, s.buf ? s.buf : "", s.len, &e) < 0) {
		json_object_object_add(p->o, "journal", json_object_new_string(e.msg));
		goto out;
	}
	json_object_object_add(p->o, "journal", json_object_new_string("journal.txt"));
	json_object_object_add(p->o, "journal_entries", json_object_new_int64((int64_t)n));
	if (dropped)
		json_object_object_add(p->o, "journal_truncated", json_object_new_boolean(1));
out:
	sb_release(&s);
	free(path);
}

/* Copies the tail (at most cap bytes) of the disk's file src to the host's dst. */
static int pm_tail(struct pm *p, const char *src, int64_t size, unsigned cap, const char *dst)
{
	int64_t off = size > (int64_t)cap ? size - cap : 0;
	struct kerr e = KERR_INIT;
	char *d = path_dirname(dst);
	int r = mkdir_p(d, 0755, &e);

	free(d);
	if (r < 0)
		return -1;
	if (size == 0)
		return write_file_atomic(dst, "", 0, &e);
	return guestfs_download_offset(p->g, src, dst, off, size - off);
}

/* Files under top changed since the cell began (or all, when want is "dmesg"), their tails
 * into the cell folder under sub/. */
static void pm_files(struct pm *p, const char *top, const char *sub, const char *want,
		     unsigned each, const char *key)
{
	char **names = guestfs_is_dir(p->g, top) > 0 ? guestfs_find(p->g, top) : NULL;
	json_object *a = json_object_new_array();
	size_t total = 0, nfiles = 0;

	for (size_t i = 0; names && names[i] && nfiles < LOGS_FILES; i++) {
		const char *name = names[i] + (names[i][0] == '/'); /* find's are "/sub/file" */
		char *src = xasprintf("%s/%s", top, name);
		struct guestfs_statns *st;

		/* the journal has its own export; binary logs are no use as text tails */
		if (!strncmp(name, "journal", 7) || strstr(name, "/.") ||
		    !strcmp(name, "wtmp") || !strcmp(name, "btmp") ||
		    !strcmp(name, "lastlog") || (want && !strstr(name, want)) ||
		    !(st = guestfs_lstatns(p->g, src))) {
			free(src);
			continue;
		}
		if ((st->st_mode & S_IFMT) == S_IFREG &&
		    (want || (uint64_t)st->st_mtime_sec * 1000 + 60000 >= p->since_ms) &&
		    total < LOGS_MAX) {
			char *dst = xasprintf("%s/%s/%s", p->dir, sub, name);

			if (pm_tail(p, src, st->st_size, each, dst) == 0) {
				json_object *f = json_object_new_object();
				char *rel = xasprintf("%s/%s", sub, name);

				json_object_object_add(f, "file", json_object_new_string(rel));
				json_object_object_add(f, "from", json_object_new_string(src));
				json_object_object_add(f, "bytes", json_object_new_int64(st->st_size));
				if (st->st_size > (int64_t)each)
					json_object_object_add(f, "tail_bytes",
							       json_object_new_int64(each));
				json_object_array_add(a, f);
				total += st->st_size > (int64_t)each ? each : (size_t)st->st_size;
				nfiles++;
				free(rel);
			}
			free(dst);
		}
		guestfs_free_statns(st);
		free(src);
	}
	free_strings(names);
	if (json_object_array_length(a))
		json_object_object_add(p->o, key, a);
	else
		json_object_put(a);
}

struct pm_args {
	const char *overlay, *root, *dir, *out;
	uint64_t since_ms;
	const struct diskimg_ctx *c;
};

/* The child's work: its findings as JSON in a->out. */
static int pm_child(void *ctx)
{
	const struct pm_args *a = ctx;
	struct kerr e = KERR_INIT;
	char *log = path_join(a->dir, "postmortem.log");
	FILE *logf = fopen(log, "we");
	struct pm p = { .dir = a->dir, .since_ms = a->since_ms, .o = json_object_new_object() };
	char dev[64];
	const char *js;

	/* the appliance is this process's child: a kill of this group ends it too */
	setpgid(0, 0);
	p.g = gf_open(a->c, logf, &e);
	if (!p.g) {
		json_object_object_add(p.o, "error", json_object_new_string(e.msg));
		goto out;
	}
	if (guestfs_add_drive_opts(p.g, a->overlay, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "qcow2",
				   GUESTFS_ADD_DRIVE_OPTS_READONLY, 1, -1) < 0 ||
	    guestfs_launch(p.g) < 0) {
		gf_err(p.g, &e, "postmortem.log", "opening the overlay");
		json_object_object_add(p.o, "error", json_object_new_string(e.msg));
		goto out;
	}
	/* the guest's root device as the appliance sees it: vdX -> sdX */
	if (!strncmp(a->root, "/dev/vd", 7))
		snprintf(dev, sizeof(dev), "/dev/sd%s", a->root + 7);
	else
		snprintf(dev, sizeof(dev), "%s", a->root);
	/* read only, on libguestfs's throwaway layer: the ext4 journal is replayed there, so
	 * what the guest wrote last is seen; without replay only when that fails */
	if (guestfs_mount_ro(p.g, dev, "/") < 0 &&
	    guestfs_mount_options(p.g, "ro,noload", dev, "/") < 0) {
		gf_err(p.g, &e, "postmortem.log", "mounting %s of the overlay (a corrupt disk?)",
		       a->root);
		json_object_object_add(p.o, "error", json_object_new_string(e.msg));
		goto out;
	}
	pm_journal(&p);
	pm_files(&p, "/var/log", "var-log", NULL, LOG_TAIL, "logs");
	pm_files(&p, "/var/crash", "crash", "dmesg", CRASH_MAX, "crash");
	guestfs_umount_all(p.g);
out:
	if (p.g) {
		guestfs_shutdown(p.g);
		guestfs_close(p.g);
	}
	if (logf)
		fclose(logf);
	js = json_object_to_json_string_ext(p.o, JSON_C_TO_STRING_PLAIN);
	if (write_file_atomic(a->out, js, strlen(js), &e) < 0)
		return 1;
	json_object_put(p.o);
	free(log);
	return 0;
}

json_object *diskimg_postmortem(const char *overlay, const char *root, const char *dir,
				uint64_t since_ms, unsigned timeout_ms,
				const struct diskimg_ctx *c)
{
	char *out = path_join(dir, ".postmortem.json");
	struct pm_args a = { overlay, root, dir, out, since_ms, c };
	struct child ch = CHILD_INIT;
	struct kerr e = KERR_INIT;
	json_object *o = NULL;
	struct sb s = SB_INIT;
	uint64_t t0 = now_ms();
	int status = 0, done = 0;
	char why[128];

	unlink(out);
	ch.pdeathsig = SIGKILL;
	if (child_fork(&ch, pm_child, &a, &e) < 0) {
		o = json_object_new_object();
		json_object_object_add(o, "error", json_object_new_string(e.msg));
		goto out;
	}
	while (!done) {
		int r = child_wait_timeout(&ch, 500, &status);

		if (r != 0) {
			done = 1;
			break;
		}
		if (now_ms() - t0 > timeout_ms || fd_readable(c->stop_fd))
			break;
	}
	if (!done) {
		kill(-ch.pid, SIGKILL);
		kill(ch.pid, SIGKILL);
		child_wait(&ch);
		o = json_object_new_object();
		json_object_object_add(o, "error", json_object_new_string(
			fd_readable(c->stop_fd) ? "stopped" :
			"libguestfs did not finish in time (its appliance was killed; see "
			"postmortem.log)"));
		goto out;
	}
	if (read_file(out, &s, 1 << 20, &e) == 0)
		o = json_tokener_parse(s.buf);
	if (!o) {
		describe_status(status, why, sizeof(why));
		o = json_object_new_object();
		json_object_object_add(o, "error", json_object_new_string(why));
	}
out:
	json_object_object_add(o, "ms", json_object_new_int64((int64_t)(now_ms() - t0)));
	unlink(out);
	sb_release(&s);
	free(out);
	return o;
}
