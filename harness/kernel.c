/* kernel.c: see kernel.h. */
#define _GNU_SOURCE
#include "kernel.h"
#include "pbuild.h"
#include "spawn.h"

#include <dirent.h>
#include <sys/stat.h>
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

/* apt-get download PKG... into dir. Downloads land in a scratch folder first and move in only
 * when apt-get succeeded, so an interrupted download never leaves a truncated .deb to reuse.
 * On "Unable to locate package" the package lists may simply be missing on a fresh machine:
 * refresh them once with apt-get update and try again. */
static int apt_download(const char *dir, const char *const *pkgs, size_t n, int stop_fd,
			struct kerr *e)
{
	struct run_opts o = RUN_OPTS_INIT;
	const char *argv[16];
	struct sb out = SB_INIT;
	struct kerr first = KERR_INIT;
	char *scratch;
	size_t i, a = 0;
	int ret = -1;

	if (n > ARRAY_SIZE(argv) - 6)
		return kerr_set(e, "internal error: too many packages");
	scratch = xasprintf("%s/.download.%ld", dir, (long)getpid());
	argv[a++] = "apt-get";
	argv[a++] = "-q";
	argv[a++] = "download";
	for (i = 0; i < n; i++)
		argv[a++] = pkgs[i];
	argv[a] = NULL;
	sweep_dead(dir, ".download."); /* scratch folders of a klpq that was killed */
	rm_rf(scratch);
	if (mkdir_p(scratch, 0755, e) < 0)
		goto out;
	o.cwd = scratch;
	o.timeout_ms = APT_TIMEOUT_MS;
	o.stop_fd = stop_fd;
	if (run_capture(argv, &o, &out, &first) < 0) {
		const char *upd[] = { "apt-get", "-q", "update", NULL };
		struct kerr ue = KERR_INIT;

		if (o.end != RUN_FAILED || !strstr(out.buf, "Unable to locate package")) {
			kerr_set(e, "%s", first.msg);
			goto out;
		}
		sb_reset(&out);
		if (run_capture(upd, &o, &out, &ue) < 0) {
			kerr_set(e, "%s (and apt-get update failed: %s)", first.msg, ue.msg);
			goto out;
		}
		sb_reset(&out);
		if (run_capture(argv, &o, &out, e) < 0)
			goto out;
	}
	{
		DIR *d = opendir(scratch);
		struct dirent *de;
		if (!d) {
			kerr_errno(e, "cannot read %s", scratch);
			goto out;
		}
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char *from = path_join(scratch, de->d_name), *to = path_join(dir, de->d_name);
			int r = rename(from, to);
			free(from);
			free(to);
			if (r < 0) {
				kerr_errno(e, "cannot move %s into %s", de->d_name, dir);
				closedir(d);
				goto out;
			}
		}
		closedir(d);
	}
	ret = 0;
out:
	rm_rf(scratch);
	free(scratch);
	sb_release(&out);
	return ret;
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

/* Runs a short local tool (dpkg-deb, depmod), output discarded unless it fails. */
static int run_tool(const char *const *argv, int stop_fd, struct kerr *e)
{
	struct run_opts o = RUN_OPTS_INIT;
	struct sb out = SB_INIT;
	int ret;

	o.timeout_ms = APT_TIMEOUT_MS;
	o.stop_fd = stop_fd;
	ret = run_capture(argv, &o, &out, e);

	sb_release(&out);
	return ret;
}

