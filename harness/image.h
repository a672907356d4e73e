/* image.h: the guest image seam. The cell flow asks for "an image with these modules and
 * programs" (struct image_request) and learns where each item lands in the guest
 * (guest_path); the image builds itself. The initramfs (image.c over initramfs.c) is the first
 * implementation. A disk image with a real userland would be a second; its items can also
 * reach a running guest through the agent's `upload` op (docs/protocol.md).
 */
#ifndef KLPQ_IMAGE_H
#define KLPQ_IMAGE_H

#include <stddef.h>
#include "util.h"

enum image_item_kind {
	IMAGE_PATCH,    /* a livepatch or helper module, by module name */
	IMAGE_KMOD,     /* a kernel module of a kmod step, by file name (.ko, .ko.xz, ...) */
	IMAGE_PROGRAM,  /* a patch set's program, by name */
	IMAGE_WORKLOAD, /* the workload runner (name ignored) */
};

struct image_item {
	enum image_item_kind kind;
	const char *name;
	const char *host_path;
};

struct image_request {
	const char *release;              /* the kernel's release ("6.1.0-56-amd64") */
	const char *modules_dir;          /* its /lib/modules/<release> on the host */
	const char *agent;                /* the static guest agent */
	const char *busybox;              /* a static busybox */
	const char *const *boot_modules;  /* the backend's (vm.h), NULL-terminated */
	const struct image_item *items;   /* two items with one guest path: the first is kept */
	size_t nr_items;
};

struct guest_image {
	const char *name;
	/* Where an item of this kind and name is in the guest (caller frees). Modules are stored
	 * decompressed: a kmod "virtio_foo.ko.xz" is "/klpq/kmod/virtio_foo.ko". */
	char *(*guest_path)(enum image_item_kind kind, const char *name);
	/* Builds the image at out: 0, or -1 with e set. */
	int (*build)(const struct image_request *req, const char *out, struct kerr *e);
};

extern const struct guest_image image_initramfs;

#endif
