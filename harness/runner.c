/* runner.c: see runner.h; the cell flow (the checks are in cell-*.c, cell.h). */
#define _GNU_SOURCE
#include "cell.h"
#include "image.h"
#include "initramfs.h"
#include "accel.h"
#include "diskimg.h"
#include "pool.h"
#include "spawn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the cell ---- */

static void log_line(void *ctx, const char *msg)
{
	cr_progress(ctx, "%s", msg);
}

/* Kernel, module builds and initramfs. 0, or -1 after recording the failure. */
/* A kmod step's module and its dependencies, in load order, from the kernel's modules.dep. */
static int kmod_resolve(struct cellrun *cr, size_t i)
{
	const struct step *st = &cr->sc->patchset.steps[i];
	const char *wanted[] = { st->kmod, NULL };
	char *dep_path = path_join(cr->k.modules, "modules.dep");
	char *bi_path = path_join(cr->k.modules, "modules.builtin");
	struct sb dep = SB_INIT, bi = SB_INIT;
	struct kerr e = KERR_INIT, ignore = KERR_INIT;
	char **paths = NULL;
	size_t nr = 0;
	int ret = -1;

	if (read_file(dep_path, &dep, 64u << 20, &e) < 0) {
		cr_add(cr, st->name, "kmod", V_ERROR, 0, "%s", e.msg);
		goto out;
	}
	if (read_file(bi_path, &bi, 64u << 20, &ignore) < 0)
		sb_reset(&bi);
	if (modules_load_order(dep.buf, bi.len ? bi.buf : NULL, wanted, &paths, &nr, &e) < 0) {
		/* the patch set names a module this kernel does not have: its input, not ours */
		cr_add(cr, st->name, "kmod", V_FAIL, 0, "kernel %s has no module %s: %s", cr->k.release,
		    st->kmod, e.msg);
		goto out;
	}
	if (nr == 0) {
		cr_add(cr, st->name, "kmod", V_FAIL, 0, "%s is built into kernel %s: it cannot be "
		    "loaded or removed", st->kmod, cr->k.release);
		goto out;
	}
	cr->kmod_paths[i] = xcalloc(nr, sizeof(char *));
	for (size_t k = 0; k < nr; k++)
		cr->kmod_paths[i][k] = path_join(cr->k.modules, paths[k]);
	cr->nr_kmod_paths[i] = nr;
	ret = 0;
out:
	for (size_t k = 0; k < nr; k++)
		free(paths[k]);
	free(paths);
	sb_release(&dep);
	sb_release(&bi);
	free(dep_path);
	free(bi_path);
	return ret;
}

static int prepare(struct cellrun *cr, const struct kernel_spec *ks)
{
	const struct patchset *ps = &cr->sc->patchset;
	struct kerr e = KERR_INIT;
	uint64_t t0 = now_ms();
	struct check_result *r;

	if (kernel_prepare(ks, cr->rn->cache, cr->rn->stop_fd, &cr->k, log_line, cr, &e) < 0) {
		cr_add(cr, "prepare", "kernel", V_ERROR, now_ms() - t0, "%s", e.msg);
		return -1;
	}
	free(cr->cell->release);
	cr->cell->release = xstrdup(cr->k.release);
	{
		/* what booted, by content: --resume keeps this cell only for the same bytes */
		char sum[65];
		struct kerr he = KERR_INIT;

		if (sha256_file(cr->k.vmlinuz, sum, &he) == 0) {
			free(cr->cell->kernel_image);
			free(cr->cell->kernel_sha256);
			cr->cell->kernel_image = xstrdup(cr->k.vmlinuz);
			cr->cell->kernel_sha256 = xstrdup(sum);
		}
	}
	cr_add(cr, "prepare", "kernel", V_PASS, now_ms() - t0, "%s ready%s", cr->k.release,
	    cr->k.from_cache ? " (cache)" : "");
	cr->programs = xcalloc(ps->nr_programs + 1, sizeof(*cr->programs));
	for (size_t i = 0; i < ps->nr_programs; i++) {
		struct sb blog = SB_INIT;
		int fault = 0;

		kerr_clear(&e);
		t0 = now_ms();
		if (pbuild_program(&ps->programs[i], cr->rn->cache, cr->rn->stop_fd, &cr->programs[i],
				   &fault, &blog, &e) < 0) {
			r = cr_add(cr, "prepare", "program", fault ? V_FAIL : V_ERROR, now_ms() - t0, "%s",
				e.msg);
			check_evidence_text(r, "| ", blog.buf, 60);
			sb_release(&blog);
			return -1;
		}
		sb_release(&blog);
		cr_add(cr, "prepare", "program", V_PASS, now_ms() - t0, "%s built for the guest",
		    ps->programs[i].name);
	}
	cr->mods = xcalloc(ps->nr_steps, sizeof(*cr->mods));
	cr->kmod_paths = xcalloc(ps->nr_steps, sizeof(*cr->kmod_paths));
	cr->nr_kmod_paths = xcalloc(ps->nr_steps, sizeof(*cr->nr_kmod_paths));
	for (size_t i = 0; i < ps->nr_steps; i++) {
		struct sb blog = SB_INIT;
		int fault = 0;

		if (ps->steps[i].kind == STEP_KMOD) {
			if (kmod_resolve(cr, i) < 0)
				return -1;
			continue;
		}
		if (ps->steps[i].kind != STEP_PATCH && ps->steps[i].kind != STEP_HELPER)
			continue;
		kerr_clear(&e);
		t0 = now_ms();
		if (pbuild_step(&ps->steps[i], &cr->k, cr->rn->cache, cr->rn->stop_fd, &cr->mods[i],
				&fault, &blog, &e) < 0) {
			r = cr_add(cr, ps->steps[i].name, "build", fault ? V_FAIL : V_ERROR,
				now_ms() - t0, "%s", e.msg);
			check_evidence_text(r, "| ", blog.buf, 60);
			sb_release(&blog);
			return -1;
		}
		sb_release(&blog);
		for (size_t j = 0; j < i; j++) {
			/* the same module in two steps (a re-apply, a downgrade) is fine; two
			 * different modules of one name are not */
			if (cr->mods[j].name && !strcmp(cr->mods[j].name, cr->mods[i].name) &&
			    (strcmp(cr->mods[j].key, cr->mods[i].key) ||
			     ps->steps[j].kind != ps->steps[i].kind)) {
				cr_add(cr, ps->steps[i].name, "build", V_FAIL, 0,
				    "module name %s is used by step %s too, for a different module: "
				    "module names must differ", cr->mods[i].name, ps->steps[j].name);
				return -1;
			}
		}
		cr_add(cr, ps->steps[i].name, "build", V_PASS, now_ms() - t0, "%s%s",
		    cr->mods[i].name, cr->mods[i].from_cache ? " (cache)" : "");
	}
	scan_patch_modules(cr, cr->console);
	return 0;
}

