/* accel.c: see accel.h. */
#define _GNU_SOURCE
#include "accel.h"
#include "pbuild.h"
#include "proto.h"
#include "results.h"
#include "spawn.h"
#include "vm-qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BANNER "Linux version "
#define WORKAROUND_CPU "host,-arch-capabilities"

enum trial_end {
	T_BANNER,    /* the kernel printed its banner: KVM runs it */
	T_EXITED,    /* QEMU ended before any banner */
	T_SILENT,    /* nothing at all on the console by the deadline */
	T_NOBANNER,  /* output, but no banner by the deadline */
	T_STOPPED,
	T_NOSTART,   /* QEMU could not be run at all */
};

struct trial {
	enum trial_end end;
	int status;              /* T_EXITED: QEMU's wait status */
	char what[256];          /* T_EXITED: QEMU's first stderr line; T_NOSTART: why */
	size_t console_bytes;
	uint64_t ms;
};

static void add_output(struct sb *to, int fd, size_t cap, int *open_)
{
	char buf[8192];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		*open_ = 0;
		return;
	}
	if (to->len < cap)
		sb_add(to, buf, (size_t)n < cap - to->len ? (size_t)n : cap - to->len);
}

/* One trial boot of vmlinuz under KVM with -cpu cpu: no initramfs, the serial console on a
 * pipe. Ends at the banner, at QEMU's exit, at the deadline or at a stop. */
static void trial(const char *qemu, const char *kvm_cpu, const char *vmlinuz, unsigned deadline_ms,
		  int stop_fd, struct trial *t)
{
	const char *argv[] = { qemu, "-machine", "q35,accel=kvm", "-cpu", kvm_cpu, "-m", "256",
			       "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
			       "-no-reboot", "-nic", "none", "-serial", "stdio", "-kernel", vmlinuz,
			       "-append", "console=ttyS0,115200 panic=-1", NULL };
	struct child c = CHILD_INIT;
	struct kerr e = KERR_INIT;
	struct sb out = SB_INIT, err = SB_INIT;
	int out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 }, out_open = 1, err_open = 1;
	int exited = 0, status = 0;
	uint64_t t0 = now_ms(), deadline = t0 + deadline_ms;

	memset(t, 0, sizeof(*t));
	if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) {
		t->end = T_NOSTART;
		snprintf(t->what, sizeof(t->what), "pipe: %s", strerror(errno));
		goto out;
	}
	c.argv = argv;
	c.out_fd = out_p[1];
	c.err_fd = err_p[1];
	c.pdeathsig = SIGKILL;
	c.new_pgroup = 1;
	if (child_start(&c, &e) < 0) {
		t->end = T_NOSTART;
		snprintf(t->what, sizeof(t->what), "%.200s", e.msg);
		goto out;
	}
	close(out_p[1]);
	close(err_p[1]);
	out_p[1] = err_p[1] = -1;
	for (;;) {
		struct pollfd p[3];
		int n = 0, io = 0, ie = -1, is = -1;

		if (memmem(out.buf, out.len, BANNER, strlen(BANNER))) {
			t->end = T_BANNER;
			break;
		}
		if (!exited && child_wait_timeout(&c, 0, &status) == 1)
			exited = 1;
		if (exited && !out_open && !err_open) {
			t->end = T_EXITED;
			t->status = status;
			break;
		}
		if (now_ms() >= deadline) {
			t->end = out.len ? T_NOBANNER : T_SILENT;
			break;
		}
		if (out_open) {
			p[n] = (struct pollfd){ out_p[0], POLLIN, 0 };
			io = n++;
		}
		if (err_open) {
			p[n] = (struct pollfd){ err_p[0], POLLIN, 0 };
			ie = n++;
		}
		if (stop_fd >= 0) {
			p[n] = (struct pollfd){ stop_fd, POLLIN, 0 };
			is = n++;
		}
		if (poll(p, (nfds_t)n, 50) < 0 && errno != EINTR)
			break;
		if (is >= 0 && p[is].revents) {
			t->end = T_STOPPED;
			break;
		}
		if (out_open && p[io].revents)
			add_output(&out, out_p[0], 256 << 10, &out_open);
		if (ie >= 0 && p[ie].revents)
			add_output(&err, err_p[0], 64 << 10, &err_open);
	}
	t->console_bytes = out.len;
	if (t->end == T_EXITED)
		vm_qemu_message(err.buf, t->what, sizeof(t->what));
	if (!exited) {
		kill(-c.pid, SIGKILL);
		kill(c.pid, SIGKILL);
		child_wait(&c);
	}
out:
	t->ms = now_ms() - t0;
	for (int i = 0; i < 2; i++) {
		if (out_p[i] >= 0)
			close(out_p[i]);
		if (err_p[i] >= 0)
			close(err_p[i]);
	}
	sb_release(&out);
	sb_release(&err);
}

