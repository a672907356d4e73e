/* agent-system.c: hello, tasks and their kernel stacks, file reads, the clock, power-off
 * (agent.h).
 */
#define _GNU_SOURCE
#include "agent.h"

int do_hello(struct req *rq)
{
	add_identity(rq->result);
	return 0;
}

/* Up to STACK_MAX_LINES lines of a task's kernel stack; [] when unreadable (it needs
 * CAP_SYS_ADMIN, and the task may be gone). Adds the escaped size to *cost. */
static json_object *task_stack(const char *dir, size_t *cost)
{
	char path[PATH_MAX], buf[8192], *p, *nl;
	json_object *lines = json_object_new_array();
	int n = 0;

	if (!lines || path_fmt(path, sizeof(path), "%s/stack", dir) < 0 ||
	    read_text_file(path, buf, sizeof(buf), NULL) < 0)
		return lines;
	for (p = buf; *p && n < STACK_MAX_LINES; p = nl + 1, n++) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		append(lines, json_object_new_string_len(p, (int)(nl - p)));
		*cost += json_cost(p, (size_t)(nl - p)) + 1;
		if (!*nl)
			break;
	}
	return lines;
}

/* Adds the tasks of one process; returns -1 once the listing is full. */
static int tasks_of(const char *pid, int64_t target, json_object *tasks, size_t *count,
		    size_t *cost)
{
	char dir[PATH_MAX], tdir[PATH_MAX], path[PATH_MAX], comm[64];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	if (path_fmt(dir, sizeof(dir), "/proc/%s/task", pid) < 0)
		return 0;
	d = opendir(dir);
	if (!d) /* the process is gone */
		return 0;
	while ((de = readdir(d))) {
		size_t tcost;
		int64_t state;
		json_object *t;

		if (!is_number(de->d_name) ||
		    path_fmt(tdir, sizeof(tdir), "%s/%s", dir, de->d_name) < 0 ||
		    path_fmt(path, sizeof(path), "%s/patch_state", tdir) < 0 ||
		    read_int_file(path, &state) < 0)
			continue;
		if (state == -1 || state == target)
			continue;
		if (*count == TASKS_MAX) {
			ret = -1;
			break;
		}
		if (path_fmt(path, sizeof(path), "%s/comm", tdir) < 0 ||
		    read_text_file(path, comm, sizeof(comm), NULL) < 0)
			comm[0] = '\0';
		strip_newline(comm);
		t = json_object_new_object();
		if (!t)
			continue;
		tcost = TASK_OVERHEAD + json_cost(comm, strlen(comm));
		put_int(t, "pid", strtoll(pid, NULL, 10));
		put_int(t, "tid", strtoll(de->d_name, NULL, 10));
		put_str(t, "comm", comm);
		put_int(t, "patch_state", state);
		put(t, "stack", task_stack(tdir, &tcost));
		/* Only a stack read tells a task's size: one that does not fit is left out. */
		if (*cost + tcost > REPLY_BUDGET) {
			json_object_put(t);
			ret = -1;
			break;
		}
		append(tasks, t);
		*cost += tcost;
		(*count)++;
	}
	closedir(d);
	return ret;
}

int do_tasks(struct req *rq)
{
	json_object *tasks;
	struct dirent *de;
	size_t count = 0, cost = 0;
	int64_t target;
	int truncated = 0;
	DIR *proc;

	if (arg_int(rq, "target", 0, 1, 0, 0, &target) < 0)
		return -1;
	proc = opendir("/proc");
	if (!proc)
		return fail_errno(rq, "tasks: /proc");
	tasks = json_object_new_array();
	if (!tasks) {
		closedir(proc);
		return fail(rq, ENOMEM, "tasks: out of memory");
	}
	while ((de = readdir(proc))) {
		if (is_number(de->d_name) &&
		    tasks_of(de->d_name, target, tasks, &count, &cost) < 0) {
			truncated = 1;
			break;
		}
	}
	closedir(proc);
	put(rq->result, "tasks", tasks);
	/* Not in the protocol table, but the host must know the list is incomplete. */
	put_bool(rq->result, "truncated", truncated);
	return 0;
}

/* Part of a file (workload samples in the guest's tmpfs): `path`, `offset`, `max` (at most
 * READ_MAX bytes). Replies `data`, `size` (the file's size now) and `eof`. A reader that
 * tails a growing file passes offset = what it has so far. */
#define READ_MAX (48 * 1024)
int do_read(struct req *rq)
{
	const char *path = arg_str(rq, "path");
	int64_t off, max;
	struct stat st;
	char *buf;
	ssize_t n;
	int fd;

	if (!path || arg_int(rq, "offset", 0, INT64_MAX, 1, 0, &off) < 0 ||
	    arg_int(rq, "max", 1, READ_MAX, 1, READ_MAX, &max) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(rq, "read: open %s", path);
	if (fstat(fd, &st) < 0) {
		close(fd);
		return fail_errno(rq, "read: stat %s", path);
	}
	buf = malloc((size_t)max);
	if (!buf) {
		close(fd);
		return fail(rq, ENOMEM, "read: out of memory");
	}
	do
		n = pread(fd, buf, (size_t)max, (off_t)off);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0) {
		free(buf);
		return fail_errno(rq, "read: %s", path);
	}
	put(rq->result, "data", json_object_new_string_len(buf, (int)n));
	put_int(rq->result, "size", (int64_t)st.st_size);
	put_bool(rq->result, "eof", off + n >= st.st_size);
	free(buf);
	return 0;
}

/* The guest's CLOCK_MONOTONIC, the clock workload samples are stamped with. */
int do_now(struct req *rq)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	put_int(rq->result, "mono_ns", (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
	return 0;
}

int do_poweroff(struct req *rq)
{
	rq->a->poweroff = 1;
	return 0;
}