/* The crc32c module ext4 needs (modules.softdep names it by alias, which the first stage cannot
 * resolve): the one this kernel's modules.dep has, or NULL (built in). */
static const char *crc32c_module(const char *modules)
{
	char *dep = path_join(modules, "modules.dep");
	struct sb s = SB_INIT;
	struct kerr e = KERR_INIT;
	const char *m = NULL;

	if (read_file(dep, &s, 64 << 20, &e) == 0) {
		if (strstr(s.buf, "/crc32c_generic.ko"))
			m = "crc32c_generic";
		else if (strstr(s.buf, "/crc32c-cryptoapi.ko"))
			m = "crc32c-cryptoapi";
	}
	sb_release(&s);
	free(dep);
	return m;
}

/* The modules the guest loads before anything else: the backend's; a disk guest's first stage
 * also mounts the disk: its driver, its file system and the crc32c module ext4 needs
 * (crc32c_generic until Linux 6.14, crc32c-cryptoapi after). mods has room for 32. */
static void boot_module_list(struct cellrun *cr, const char **mods)
{
	static const char *const disk_modules[] = { "virtio_blk", "ext4", NULL };
	const char *crc = NULL;
	size_t nm = 0;

	for (const char *const *m = cr->sc->vm.backend->boot_modules; m && *m && nm < 24; m++)
		mods[nm++] = *m;
	for (size_t k = 0; cr->sc->guest.disk && disk_modules[k]; k++)
		mods[nm++] = disk_modules[k];
	if (cr->sc->guest.disk && (crc = crc32c_module(cr->k.modules)))
		mods[nm++] = crc;
	mods[nm] = NULL;
}

/* What every guest image of this cell has: the kernel, the agent, busybox, the boot modules
 * (into mods, room for 32); no items. */
static void base_request(struct cellrun *cr, struct image_request *req, const char **mods)
{
	memset(req, 0, sizeof(*req));
	req->release = cr->k.release;
	req->modules_dir = cr->k.modules;
	req->agent = cr->rn->agent;
	req->busybox = cr->rn->busybox;
	boot_module_list(cr, mods);
	req->boot_modules = mods;
}

/* The guest image with this cell's patch modules, programs, kmod modules and workload runner.
 * A kmod step's paths become the guest's from here on (their load order stays). */
static int make_image(struct cellrun *cr, const char *out)
{
	const struct patchset *ps = &cr->sc->patchset;
	const struct guest_image *img = cr->img;
	size_t n = 0, max = ps->nr_steps + ps->nr_programs + 1;
	struct image_item *items;
	struct image_request req;
	char **hosts;
	size_t nh = 0;
	struct kerr e = KERR_INIT;
	uint64_t t0 = now_ms();
	const char *mods[32];
	int ret;

	for (size_t i = 0; i < ps->nr_steps; i++)
		max += cr->nr_kmod_paths[i];
	items = xcalloc(max, sizeof(*items));
	hosts = xcalloc(max, sizeof(*hosts));
	for (size_t i = 0; i < ps->nr_steps; i++)
		if (cr->mods[i].name)
			items[n++] = (struct image_item){ IMAGE_PATCH, cr->mods[i].name,
							  cr->mods[i].path };
	for (size_t i = 0; i < ps->nr_programs; i++)
		items[n++] = (struct image_item){ IMAGE_PROGRAM, ps->programs[i].name,
						  cr->programs[i] };
	for (size_t i = 0; i < ps->nr_steps; i++) {
		for (size_t k = 0; k < cr->nr_kmod_paths[i]; k++) {
			char *host = cr->kmod_paths[i][k];

			items[n++] = (struct image_item){ IMAGE_KMOD, host, host };
			cr->kmod_paths[i][k] = img->guest_path(IMAGE_KMOD, host);
			hosts[nh++] = host; /* freed once the image is written */
		}
	}
	if (cr->sc->nr_workloads)
		items[n++] = (struct image_item){ IMAGE_WORKLOAD, "klpq-workload",
						  cr->rn->workload };
	base_request(cr, &req, mods);
	req.items = items;
	req.nr_items = n;
	ret = img->build(&req, out, &e);
	if (ret < 0)
		cr_add(cr, "prepare", img->name, V_ERROR, now_ms() - t0, "%s", e.msg);
	free(items);
	for (size_t i = 0; i < nh; i++)
		free(hosts[i]);
	free(hosts);
	return ret;
}

static int stopped(struct cellrun *cr, const char *step);

/* This cell's ERROR is one a retry cannot change: the scheduler does not run it again. */
static void no_retry(struct cellrun *cr, const char *why)
{
	if (!cr->cell->no_retry)
		cr->cell->no_retry = xstrdup(why);
}

/* QEMU's own last lines (qemu.log without its first line, the command line) as evidence. */
static void qemu_log_tail(struct check_result *r, const char *qlog)
{
	struct sb log = SB_INIT;
	struct kerr ignore = KERR_INIT;
	const char *body;

	if (read_file(qlog, &log, 0, &ignore) == 0 && (body = strchr(log.buf, '\n')) && body[1]) {
		check_evidence(r, "QEMU's last lines (%s):", qlog);
		check_evidence_text(r, "  ", body + 1, 20);
	}
	sb_release(&log);
}

