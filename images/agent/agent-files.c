/* agent-files.c: upload, a file from the host written into the guest in chunks (agent.h).
 *
 * A disk-image guest has no initramfs to carry the patch modules, so the host sends them:
 * `upload` with `path` (absolute, no ".." component), `size` (the whole file, at most
 * KLPQ_UPLOAD_MAX), `offset`, `data` (base64, at most KLPQ_UPLOAD_CHUNK bytes decoded) and
 * `mode` (default 0644). Chunks come in order into PATH.klpq-part; the one that reaches `size`
 * is synced and renamed to PATH, so a half-sent file never has the final name. Replies
 * `written` (bytes so far) and `done`.
 */
#define _GNU_SOURCE
#include "agent.h"

#include <sys/stat.h>

/* mkdir -p of path's parent folders */
static int make_parents(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return 0;
}

/* 1 when path has a ".." component */
static int has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")); p += 2)
		if ((p == path || p[-1] == '/') && (p[2] == '/' || !p[2]))
			return 1;
	return 0;
}

int do_upload(struct req *rq)
{
	const char *path = arg_str(rq, "path"), *data;
	char part[PATH_MAX], dir[PATH_MAX];
	unsigned char *buf;
	int64_t size, off, mode;
	ssize_t n;
	struct stat st;
	int fd, flags = O_WRONLY | O_CLOEXEC;

	if (!path || arg_int(rq, "size", 0, KLPQ_UPLOAD_MAX, 0, 0, &size) < 0 ||
	    arg_int(rq, "offset", 0, KLPQ_UPLOAD_MAX, 0, 0, &off) < 0 ||
	    arg_int(rq, "mode", 0, 07777, 1, 0644, &mode) < 0 || !(data = arg_str(rq, "data")))
		return -1;
	if (path[0] != '/' || has_dotdot(path) || path[strlen(path) - 1] == '/')
		return fail(rq, EINVAL, "upload: path must be an absolute file path without '..', "
			    "not '%.200s'", path);
	if (path_fmt(part, sizeof(part), "%s.klpq-part", path) < 0)
		return fail(rq, ENAMETOOLONG, "upload: path too long");
	buf = malloc(KLPQ_UPLOAD_CHUNK);
	if (!buf)
		return fail(rq, ENOMEM, "upload: out of memory");
	n = proto_b64_decode(data, strlen(data), buf, KLPQ_UPLOAD_CHUNK);
	if (n < 0) {
		free(buf);
		return fail(rq, EINVAL, "upload: data is not base64 of at most %d bytes",
			    KLPQ_UPLOAD_CHUNK);
	}
	if (off + n > size) {
		free(buf);
		return fail(rq, EFBIG, "upload %s: %lld bytes at offset %lld pass its size %lld", path,
			    (long long)n, (long long)off, (long long)size);
	}
	if (off == 0) {
		snprintf(dir, sizeof(dir), "%s", part);
		if (make_parents(dir) < 0) {
			free(buf);
			return fail_errno(rq, "upload: cannot make the folders of %s", path);
		}
		flags |= O_CREAT | O_TRUNC;
	}
	fd = open(part, flags, 0600);
	if (fd < 0) {
		free(buf);
		return fail_errno(rq, "upload: open %s", part);
	}
	if (fstat(fd, &st) < 0) {
		free(buf);
		n = fail_errno(rq, "upload: stat %s", part);
		close(fd);
		return (int)n;
	}
	if (st.st_size != off) {
		close(fd);
		free(buf);
		return fail(rq, EINVAL, "upload %s: chunk at offset %lld, but %lld bytes so far",
			    path, (long long)off, (long long)st.st_size);
	}
	if (pwrite(fd, buf, (size_t)n, off) != n) {
		free(buf);
		close(fd);
		return fail_errno(rq, "upload: write %s", part);
	}
	free(buf);
	if (off + n == size) {
		if (fchmod(fd, (mode_t)mode) < 0 || fsync(fd) < 0) {
			close(fd);
			return fail_errno(rq, "upload: finish %s", part);
		}
		close(fd);
		if (rename(part, path) < 0)
			return fail_errno(rq, "upload: rename %s to %s", part, path);
	} else {
		close(fd);
	}
	put_int(rq->result, "written", off + n);
	put_bool(rq->result, "done", off + n == size);
	return 0;
}
