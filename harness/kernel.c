/* kernel.c: see kernel.h. */
#define _GNU_SOURCE
#include "kernel.h"
#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define APT_TIMEOUT_MS (15 * 60 * 1000)

char *klpq_cache_dir(void)
{
	const char *v = getenv("KLPQ_CACHE");

	if (v && *v)
		return xstrdup(v);
	v = getenv("XDG_CACHE_HOME");
	if (v && *v)
		return path_join(v, "klpq");
	v = getenv("HOME");
	return xasprintf("%s/.cache/klpq", v && *v ? v : "/tmp");
}

static void say(void (*log)(void *, const char *), void *ctx, const char *fmt, ...)
	KLPQ_ATTR_FMT(3, 4);
static void say(void (*log)(void *, const char *), void *ctx, const char *fmt, ...)
{
	struct sb s = SB_INIT;
	va_list ap;

	if (!log)
		return;
	va_start(ap, fmt);
	sb_vaddf(&s, fmt, ap);
	va_end(ap);
	log(ctx, s.buf);
	sb_release(&s);
}

/* apt-get download PKG... in dir. On "Unable to locate package" the package lists may simply
 * be missing on a fresh machine: refresh them once with apt-get update and try again. */
static int apt_download(const char *dir, const char *const *pkgs, size_t n, struct kerr *e)
{
	const char *argv[16];
	struct sb out = SB_INIT;
	struct kerr first = KERR_INIT;
	size_t i, a = 0;
	int ret;

	if (n > ARRAY_SIZE(argv) - 6)
		return kerr_set(e, "internal error: too many packages");
	argv[a++] = "apt-get";
	argv[a++] = "-q";
	argv[a++] = "download";
	for (i = 0; i < n; i++)
		argv[a++] = pkgs[i];
	argv[a] = NULL;
	ret = run_capture(argv, dir, NULL, &out, APT_TIMEOUT_MS, &first);
	if (ret == 0 || !strstr(out.buf, "Unable to locate package")) {
		sb_release(&out);
		if (ret < 0)
			return kerr_set(e, "apt-get download failed: %s", first.msg);
		return 0;
	}
	sb_reset(&out);
	{
		const char *upd[] = { "apt-get", "-q", "update", NULL };
		struct kerr ue = KERR_INIT;
		if (run_capture(upd, dir, NULL, &out, APT_TIMEOUT_MS, &ue) < 0) {
			sb_release(&out);
			return kerr_set(e, "apt-get download failed: %s (and apt-get update failed: %s)",
					first.msg, ue.msg);
		}
	}
	sb_reset(&out);
	ret = run_capture(argv, dir, NULL, &out, APT_TIMEOUT_MS, e);
	sb_release(&out);
	if (ret < 0)
		return kerr_set(e, "apt-get download failed");
	return 0;
}

/* Finds the .deb of package `prefix` (file "prefix_VERSION_ARCH.deb") in dir. malloc'd or NULL. */
static char *find_deb(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *found = NULL;
	char *want = xasprintf("%s_", prefix);
	size_t pl = strlen(want);

	if (!d) {
		free(want);
		return NULL;
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (!strncmp(de->d_name, want, pl) && l > 4 && !strcmp(de->d_name + l - 4, ".deb")) {
			free(found);
			found = path_join(dir, de->d_name);
		}
	}
	closedir(d);
	free(want);
	return found;
}

static int deb_extract(const char *deb, const char *root, struct kerr *e)
{
	const char *argv[] = { "dpkg-deb", "-x", deb, root, NULL };
	struct sb out = SB_INIT;
	int ret = run_capture(argv, NULL, NULL, &out, APT_TIMEOUT_MS, e);

	sb_release(&out);
	return ret;
}