/* The accelerator for this cell's kernel (accel.c: a trial boot under KVM, cached), recorded in
 * the cell and shown. -1 after adding the ERROR when the scenario's choice cannot be met. */
static int decide_accel(struct cellrun *cr, struct accel_choice *ac)
{
	if (cr->ac_done) { /* a disk guest's appliance asked first */
		*ac = cr->ac;
		return 0;
	}
	struct accel_opts o = { .cache_dir = cr->rn->cache, .stop_fd = cr->rn->stop_fd,
				.kernel_sha256 = cr->cell->kernel_sha256 };
	char remote[256];

	/* a remote host's accelerator cannot be tried from here: its labels say (pool.h) */
	if (pool_uri_remote(cr->sc->vm.uri, remote, sizeof(remote))) {
		o.remote = cr->sc->vm.host ? cr->sc->vm.host : remote;
		o.remote_kvm = cr->sc->vm.host_kvm;
	}
	struct kerr e = KERR_INIT;
	uint64_t t0 = now_ms();

	if (cr->sc->vm.backend->decide_accel(cr->sc->vm.accel, cr->k.vmlinuz, &o, ac, &e) < 0) {
		if (fd_readable(cr->rn->stop_fd)) {
			stopped(cr, "boot");
			return -1;
		}
		cr_add(cr, "boot", "accel", V_ERROR, now_ms() - t0, "%s", e.msg);
		free(cr->cell->accel_reason);
		cr->cell->accel_reason = xstrdup(e.msg);
		no_retry(cr, "a retry would come to the same decision (it is cached per kernel and host)");
		return -1;
	}
	free(cr->cell->accel);
	cr->cell->accel = xstrdup(ac->accel);
	free(cr->cell->accel_reason);
	cr->cell->accel_reason = xstrdup(ac->reason);
	cr->ac = *ac;
	cr->ac_done = 1;
	if (*ac->warning)
		cr_progress(cr, "%s", ac->warning);
	if (ac->trial_ms)
		json_object_object_add(cr->cell->metrics, "accel_trial_ms",
				       json_object_new_int64((int64_t)ac->trial_ms));
	if (ac->cached)
		cr_progress(cr, "accel %s: %s (decided earlier, cached)", ac->accel, ac->reason);
	else if (ac->trial_ms)
		cr_progress(cr, "accel %s: %s (trial %.1f s)", ac->accel, ac->reason,
			 ac->trial_ms / 1000.0);
	else
		cr_progress(cr, "accel %s: %s", ac->accel, ac->reason);
	return 0;
}

static void disk_ctx(struct cellrun *cr, struct diskimg_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->cache = cr->rn->cache;
	c->k = &cr->k;
	c->kernel_sha256 = cr->cell->kernel_sha256;
	c->kvm = cr->ac_done && !strcmp(cr->ac.accel, "kvm");
	c->stop_fd = cr->rn->stop_fd;
	c->log = log_line;
	c->log_ctx = cr;
}

/* A user image's inspection, remembered per image file (path, inode, size, mtime) and kernel:
 * an appliance launch is paid once, not per cell. NULL when the image cannot be stat'ed. */
