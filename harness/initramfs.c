/* initramfs.c: see initramfs.h. */
#define _GNU_SOURCE
#include "initramfs.h"
#include "spawn.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MODULE_FILE (256u << 20)

struct dep_line {
	char *name;
	char *path;
	char **deps; /* paths */
	size_t nr_deps;
	int state;   /* 0 new, 1 visiting, 2 done */
};

static struct dep_line *find_dep(struct dep_line *l, size_t n, const char *name, int by_path)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(by_path ? l[i].path : l[i].name, name))
			return &l[i];
	return NULL;
}

static void visit(struct dep_line *all, size_t n, struct dep_line *d, char ***paths, size_t *nr)
{
	if (d->state)
		return; /* done, or a cycle: modules.dep has none, so just stop */
	d->state = 1;
	for (size_t i = 0; i < d->nr_deps; i++) {
		struct dep_line *dd = find_dep(all, n, d->deps[i], 1);
		if (dd)
			visit(all, n, dd, paths, nr);
	}
	d->state = 2;
	*paths = xrealloc(*paths, (*nr + 1) * sizeof(**paths));
	(*paths)[(*nr)++] = xstrdup(d->path);
}

static int is_builtin(const char *builtin, const char *name)
{
	const char *p = builtin;

	if (!builtin)
		return 0;
	const char *line;
	size_t len;

	while (next_line(&p, &line, &len)) {
		char *n = module_name(line, len);
		int hit = !strcmp(n, name);
		free(n);
		if (hit)
			return 1;
	}
	return 0;
}

int modules_load_order(const char *modules_dep, const char *modules_builtin,
		       const char *const *wanted, char ***paths, size_t *nr, struct kerr *e)
{
	struct dep_line *all = NULL;
	size_t n = 0, i;
	const char *p = modules_dep, *text;
	size_t len;
	int ret = 0;

	*paths = NULL;
	*nr = 0;
	while (next_line(&p, &text, &len)) {
		char *line = xstrndup(text, len);
		char *colon = strchr(line, ':');
		if (!colon) {
			free(line);
			continue;
		}
		*colon = '\0';
		all = xrealloc(all, (n + 1) * sizeof(*all));
		struct dep_line *d = &all[n++];
		memset(d, 0, sizeof(*d));
		d->path = xstrdup(line);
		d->name = module_name(line, strlen(line));
		char *save = NULL;
		for (char *tok = strtok_r(colon + 1, " \t", &save); tok;
		     tok = strtok_r(NULL, " \t", &save)) {
			d->deps = xrealloc(d->deps, (d->nr_deps + 1) * sizeof(*d->deps));
			d->deps[d->nr_deps++] = xstrdup(tok);
		}
		free(line);
	}
	for (i = 0; wanted[i]; i++) {
		struct dep_line *d = find_dep(all, n, wanted[i], 0);
		if (d)
			visit(all, n, d, paths, nr);
		else if (!is_builtin(modules_builtin, wanted[i])) {
			ret = kerr_set(e, "module %s is neither in modules.dep nor built in", wanted[i]);
			break;
		}
	}
	for (i = 0; i < n; i++) {
		free(all[i].name);
		free(all[i].path);
		for (size_t j = 0; j < all[i].nr_deps; j++)
			free(all[i].deps[j]);
		free(all[i].deps);
	}
	free(all);
	if (ret < 0) {
		for (i = 0; i < *nr; i++)
			free((*paths)[i]);
		free(*paths);
		*paths = NULL;
		*nr = 0;
	}
	return ret;
}

struct writer {
	struct archive *a;
	const char *output;
	struct kerr *e;
	/* folders already written, so each appears once */
	char **dirs;
	size_t nr_dirs;
};

static int arch_fail(struct writer *w, const char *what)
{
	return kerr_set(w->e, "%s: %s: %s", w->output, what, archive_error_string(w->a));
}