/* Reads Depends of a .deb and returns the linux-headers-* and linux-kbuild-* package names. */
static int header_deps(const char *deb, char ***names, size_t *nr, struct kerr *e)
{
	const char *argv[] = { "dpkg-deb", "-f", deb, "Depends", NULL };
	struct run_opts o = RUN_OPTS_INIT;
	struct sb out = SB_INIT;
	char *save = NULL, *tok;

	*names = NULL;
	*nr = 0;
	o.timeout_ms = 60000;
	if (run_capture(argv, &o, &out, e) < 0) {
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
 * it at the unpacked common folder beside it, relative to the Makefile itself, so the cache
 * can move (a CI cache restored elsewhere, another HOME) and never borrows another cache's
 * headers. An absolute include written by an older klpq is rewritten the same way. */
static int fix_headers_makefile(const char *root, const char *release, struct kerr *e)
{
	static const char rel[] = "include $(dir $(lastword $(MAKEFILE_LIST)))../";
	char *mk = xasprintf("%s/usr/src/linux-headers-%s/Makefile", root, release);
	struct sb in = SB_INIT, outb = SB_INIT;
	const char *p;
	int ret = -1, changed = 0;

	if (read_file(mk, &in, 1 << 20, e) < 0)
		goto out;
	const char *line;
	size_t len;
	for (p = in.buf; next_line(&p, &line, &len);) {
		const char *name = NULL;

		/* the last "/usr/src/linux-headers-" of an absolute include */
		for (const char *q = line; len > 8 && !strncmp(line, "include /", 9) &&
		     (q = memmem(q, len - (size_t)(q - line), "/usr/src/linux-headers-", 23)); q++)
			name = q + 9;
		if (name) {
			sb_addf(&outb, "%s%.*s\n", rel, (int)(len - (size_t)(name - line)), name);
			changed = 1;
		} else {
			sb_addf(&outb, "%.*s\n", (int)len, line);
		}
	}
	ret = changed ? write_file_atomic(mk, outb.buf, outb.len, e) : 0;
out:
	free(mk);
	sb_release(&in);
	sb_release(&outb);
	return ret;
}

/* Files and bytes under dir (symlinks as links, not followed): the shape of an unpacked
 * headers tree, to notice one that changed in the cache (a file deleted, truncated). */
static int tree_shape(const char *dir, unsigned long long *files, unsigned long long *bytes)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		struct stat st;
		char *p;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = path_join(dir, de->d_name);
		if (lstat(p, &st) == 0) {
			(*files)++;
			if (S_ISDIR(st.st_mode))
				tree_shape(p, files, bytes);
			else if (S_ISREG(st.st_mode))
				*bytes += (unsigned long long)st.st_size;
		}
		free(p);
	}
	closedir(d);
	return 0;
}

static char *shape_line(const char *root)
{
	unsigned long long files = 0, bytes = 0;
	char *src = path_join(root, "usr/src");

	tree_shape(src, &files, &bytes);
	free(src);
	return xasprintf("usr/src: %llu entries, %llu bytes\n", files, bytes);
}

/* A cached kernel whose headers no longer look as they did when unpacked is the cache's
 * fault (ERROR), not a patch that does not compile (FAIL). */
static int check_headers(const char *top, const char *root, const char *release,
			 struct kerr *e)
{
	char *manifest = path_join(top, "headers.shape");
	char *arch_mk = xasprintf("%s/usr/src/linux-headers-%s/Makefile", root, release);
	struct sb want = SB_INIT;
	struct kerr ignore = KERR_INIT;
	char *have = NULL;
	int ret = 0;

