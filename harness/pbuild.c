/* pbuild.c: see pbuild.h. */
#define _GNU_SOURCE
#include "pbuild.h"
#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUILD_TIMEOUT_MS (10 * 60 * 1000)
#define MAX_SOURCE_FILE (8 << 20)

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted regular-file names of a folder (no subfolders: a step is one flat Kbuild folder). */
static int list_files(const char *dir, char ***names, size_t *nr, struct kerr *e)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	*names = NULL;
	*nr = 0;
	if (!d)
		return kerr_errno(e, "cannot read patch source folder %s", dir);
	while ((de = readdir(d))) {
		char *p;
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		p = path_join(dir, de->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			*names = xrealloc(*names, (*nr + 1) * sizeof(**names));
			(*names)[(*nr)++] = xstrdup(de->d_name);
		}
		free(p);
	}
	closedir(d);
	qsort(*names, *nr, sizeof(**names), cmp_str);
	return 0;
}

static void free_names(char **names, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		free(names[i]);
	free(names);
}

/* Finishes a SHA-256 context into 64 hex digits and a NUL. */
static void digest_hex(EVP_MD_CTX *md, char out[65])
{
	unsigned char dig[32];
	unsigned int dl = 0;

	EVP_DigestFinal_ex(md, dig, &dl);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", dig[i]);
}

static int hash_add_file(EVP_MD_CTX *md, const char *label, const char *path, int required,
			 struct kerr *e)
{
	struct sb buf = SB_INIT;
	char len[32];

	if (!path_exists(path)) {
		if (required)
			return kerr_set(e, "%s does not exist", path);
		EVP_DigestUpdate(md, "-", 1);
		return 0;
	}
	if (read_file(path, &buf, 64u << 20, e) < 0)
		return -1;
	snprintf(len, sizeof(len), ":%zu:", buf.len);
	EVP_DigestUpdate(md, label, strlen(label) + 1);
	EVP_DigestUpdate(md, len, strlen(len));
	EVP_DigestUpdate(md, buf.buf, buf.len);
	sb_release(&buf);
	return 0;
}

static int compute_key(const char *src, char **files, size_t nr, const struct kernel *k,
		       char out[65], struct kerr *e)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ret = -1;
	char *p;

	if (!md)
		return kerr_set(e, "cannot create a SHA-256 context");
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, "klpq-pbuild-1", 14);
	EVP_DigestUpdate(md, k->release, strlen(k->release) + 1);
	p = path_join(k->build, "Module.symvers");
	if (hash_add_file(md, "symvers", p, 0, e) < 0) {
		free(p);
		goto out;
	}
	free(p);
	p = path_join(k->build, ".config");
	if (hash_add_file(md, "config", p, 0, e) < 0) {
		free(p);
		goto out;
	}
	free(p);
	for (size_t i = 0; i < nr; i++) {
		p = path_join(src, files[i]);
		int r = hash_add_file(md, files[i], p, 1, e);
		free(p);
		if (r < 0)
			goto out;
	}
	digest_hex(md, out);
	ret = 0;
out:
	EVP_MD_CTX_free(md);
	return ret;
}

static int copy_file(const char *from, const char *to, struct kerr *e)
{
	struct sb buf = SB_INIT;
	int ret;

	if (read_file(from, &buf, MAX_SOURCE_FILE, e) < 0)
		return -1;
	ret = write_file_atomic(to, buf.buf, buf.len, e);
	sb_release(&buf);
	return ret;
}

/* Who builds patch modules when klpq runs as root: the user "nobody" (it owns nothing; its
 * build folder is handed to it). 1 with its ids, 0 when klpq is not root (it builds as
 * itself) or there is no such user (then root builds; docs/design.md says so). */
static int build_user(uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	*uid = 0;
	*gid = 0;
	if (geteuid() != 0 || getenv("KLPQ_BUILD_AS_ROOT"))
		return 0;
	pw = getpwnam("nobody");
	if (!pw || pw->pw_uid == 0)
		return 0;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 1;
}

/* chown -R to klpq's user, no write for group and others: a built module folder, before it
 * enters the cache. No symlink is followed. */