static char *inspect_memo_path(struct cellrun *cr, const char *image)
{
	struct stat st;
	struct sb k = SB_INIT;
	char sum[65];

	if (stat(image, &st) < 0)
		return NULL;
	sb_addf(&k, "klpq-inspect-1\n%s\n%llu %llu %lld.%09ld\n%s\n%s\n", image,
		(unsigned long long)st.st_ino, (unsigned long long)st.st_size,
		(long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, cr->k.release,
		cr->cell->kernel_sha256 ? cr->cell->kernel_sha256 : "");
	sha256_text(k.buf, k.len, sum);
	sb_release(&k);
	return xasprintf("%s/disk/inspect-%.24s.json", cr->rn->cache, sum);
}

static int inspect_memo_read(const char *memo, struct diskimg_info *info)
{
	json_object *o = memo && path_exists(memo) ? json_object_from_file(memo) : NULL;

	memset(info, 0, sizeof(*info));
	if (!o)
		return -1;
	info->os = xstrdup(proto_get_str(o, "os", "?"));
	info->root = xstrdup(proto_get_str(o, "root", ""));
	info->kernels = xstrdup(proto_get_str(o, "kernels", ""));
	json_object_put(o);
	if (strncmp(info->root, "/dev/", 5)) {
		diskimg_info_release(info);
		return -1;
	}
	return 0;
}

static void inspect_memo_write(const char *memo, const struct diskimg_info *info)
{
	json_object *o = json_object_new_object();
	struct kerr e = KERR_INIT;
	char *dir = path_dirname(memo);
	const char *js;

	json_object_object_add(o, "os", json_object_new_string(info->os));
	json_object_object_add(o, "root", json_object_new_string(info->root));
	json_object_object_add(o, "kernels", json_object_new_string(info->kernels));
	js = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (mkdir_p(dir, 0755, &e) == 0)
		write_file_atomic(memo, js, strlen(js), &e); /* a memo only: a failure costs time */
	json_object_put(o);
	free(dir);
}

/* guest.kdump: the capture kernel's initrd, klpq's first stage with no cell's items (what it
 * does in a capture boot: mount the disk, start its systemd), at path; key: the SHA-256 of
 * what it is made of. 0, or -1 with e set. */
static int make_capture_initrd(struct cellrun *cr, const char *path, char key[65],
			       struct kerr *e)
{
	struct image_request req;
	const char *mods[32];
	char agent[65], bb[65];
	struct sb k = SB_INIT;

	base_request(cr, &req, mods);
	if (sha256_file(cr->rn->agent, agent, e) < 0 || sha256_file(cr->rn->busybox, bb, e) < 0)
		return -1;
	sb_addf(&k, "%s\n%s\n%s\n%s\n", cr->img->name, cr->k.release, agent, bb);
	for (size_t i = 0; mods[i]; i++)
		sb_addf(&k, "%s\n", mods[i]);
	sha256_text(k.buf, k.len, key);
	sb_release(&k);
	return cr->img->build(&req, path, e);
}

/* A disk guest's image: built once (guest.distro) or the user's (guest.path), inspected. 0, or
 * -1 with the check recorded. */
static int disk_image(struct cellrun *cr)
{
	const struct guest_spec *g = &cr->sc->guest;
	struct diskimg_ctx c;
	struct kerr e = KERR_INIT;
	uint64_t t0 = now_ms();
	json_object *m = cr->cell->metrics;
	struct accel_choice ac;
	char remote[256];

	if (pool_uri_remote(cr->sc->vm.uri, remote, sizeof(remote))) {
		cr_add(cr, "prepare", "disk-image", V_ERROR, 0, "disk guests run on this machine's "
		       "own backends only (the image and the overlay are local files), not on %s",
		       remote);
		no_retry(cr, "every attempt on a remote host is refused the same way");
		return -1;
	}
	/* the appliance runs under the accelerator the cell's own VM will get */
	if (decide_accel(cr, &ac) < 0)
		return -1;
	disk_ctx(cr, &c);
	if (g->distro) {
		struct diskimg_built b;
		char *dir = path_dirname(cr->disk), *capture = path_join(dir, "capture.cpio");
		char key[65];
		int r = 0;

		if (g->kdump) {
			r = make_capture_initrd(cr, capture, key, &e);
			c.capture_initrd = capture;
			c.capture_key = key;
		}
		if (r == 0)
			r = diskimg_build(g, &c, &b, &e);
		unlink(capture);
		free(capture);
		free(dir);
		if (r < 0) {
			if (stopped(cr, "prepare"))
				return -1;
			cr_add(cr, "prepare", "disk-image", V_ERROR, now_ms() - t0, "%s", e.msg);
			return -1;
		}
		/* absolute: the overlay names it as its backing file */
		cr->disk_base = realpath(b.path, NULL);
		if (!cr->disk_base) {
			cr_add(cr, "prepare", "disk-image", V_ERROR, now_ms() - t0, "%s: %s", b.path,
			       strerror(errno));
			diskimg_built_release(&b);
			return -1;
		}
		cr->disk_root = xstrdup("/dev/vda1");
		json_object_object_add(m, "image_cached", json_object_new_boolean(b.cached));
		json_object_object_add(m, "image_bytes", json_object_new_int64(b.bytes));
		if (!b.cached) {
			json_object_object_add(m, "image_build_ms",
					       json_object_new_int64((int64_t)b.build_ms));
			json_object_object_add(m, "image_rootfs_ms",
					       json_object_new_int64((int64_t)b.rootfs_ms));
		}
		cr_add(cr, "prepare", "disk-image", V_PASS, now_ms() - t0, "%s %s (%.0f MB)%s",
		       b.cached ? "cached:" : "built", cr->disk_base, b.bytes / 1e6,
		       b.cached ? "" : " with debootstrap and libguestfs");
		diskimg_built_release(&b);
		return 0;
	}
	struct diskimg_info info;
	char *memo = inspect_memo_path(cr, g->path);
	int remembered = inspect_memo_read(memo, &info) == 0;
	int r = remembered ? 0 : diskimg_inspect(g->path, &c, &info, &e);

	if (r == 0 && memo && !remembered)
		inspect_memo_write(memo, &info);
	free(memo);

	json_object_object_add(m, "image_inspect_ms", json_object_new_int64(
		(int64_t)(now_ms() - t0)));
	if (r != 0) {
		if (stopped(cr, "prepare")) {
			diskimg_info_release(&info);
			return -1;
		}
		/* an image that cannot serve is refused the same way by every attempt */
		cr_add(cr, "prepare", "disk-image", V_ERROR, now_ms() - t0, "%s", e.msg);
		if (r > 0)
			no_retry(cr, "the image cannot serve this kernel; another attempt finds the same");
		diskimg_info_release(&info);
		return -1;
	}
	cr->disk_base = xstrdup(g->path); /* absolute (yf_existing) */
	cr->disk_root = xstrdup(cr->sc->guest.root_given ? g->root : info.root);
	cr_add(cr, "prepare", "disk-image", V_PASS, now_ms() - t0,
	       "%s: %s, root %s, kernels %s%s", g->path, info.os, cr->disk_root, info.kernels,
	       remembered ? " (inspected earlier)" : "");
	diskimg_info_release(&info);
	return 0;
}

/* A disk guest's own overlay in the cell's scratch folder, backed by the image disk_image found
 * (which is never written): parallel cells never share a writable disk. 0, or -1 with the check
 * recorded. */
static int make_overlay(struct cellrun *cr, const char *overlay)
{
	const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
			       NULL /* the image */, overlay, NULL };
	struct run_opts o = RUN_OPTS_INIT;
	struct sb out = SB_INIT;
	struct kerr e = KERR_INIT;
	uint64_t t0 = now_ms();
	int r;

	argv[8] = cr->disk_base;
	o.timeout_ms = 60000;
	o.stop_fd = cr->rn->stop_fd;
	r = run_capture(argv, &o, &out, &e);
	if (r < 0 && !stopped(cr, "prepare"))
		cr_add(cr, "prepare", "disk", V_ERROR, now_ms() - t0, "the overlay of %s: %s",
		       cr->disk_base, e.msg);
	sb_release(&out);
	return r;
}

/* cp --sparse=always: the overlay to the cell folder on another file system. */
static int copy_sparse(struct cellrun *cr, const char *from, const char *to, struct kerr *e)
{
	const char *argv[] = { "cp", "--sparse=always", from, to, NULL };
	struct run_opts o = RUN_OPTS_INIT;
	struct sb out = SB_INIT;
	int r;

	o.timeout_ms = 300000;
	o.stop_fd = cr->rn->stop_fd;
	r = run_capture(argv, &o, &out, e);
	sb_release(&out);
	if (r < 0)
		unlink(to);
	return r;
}

