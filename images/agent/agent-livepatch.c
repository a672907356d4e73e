/* agent-livepatch.c: loading and removing modules, livepatch state and enable, sysctl
 * (agent.h).
 */
#define _GNU_SOURCE
#include "agent.h"

/* --- module helpers --- */

int load_module(const char *path, const char *params)
{
	size_t n = strlen(path);
	unsigned flags = 0;
	int fd, ret, saved;

	/* Kernels with CONFIG_MODULE_DECOMPRESS take compressed modules as they are. */
	if ((n > 3 && !strcmp(path + n - 3, ".xz")) || (n > 4 && !strcmp(path + n - 4, ".zst")) ||
	    (n > 3 && !strcmp(path + n - 3, ".gz")))
		flags |= MODULE_INIT_COMPRESSED_FILE;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = (int)syscall(SYS_finit_module, fd, params, flags);
	saved = errno;
	close(fd);
	errno = saved;
	return ret < 0 ? -1 : 0;
}


int do_load(struct req *rq)
{
	const char *path = arg_str(rq, "path");
	const char *params = "";

	if (!path)
		return -1;
	if (json_object_object_get_ex(rq->args, "params", NULL) &&
	    !(params = arg_str(rq, "params")))
		return -1;
	if (load_module(path, params) < 0)
		return fail_errno(rq, "load %s", path);
	return 0;
}

int do_unload(struct req *rq)
{
	const char *name = arg_str(rq, "name");
	char mod[64];

	if (!name)
		return -1;
	if (!name_is_component(name) || strlen(name) >= sizeof(mod))
		return fail(rq, EINVAL, "unload: bad module name \"%s\"", name);
	/* The kernel knows modules by their underscore spelling, as rmmod normalises. */
	for (size_t i = 0; ; i++) {
		mod[i] = name[i] == '-' ? '_' : name[i];
		if (!name[i])
			break;
	}
	if (syscall(SYS_delete_module, mod, O_NONBLOCK) < 0)
		return fail_errno(rq, "unload %s", mod);
	return 0;
}

static int skip_dots(const struct dirent *de)
{
	return de->d_name[0] != '.';
}

/* One object of a patch: a subdirectory with a "patched" file. NULL when it is not one. */
static json_object *lp_object(const char *patch_dir, const char *name)
{
	char path[PATH_MAX];
	int64_t patched;
	json_object *o;

	if (path_fmt(path, sizeof(path), "%s/%s/patched", patch_dir, name) < 0 ||
	    read_int_file(path, &patched) < 0)
		return NULL;
	o = json_object_new_object();
	if (o) {
		/* livepatch lists every object of a patch; one for a module is patched only while
		 * that module is loaded (vmlinux always is): say which */
		char state[32] = "";
		int loaded = !strcmp(name, "vmlinux");

		if (!loaded && path_fmt(path, sizeof(path), "/sys/module/%s/initstate", name) == 0) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				ssize_t got = read(fd, state, sizeof(state) - 1);
				close(fd);
				if (got > 0)
					state[got] = '\0';
				loaded = !strncmp(state, "live", 4) || !strncmp(state, "coming", 6);
			}
		}
		put_str(o, "name", name);
		put_int(o, "patched", patched);
		put_int(o, "loaded", loaded);
	}
	return o;
}

/* A state file of a patch, or -1 where this kernel lacks it (or it vanished meanwhile). */
static int64_t lp_value(const char *patch_dir, const char *file)
{
	char path[PATH_MAX];
	int64_t v;

	if (path_fmt(path, sizeof(path), "%s/%s", patch_dir, file) < 0 ||
	    read_int_file(path, &v) < 0)
		return -1;
	return v;
}