static int reown_tree(const char *dir, struct kerr *e)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int ret = 0;

	if (!d)
		return kerr_errno(e, "cannot read %s", dir);
	while ((de = readdir(d)) && ret == 0) {
		struct stat st;
		char *p;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = path_join(dir, de->d_name);
		if (lstat(p, &st) == 0) {
			if (S_ISLNK(st.st_mode))
				ret = lchown(p, geteuid(), getegid()) < 0 ? -1 : 0;
			else if (S_ISDIR(st.st_mode))
				ret = reown_tree(p, e);
			if (ret == 0 && !S_ISLNK(st.st_mode) &&
			    (chown(p, geteuid(), getegid()) < 0 || chmod(p, st.st_mode & 0755) < 0))
				ret = -1;
			if (ret < 0)
				kerr_errno(e, "cannot take back %s from the build user", p);
		}
		free(p);
	}
	closedir(d);
	if (ret == 0 && (chown(dir, geteuid(), getegid()) < 0 || chmod(dir, 0755) < 0))
		ret = kerr_errno(e, "cannot take back %s from the build user", dir);
	return ret;
}

/* The one .ko in dir, or NULL. */
/* Runs a build command, as the build user when there is one (klpq as root). 0 it succeeded; -1
 * with the reason in be, *patch_fault 1 when the command ran and said no (the patch's fault). */
static int build_run(const char *const *argv, int stop_fd, int have_user, uid_t uid, gid_t gid,
		     struct sb *log, int *patch_fault, struct kerr *be)
{
	struct run_opts o = RUN_OPTS_INIT;
	int r;

	o.timeout_ms = BUILD_TIMEOUT_MS;
	o.stop_fd = stop_fd;
	o.drop_privs = have_user;
	o.as_uid = uid;
	o.as_gid = gid;
	r = run_capture(argv, &o, log, be);
	*patch_fault = r < 0 && o.end == RUN_FAILED;
	return r;
}

/* The finished build folder becomes klpq's again (nobody else's to change) and replaces dest. */
static int build_publish(const char *tmp, const char *dest, int have_user, struct kerr *e)
{
	if (have_user && reown_tree(tmp, e) < 0)
		return -1;
	rm_rf(dest);
	if (rename(tmp, dest) < 0)
		return kerr_errno(e, "cannot move %s to %s", tmp, dest);
	return 0;
}

static char *find_ko(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *found = NULL;
	int n = 0;

	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 3 && !strcmp(de->d_name + l - 3, ".ko")) {
			free(found);
			found = path_join(dir, de->d_name);
			n++;
		}
	}
	closedir(d);
	if (n != 1) {
		free(found);
		return NULL;
	}
	return found;
}

static void set_name(struct built_module *m)
{
	m->name = module_name(m->path, strlen(m->path));
}

int pbuild_step(const struct step *st, const struct kernel *k, const char *cache, int stop_fd,
		struct built_module *out, int *patch_fault, struct sb *build_log, struct kerr *e)
{
	char **files = NULL, *dest = NULL, *tmp = NULL;
	size_t nr = 0;
	int ret = -1, lock_fd = -1, have_user = 0;
	uid_t bu = 0;
	gid_t bg = 0;