/* After a failed cell on a disk guest (its VM gone): what the guest left on its disk, read
 * from the overlay, and the overlay itself kept in the cell folder when small enough. */
static void disk_postmortem(struct cellrun *cr, uint64_t cell_t0_wall)
{
	struct diskimg_ctx c;
	char *dir = path_join(cr->cell->dir, "postmortem");
	struct kerr e = KERR_INIT;
	json_object *pm;
	struct stat st;

	cr_progress(cr, "post-mortem: reading the guest's disk (journal, /var/log, /var/crash)");
	if (mkdir_p(dir, 0755, &e) < 0) {
		pm = json_object_new_object();
		json_object_object_add(pm, "error", json_object_new_string(e.msg));
	} else {
		disk_ctx(cr, &c);
		pm = diskimg_postmortem(cr->disk, cr->disk_root, dir, cell_t0_wall, 180000, &c);
	}
	if (stat(cr->disk, &st) == 0) {
		int64_t bytes = (int64_t)st.st_blocks * 512;
		char *keep = path_join(cr->cell->dir, "disk-overlay.qcow2");

		json_object_object_add(pm, "overlay_bytes", json_object_new_int64(bytes));
		json_object_object_add(pm, "backing", json_object_new_string(cr->disk_base));
		if (bytes <= (int64_t)cr->sc->guest.keep_overlay_mb << 20 &&
		    (rename(cr->disk, keep) == 0 || copy_sparse(cr, cr->disk, keep, &e) == 0))
			json_object_object_add(pm, "overlay", json_object_new_string(keep));
		else
			json_object_object_add(pm, "overlay_dropped", json_object_new_string(
				bytes > (int64_t)cr->sc->guest.keep_overlay_mb << 20 ?
				"larger than guest.keep_overlay_mb" : e.msg));
		free(keep);
	}
	{
		json_object *err;

		if (json_object_object_get_ex(pm, "error", &err))
			cr_progress(cr, "post-mortem: %s", json_object_get_string(err));
	}
	json_object_put(cr->cell->postmortem);
	cr->cell->postmortem = pm;
	free(dir);
}

/* guest.kdump: kdump-tools.service ran before basic.target (so before systemd reported the
 * boot finished); a patch is only loaded into a guest whose capture kernel is loaded, or a
 * panic would leave no dump. Not armed is the image's or the set-up's fault: ERROR. */
static int kdump_armed(struct cellrun *cr)
{
	const char *cat[] = { "cat", "/sys/kernel/kexec_crash_loaded", NULL };
	const char *why[] = { "sh", "-c", "systemctl status --no-pager -l kdump-tools.service "
			      "2>&1 | tail -n 15; grep -i 'crash kernel' /proc/iomem", NULL };
	uint64_t t0 = now_ms();
	struct sb out = SB_INIT;
	struct check_result *r;
	int code = -1;

	if (guest_exec(cr, "boot", "kdump", cat, agent_ms(cr), &code, &out) < 0) {
		sb_release(&out);
		return -1;
	}
	if (code == 0 && out.buf && out.buf[0] == '1') {
		cr_add(cr, "boot", "kdump", V_PASS, now_ms() - t0, "capture kernel loaded "
		       "(crashkernel=%uM, kdump-tools)", KDUMP_CRASHKERNEL_MB);
		sb_release(&out);
		return 0;
	}
	r = cr_add(cr, "boot", "kdump", V_ERROR, now_ms() - t0, "guest.kdump: no capture kernel is "
		   "loaded (/sys/kernel/kexec_crash_loaded: %s), so a panic would leave no dump",
		   code == 0 && out.len ? (out.buf[0] == '0' ? "0" : out.buf) : "unreadable");
	sb_reset(&out);
	if (guest_exec(cr, "boot", "kdump", why, agent_ms(cr), &code, &out) == 0 && out.len) {
		char *save, *line = strtok_r(out.buf, "\n", &save);

		for (; line; line = strtok_r(NULL, "\n", &save))
			check_evidence(r, "%s", line);
	}
	sb_release(&out);
	no_retry(cr, "the image's kdump set-up fails the same way in every attempt");
	return -1;
}

