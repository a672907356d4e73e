/* diskimg.h: disk-image guests with libguestfs (docs/scenario.md, "guest"). klpq builds a
 * Debian image (debootstrap's root, the cell's kernel and modules, put on an ext4 file system
 * from the host: no guest boot), inspects a user's image before a cell boots it, and after a
 * failed cell reads the cell's overlay read-only for the guest's journal and logs. Each call
 * launches libguestfs's appliance (a small QEMU VM) with the cell's own kernel. */
#ifndef KLPQ_DISKIMG_H
#define KLPQ_DISKIMG_H

#include <json-c/json.h>
#include <stdint.h>
#include "kernel.h"
#include "scenario.h"
#include "util.h"

/* What the image is made for and how the appliance runs. */
struct diskimg_ctx {
	const char *cache;         /* klpq's cache folder (CACHE/disk, CACHE/guestfs) */
	const struct kernel *k;    /* the cell's kernel: also the appliance's kernel */
	const char *kernel_sha256; /* of its vmlinuz (the image's cache key) */
	int kvm;                   /* 0: the appliance runs under TCG (force_tcg) */
	int stop_fd;               /* readable: give up (a stop) */
	/* guest.kdump: the capture kernel's initrd (klpq's first stage, no cell's items) and the
	 * SHA-256 of what it is made of (part of the image's key) */
	const char *capture_initrd;
	const char *capture_key;
	void (*log)(void *ctx, const char *msg); /* progress lines, or NULL */
	void *log_ctx;
};

struct diskimg_built {
	char *path;                /* CACHE/disk/<name>.qcow2, read only (0444) */
	int cached;                /* 1: it was there already */
	uint64_t rootfs_ms;        /* debootstrap and packing (0 when its tar was cached) */
	uint64_t build_ms;         /* the libguestfs part */
	int64_t bytes;             /* on the host's disk */
};

/* Builds, once, the image of g (guest.distro, packages, mirror) for the context's kernel, or
 * finds it in the cache. Parallel cells wait for the one that builds. 0, or -1 with e set
 * (naming the build log). */
int diskimg_build(const struct guest_spec *g, const struct diskimg_ctx *c,
		  struct diskimg_built *out, struct kerr *e);
void diskimg_built_release(struct diskimg_built *b);

/* What inspecting a user's image found. */
struct diskimg_info {
	char *os;                  /* "debian 12 (Debian GNU/Linux 12 (bookworm))" */
	char *root;                /* its root file system as the guest sees it: /dev/vda1 */
	char *kernels;             /* the /lib/modules releases in it, comma separated */
};

/* Inspects path (read only) for a cell of the context's kernel: the image must have one Linux
 * root with systemd as /sbin/init and /lib/modules/<the cell's release>. 0; 1 with e set when
 * the image cannot serve (the reason names what is missing); -1 with e set when libguestfs
 * could not read it. */
int diskimg_inspect(const char *path, const struct diskimg_ctx *c, struct diskimg_info *out,
		    struct kerr *e);
void diskimg_info_release(struct diskimg_info *i);

/* Post-mortem of a cell's overlay (its VM gone): opens it read only and writes into dir
 * journal.txt (the journal since since_ms, wall clock), var-log/ (files of /var/log changed
 * since then, their tails) and crash/ (the dmesg files of /var/crash). Runs in a child process
 * bounded by timeout_ms, so a hung appliance cannot hang the cell. Returns the JSON object for
 * results.json's "postmortem" (never NULL: an unreadable disk is its "error"). */
json_object *diskimg_postmortem(const char *overlay, const char *root, const char *dir,
				uint64_t since_ms, unsigned timeout_ms,
				const struct diskimg_ctx *c);

/* The device the guest calls what the appliance calls dev (/dev/sda1 -> /dev/vda1). */
void diskimg_guest_dev(const char *dev, char *out, size_t len);

#endif