static int add_entry(struct writer *w, const char *path, unsigned type, unsigned mode,
		     const void *data, size_t len, const char *link, unsigned dev_major,
		     unsigned dev_minor)
{
	struct archive_entry *ent = archive_entry_new();
	int ret = 0;

	archive_entry_set_pathname(ent, path[0] == '/' ? path + 1 : path);
	archive_entry_set_filetype(ent, type);
	archive_entry_set_perm(ent, mode);
	archive_entry_set_uid(ent, 0);
	archive_entry_set_gid(ent, 0);
	archive_entry_set_mtime(ent, 0, 0); /* reproducible archives */
	archive_entry_set_nlink(ent, type == AE_IFDIR ? 2 : 1);
	if (link)
		archive_entry_set_symlink(ent, link);
	if (type == AE_IFCHR) {
		archive_entry_set_rdevmajor(ent, dev_major);
		archive_entry_set_rdevminor(ent, dev_minor);
	}
	archive_entry_set_size(ent, type == AE_IFREG ? (la_int64_t)len : 0);
	if (archive_write_header(w->a, ent) != ARCHIVE_OK)
		ret = arch_fail(w, path);
	else if (type == AE_IFREG && len &&
		 archive_write_data(w->a, data, len) != (la_ssize_t)len)
		ret = arch_fail(w, path);
	archive_entry_free(ent);
	return ret;
}

/* Writes every missing parent folder of path. */
static int add_parents(struct writer *w, const char *path)
{
	char *p = xstrdup(path);

	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		int have = 0;
		for (size_t i = 0; i < w->nr_dirs; i++)
			if (!strcmp(w->dirs[i], p))
				have = 1;
		if (!have) {
			if (add_entry(w, p, AE_IFDIR, 0755, NULL, 0, NULL, 0, 0) < 0) {
				free(p);
				return -1;
			}
			w->dirs = xrealloc(w->dirs, (w->nr_dirs + 1) * sizeof(*w->dirs));
			w->dirs[w->nr_dirs++] = xstrdup(p);
		}
		*s = '/';
	}
	free(p);
	return 0;
}

static int add_dir(struct writer *w, const char *path)
{
	char *with_slash = xasprintf("%s/", path);
	int r = add_parents(w, with_slash);
	free(with_slash);
	return r;
}

static int add_buffer(struct writer *w, const char *guest, unsigned mode, const void *d, size_t n)
{
	if (add_parents(w, guest) < 0)
		return -1;
	return add_entry(w, guest, AE_IFREG, mode, d, n, NULL, 0, 0);
}

/* Reads a host file, decompressing it when libarchive recognises a compression filter
 * (xz, zstd, gzip); plain files pass through unchanged. */
static int read_maybe_compressed(const char *path, struct sb *out, struct kerr *e)
{
	struct archive *r = archive_read_new();
	struct archive_entry *ent;
	char buf[65536];
	int ret = -1;

	archive_read_support_filter_all(r);
	archive_read_support_format_raw(r);
	if (archive_read_open_filename(r, path, 65536) != ARCHIVE_OK ||
	    archive_read_next_header(r, &ent) != ARCHIVE_OK) {
		kerr_set(e, "cannot read %s: %s", path, archive_error_string(r));
		goto out;
	}
	for (;;) {
		la_ssize_t n = archive_read_data(r, buf, sizeof(buf));
		if (n < 0) {
			kerr_set(e, "cannot read %s: %s", path, archive_error_string(r));
			goto out;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > MAX_MODULE_FILE) {
			kerr_set(e, "%s: larger than %u bytes", path, MAX_MODULE_FILE);
			goto out;
		}
		sb_add(out, buf, (size_t)n);
	}
	ret = 0;
out:
	archive_read_free(r);
	return ret;
}

static int add_host_file(struct writer *w, const char *host, const char *guest, unsigned mode,
			 int decompress)
{
	struct sb buf = SB_INIT;
	int ret;

	if (decompress)
		ret = read_maybe_compressed(host, &buf, w->e);
	else
		ret = read_file(host, &buf, MAX_MODULE_FILE, w->e);
	if (ret == 0)
		ret = add_buffer(w, guest, mode, buf.buf, buf.len);
	sb_release(&buf);
	return ret;
}

/* /bin/busybox plus one symlink per applet, as the binary itself lists them. */
static int add_busybox(struct writer *w, const char *busybox)
{
	const char *argv[] = { busybox, "--list-full", NULL };
	struct sb out = SB_INIT;
	const char *p;
	int ret = -1;

	if (add_host_file(w, busybox, "/bin/busybox", 0755, 0) < 0)
		return -1;
	struct run_opts o = RUN_OPTS_INIT;

	o.timeout_ms = 30000;
	if (run_capture(argv, &o, &out, w->e) < 0)
		goto out;
	const char *line;
	size_t len;

	for (p = out.buf; next_line(&p, &line, &len);) {
		char *rel = xstrndup(line, len);
		char *guest = xasprintf("/%s", rel);
		int r = 0;
		if (*rel && strcmp(guest, "/bin/busybox") && strcmp(guest, "/init") &&
		    name_is_safe(strrchr(guest, '/') + 1)) {
			r = add_parents(w, guest);
			if (r == 0)
				r = add_entry(w, guest, AE_IFLNK, 0777, NULL, 0, "/bin/busybox", 0, 0);
		}
		free(rel);
		free(guest);
		if (r < 0)
			goto out;
	}
	ret = 0;
out:
	sb_release(&out);
	return ret;
}