static int boot(struct cellrun *cr, const char *initrd)
{
	const struct scenario *sc = cr->sc;
	char *cons = path_join(cr->cell->dir, "console.log");
	char *alog = path_join(cr->cell->dir, "agent.log");
	char *qlog = path_join(cr->cell->dir, "qemu.log");
	struct vm_config cfg;
	struct kerr e = KERR_INIT;
	json_object *ready = NULL;
	struct sb cmdline = SB_INIT;
	struct accel_choice ac;
	uint64_t t0 = now_ms();
	enum vm_wait_result w;
	uint64_t tb;
	int ret = -1, started;

	/* the backend's console first; printk.devkmsg=on: the agent's kernel-log marks must not
	 * be rate limited; panic=-1 (with QEMU's -no-reboot): a panic ends the VM at once instead
	 * of hanging; SysRq for vm_dump */
	sb_addf(&cmdline, "%s panic=-1 printk.devkmsg=on sysrq_always_enabled",
		sc->vm.backend->guest_cmdline);
	/* livepatch_debug: the pr_debug lines of kernel/livepatch, as the kernel's selftests turn
	 * them on, without the per-task lines of klp_try_switch_task */
	if (sc->livepatch_debug)
		sb_adds(&cmdline, " dyndbg=\"file kernel/livepatch/* +p; func klp_try_switch_task -p\"");
	if (sc->guest.disk)
		sb_addf(&cmdline, " klpq.root=%s", cr->disk_root);
	/* guest.kdump: memory for the capture kernel, its initrd and a systemd boot that saves
	 * the dump (Debian's 128M preset runs out in a systemd capture boot) */
	if (sc->guest.kdump)
		sb_addf(&cmdline, " crashkernel=%uM", KDUMP_CRASHKERNEL_MB);
	if (sc->vm.extra_cmdline && *sc->vm.extra_cmdline)
		sb_addf(&cmdline, " %s", sc->vm.extra_cmdline);
	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = sc->vm.backend;
	cfg.name = cr->cell->id;
	cfg.kernel = cr->k.vmlinuz;
	cfg.initrd = initrd;
	cfg.disk = cr->disk;
	cfg.cmdline = cmdline.buf;
	cfg.memory_mb = sc->vm.memory_mb;
	cfg.cpus = sc->vm.cpus;
	if (decide_accel(cr, &ac) < 0)
		goto out;
	cfg.accel = ac.accel;
	cfg.cpu = ac.cpu;
	cfg.network = sc->vm.network;
	cfg.console_log = cons;
	cfg.agent_log = alog;
	cfg.qemu_log = qlog;
	cfg.uri = sc->vm.uri;
	cfg.cache_dir = cr->rn->cache;
	cfg.stop_fd = cr->rn->stop_fd;
	cfg.on_console = on_console;
	cfg.ctx = cr;
	cr->console_path = xstrdup(cons);
	if ((started = vm_start(&cfg, &cr->vm, &e)) < 0 && fd_readable(cr->rn->stop_fd)) {
		stopped(cr, "boot"); /* Ctrl-C or SIGTERM while QEMU started: not QEMU's failure */
		goto out;
	}
	if (started < 0) {
		struct check_result *c = cr_add(cr, "boot", "qemu", V_ERROR, now_ms() - t0, "%s", e.msg);
		qemu_log_tail(c, qlog);
		if (started == VM_START_REFUSED)
			no_retry(cr, "QEMU refused to start; the same command line would fail again");
		/* the pool's host could not be reached, or could not start the domain; a boot spec
		 * it refused (VM_START_REFUSED) is the scenario's, not the host's */
		if (sc->vm.host && !cr->cell->host_fault && started != VM_START_REFUSED)
			cr->cell->host_fault = xstrdup(started == VM_START_NO_HOST ? "connect" : "start");
		goto out;
	}
	cr->disk_booted = cr->disk != NULL;
	free(cr->cell->qemu_version);
	cr->cell->qemu_version = xstrdup(vm_version(cr->vm));
	if (strcmp(vm_accel(cr->vm), ac.accel)) {
		/* QMP's query-kvm is the truth: record what ran */
		free(cr->cell->accel_reason);
		cr->cell->accel_reason = xasprintf("%s; but QEMU reports %s running", ac.reason,
						   vm_accel(cr->vm));
	}
	free(cr->cell->accel);
	cr->cell->accel = xstrdup(vm_accel(cr->vm));
	cr_progress(cr, "booting %s under %s (QEMU %s)", cr->k.release, vm_accel(cr->vm),
		 vm_version(cr->vm));
	/* a kernel that prints nothing at all has not started (a KVM that cannot run it, a boot
	 * that hung at once): that is known after console_s, not after boot_s */
	tb = now_ms();
	w = vm_wait_ready(cr->vm, sc->timeouts.console_ms < sc->timeouts.boot_ms ?
			  sc->timeouts.console_ms : sc->timeouts.boot_ms, &ready, &e);
	if (w == VM_TIMEOUT && sc->timeouts.console_ms < sc->timeouts.boot_ms) {
		if (!cr->console_bytes) {
			struct check_result *c = cr_add(cr, "boot", "console", V_ERROR, now_ms() - t0,
				"the guest printed nothing on its console in %.0f s (accel %s, -cpu %s)",
				sc->timeouts.console_ms / 1000.0, ac.accel, ac.cpu);
			check_evidence(c, "accelerator: %s", ac.reason);
			check_evidence(c, "kernel command line: %s", cmdline.buf);
			cr->down = 1;
			goto out;
		}
		kerr_clear(&e);
		w = vm_wait_ready(cr->vm, sc->timeouts.boot_ms - (unsigned)(now_ms() - tb), &ready,
				  &e);
	}
	if (w != VM_OK) {
		guest_trouble(cr, "boot", "agent", w, &e);
		/* a boot that crashed the kernel is a kernel FAIL, one that just hung is ERROR */
		goto out;
	}
	{
		const char *kver = proto_get_str(ready, "kernel", "");
		uint64_t ms = now_ms() - t0;
		json_object_object_add(cr->cell->metrics, "boot_ms", json_object_new_int64((int64_t)ms));
		if (strcmp(kver, cr->k.release)) {
			cr_add(cr, "boot", "agent", V_ERROR, ms,
			    "guest runs kernel %s, expected %s", kver, cr->k.release);
			goto out;
		}
		struct check_result *r = cr_add(cr, "boot", "agent", V_PASS, ms,
					     "agent ready on %s after %.1f s (%s)", kver,
					     ms / 1000.0, vm_accel(cr->vm));
		check_evidence(r, "guest uptime at ready: %lld ms",
			       (long long)proto_get_int(ready, "uptime_ms", -1));
		check_evidence(r, "kernel command line: %s", cmdline.buf);
	}
	if (cr->disk) {
		/* patches meet a booted system, as on a real machine: systemd's start-up finished
		 * (the journal on disk by then, for a post-mortem) */
		const char *argv[] = { "systemctl", "is-system-running", "--wait", NULL };
		uint64_t ts = now_ms(), used = ts - t0;
		unsigned left = used < sc->timeouts.boot_ms ? sc->timeouts.boot_ms - (unsigned)used :
			1000;
		struct sb out = SB_INIT;
		int code = -1;

		if (guest_exec(cr, "boot", "system", argv, left, &code, &out) < 0) {
			sb_release(&out);
			goto out;
		}
		while (out.len && (out.buf[out.len - 1] == '\n' || out.buf[out.len - 1] == ' '))
			out.buf[--out.len] = 0;
		json_object_object_add(cr->cell->metrics, "system_ready_ms",
				       json_object_new_int64((int64_t)(now_ms() - t0)));
		if (!strcmp(out.buf ? out.buf : "", "running") ||
		    !strcmp(out.buf ? out.buf : "", "degraded")) {
			/* degraded: a unit of the image failed in this VM, before any patch */
			cr_add(cr, "boot", "system", V_PASS, now_ms() - ts, "systemd: %s after %.1f s",
			       out.buf, (now_ms() - t0) / 1000.0);
		} else {
			cr_add(cr, "boot", "system", V_ERROR, now_ms() - ts, "systemd did not finish "
			       "starting the disk's system (systemctl is-system-running: %s, exit %d)",
			       out.len ? out.buf : "no output", code);
			sb_release(&out);
			goto out;
		}
		sb_release(&out);
	}
	if (sc->guest.kdump && kdump_armed(cr) < 0)
		goto out;
	console_crashes(cr, "boot");
	ret = 0;
out:
	json_object_put(ready);
	sb_release(&cmdline);
	free(cons);
	free(alog);
	free(qlog);
	return ret;
}