	memset(out, 0, sizeof(*out));
	*patch_fault = 0;
	if (st->module) {
		if (!path_exists(st->module))
			return kerr_set(e, "step %s: module %s does not exist", st->name, st->module);
		out->path = xstrdup(st->module);
		out->from_cache = 1;
		set_name(out);
		return 0;
	}
	if (!k->build)
		return kerr_set(e, "step %s: kernel %s has no headers folder to build against",
				st->name, k->label);
	if (list_files(st->source, &files, &nr, e) < 0)
		return -1;
	if (compute_key(st->source, files, nr, k, out->key, e) < 0)
		goto out;
	dest = xasprintf("%s/modules/%s", cache, out->key);
	/* In the cache: no lock needed to read it. Else parallel cells build a module once:
	 * the first takes the lock and builds, the others wait for it and then find it. */
	for (int locked = 0; ; locked = 1) {
		out->path = find_ko(dest);
		if (out->path) {
			out->from_cache = 1;
			set_name(out);
			ret = 0;
			goto out;
		}
		if (locked)
			break;
		{
			char *lock = xasprintf("%s/modules/%s.lock", cache, out->key);
			char *mdir = xasprintf("%s/modules", cache);
			int r = mkdir_p(mdir, 0755, e);

			free(mdir);
			lock_fd = r < 0 ? -1 : lock_path(lock, stop_fd, e);
			free(lock);
			if (lock_fd < 0)
				goto out;
		}
	}
	tmp = xasprintf("%s/modules/%s.tmp.%ld", cache, out->key, (long)getpid());
	rm_rf(tmp);
	/* The copy is private (0700/0600): a source folder may hold what only klpq's user may
	 * read. Run as root, klpq builds as an unprivileged user (build_user) that owns only
	 * this folder: a Kbuild file runs commands, and they must not run as root. */
	if (mkdir(tmp, 0700) < 0) {
		kerr_errno(e, "cannot create %s", tmp);
		goto out;
	}
	have_user = build_user(&bu, &bg);
	for (size_t i = 0; i < nr; i++) {
		char *from = path_join(st->source, files[i]);
		char *to = path_join(tmp, files[i]);
		int r = copy_file(from, to, e);
		if (r == 0 && (chmod(to, 0600) < 0 || (have_user && chown(to, bu, bg) < 0)))
			r = kerr_errno(e, "cannot hand %s to the build user", to);
		free(from);
		free(to);
		if (r < 0)
			goto out;
	}
	if (have_user && chown(tmp, bu, bg) < 0) {
		kerr_errno(e, "cannot hand %s to the build user", tmp);
		goto out;
	}
	{
		char *m = xasprintf("M=%s", tmp);
		/* No BTF for the patch module: 6.12 headers would need pahole and a vmlinux the
		 * headers package does not ship; livepatching does not use module BTF. */
		const char *argv[] = { "make", "-C", k->build, m, "CONFIG_DEBUG_INFO_BTF_MODULES=",
				       "modules", NULL };
		struct kerr be = KERR_INIT;
		/* only a compiler that ran and said no is the patch's fault */
		int r = build_run(argv, stop_fd, have_user, bu, bg, build_log, patch_fault, &be);

		free(m);
		if (r < 0) {
			kerr_set(e, "step %s %s %s: %s", st->name,
				 *patch_fault ? "does not build against" : "could not be built for",
				 k->label, be.msg);
			goto out;
		}
	}
	{
		char *ko = find_ko(tmp);
		if (!ko) {
			*patch_fault = 1;
			kerr_set(e, "step %s: the build made no single .ko in %s", st->name, tmp);
			goto out;
		}
		free(ko);
	}
	if (build_publish(tmp, dest, have_user, e) < 0)
		goto out;
	out->path = find_ko(dest);
	set_name(out);
	ret = 0;
out:
	if (tmp)
		rm_rf(tmp);
	if (lock_fd >= 0)
		close(lock_fd);
	free(tmp);
	free(dest);
	free_names(files, nr);
	if (ret < 0)
		built_module_release(out);
	return ret;
}

/* A patch set's helper program: the C file compiled statically by the host's cc for the
 * guest, cached by its content as programs/<sha256>/<name>. As a module build, compiled as the
 * unprivileged build user when klpq runs as root. */
