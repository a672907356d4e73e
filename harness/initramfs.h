/* initramfs.h: builds the guest's initramfs as a cpio "newc" archive with libarchive.
 *
 * Contents: /init (the klpq agent, static), /bin/busybox with a link per applet, the device
 * node /dev/console, the kernel modules the agent needs at boot (virtio console and PCI
 * transport) with their dependencies resolved through modules.dep in load order and listed in
 * /klpq/boot-modules, the patch modules under /klpq/patches/, and extra files (workloads).
 * Compressed modules (.ko.xz/.ko.zst/.ko.gz) are stored decompressed, so the agent's
 * finit_module() works whatever the kernel's CONFIG_MODULE_DECOMPRESS.
 */
#ifndef KLPQ_INITRAMFS_H
#define KLPQ_INITRAMFS_H

#include "util.h"

struct initramfs_file {
	const char *host_path;
	const char *guest_path; /* absolute */
	unsigned mode;          /* e.g. 0755 */
	int decompress;         /* 1: store xz/zstd/gzip content decompressed (modules) */
};

struct initramfs_spec {
	const char *output;       /* the .cpio to write */
	const char *agent;        /* host path of the static agent */
	const char *busybox;      /* host path of a static busybox */
	const char *modules_dir;  /* .../lib/modules/<release> */
	const char *release;
	const char *const *boot_modules; /* module names ("virtio_console"), NULL-terminated */
	const struct initramfs_file *files;
	size_t nr_files;
};

int initramfs_build(const struct initramfs_spec *spec, struct kerr *e);

/* Exposed for tests: the load order of `wanted` and its dependencies from a modules.dep text.
 * Fills paths (relative, as in modules.dep) dependencies first; builtin names (in
 * modules.builtin text, may be NULL) are skipped. -1 when a wanted module is neither. */
int modules_load_order(const char *modules_dep, const char *modules_builtin,
		       const char *const *wanted, char ***paths, size_t *nr, struct kerr *e);

#endif
