/* vm-libvirt-host.c: what the libvirt backend keeps on a host: the owner record of its domains
 * (vm-libvirt.h), the embedded driver's root with its qemu.conf, capabilities cache and
 * watchdog, and the sweeps of what a killed klpq left (vm-libvirt-priv.h, docs/pool.md). */
#define _GNU_SOURCE
#include "vm-libvirt-priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the owner record ------------------------------------------------------------------ */

static unsigned long long proc_start_ticks(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long t = 0;
	int fd, n;
	const char *p;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
	if (!p)
		return 0;
	/* field 3 is the state after ") "; start time is field 22 */
	p += 2;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (p)
		t = strtoull(p, NULL, 10);
	return t;
}

static void read_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "re");

	out[0] = '\0';
	if (f) {
		if (fgets(out, (int)len, f))
			out[strcspn(out, "\n")] = '\0';
		fclose(f);
	}
}

void vm_libvirt_owner_self(struct vm_libvirt_owner *o)
{
	memset(o, 0, sizeof(*o));
	o->pid = getpid();
	o->start_ticks = proc_start_ticks(o->pid);
	read_line("/proc/sys/kernel/random/boot_id", o->boot_id, sizeof(o->boot_id));
	if (gethostname(o->host, sizeof(o->host) - 1) < 0)
		snprintf(o->host, sizeof(o->host), "?");
}

int vm_libvirt_owner_gone(const struct vm_libvirt_owner *o)
{
	struct vm_libvirt_owner me;

	vm_libvirt_owner_self(&me);
	if (strcmp(me.boot_id, o->boot_id) || strcmp(me.host, o->host))
		return !strcmp(me.host, o->host); /* this host rebooted since: gone */
	if (kill(o->pid, 0) < 0 && errno == ESRCH)
		return 1;
	return proc_start_ticks(o->pid) != o->start_ticks; /* the pid was reused */
}

/* The value of attribute name='...' or name="..." in xml, into out. */
static int xml_attr(const char *xml, const char *name, char *out, size_t len)
{
	size_t n = strlen(name);

	for (const char *p = xml; (p = strstr(p, name)); p += n) {
		if (p > xml && p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n')
			continue;
		if (p[n] != '=' || (p[n + 1] != '\'' && p[n + 1] != '"'))
			continue;
		const char *v = p + n + 2, *end = strchr(v, p[n + 1]);
		static const struct { const char *ent; char c; } ents[] = {
			{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
			{ "&apos;", '\'' },
		};
		size_t o = 0;

		if (!end)
			return -1;
		/* the five entities the writer (vm-libvirt-xml.c) and libvirt use */
		while (v < end) {
			size_t k, skip = 1;
			char c = *v;

			for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++)
				if (!strncmp(v, ents[k].ent, strlen(ents[k].ent))) {
					c = ents[k].c;
					skip = strlen(ents[k].ent);
					break;
				}
			if (o + 1 >= len)
				return -1;
			out[o++] = c;
			v += skip;
		}
		out[o] = '\0';
		return 0;
	}
	return -1;
}

int vm_libvirt_owner_parse(const char *xml, struct vm_libvirt_owner *o)
{
	char pid[24], start[24];

	memset(o, 0, sizeof(*o));
	if (!xml || !strstr(xml, "owner") || xml_attr(xml, "pid", pid, sizeof(pid)) ||
	    xml_attr(xml, "start", start, sizeof(start)) ||
	    xml_attr(xml, "boot", o->boot_id, sizeof(o->boot_id)) ||
	    xml_attr(xml, "host", o->host, sizeof(o->host)))
		return -1;
	o->pid = (pid_t)strtol(pid, NULL, 10);
	o->start_ticks = strtoull(start, NULL, 10);
	return o->pid > 0 ? 0 : -1;
}

char *vm_libvirt_default_uri(const char *cache_dir)
{
	(void)cache_dir;
	return xstrdup("qemu:///embed");
}

/* ---- the embedded driver's root, its watchdog and the sweep ------------------------------- */

const char lv_qemu_conf[] =
	"# written by klpq for libvirt's embedded QEMU driver (docs/pool.md)\n"
	"user = \"root\"\ngroup = \"root\"\n"
	"security_driver = \"none\"\n"
	"dynamic_ownership = 0\nremember_owner = 0\n"
	"stdio_handler = \"file\"\n";

/* Kills the QEMU processes of a dead klpq's root (their pid files, each checked to be a QEMU
 * of that root) and removes it. */
static const char watchdog_sh[] =
	"root=$1\n"
	"read -r word\n"
	"[ \"$word\" = done ] && exit 0\n"
	"for f in \"$root\"/run/qemu/*.pid; do\n"
	"  [ -f \"$f\" ] || continue\n"
	"  p=$(cat \"$f\")\n"
	"  case $p in ''|*[!0-9]*) continue ;; esac\n"
	"  tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -qF \"$root\" && kill -9 \"$p\"\n"
	"done\n"
	"rm -rf \"$root\"\n";

int lv_watchdog_start(const char *root, struct child *c, int *fd, struct kerr *e)
{
	const char *argv[] = { "/bin/sh", "-c", watchdog_sh, "klpq-libvirt-watchdog", root,
			       NULL };
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return kerr_errno(e, "pipe");
	c->argv = argv;
	c->in_fd = p[0];
	c->new_pgroup = 1; /* Ctrl-C is klpq's to handle, not the watchdog's */
	if (child_start(c, e) < 0) {
		close(p[0]);
		close(p[1]);
		c->argv = NULL;
		return -1;
	}
	c->argv = NULL;
	close(p[0]);
	*fd = p[1];
	return 0;
}

void lv_watchdog_stop(struct child *c, int *fd)
{
	if (*fd >= 0) {
		if (write(*fd, "done\n", 5) < 0) {
			/* it died: nothing to tell */
		}
		close(*fd);
		*fd = -1;
	}
	if (c->pid > 0)
		child_wait(c);
}

/* The roots of klpq processes that ended without cleaning up (their lock is free): their
 * QEMU killed, the folder removed. */
void lv_sweep_roots(void)
{
	struct kerr e = KERR_INIT;
	char *parent = private_tmp_parent("/tmp", &e);
	DIR *d;
	struct dirent *de;

	if (!parent)
		return;
	d = opendir(parent);
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "lv-", 3))
			continue;
		char *dir = path_join(parent, de->d_name), *lock = path_join(dir, ".lock");
		int fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		long pid = strtol(de->d_name + 3, NULL, 10);
		struct stat st;
		/* a root is made, then its lock taken: a free lock of a root whose process lives
		 * may be that moment, so such a root must also be a minute old */
		int young = (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) &&
			    (stat(dir, &st) < 0 || time(NULL) - st.st_mtime < 60);

		if (fd >= 0 && !young && flock(fd, LOCK_EX | LOCK_NB) == 0) {
			const char *argv[] = { "/bin/sh", "-c", watchdog_sh, "klpq-libvirt-sweep", dir,
					       NULL };
			struct child c = CHILD_INIT;
			int p[2];

			if (pipe2(p, O_CLOEXEC) == 0) {
				c.argv = argv;
				c.in_fd = p[0];
				close(p[1]); /* EOF without "done": sweep */
				if (child_start(&c, &e) == 0)
					child_wait(&c);
				close(p[0]);
			}
		}
		if (fd >= 0)
			close(fd);
		free(lock);
		free(dir);
	}
	if (d)
		closedir(d);
	free(parent);
}

