/* image.c: the initramfs as a guest image (image.h); the archive itself is initramfs.c's. */
#include "image.h"
#include "initramfs.h"

#include <stdlib.h>
#include <string.h>

static char *initramfs_guest_path(enum image_item_kind kind, const char *name)
{
	const char *base = strrchr(name, '/');
	char *p, *dot;

	switch (kind) {
	case IMAGE_PATCH:
		return xasprintf("/klpq/patches/%s.ko", name);
	case IMAGE_KMOD:
		p = xasprintf("/klpq/kmod/%s", base ? base + 1 : name);
		dot = strstr(p, ".ko");
		if (dot)
			dot[3] = '\0'; /* stored decompressed */
		return p;
	case IMAGE_PROGRAM:
		return xasprintf("/klpq/bin/%s", name);
	case IMAGE_WORKLOAD:
		break;
	}
	return xstrdup("/bin/klpq-workload");
}

static int initramfs_image_build(const struct image_request *req, const char *out,
				 struct kerr *e)
{
	struct initramfs_file *files = xcalloc(req->nr_items + 1, sizeof(*files));
	char **guest = xcalloc(req->nr_items + 1, sizeof(*guest));
	struct initramfs_spec spec;
	size_t n = 0;
	int ret;

	for (size_t i = 0; i < req->nr_items; i++) {
		const struct image_item *it = &req->items[i];
		char *g = initramfs_guest_path(it->kind, it->name);
		int dup = 0;

		for (size_t j = 0; j < n && !dup; j++)
			dup = !strcmp(guest[j], g);
		if (dup) {
			free(g);
			continue;
		}
		guest[n] = g;
		files[n].host_path = it->host_path;
		files[n].guest_path = g;
		files[n].mode = it->kind == IMAGE_PROGRAM || it->kind == IMAGE_WORKLOAD ? 0755 : 0644;
		files[n].decompress = it->kind == IMAGE_PATCH || it->kind == IMAGE_KMOD;
		n++;
	}
	memset(&spec, 0, sizeof(spec));
	spec.output = out;
	spec.agent = req->agent;
	spec.busybox = req->busybox;
	spec.modules_dir = req->modules_dir;
	spec.release = req->release;
	spec.boot_modules = req->boot_modules;
	spec.files = files;
	spec.nr_files = n;
	ret = initramfs_build(&spec, e);
	for (size_t i = 0; i < n; i++)
		free(guest[i]);
	free(guest);
	free(files);
	return ret;
}

const struct guest_image image_initramfs = {
	.name = "initramfs",
	.guest_path = initramfs_guest_path,
	.build = initramfs_image_build,
};