static json_object *lp_patch(const char *name)
{
	char dir[PATH_MAX];
	struct dirent **ents = NULL;
	json_object *p, *objs;
	int n;

	if (path_fmt(dir, sizeof(dir), LIVEPATCH_DIR "/%s", name) < 0)
		return NULL;
	p = json_object_new_object();
	objs = json_object_new_array();
	if (!p || !objs) {
		json_object_put(p);
		json_object_put(objs);
		return NULL;
	}
	put_str(p, "name", name);
	put_int(p, "enabled", lp_value(dir, "enabled"));
	put_int(p, "transition", lp_value(dir, "transition"));
	put_int(p, "replace", lp_value(dir, "replace"));
	put_int(p, "stack_order", lp_value(dir, "stack_order"));
	n = scandir(dir, &ents, skip_dots, alphasort);
	for (int i = 0; i < n; i++) {
		append(objs, lp_object(dir, ents[i]->d_name));
		free(ents[i]);
	}
	free(ents);
	put(p, "objects", objs);
	return p;
}

int do_lp_state(struct req *rq)
{
	struct dirent **ents = NULL;
	json_object *patches = json_object_new_array();
	int n;

	if (!patches)
		return fail(rq, ENOMEM, "lp_state: out of memory");
	n = scandir(LIVEPATCH_DIR, &ents, skip_dots, alphasort);
	if (n < 0 && errno != ENOENT) { /* no directory: no patch ever loaded */
		json_object_put(patches);
		return fail_errno(rq, "lp_state: " LIVEPATCH_DIR);
	}
	for (int i = 0; i < n; i++) {
		append(patches, lp_patch(ents[i]->d_name));
		free(ents[i]);
	}
	free(ents);
	put(rq->result, "patches", patches);
	return 0;
}

/* Writes text to a sysfs or procfs file in one write; the kernel's refusal (at the open, the
 * write or the close) fails the request with its errno, as "OP NAME: ...". */
static int write_value(struct req *rq, const char *path, const char *text, size_t len,
		       const char *op, const char *name)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return fail_errno(rq, "%s %s: open %s", op, name, path);
	if (write_all(fd, text, len) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return fail_errno(rq, "%s %s: write %.*s", op, name, (int)(len && text[len - 1] ==
				  '\n' ? len - 1 : len), text);
	}
	/* sysfs stores on write; close reports nothing new, but check it anyway */
	if (close(fd) < 0)
		return fail_errno(rq, "%s %s: close", op, name);
	return 0;
}

int do_lp_enable(struct req *rq)
{
	const char *name = arg_str(rq, "name");
	json_object *v;
	char path[PATH_MAX];
	int enabled;

	if (!name)
		return -1;
	if (!name_is_component(name))
		return fail(rq, EINVAL, "lp_enable: bad patch name \"%s\"", name);
	/* Booleans are accepted too: "enabled" reads naturally as one. */
	if (json_object_object_get_ex(rq->args, "enabled", &v) &&
	    json_object_is_type(v, json_type_boolean)) {
		enabled = json_object_get_boolean(v) ? 1 : 0;
	} else {
		int64_t e;
		if (arg_int(rq, "enabled", 0, 1, 0, 0, &e) < 0)
			return -1;
		enabled = (int)e;
	}
	if (path_fmt(path, sizeof(path), LIVEPATCH_DIR "/%s/enabled", name) < 0)
		return fail_errno(rq, "lp_enable %s", name);
	return write_value(rq, path, enabled ? "1" : "0", 1, "lp_enable", name);
}

/* Writes one value to a sysctl, /proc/sys/<key with dots as slashes>, as sysctl(8) does; the
 * kernel's refusal comes back as the errno. */
int do_sysctl(struct req *rq)
{
	const char *key = arg_str(rq, "key"), *value = arg_str(rq, "value");
	char path[PATH_MAX], line[272];
	int n;

	if (!key || !value)
		return -1;
	if (!*key || *key == '.' || strstr(key, "..") || strlen(value) > 256 ||
	    strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(key))
		return fail(rq, EINVAL, "sysctl: bad key \"%s\" or value", key);
	if (path_fmt(path, sizeof(path), "/proc/sys/%s", key) < 0)
		return fail_errno(rq, "sysctl %s", key);
	for (char *c = path + strlen("/proc/sys/"); *c; c++)
		if (*c == '.')
			*c = '/';
	n = snprintf(line, sizeof(line), "%s\n", value);
	return write_value(rq, path, line, (size_t)n, "sysctl", key);
}