/* Reads Depends of a .deb and returns the linux-headers-* and linux-kbuild-* package names. */
static int header_deps(const char *deb, char ***names, size_t *nr, struct kerr *e)
{
	const char *argv[] = { "dpkg-deb", "-f", deb, "Depends", NULL };
	struct sb out = SB_INIT;
	char *save = NULL, *tok;

	*names = NULL;
	*nr = 0;
	if (run_capture(argv, NULL, NULL, &out, 60000, e) < 0) {
		sb_release(&out);
		return -1;
	}
	for (tok = strtok_r(out.buf, ",|", &save); tok; tok = strtok_r(NULL, ",|", &save)) {
		while (*tok == ' ' || *tok == '\n')
			tok++;
		size_t len = strcspn(tok, " (\n");
		if (len == 0)
			continue;
		if (strncmp(tok, "linux-headers-", 14) && strncmp(tok, "linux-kbuild-", 13))
			continue;
		*names = xrealloc(*names, (*nr + 1) * sizeof(**names));
		(*names)[(*nr)++] = xstrndup(tok, len);
	}
	sb_release(&out);
	return 0;
}

/* The headers' Makefile starts with `include /usr/src/linux-headers-X-common/Makefile`: point
 * it into our unpacked root. */
static int fix_headers_makefile(const char *root, const char *release, struct kerr *e)
{
	char *mk = xasprintf("%s/usr/src/linux-headers-%s/Makefile", root, release);
	struct sb in = SB_INIT, outb = SB_INIT;
	const char *p;
	int ret = -1;

	if (read_file(mk, &in, 1 << 20, e) < 0)
		goto out;
	for (p = in.buf; *p; ) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
		if (!strncmp(p, "include /usr/src/", 17))
			sb_addf(&outb, "include %s/usr/src/%.*s", root, (int)(len - 17), p + 17);
		else
			sb_add(&outb, p, len);
		p += len;
	}
	ret = write_file_atomic(mk, outb.buf, outb.len, e);
out:
	free(mk);
	sb_release(&in);
	sb_release(&outb);
	return ret;
}

static int fill_paths(struct kernel *k, const char *root, const char *release, struct kerr *e)
{
	k->release = xstrdup(release);
	k->vmlinuz = xasprintf("%s/boot/vmlinuz-%s", root, release);
	k->modules = xasprintf("%s/lib/modules/%s", root, release);
	k->build = xasprintf("%s/usr/src/linux-headers-%s", root, release);
	if (!path_exists(k->vmlinuz))
		return kerr_set(e, "%s: no vmlinuz after unpacking", k->vmlinuz);
	return 0;
}