static void poweroff(struct cellrun *cr)
{
	uint64_t t0 = now_ms();
	const char *why;

	if (!cr->vm)
		return;
	if (cr->down) {
		vm_stop(cr->vm, 2000);
		return;
	}
	vm_stop(cr->vm, 15000);
	why = vm_exit_reason(cr->vm);
	if (why && strstr(why, "powered off"))
		cr_add(cr, "end", "poweroff", V_PASS, now_ms() - t0, "%s", why);
	else
		cr_add(cr, "end", "poweroff", cr->patched && !vm_host_ended(cr->vm) ? V_FAIL :
		    V_ERROR, now_ms() - t0, "guest did not power off cleanly: %s",
		    why ? why : "still running, killed");
}

/* The cell's scratch folder for its guest image: $TMPDIR (or /tmp)/klpq-<uid>/cell-<pid>-XXXXXX,
 * locked while it lives (make_locked_tmp) so that only a dead klpq's is swept. */
static char *make_tmpdir(int *lock_fd, struct kerr *e)
{
	const char *t = getenv("TMPDIR");

	return make_locked_tmp(t && *t ? t : "/tmp", "cell-", lock_fd, e);
}

static void save_progress(struct cellrun *cr)
{
	struct kerr e = KERR_INIT;

	if (cell_write(cr->cell, &e) < 0)
		cr_progress(cr, "cannot save results: %s", e.msg);
}

/* A stop (Ctrl-C, SIGTERM) outside a VM wait: record it once. The stop descriptor is never
 * drained, so it stays readable for every later check. */
static int stopped(struct cellrun *cr, const char *step)
{
	if (cr->interrupted)
		return 1;
	if (!fd_readable(cr->rn->stop_fd))
		return 0;
	cr->interrupted = 1;
	cr->down = 1;
	cr_add(cr, step, "interrupted", V_ERROR, 0, "interrupted: klpq was asked to stop");
	return 1;
}

