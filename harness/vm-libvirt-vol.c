/* vm-libvirt-vol.c: what a remote libvirt host needs from this one, sent over the connection
 * (vm-libvirt-priv.h): the kernel and initramfs as storage volumes, cached there by content,
 * and the health check of a pool's host (vm-libvirt.h).
 *
 * Nothing assumes a file system shared with the host. The files go to the host's storage
 * pool "klpq" (a directory pool at LV_POOL_PATH, made when the host has none), one volume per
 * content: NAME = the first 32 hex digits of its SHA-256 and the file's name. A volume is
 * complete when its marker volume NAME.ok exists, made after the upload finished; a cell that
 * finds NAME without the marker waits for the cell uploading it, and deletes and uploads it
 * itself when no marker came in LV_UPLOAD_WAIT_S (an upload that died).
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
#define LV_UPLOAD_WAIT_S 120

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

static int marker_exists(virStoragePoolPtr pool, const char *ok)
{
	virStorageVolPtr m = virStorageVolLookupByName(pool, ok);

	if (!m)
		return 0;
	virStorageVolFree(m);
	return 1;
}

char *lv_upload(virConnectPtr conn, const char *path, int *uploaded, struct kerr *e)
{
	char hash[65], name[128], ok[140];
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
	pool = lv_pool(conn, e);
	if (!pool)
		goto out;
	for (int round = 0; round < 2 && !remote; round++) {
		vol = virStorageVolLookupByName(pool, name);
		if (vol) {
			/* there, or on its way from another cell */
			for (int s = 0; s < LV_UPLOAD_WAIT_S && !marker_exists(pool, ok); s++)
				sleep(1);
			if (marker_exists(pool, ok)) {
				remote = virStorageVolGetPath(vol);
				if (!remote)
					lv_error(e, "cannot find the path of an uploaded volume");
				break;
			}
			/* an upload that died: start again */
			virStorageVolDelete(vol, 0);
			virStorageVolFree(vol);
			vol = NULL;
		}
		vol = make_vol(pool, name, st.st_size);
		if (!vol)
			continue; /* another cell made it a moment ago: wait for its marker */
		if (send_file(conn, vol, fd, st.st_size, e) < 0) {
			virStorageVolDelete(vol, 0);
			break;
		}
		{
			virStorageVolPtr m = make_vol(pool, ok, 0);

			if (!m) {
				lv_error(e, "cannot mark an upload complete");
				break;
			}
			virStorageVolFree(m);
		}
		*uploaded = 1;
		remote = virStorageVolGetPath(vol);
		if (!remote)
			lv_error(e, "cannot find the path of an uploaded volume");
	}
	if (!remote && !e->set)
		lv_error(e, "cannot make the volume for an upload");
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