int pbuild_program(const struct program *pg, const char *cache, int stop_fd, char **out_path,
		   int *patch_fault, struct sb *build_log, struct kerr *e)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char key[65], *dest = NULL, *tmp = NULL, *bin = NULL, *src = NULL, *pdir = NULL;
	int ret = -1, have_user;
	uid_t bu = 0;
	gid_t bg = 0;

	*out_path = NULL;
	*patch_fault = 0;
	if (!md)
		return kerr_set(e, "cannot create a SHA-256 context");
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, "klpq-program-1", 15);
	EVP_DigestUpdate(md, pg->name, strlen(pg->name) + 1);
	if (hash_add_file(md, "source", pg->source, 1, e) < 0) {
		EVP_MD_CTX_free(md);
		return -1;
	}
	digest_hex(md, key);
	EVP_MD_CTX_free(md);
	pdir = xasprintf("%s/programs", cache);
	dest = xasprintf("%s/%s", pdir, key);
	bin = path_join(dest, pg->name);
	if (path_exists(bin)) {
		*out_path = bin;
		bin = NULL;
		ret = 0;
		goto out;
	}
	if (mkdir_p(pdir, 0755, e) < 0)
		goto out;
	tmp = xasprintf("%s.tmp.%ld", dest, (long)getpid());
	rm_rf(tmp);
	if (mkdir(tmp, 0700) < 0) {
		kerr_errno(e, "cannot create %s", tmp);
		goto out;
	}
	have_user = build_user(&bu, &bg);
	src = xasprintf("%s/%s.c", tmp, pg->name);
	if (copy_file(pg->source, src, e) < 0)
		goto out;
	if (chmod(src, 0600) < 0 || (have_user && (chown(src, bu, bg) < 0 ||
						   chown(tmp, bu, bg) < 0))) {
		kerr_errno(e, "cannot hand %s to the build user", tmp);
		goto out;
	}
	{
		char *o = path_join(tmp, pg->name);
		const char *argv[] = { "cc", "-static", "-O2", "-o", o, src, NULL };
		struct kerr be = KERR_INIT;
		int r = build_run(argv, stop_fd, have_user, bu, bg, build_log, patch_fault, &be);

		free(o);
		if (r < 0) {
			kerr_set(e, "program %s %s: %s", pg->name, *patch_fault ?
				 "does not compile" : "could not be compiled", be.msg);
			goto out;
		}
	}
	if (build_publish(tmp, dest, have_user, e) < 0)
		goto out;
	*out_path = bin;
	bin = NULL;
	ret = 0;
out:
	if (tmp && ret < 0)
		rm_rf(tmp);
	free(tmp);
	free(src);
	free(bin);
	free(dest);
	free(pdir);
	return ret;
}

void built_module_release(struct built_module *m)
{
	free(m->path);
	free(m->name);
	memset(m, 0, sizeof(*m));
}

int pbuild_patchset_hash(const struct patchset *ps, char out[65], struct kerr *e)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ret = -1;

	if (!md)
		return kerr_set(e, "cannot create a SHA-256 context");
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, "klpq-patchset-1", 16);
	if (hash_add_file(md, "patchset.yaml", ps->file, 1, e) < 0)
		goto out;
	for (size_t i = 0; i < ps->nr_programs; i++)
		if (hash_add_file(md, ps->programs[i].name, ps->programs[i].source, 1, e) < 0)
			goto out;
	for (size_t i = 0; i < ps->nr_steps; i++) {
		const struct step *st = &ps->steps[i];
		char **files = NULL;
		size_t nr = 0;
		int r = 0;

		EVP_DigestUpdate(md, st->name, strlen(st->name) + 1);
		if (!st->module && !st->source)
			continue; /* a step that builds nothing: all of it is in patchset.yaml */
		if (st->module) {
			r = hash_add_file(md, "module", st->module, 1, e);
		} else if (list_files(st->source, &files, &nr, e) == 0) {
			for (size_t j = 0; j < nr && r == 0; j++) {
				char *p = path_join(st->source, files[j]);
				r = hash_add_file(md, files[j], p, 1, e);
				free(p);
			}
			free_names(files, nr);
		} else {
			r = -1;
		}
		if (r < 0)
			goto out;
	}
	digest_hex(md, out);
	ret = 0;
out:
	EVP_MD_CTX_free(md);
	return ret;
}

int sha256_file(const char *path, char out[65], struct kerr *e)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (!md)
		abort();
	if (fd < 0) {
		EVP_MD_CTX_free(md);
		return kerr_errno(e, "cannot read %s", path);
	}
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while ((n = xread(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(md, buf, (size_t)n);
	close(fd);
	if (n < 0) {
		EVP_MD_CTX_free(md);
		return kerr_errno(e, "cannot read %s", path);
	}
	digest_hex(md, out);
	EVP_MD_CTX_free(md);
	return 0;
}

int sha256_text(const void *data, size_t len, char out[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md)
		abort();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, data, len);
	digest_hex(md, out);
	EVP_MD_CTX_free(md);
	return 0;
}
