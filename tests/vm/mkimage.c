/* tests/vm/mkimage.c: makes a "user's own" disk image for tests/vm/disk.sh with libguestfs,
 * laid out unlike klpq's built image (no partition table: ext4 on the whole disk, its own
 * label), so klpq must find its root by inspection.
 *   mkimage OUT.qcow2 ROOTFS.tar KERNEL_ROOT RELEASE [full|no-modules|bare]
 * ROOTFS.tar: a root tree with numeric owners (klpq's CACHE/disk/rootfs-*.tar);
 * KERNEL_ROOT: an unpacked kernel package (boot/vmlinuz-RELEASE, lib/modules/RELEASE), which is
 * also the appliance's kernel. no-modules leaves the kernel's modules out; bare leaves them out
 * and removes systemd too: images klpq must refuse. */
#include <guestfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(guestfs_h *g, const char *what)
{
	fprintf(stderr, "mkimage: %s: %s\n", what, g ? guestfs_last_error(g) : "failed");
	return 1;
}

int main(int argc, char **argv)
{
	char vmlinuz[4096], modules[4096];
	char *bs[] = { "force_tcg", NULL };
	const char *kind = argc > 5 ? argv[5] : "full";
	static const char fstab[] = "/dev/vda / ext4 defaults 0 1\n";
	guestfs_h *g;

	if (argc < 5) {
		fprintf(stderr, "usage: mkimage OUT.qcow2 ROOTFS.tar KERNEL_ROOT RELEASE "
			"[full|no-modules|bare]\n");
		return 2;
	}
	snprintf(vmlinuz, sizeof(vmlinuz), "%s/boot/vmlinuz-%s", argv[3], argv[4]);
	snprintf(modules, sizeof(modules), "%s/lib/modules/%s", argv[3], argv[4]);
	setenv("SUPERMIN_KERNEL", vmlinuz, 1);
	setenv("SUPERMIN_MODULES", modules, 1);
	setenv("SUPERMIN_KERNEL_VERSION", argv[4], 1);
	g = guestfs_create();
	if (!g)
		return fail(NULL, "guestfs_create");
	/* this machine's /dev/kvm opens but cannot run a guest: TCG, as klpq decides */
	if (guestfs_set_backend(g, "direct") < 0 || guestfs_set_backend_settings(g, bs) < 0 ||
	    guestfs_set_memsize(g, 1024) < 0 || guestfs_set_smp(g, 2) < 0)
		return fail(g, "settings");
	if (guestfs_disk_create(g, argv[1], "qcow2", 4LL << 30, -1) < 0 ||
	    guestfs_add_drive_opts(g, argv[1], GUESTFS_ADD_DRIVE_OPTS_FORMAT, "qcow2", -1) < 0 ||
	    guestfs_launch(g) < 0)
		return fail(g, "launch");
	if (guestfs_mkfs_opts(g, "ext4", "/dev/sda", GUESTFS_MKFS_OPTS_LABEL, "userroot", -1) < 0 ||
	    guestfs_mount(g, "/dev/sda", "/") < 0 ||
	    guestfs_tar_in_opts(g, argv[2], "/", GUESTFS_TAR_IN_OPTS_XATTRS, 1, -1) < 0)
		return fail(g, "root tree");
	if (!strcmp(kind, "full") &&
	    (guestfs_mkdir_p(g, "/lib/modules") < 0 ||
	     guestfs_copy_in(g, modules, "/lib/modules") < 0))
		return fail(g, "modules");
	if (!strcmp(kind, "bare") &&
	    (guestfs_rm(g, "/lib/systemd/systemd") < 0 || guestfs_rm(g, "/sbin/init") < 0))
		return fail(g, "removing systemd");
	if (guestfs_write(g, "/etc/fstab", fstab, sizeof(fstab) - 1) < 0 ||
	    guestfs_write(g, "/etc/hostname", "user-image\n", 11) < 0 ||
	    guestfs_mkdir_p(g, "/var/log/journal") < 0)
		return fail(g, "settings in the image");
	if (guestfs_umount_all(g) < 0 || guestfs_shutdown(g) < 0)
		return fail(g, "closing");
	guestfs_close(g);
	return 0;
}