	if (!path_exists(arch_mk)) {
		ret = kerr_set(e, "the cached headers of %s are broken: %s is missing (remove %s to "
			       "fetch the kernel again)", release, arch_mk, top);
	} else if (!path_exists(manifest)) {
		/* unpacked by an older klpq: from now on its shape is checked */
		have = shape_line(root);
		write_file_atomic(manifest, have, strlen(have), &ignore);
	} else if (read_file(manifest, &want, 4096, &ignore) == 0) {
		have = shape_line(root);
		if (strcmp(have, want.buf)) {
			have[strcspn(have, "\n")] = '\0';
			want.buf[strcspn(want.buf, "\n")] = '\0';
			ret = kerr_set(e, "the cached headers of %s changed since they were unpacked "
				       "(%s now, %s then): remove %s to fetch the kernel again",
				       release, have, want.buf, top);
		}
	}
	free(manifest);
	free(arch_mk);
	free(have);
	sb_release(&want);
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

/* What the archive says package pkg's .deb is: 1 when deb (a file in the cache) has the
 * archive's file name, size and SHA-256 (apt-get download --print-uris, from the package lists),
 * 0 when it does not (truncated, corrupt, or an older version), -1 when apt cannot tell. */
static int deb_matches_archive(const char *deb, const char *pkg, int stop_fd, char *why,
			       size_t why_len)
{
	const char *argv[] = { "apt-get", "-q", "download", "--print-uris", pkg, NULL };
	struct run_opts o = RUN_OPTS_INIT;
	struct sb out = SB_INIT;
	struct kerr e = KERR_INIT;
	const char *base = strrchr(deb, '/') ? strrchr(deb, '/') + 1 : deb;
	const char *p, *line;
	size_t len;
	int ret = -1;

	o.timeout_ms = 60000;
	o.stop_fd = stop_fd;
	if (run_capture(argv, &o, &out, &e) < 0)
		goto out;
	for (p = out.buf; next_line(&p, &line, &len);) {
		char name[256], sha[80], sum[65];
		unsigned long long size;
		struct stat st;
		char *l = xstrndup(line, len);
		int n = sscanf(l, "'%*[^']' %255s %llu SHA256:%79s", name, &size, sha);

		free(l);
		if (n != 3)
			continue;
		ret = 0;
		if (strcmp(name, base)) {
			snprintf(why, why_len, "the archive now has %s", name);
			continue;
		}
		if (stat(deb, &st) < 0 || (unsigned long long)st.st_size != size) {
			snprintf(why, why_len, "%lld bytes, the archive says %llu",
				 (long long)st.st_size, size);
			goto out;
		}
		if (sha256_file(deb, sum, &e) < 0 || strcmp(sum, sha)) {
			snprintf(why, why_len, "its SHA-256 is not the archive's");
			goto out;
		}
		ret = 1;
		goto out;
	}
out:
	sb_release(&out);
	return ret;
}

/* pkg's .deb in the cache when it is what the archive has (a bad one is deleted), else NULL. */
static char *cached_deb(const char *dir, const char *pkg, int stop_fd, void (*log)(void *,
			const char *), void *ctx)
{
	char *deb = find_deb(dir, pkg), why[300] = "", msg[512];

	if (deb && deb_matches_archive(deb, pkg, stop_fd, why, sizeof(why)) == 0) {
		snprintf(msg, sizeof(msg), "cached %s does not match Debian's archive (%s): "
			 "fetching it again", strrchr(deb, '/') + 1, why);
		say(log, ctx, "%s", msg);
		unlink(deb);
		free(deb);
		deb = NULL;
	}
	return deb;
}

/* Finds package pkg's .deb in dir (checked against the archive), downloading it first when it
 * is not there or not right. malloc'd or NULL. */
static char *fetch_deb(const char *dir, const char *pkg, int stop_fd,
		       void (*log)(void *, const char *), void *ctx, struct kerr *e)
{
	char *deb = cached_deb(dir, pkg, stop_fd, log, ctx), why[300] = "";
	const char *p[] = { pkg };

	if (deb)
		return deb;
	if (apt_download(dir, p, 1, stop_fd, e) < 0)
		return NULL;
	deb = find_deb(dir, pkg);
	if (!deb)
		kerr_set(e, "apt-get download %s left no %s_*.deb in %s", pkg, pkg, dir);
	else if (deb_matches_archive(deb, pkg, stop_fd, why, sizeof(why)) == 0) {
		kerr_set(e, "%s as downloaded does not match Debian's archive (%s)", deb, why);
		unlink(deb);
		free(deb);
		deb = NULL;
	}
	return deb;
}

static int prepare_debian(const struct kernel_spec *spec, const char *cache, int stop_fd,
			  struct kernel *k, void (*log)(void *, const char *), void *ctx,
			  struct kerr *e)
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
	char **want = NULL, **deps = NULL;
	size_t nr_want = 0, nr_deps = 0, i;
	int ret = -1, lock_fd = -1;

