/* vm-libvirt-vol.c: what a remote libvirt host needs from this one, sent over the connection
 * (vm-libvirt-priv.h): the kernel and initramfs as storage volumes, cached there by content,
 * and the health check of a pool's host (vm-libvirt.h).
 *
 * Nothing assumes a file system shared with the host. The files go to the host's storage
 * pool "klpq" (a directory pool at LV_POOL_PATH, made when the host has none), one volume per
 * content: NAME = the first 32 hex digits of its SHA-256 and the file's name. A volume is
 * complete when its marker volume NAME.ok exists, made after the upload finished. The uploading
 * cell holds NAME.lock (a volume too: libvirt refuses a second volume of one name, so making it
 * is atomic); a cell that finds the lock waits while the upload makes progress, and takes over
 * when it made none for LV_UPLOAD_WAIT_S (its uploader died).
 */
#define _GNU_SOURCE
#include "vm-libvirt-priv.h"
#include "pbuild.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LV_POOL "klpq"
#define LV_POOL_PATH "/var/lib/libvirt/klpq"
#define LV_UPLOAD_WAIT_S 60

static virStoragePoolPtr lv_pool(virConnectPtr conn, struct kerr *e)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(conn, LV_POOL);

	if (p) {
		int active = virStoragePoolIsActive(p);

		if (active == 0 && virStoragePoolCreate(p, VIR_STORAGE_POOL_CREATE_WITH_BUILD) < 0) {
			lv_error(e, "cannot start the host's storage pool " LV_POOL);
			virStoragePoolFree(p);
			return NULL;
		}
		return p;
	}
	p = virStoragePoolCreateXML(conn, "<pool type='dir'><name>" LV_POOL "</name><target>"
				    "<path>" LV_POOL_PATH "</path></target></pool>",
				    VIR_STORAGE_POOL_CREATE_WITH_BUILD);
	if (!p)
		p = virStoragePoolLookupByName(conn, LV_POOL); /* another cell made it */
	if (!p)
		lv_error(e, "cannot make the storage pool " LV_POOL " (a directory at "
			 LV_POOL_PATH ") on the host");
	return p;
}

static int send_file(virConnectPtr conn, virStorageVolPtr vol, int fd, off_t size,
		     struct kerr *e)
{
	virStreamPtr st = virStreamNew(conn, 0);
	char buf[256 * 1024];
	off_t sent = 0;

	if (!st)
		return lv_error(e, "cannot make an upload stream");
	if (virStorageVolUpload(vol, st, 0, (unsigned long long)size, 0) < 0) {
		lv_error(e, "the upload was refused");
		virStreamFree(st);
		return -1;
	}
	while (sent < size) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0) {
			virStreamAbort(st);
			virStreamFree(st);
			return kerr_set(e, "reading the file to upload: %s",
					n < 0 ? strerror(errno) : "it shrank");
		}
		for (ssize_t off = 0; off < n;) {
			int w = virStreamSend(st, buf + off, (size_t)(n - off));

			if (w < 0) {
				lv_error(e, "the upload broke");
				virStreamAbort(st);
				virStreamFree(st);
				return -1;
			}
			off += w;
		}
		sent += n;
	}
	if (virStreamFinish(st) < 0) {
		lv_error(e, "the upload did not finish");
		virStreamFree(st);
		return -1;
	}
	virStreamFree(st);
	return 0;
}

static virStorageVolPtr make_vol(virStoragePoolPtr pool, const char *name, off_t size)
{
	char xml[512];

	snprintf(xml, sizeof(xml), "<volume><name>%s</name><capacity unit='bytes'>%lld"
		 "</capacity><target><format type='raw'/></target></volume>", name,
		 (long long)size);
	return virStorageVolCreateXML(pool, xml, 0);
}

static int vol_exists(virStoragePoolPtr pool, const char *name)
{
	virStorageVolPtr m = virStorageVolLookupByName(pool, name);

	if (!m)
		return 0;
	virStorageVolFree(m);
	return 1;
}

static void vol_delete(virStoragePoolPtr pool, const char *name)
{
	virStorageVolPtr v = virStorageVolLookupByName(pool, name);

	if (v) {
		virStorageVolDelete(v, 0);
		virStorageVolFree(v);
	}
}

/* The bytes on the host so far of volume NAME, or -1 (none, or no answer) */
static long long vol_allocation(virStoragePoolPtr pool, const char *name)
{
	virStorageVolPtr v = virStorageVolLookupByName(pool, name);
	virStorageVolInfo info;
	long long a = -1;

	if (v && virStorageVolGetInfo(v, &info) == 0)
		a = (long long)info.allocation;
	if (v)
		virStorageVolFree(v);
	return a;
}

/* Another cell holds NAME.lock: waits while its upload makes progress. 1 when NAME.ok came,
 * 0 when the lock went away without it or went stale (no progress for LV_UPLOAD_WAIT_S: the
 * uploader died; the lock is then removed), -1 with e set (stopped, connection lost). */