static int prepare_debian(const struct kernel_spec *spec, const char *cache, struct kernel *k,
			  void (*log)(void *, const char *), void *ctx, struct kerr *e)
{
	const char *rel = spec->deb.release;
	char *top = xasprintf("%s/kernels/debian/%s", cache, rel);
	char *root = path_join(top, "root");
	char *done = path_join(top, ".complete");
	char *debs = path_join(top, "debs");
	char *tmproot = xasprintf("%s/root.tmp.%ld", top, (long)getpid());
	char *img = xasprintf("linux-image-%s", rel);
	char *img_unsigned = xasprintf("linux-image-%s-unsigned", rel);
	char *hdr = xasprintf("linux-headers-%s", rel);
	char *img_deb = NULL, *hdr_deb = NULL, **deps = NULL;
	size_t nr_deps = 0, i;
	int ret = -1;

	if (path_exists(done)) {
		k->from_cache = 1;
		ret = fill_paths(k, root, rel, e);
		goto out;
	}
	if (mkdir_p(debs, 0755, e) < 0)
		goto out;
	say(log, ctx, "fetching %s from Debian's archive", spec->label);
	img_deb = find_deb(debs, img);
	if (!img_deb)
		img_deb = find_deb(debs, img_unsigned);
	if (!img_deb) {
		const char *p1[] = { img };
		struct kerr e1 = KERR_INIT;
		if (apt_download(debs, p1, 1, &e1) < 0) {
			const char *p2[] = { img_unsigned };
			if (apt_download(debs, p2, 1, e) < 0) {
				kerr_clear(e);
				kerr_set(e, "kernel %s: %s", spec->label, e1.msg);
				goto out;
			}
		}
		img_deb = find_deb(debs, img);
		if (!img_deb)
			img_deb = find_deb(debs, img_unsigned);
	}
	hdr_deb = find_deb(debs, hdr);
	if (!hdr_deb) {
		const char *p[] = { hdr };
		if (apt_download(debs, p, 1, e) < 0)
			goto out;
		hdr_deb = find_deb(debs, hdr);
	}
	if (!img_deb || !hdr_deb) {
		kerr_set(e, "kernel %s: downloaded packages not found in %s", spec->label, debs);
		goto out;
	}
	if (header_deps(hdr_deb, &deps, &nr_deps, e) < 0)
		goto out;
	for (i = 0; i < nr_deps; i++) {
		char *have = find_deb(debs, deps[i]);
		if (!have) {
			const char *p[] = { deps[i] };
			if (apt_download(debs, p, 1, e) < 0)
				goto out;
		}
		free(have);
	}
	say(log, ctx, "unpacking %s", spec->label);
	rm_rf(tmproot);
	if (mkdir_p(tmproot, 0755, e) < 0)
		goto out;
	{
		DIR *d = opendir(debs);
		struct dirent *de;
		if (!d) {
			kerr_errno(e, "cannot read %s", debs);
			goto out;
		}
		while ((de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l < 5 || strcmp(de->d_name + l - 4, ".deb"))
				continue;
			char *deb = path_join(debs, de->d_name);
			int r = deb_extract(deb, tmproot, e);
			free(deb);
			if (r < 0) {
				closedir(d);
				goto out;
			}
		}
		closedir(d);
	}
	{
		const char *argv[] = { "depmod", "-b", tmproot, rel, NULL };
		struct sb o = SB_INIT;
		int r = run_capture(argv, NULL, NULL, &o, 300000, e);
		sb_release(&o);
		if (r < 0)
			goto out;
	}
	/* The Makefile fix names the final root, so it comes after the rename. */
	rm_rf(root);
	if (rename(tmproot, root) < 0) {
		kerr_errno(e, "cannot move %s to %s", tmproot, root);
		goto out;
	}
	if (fix_headers_makefile(root, rel, e) < 0)
		goto out;
	if (write_file_atomic(done, "", 0, e) < 0)
		goto out;
	ret = fill_paths(k, root, rel, e);
out:
	if (ret < 0)
		rm_rf(tmproot);
	for (i = 0; i < nr_deps; i++)
		free(deps[i]);
	free(deps);
	free(top);
	free(root);
	free(done);
	free(debs);
	free(tmproot);
	free(img);
	free(img_unsigned);
	free(hdr);
	free(img_deb);
	free(hdr_deb);
	return ret;
}

static int prepare_local(const struct kernel_spec *spec, struct kernel *k, struct kerr *e)
{
	char *dep = path_join(spec->modules, "modules.dep");
	int ret = 0;

	if (!path_exists(spec->vmlinuz))
		ret = kerr_set(e, "kernel %s: vmlinuz %s does not exist", spec->label, spec->vmlinuz);
	else if (!is_dir(spec->modules))
		ret = kerr_set(e, "kernel %s: modules folder %s does not exist", spec->label,
			       spec->modules);
	else if (!path_exists(dep))
		ret = kerr_set(e, "kernel %s: %s is missing (run depmod -b for that tree)",
			       spec->label, dep);
	else if (spec->build && !is_dir(spec->build))
		ret = kerr_set(e, "kernel %s: build folder %s does not exist", spec->label,
			       spec->build);
	free(dep);
	if (ret < 0)
		return -1;
	k->release = xstrdup(spec->release);
	k->vmlinuz = xstrdup(spec->vmlinuz);
	k->modules = xstrdup(spec->modules);
	k->build = spec->build ? xstrdup(spec->build) : NULL;
	k->from_cache = 1;
	return 0;
}

int kernel_prepare(const struct kernel_spec *spec, const char *cache, struct kernel *out,
		   void (*log)(void *ctx, const char *msg), void *log_ctx, struct kerr *e)
{
	int ret;

	memset(out, 0, sizeof(*out));
	out->label = xstrdup(spec->label);
	if (spec->kind == KERNEL_LOCAL)
		ret = prepare_local(spec, out, e);
	else
		ret = prepare_debian(spec, cache, out, log, log_ctx, e);
	if (ret < 0)
		kernel_release(out);
	return ret;
}

void kernel_release(struct kernel *k)
{
	free(k->release);
	free(k->vmlinuz);
	free(k->modules);
	free(k->build);
	free(k->label);
	memset(k, 0, sizeof(*k));
}