	if (path_exists(done)) {
		k->from_cache = 1;
		if (fix_headers_makefile(root, rel, e) == 0 && check_headers(top, root, rel, e) == 0)
			ret = fill_paths(k, root, rel, e);
		goto out;
	}
	if (mkdir_p(debs, 0755, e) < 0)
		goto out;
	/* Parallel cells (and other klpq processes) share the cache: one fetches and unpacks,
	 * the others wait and then find it complete. */
	{
		char *lock = path_join(top, ".lock");
		lock_fd = lock_path(lock, stop_fd, e);
		free(lock);
	}
	if (lock_fd < 0)
		goto out;
	if (path_exists(done)) {
		k->from_cache = 1;
		if (fix_headers_makefile(root, rel, e) == 0 && check_headers(top, root, rel, e) == 0)
			ret = fill_paths(k, root, rel, e);
		goto out;
	}
	say(log, ctx, "fetching %s from Debian's archive", spec->label);
	/* The image: the signed package, else the unsigned one (same kernel, no signature). */
	want = xcalloc(2, sizeof(*want));
	want[0] = cached_deb(debs, img, stop_fd, log, ctx);
	if (!want[0])
		want[0] = cached_deb(debs, img_unsigned, stop_fd, log, ctx);
	if (!want[0]) {
		struct kerr e1 = KERR_INIT, e2 = KERR_INIT;
		want[0] = fetch_deb(debs, img, stop_fd, log, ctx, &e1);
		if (!want[0])
			want[0] = fetch_deb(debs, img_unsigned, stop_fd, log, ctx, &e2);
		if (!want[0]) {
			kerr_set(e, "kernel %s: %s", spec->label, e1.msg);
			goto out;
		}
	}
	nr_want = 1;
	want[1] = fetch_deb(debs, hdr, stop_fd, log, ctx, e);
	if (!want[1])
		goto out;
	nr_want = 2;
	/* The headers' common and kbuild packages, as the headers package names them. */
	if (header_deps(want[1], &deps, &nr_deps, e) < 0)
		goto out;
	want = xrealloc(want, (2 + nr_deps) * sizeof(*want));
	for (i = 0; i < nr_deps; i++) {
		want[nr_want] = fetch_deb(debs, deps[i], stop_fd, log, ctx, e);
		if (!want[nr_want])
			goto out;
		nr_want++;
	}
	say(log, ctx, "unpacking %s", spec->label);
	rm_rf(tmproot);
	if (mkdir_p(tmproot, 0755, e) < 0)
		goto out;
	for (i = 0; i < nr_want; i++) {
		const char *argv[] = { "dpkg-deb", "-x", want[i], tmproot, NULL };
		if (run_tool(argv, stop_fd, e) < 0) {
			/* a .deb that does not unpack is not kept: the next attempt fetches it */
			if (!fd_readable(stop_fd))
				unlink(want[i]);
			goto out;
		}
	}
	{
		const char *argv[] = { "depmod", "-b", tmproot, rel, NULL };
		if (run_tool(argv, stop_fd, e) < 0)
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
	{
		/* complete only with what a cell needs: the image, modules.dep, the headers */
		const char *need[] = { "boot/vmlinuz-%s", "lib/modules/%s/modules.dep",
				       "usr/src/linux-headers-%s/Makefile" };
		for (i = 0; i < ARRAY_SIZE(need); i++) {
			char *rp = xasprintf(need[i], rel), *p = path_join(root, rp);
			int there = path_exists(p);

			free(rp);
			if (!there) {
				kerr_set(e, "kernel %s: %s is missing after unpacking", spec->label, p);
				free(p);
				rm_rf(root);
				goto out;
			}
			free(p);
		}
	}
	{
		char *manifest = path_join(top, "headers.shape"), *shape = shape_line(root);
		int w = write_file_atomic(manifest, shape, strlen(shape), e);
		free(manifest);
		free(shape);
		if (w < 0)
			goto out;
	}
	if (write_file_atomic(done, "", 0, e) < 0)
		goto out;
	ret = fill_paths(k, root, rel, e);
out:
	if (ret < 0)
		rm_rf(tmproot);
	for (i = 0; i < nr_deps; i++)
		free(deps[i]);
	free(deps);
	for (i = 0; i < nr_want; i++)
		free(want[i]);
	free(want);
	free(top);
	free(root);
	free(done);
	free(debs);
	free(tmproot);
	free(img);
	free(img_unsigned);
	free(hdr);
	if (lock_fd >= 0)
		close(lock_fd);
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

int kernel_prepare(const struct kernel_spec *spec, const char *cache, int stop_fd,
		   struct kernel *out, void (*log)(void *ctx, const char *msg), void *log_ctx,
		   struct kerr *e)
{
	int ret;

	memset(out, 0, sizeof(*out));
	out->label = xstrdup(spec->label);
	if (spec->kind == KERNEL_LOCAL)
		ret = prepare_local(spec, out, e);
	else
		ret = prepare_debian(spec, cache, stop_fd, out, log, log_ctx, e);
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