static int wait_upload(virConnectPtr conn, virStoragePoolPtr pool, const char *name,
		       const char *ok, const char *lock, int stop_fd, struct kerr *e)
{
	long long last = -2;
	uint64_t progress = now_ms();

	for (;;) {
		long long a;

		if (vol_exists(pool, ok))
			return 1;
		if (!vol_exists(pool, lock))
			return vol_exists(pool, ok);
		if (fd_readable(stop_fd))
			return kerr_set(e, "stopped while another cell uploaded %s", name);
		if (virConnectIsAlive(conn) != 1)
			return kerr_set(e, "the connection to the host closed during an upload");
		a = vol_allocation(pool, name);
		if (a != last) {
			last = a;
			progress = now_ms();
		} else if (now_ms() - progress > LV_UPLOAD_WAIT_S * 1000ull) {
			vol_delete(pool, lock);
			return 0;
		}
		sleep_ms(500);
	}
}

char *lv_upload(virConnectPtr conn, const char *path, int stop_fd, int *uploaded,
		struct kerr *e)
{
	char hash[65], name[128], ok[140], lock[140];
	const char *base = strrchr(path, '/');
	virStoragePoolPtr pool;
	virStorageVolPtr vol = NULL;
	char *remote = NULL;
	struct stat st;
	int fd;

	*uploaded = 0;
	if (sha256_file(path, hash, e) < 0)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		kerr_errno(e, "%s", path);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	base = base ? base + 1 : path;
	snprintf(name, sizeof(name), "%.32s-%.64s", hash, base);
	for (char *p = name; *p; p++)
		if (!(*p == '-' || *p == '.' || *p == '_' || (*p >= '0' && *p <= '9') ||
		      (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
			*p = '_';
	snprintf(ok, sizeof(ok), "%s.ok", name);
	snprintf(lock, sizeof(lock), "%s.lock", name);
	pool = lv_pool(conn, e);
	if (!pool)
		goto out;
	/* NAME.ok: the upload is complete. NAME.lock (made atomically: a second create of one
	 * name fails): a cell is uploading it; the others wait while it makes progress. */
	for (int round = 0; round < 4 && !remote && !e->set; round++) {
		virStorageVolPtr lk;

		if (vol_exists(pool, ok)) {
			vol = virStorageVolLookupByName(pool, name);
			if (vol) {
				remote = virStorageVolGetPath(vol);
				if (!remote)
					lv_error(e, "cannot find the path of an uploaded volume");
				break;
			}
			vol_delete(pool, ok); /* a marker without its volume */
		}
		lk = make_vol(pool, lock, 0);
		if (!lk) {
			if (wait_upload(conn, pool, name, ok, lock, stop_fd, e) < 0)
				break;
			continue;
		}
		vol_delete(pool, name); /* what an upload that died left */
		vol = make_vol(pool, name, st.st_size);
		if (!vol) {
			lv_error(e, "cannot make the volume for an upload");
		} else if (lseek(fd, 0, SEEK_SET) < 0 || send_file(conn, vol, fd, st.st_size, e) < 0) {
			if (!e->set)
				kerr_errno(e, "%s", path);
			virStorageVolDelete(vol, 0);
		} else {
			virStorageVolPtr m = make_vol(pool, ok, 0);

			if (m || vol_exists(pool, ok)) {
				*uploaded = 1;
				remote = virStorageVolGetPath(vol);
				if (!remote)
					lv_error(e, "cannot find the path of an uploaded volume");
			} else {
				lv_error(e, "cannot mark an upload complete");
			}
			if (m)
				virStorageVolFree(m);
		}
		virStorageVolDelete(lk, 0);
		virStorageVolFree(lk);
	}
	if (!remote && !e->set)
		kerr_set(e, "no upload finished after four tries");
out:
	if (vol)
		virStorageVolFree(vol);
	if (pool)
		virStoragePoolFree(pool);
	close(fd);
	if (remote && !e->set)
		return remote;
	free(remote);
	if (!strstr(e->msg, path)) {
		struct kerr w = KERR_INIT;

		kerr_set(&w, "uploading %s to the host: %s", path, e->msg);
		*e = w;
	}
	return NULL;
}

int vm_libvirt_health(const char *uri, struct kerr *e)
{
	struct vm_libvirt_owner owner;
	struct sb xml = SB_INIT;
	virConnectPtr conn;
	virDomainPtr dom;
	char name[64];
	int state = 0, reason = 0, ret = -1;

	if (lv_init_once(e) < 0)
		return -1;
	conn = virConnectOpen(uri);
	if (!conn)
		return lv_error(e, "cannot connect");
	lv_sweep_domains(conn);
	vm_libvirt_owner_self(&owner);
	snprintf(name, sizeof(name), VM_LIBVIRT_PREFIX "health-%ld", (long)getpid());
	vm_libvirt_health_xml(name, &owner, &xml);
	dom = virDomainCreateXML(conn, xml.buf, VIR_DOMAIN_START_AUTODESTROY);
	if (!dom) {
		lv_error(e, "the health-check domain would not start");
		goto out;
	}
	usleep(500 * 1000);
	if (virDomainGetState(dom, &state, &reason, 0) < 0)
		lv_error(e, "cannot read the health-check domain's state");
	else if (state != VIR_DOMAIN_RUNNING)
		kerr_set(e, "the health-check domain is not running (state %d, reason %d)", state,
			 reason);
	else
		ret = 0;
	virDomainDestroy(dom);
	virDomainFree(dom);
out:
	sb_release(&xml);
	virConnectClose(conn);
	return ret;
}