int runner_run_cell(struct runner *rn, const struct kernel_spec *ks, struct cell_result *cell)
{
	struct cellrun cr;
	const struct patchset *ps = &rn->sc->patchset;
	uint64_t t0 = now_ms();
	char *tmpdir = NULL, *initrd = NULL;
	struct kerr e = KERR_INIT;
	size_t applied = 0;
	int write_failed = 0, tmp_lock = -1;

	memset(&cr, 0, sizeof(cr));
	exercise_reset(&cr.ex);
	if (rn->sc->vm.host && !cell->host)
		cell->host = xstrdup(rn->sc->vm.host);
	cr.rn = rn;
	cr.sc = rn->sc;
	cr.img = rn->image ? rn->image : &image_initramfs;
	cr.cell = cell;
	cr.live = -1;
	cr.state = xcalloc(ps->nr_steps, sizeof(*cr.state));
	cr.console = cscan_new();
	if (rn->sc->guest.kdump)
		cscan_expect_capture(cr.console);
	cr_progress(&cr, "cell start: %s with patch set %s", ks->label, ps->name);
	{
		char sum[65];
		struct kerr he = KERR_INIT;

		if (pbuild_patchset_hash(ps, sum, &he) == 0)
			cell->patchset_sha256 = xstrdup(sum);
	}

	/* The cell's results.json exists from the start and is rewritten after every phase, so a
	 * klpq that is killed outright still leaves what it saw (marked unfinished). */
	save_progress(&cr);
	if (prepare(&cr, ks) < 0) {
		stopped(&cr, "prepare"); /* a download or build cut short by a stop */
		goto end;
	}
	tmpdir = make_tmpdir(&tmp_lock, &e);
	if (!tmpdir) {
		cr_add(&cr, "prepare", "initramfs", V_ERROR, 0, "%s", e.msg);
		no_retry(&cr, "the temporary folder is refused the same way every time");
		goto end;
	}
	initrd = path_join(tmpdir, "initramfs.cpio");
	if (rn->sc->guest.disk)
		cr.disk = path_join(tmpdir, "disk.qcow2");
	if (stopped(&cr, "prepare") || make_image(&cr, initrd) < 0 ||
	    (cr.disk && (disk_image(&cr) < 0 || make_overlay(&cr, cr.disk) < 0)) ||
	    boot(&cr, initrd) < 0)
		goto end;
	save_progress(&cr);
	if (run_probes(&cr, "baseline", ps->nr_steps - 1, 0, -1) < 0)
		goto end;
	check_taint(&cr, "baseline");
	if (rn->sc->nr_workloads && perf_start(&cr) < 0)
		goto end;
	for (size_t i = 0; i < ps->nr_steps && !cr.down; i++) {
		int r = apply_step(&cr, i);
		save_progress(&cr);
		if (r != 0)
			break;
		applied = i + 1;
		if (cr.state[i] == ST_LIVE && perf_phase(&cr, PHASE_B, ps->steps[i].name) < 0)
			break;
	}
	/* A refused last step leaves the step before it live: rollback, reapply, the pairs and
	 * the leak cycles are done on that one. */
	if (!cr.down && applied == ps->nr_steps && cr.live >= 0 && rn->sc->rollback)
		rollback_cell(&cr, (size_t)cr.live);
	if (cr.perf_on && !cr.down && applied == ps->nr_steps && cr.live >= 0) {
		const struct loaded *l = loaded_find(&cr, cr.mods[cr.live].name);
		if (l && l->inserted)
			perf_pairs(&cr, (size_t)cr.live);
	}
	if (cr.wl) {
		/* judged only when the last step's patched phases ran */
		if (applied == ps->nr_steps && cr.live >= 0)
			perf_calls_finish(&cr, (size_t)cr.live);
		perf_calls_release(cr.pc);
		cr.pc = NULL;
		perf_finish(&cr, cr.live >= 0 ? (size_t)cr.live : 0);
		cr.perf_on = 0; /* the workloads are stopped: no more phases */
		save_progress(&cr);
	}
	if (!cr.down && !cr.interrupted && applied == ps->nr_steps && cr.live >= 0) {
		leak_check(&cr, (size_t)cr.live);
		save_progress(&cr);
	}
	/* after the pairs and the leak cycles: a flag set late is still tied to a check */
	if (!cr.down && !cr.interrupted && cr.vm)
		check_taint(&cr, "end");
	if (!cr.interrupted && applied + 1 < ps->nr_steps)
		cr_add(&cr, "end", "remaining", V_SKIP, 0, "%zu step(s) not run after %s of %s",
		    ps->nr_steps - applied - 1, cr.down ? "the loss of the guest" : "the failure",
		    ps->steps[applied].name);
end:
	poweroff(&cr);
	if (cr.vm) {
		uint64_t over, bad;
		vm_channel_stats(cr.vm, &over, &bad);
		if (vm_log_errno(cr.vm)) {
			cr_add(&cr, "end", "logs", V_ERROR, 0, "the logs of this cell are incomplete: %s",
			    strerror(vm_log_errno(cr.vm)));
			no_retry(&cr, "the results folder refuses writes; another attempt could not "
				 "write either");
		}
		/* before any patch a garbled channel is not the patch's doing */
		if (over || bad)
			cr_add(&cr, "end", "agent-channel", cr.patched ? V_FAIL : V_ERROR, 0,
			    "the guest wrote %llu oversized and %llu malformed line(s) into the agent "
			    "channel (dropped; see agent.log)", (unsigned long long)over,
			    (unsigned long long)bad);
	}
	cscan_finish(cr.console);
	console_crashes(&cr, "end");
	if (cr.vm && vm_host_lost(cr.vm) && !cell->host_fault && rn->sc->vm.host)
		cell->host_fault = xstrdup("lost");
	cell->finished = !cr.interrupted;
	if (cr.disk && cr.disk_booted && !cr.interrupted &&
	    (cell_verdict(cell) == V_FAIL || cell_verdict(cell) == V_ERROR)) {
		vm_destroy(cr.vm); /* QEMU's lock on the overlay goes with it */
		cr.vm = NULL;
		disk_postmortem(&cr, cell->started_wall_ms);
	}
	cell->duration_ms = now_ms() - t0;
	{
		/* the cell's own process: klpq's cost for this cell, QEMU excluded */
		struct rusage ru;
		json_object *h = json_object_new_object();

		getrusage(RUSAGE_SELF, &ru);
		json_object_object_add(h, "cpu_user_ms", json_object_new_int64(
			(int64_t)ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000));
		json_object_object_add(h, "cpu_sys_ms", json_object_new_int64(
			(int64_t)ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000));
		json_object_object_add(h, "peak_rss_kb", json_object_new_int64(ru.ru_maxrss));
		json_object_object_add(cell->metrics, "harness", h);
	}
	cr_progress(&cr, "cell done: %s in %.1f s", verdict_name(cell_verdict(cell)),
		 cell->duration_ms / 1000.0);
	if (cell_write(cell, &e) < 0) {
		cr_progress(&cr, "%s", e.msg);
		write_failed = 1;
	}

	vm_destroy(cr.vm);
	cscan_free(cr.console);
	for (size_t i = 0; cr.wl && i < rn->sc->nr_workloads; i++)
		perf_samples_release(&cr.wl[i]);
	free(cr.wl);
	perf_calls_release(cr.pc);
	perf_phases_release(&cr.phases);
	kernel_release(&cr.k);
	if (cr.mods)
		for (size_t i = 0; i < ps->nr_steps; i++)
			built_module_release(&cr.mods[i]);
	free(cr.mods);
	for (size_t i = 0; cr.kmod_paths && i < ps->nr_steps; i++) {
		for (size_t k = 0; k < cr.nr_kmod_paths[i]; k++)
			free(cr.kmod_paths[i][k]);
		free(cr.kmod_paths[i]);
	}
	free(cr.kmod_paths);
	free(cr.nr_kmod_paths);
	for (size_t i = 0; cr.programs && i < ps->nr_programs; i++)
		free(cr.programs[i]);
	free(cr.programs);
	free(cr.state);
	for (size_t i = 0; i < cr.nr_loaded; i++)
		free(cr.loaded[i].name);
	free(cr.loaded);
	for (size_t i = 0; i < cr.nr_titles; i++)
		free(cr.titles[i]);
	free(cr.titles);
	free(cr.console_path);
	free(cr.disk);
	free(cr.disk_base);
	free(cr.disk_root);
	free(initrd);
	if (tmpdir)
		rm_rf(tmpdir); /* the guest image is rebuilt each run: not a result */
	free(tmpdir);
	if (tmp_lock >= 0)
		close(tmp_lock);
	return cr.interrupted ? -1 : write_failed ? -2 : 0;
}