/* A copy of QEMU's capabilities that an earlier root probed (4.6 s saved per cell), from
 * CACHE/libvirt/capabilities; the first root stores its own there. */
void lv_caps_cache(const char *cache_dir, const char *root, int store)
{
	char *cache, *mine;
	const char *from, *to;
	const char *argv[8];
	struct child c = CHILD_INIT;
	struct kerr e = KERR_INIT;

	if (!cache_dir)
		return;
	cache = path_join(cache_dir, "libvirt/capabilities");
	mine = path_join(root, "cache/qemu/capabilities");
	from = store ? mine : cache;
	to = store ? cache : mine;
	if (is_dir(from) && (store ? !is_dir(cache) : 1) && mkdir_p(to, 0755, &e) == 0) {
		argv[0] = "cp";
		argv[1] = "-a";
		argv[2] = "-T";
		argv[3] = from;
		argv[4] = to;
		argv[5] = NULL;
		c.argv = argv;
		c.out_fd = -1;
		if (child_start(&c, &e) == 0)
			child_wait(&c);
	}
	free(cache);
	free(mine);
}

/* Destroys the klpq domains on this connection whose klpq is gone (remote hosts: no watchdog
 * can see klpq die there). */
void lv_sweep_domains(virConnectPtr conn)
{
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE |
					 VIR_CONNECT_LIST_DOMAINS_TRANSIENT);

	for (int i = 0; i < n; i++) {
		const char *name = virDomainGetName(doms[i]);
		char *md;
		struct vm_libvirt_owner o;

		if (name && !strncmp(name, VM_LIBVIRT_PREFIX, strlen(VM_LIBVIRT_PREFIX)) &&
		    (md = virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT, VM_LIBVIRT_NS,
					       0))) {
			if (vm_libvirt_owner_parse(md, &o) == 0 && vm_libvirt_owner_gone(&o))
				virDomainDestroy(doms[i]);
			free(md);
		}
		virDomainFree(doms[i]);
	}
	free(doms);
}