static void describe_end(const struct trial *t, unsigned deadline_ms, char *buf, size_t len)
{
	char how[128];

	switch (t->end) {
	case T_EXITED:
		if (WIFSIGNALED(t->status) && WTERMSIG(t->status) == SIGABRT)
			snprintf(how, sizeof(how), "aborted");
		else
			describe_status(t->status, how, sizeof(how));
		snprintf(buf, len, "QEMU %s: %.200s", how, *t->what ? t->what : "(no message)");
		break;
	case T_SILENT:
		snprintf(buf, len, "the kernel printed nothing on the console in %g s",
			 deadline_ms / 1000.0);
		break;
	case T_NOBANNER:
		snprintf(buf, len, "%zu bytes on the console but no kernel banner in %g s",
			 t->console_bytes, deadline_ms / 1000.0);
		break;
	default:
		snprintf(buf, len, "%.200s", t->what);
	}
}

/* ---- the cache ---- */

/* argv0 as exec would find it (PATH lookup), or NULL. */
static char *which(const char *prog)
{
	const char *path = getenv("PATH");
	char *copy, *save = NULL, *dir, *found = NULL;

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0 ? xstrdup(prog) : NULL;
	copy = xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		char *p = path_join(*dir ? dir : ".", prog);
		if (access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(copy);
	return found;
}

/* sha256 over what decides the answer: this boot of this host, the QEMU binary, the device and
 * the kernel image's content (its SHA-256, as the cell records it). 0, or -1 when the kernel
 * cannot be read. */
static int cache_key(const char *qemu, const char *kvm_dev, const char *vmlinuz,
		     const char *kernel_sha256, char key[65])
{
	struct sb boot = SB_INIT, line = SB_INIT;
	struct kerr e = KERR_INIT;
	char host[256] = "", ksum[65];
	struct stat st;
	char *q = which(qemu);
	int ret = -1;

	if (kernel_sha256)
		snprintf(ksum, sizeof(ksum), "%s", kernel_sha256);
	else if (sha256_file(vmlinuz, ksum, &e) < 0)
		goto out;
	read_file("/proc/sys/kernel/random/boot_id", &boot, 64, &e);
	gethostname(host, sizeof(host) - 1);
	sb_addf(&line, "klpq-accel-1\nboot=%s\nhost=%s\nqemu=%s\ndev=%s\nkernel=%s\n", boot.buf,
		host, q ? q : qemu, kvm_dev, ksum);
	if (q && stat(q, &st) == 0)
		sb_addf(&line, "qemu-stat=%lld,%lld,%lld\n", (long long)st.st_size,
			(long long)st.st_mtime, (long long)st.st_ino);
	ret = sha256_text(line.buf, line.len, key);
out:
	sb_release(&boot);
	sb_release(&line);
	free(q);
	return ret;
}

static int cache_read(const char *path, struct accel_choice *c)
{
	json_object *o = json_object_from_file(path);
	const char *a = proto_get_str(o, "accel", ""), *cpu = proto_get_str(o, "cpu", "");
	int ok = o && !strcmp(proto_get_str(o, "format", ""), "klpq-accel-1") &&
		 (!strcmp(a, "kvm") || !strcmp(a, "tcg")) && *cpu;

	if (ok) {
		snprintf(c->accel, sizeof(c->accel), "%s", a);
		snprintf(c->cpu, sizeof(c->cpu), "%s", cpu);
		snprintf(c->reason, sizeof(c->reason), "%s", proto_get_str(o, "reason", ""));
		c->cached = 1;
	}
	json_object_put(o);
	return ok ? 0 : -1;
}

static void cache_write(const char *path, struct accel_choice *c, const char *qemu,
			const char *vmlinuz)
{
	json_object *o = json_object_new_object();
	struct kerr e = KERR_INIT;
	char when[32];
	const char *s;

	iso_time(wall_ms(), when, sizeof(when));
	json_object_object_add(o, "format", json_object_new_string("klpq-accel-1"));
	json_object_object_add(o, "accel", json_object_new_string(c->accel));
	json_object_object_add(o, "cpu", json_object_new_string(c->cpu));
	json_object_object_add(o, "reason", json_object_new_string(c->reason));
	json_object_object_add(o, "trial_ms", json_object_new_int64((int64_t)c->trial_ms));
	json_object_object_add(o, "decided", json_object_new_string(when));
	json_object_object_add(o, "qemu", json_object_new_string(qemu));
	json_object_object_add(o, "kernel", json_object_new_string(vmlinuz));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (write_file_atomic(path, s, strlen(s), &e) < 0)
		snprintf(c->warning, sizeof(c->warning), "cannot cache the accelerator decision: %.200s",
			 e.msg);
	json_object_put(o);
}

/* ---- the decision ---- */

static void set(struct accel_choice *c, const char *accel, const char *cpu, const char *fmt, ...)
	KLPQ_ATTR_FMT(4, 5);
static void set(struct accel_choice *c, const char *accel, const char *cpu, const char *fmt, ...)
{
	va_list ap;

	snprintf(c->accel, sizeof(c->accel), "%s", accel);
	snprintf(c->cpu, sizeof(c->cpu), "%s", cpu);
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
}

/* The trials themselves. 0 with *c set, or -1 (stopped, QEMU not runnable) with e set. */
static int try_kvm(const char *qemu, const char *vmlinuz, unsigned ms, int stop_fd,
		   struct accel_choice *c, struct kerr *e)
{
	struct trial t1, t2;
	char d1[384], d2[384];

	trial(qemu, "host", vmlinuz, ms, stop_fd, &t1);
	c->trial_ms = t1.ms;
	if (t1.end == T_STOPPED)
		return kerr_set(e, "interrupted during the KVM trial boot");
	if (t1.end == T_NOSTART)
		return kerr_set(e, "cannot run QEMU for the KVM trial boot: %s", t1.what);
	if (t1.end == T_BANNER) {
		set(c, "kvm", "host", "KVM works: the kernel's banner came %.1f s into a trial boot",
		    t1.ms / 1000.0);
		return 0;
	}
	describe_end(&t1, ms, d1, sizeof(d1));
	if (t1.end != T_EXITED || !strstr(t1.what, "MSR 0x10a")) {
		set(c, "tcg", "max", "KVM unusable: %s", d1);
		return 0;
	}
	/* QEMU 7.x on nested KVM: the host refuses IA32_ARCH_CAPABILITIES */
	trial(qemu, WORKAROUND_CPU, vmlinuz, ms, stop_fd, &t2);
	c->trial_ms += t2.ms;
	if (t2.end == T_STOPPED)
		return kerr_set(e, "interrupted during the KVM trial boot");
	if (t2.end == T_BANNER) {
		set(c, "kvm", WORKAROUND_CPU, "KVM works with -cpu " WORKAROUND_CPU " (with -cpu host "
		    "%s)", d1);
		return 0;
	}
	describe_end(&t2, ms, d2, sizeof(d2));
	set(c, "tcg", "max", "KVM unusable: %s; with -cpu " WORKAROUND_CPU " %s", d1, d2);
	return 0;
}

int accel_decide(enum accel_kind want, const char *vmlinuz, const struct accel_opts *o,
		 struct accel_choice *c, struct kerr *e)
{
	const char *qemu = o->qemu ? o->qemu : vm_qemu_binary();
	const char *dev = o->kvm_dev ? o->kvm_dev : "/dev/kvm";
	unsigned ms = o->trial_ms ? o->trial_ms : ACCEL_TRIAL_MS;
	char key[65] = "", *dir = NULL, *entry = NULL, *lock = NULL;
	int fd, lock_fd = -1, ret = -1;

	memset(c, 0, sizeof(*c));
	if (want == ACCEL_TCG) {
		set(c, "tcg", "max", "the scenario asks for tcg");
		return 0;
	}
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		set(c, "tcg", "max", "KVM unusable: cannot open %s: %s", dev, strerror(errno));
		goto decided;
	}
	close(fd);
	if (o->cache_dir && cache_key(qemu, dev, vmlinuz, o->kernel_sha256, key) == 0) {
		struct kerr le = KERR_INIT;

		dir = path_join(o->cache_dir, "accel");
		entry = xasprintf("%s/%s.json", dir, key);
		lock = xasprintf("%s/%s.lock", dir, key);
		if (cache_read(entry, c) == 0)
			goto decided;
		if (mkdir_p(dir, 0755, &le) == 0)
			lock_fd = lock_path(lock, o->stop_fd, &le);
		if (lock_fd < 0 && o->stop_fd >= 0 && fd_readable(o->stop_fd)) {
			kerr_set(e, "interrupted while waiting for another cell's KVM trial");
			goto out;
		}
		/* the lock holder may have decided meanwhile */
		if (cache_read(entry, c) == 0)
			goto decided;
	}
	if (try_kvm(qemu, vmlinuz, ms, o->stop_fd, c, e) < 0)
		goto out;
	if (entry)
		cache_write(entry, c, qemu, vmlinuz);
decided:
	if (want == ACCEL_KVM && strcmp(c->accel, "kvm")) {
		kerr_set(e, "the scenario asks for accel kvm, but %s", c->reason);
		goto out;
	}
	ret = 0;
out:
	if (lock_fd >= 0)
		close(lock_fd);
	free(dir);
	free(entry);
	free(lock);
	return ret;
}