static int add_boot_modules(struct writer *w, const struct initramfs_spec *s)
{
	char *dep_path = path_join(s->modules_dir, "modules.dep");
	char *builtin_path = path_join(s->modules_dir, "modules.builtin");
	struct sb dep = SB_INIT, builtin = SB_INIT, list = SB_INIT;
	struct kerr ignore = KERR_INIT;
	char **paths = NULL;
	size_t nr = 0, i;
	int ret = -1;

	if (read_file(dep_path, &dep, 64u << 20, w->e) < 0)
		goto out;
	if (read_file(builtin_path, &builtin, 64u << 20, &ignore) < 0)
		sb_reset(&builtin);
	{
		struct kerr le = KERR_INIT;
		if (modules_load_order(dep.buf, builtin.len ? builtin.buf : NULL, s->boot_modules,
				       &paths, &nr, &le) < 0) {
			kerr_set(w->e, "%s: %s", dep_path, le.msg);
			goto out;
		}
	}
	for (i = 0; i < nr; i++) {
		char *host = path_join(s->modules_dir, paths[i]);
		char *rel = xstrdup(paths[i]);
		char *dot = strrchr(rel, '.');
		if (dot && strcmp(dot, ".ko"))
			*dot = '\0'; /* stored decompressed: drop .xz/.zst/.gz */
		char *guest = xasprintf("/lib/modules/%s/%s", s->release, rel);
		int r = add_host_file(w, host, guest, 0644, 1);
		sb_addf(&list, "%s\n", guest);
		free(host);
		free(rel);
		free(guest);
		if (r < 0)
			goto out;
	}
	ret = add_buffer(w, "/klpq/boot-modules", 0644, list.buf, list.len);
out:
	for (i = 0; i < nr; i++)
		free(paths[i]);
	free(paths);
	free(dep_path);
	free(builtin_path);
	sb_release(&dep);
	sb_release(&builtin);
	sb_release(&list);
	return ret;
}

int initramfs_build(const struct initramfs_spec *s, struct kerr *e)
{
	struct writer w = { archive_write_new(), s->output, e, NULL, 0 };
	static const char *const dirs[] = { "/dev", "/proc", "/sys", "/tmp", "/run", "/root",
					    "/klpq/patches", "/etc" };
	char *tmp = xasprintf("%s.tmp", s->output);
	int ret = -1;
	size_t i;

	if (archive_write_set_format_cpio_newc(w.a) != ARCHIVE_OK ||
	    archive_write_add_filter_none(w.a) != ARCHIVE_OK ||
	    archive_write_open_filename(w.a, tmp) != ARCHIVE_OK) {
		arch_fail(&w, "cannot create");
		goto out;
	}
	for (i = 0; i < ARRAY_SIZE(dirs); i++)
		if (add_dir(&w, dirs[i]) < 0)
			goto out;
	/* The kernel opens /dev/console for init's stdio before anything can mount devtmpfs. */
	if (add_entry(&w, "/dev/console", AE_IFCHR, 0600, NULL, 0, NULL, 5, 1) < 0)
		goto out;
	if (add_host_file(&w, s->agent, "/init", 0755, 0) < 0)
		goto out;
	if (add_busybox(&w, s->busybox) < 0)
		goto out;
	if (add_buffer(&w, "/etc/hostname", 0644, "klpq-guest\n", 11) < 0)
		goto out;
	if (add_boot_modules(&w, s) < 0)
		goto out;
	for (i = 0; i < s->nr_files; i++)
		if (add_host_file(&w, s->files[i].host_path, s->files[i].guest_path,
				  s->files[i].mode, s->files[i].decompress) < 0)
			goto out;
	if (archive_write_close(w.a) != ARCHIVE_OK) {
		arch_fail(&w, "cannot finish");
		goto out;
	}
	if (rename(tmp, s->output) < 0) {
		kerr_errno(e, "cannot move %s into place", tmp);
		goto out;
	}
	ret = 0;
out:
	archive_write_free(w.a);
	if (ret < 0)
		unlink(tmp);
	free(tmp);
	for (i = 0; i < w.nr_dirs; i++)
		free(w.dirs[i]);
	free(w.dirs);
	return ret;
}
