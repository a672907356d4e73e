/* vm-libvirt-priv.h: what the libvirt backend's files share (vm-libvirt.c, -stream.c, -host.c);
 * nothing outside them includes it. */
#ifndef KLPQ_VM_LIBVIRT_PRIV_H
#define KLPQ_VM_LIBVIRT_PRIV_H

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include "spawn.h"
#include "vm-libvirt.h"

/* libvirt initialised and its event loop running on a thread of this process (once). 0, or
 * -1 with e set. */
int lv_init_once(struct kerr *e);
/* e: "libvirt: WHAT: <libvirt's last error>". Returns -1. */
int lv_error(struct kerr *e, const char *what);

struct buf {
	char *p;
	size_t len, cap;
};

/* Bytes held back towards the loop before the stream is no longer read: the loop drains a
 * console flood at its own pace, the bridge must not grow without bound. */
#define BRIDGE_HOLD (4u << 20)

struct lv_bridge {
	virStreamPtr st;
	int fd;              /* the bridge's end of the socketpair; the loop has the other */
	int watch;           /* virEventAddHandle id on fd, or -1 */
	int st_cb;           /* a stream callback is registered */
	struct buf to_fd;    /* from the stream, not yet written to fd */
	struct buf to_st;    /* from fd, not yet sent on the stream */
	int st_eof;          /* the stream ended: close fd once to_fd is written */
	int fd_eof;          /* the loop closed its end */
};

/* Opens the console (console=1) or the agent's channel of dom as a stream bridged to a new
 * socketpair; *loop_fd gets the loop's end. 0, or -1 with e set. */
int lv_bridge_open(virConnectPtr conn, virDomainPtr dom, struct lv_bridge *b, int console,
		   int *loop_fd, struct kerr *e);
/* On the event thread only: the stream aborted, the socket closed, no callback after. */
void lv_bridge_close(struct lv_bridge *b);
void lv_bridge_release(struct lv_bridge *b); /* its buffers, once closed */

/* The embedded driver's qemu.conf (docs/pool.md). */
extern const char lv_qemu_conf[];
/* Starts the watchdog of an embedded root: it kills the root's QEMU and removes the root
 * unless "done" reaches it before *fd closes (lv_watchdog_stop). 0, or -1 with e set. */
int lv_watchdog_start(const char *root, struct child *c, int *fd, struct kerr *e);
void lv_watchdog_stop(struct child *c, int *fd);
/* The roots of klpq processes that ended without cleaning up: their QEMU killed, removed. */
void lv_sweep_roots(void);
/* QEMU's probed capabilities: into a new root from CACHE/libvirt/capabilities (store 0), or
 * from the root into that cache when it has none yet (store 1). */
void lv_caps_cache(const char *cache_dir, const char *root, int store);
/* Uploads path to the host's storage pool "klpq" unless a volume of the same content is
 * there (vm-libvirt-vol.c): the volume's path on the host (free it), or NULL with e set.
 * *uploaded: 1 when this call sent it. stop_fd readable: give up waiting for another cell's
 * upload. */
char *lv_upload(virConnectPtr conn, const char *path, int stop_fd, int *uploaded,
		struct kerr *e);
/* Destroys this connection's klpq domains whose owner is gone. */
void lv_sweep_domains(virConnectPtr conn);

#endif
