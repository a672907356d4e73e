/* vm-libvirt-stream.c: the libvirt backend's event thread (libvirt's default event loop, one
 * per process) and the bridges between a domain's streams (console, agent channel) and the
 * socketpairs vm-chan.c's loop reads (vm-libvirt-priv.h). */
#define _GNU_SOURCE
#include "vm-libvirt-priv.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- libvirt's event loop, one thread per process ---------------------------------------- */

static pthread_once_t lv_once = PTHREAD_ONCE_INIT;
static int lv_ok;
static char lv_init_err[256];

static void *event_thread(void *arg)
{
	(void)arg;
	for (;;)
		if (virEventRunDefaultImpl() < 0)
			sleep_ms(10);
	return NULL;
}

static void quiet_errors(void *ctx, virErrorPtr err)
{
	(void)ctx;
	(void)err; /* libvirt prints every error by default; klpq reports them itself */
}

static void lv_init(void)
{
	pthread_t t;
	pthread_attr_t a;

	virSetErrorFunc(NULL, quiet_errors);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
		snprintf(lv_init_err, sizeof(lv_init_err), "libvirt would not initialise");
		return;
	}
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, event_thread, NULL)) {
		snprintf(lv_init_err, sizeof(lv_init_err), "cannot start libvirt's event thread");
		pthread_attr_destroy(&a);
		return;
	}
	pthread_attr_destroy(&a);
	lv_ok = 1;
}

int lv_error(struct kerr *e, const char *what)
{
	virErrorPtr err = virGetLastError();

	return kerr_set(e, "libvirt: %s: %s", what, err && err->message ? err->message :
			"no message");
}

int lv_init_once(struct kerr *e)
{
	pthread_once(&lv_once, lv_init);
	return lv_ok ? 0 : kerr_set(e, "%s", lv_init_err);
}

/* ---- stream <-> socketpair bridges (event thread) ---------------------------------------- */

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void buf_drop(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

void lv_bridge_close(struct lv_bridge *b)
{
	if (b->watch >= 0)
		virEventRemoveHandle(b->watch);
	b->watch = -1;
	if (b->st_cb)
		virStreamEventRemoveCallback(b->st);
	b->st_cb = 0;
	if (b->st) {
		virStreamAbort(b->st);
		virStreamFree(b->st);
	}
	b->st = NULL;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

static void bridge_update(struct lv_bridge *b)
{
	if (b->fd < 0)
		return;
	if (b->st_eof && !b->to_fd.len) {
		/* everything the stream gave is with the loop: it sees EOF, as from QEMU. The
		 * stream itself is not freed here, inside its own callback: lv_bridge_close does
		 * that at teardown. */
		if (b->watch >= 0)
			virEventRemoveHandle(b->watch);
		b->watch = -1;
		close(b->fd);
		b->fd = -1;
		if (b->st_cb)
			virStreamEventUpdateCallback(b->st, 0);
		return;
	}
	if (b->watch >= 0)
		virEventUpdateHandle(b->watch, (b->fd_eof || b->to_st.len > BRIDGE_HOLD ? 0 :
						VIR_EVENT_HANDLE_READABLE) |
				     (b->to_fd.len ? VIR_EVENT_HANDLE_WRITABLE : 0));
	if (b->st_cb)
		virStreamEventUpdateCallback(b->st, (b->st_eof || b->to_fd.len > BRIDGE_HOLD ? 0 :
						     VIR_STREAM_EVENT_READABLE) |
					     (b->to_st.len ? VIR_STREAM_EVENT_WRITABLE : 0));
}

static void flush_fd(struct lv_bridge *b)
{
	while (b->to_fd.len) {
		ssize_t n = send(b->fd, b->to_fd.p, b->to_fd.len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			b->to_fd.len = 0; /* the loop is gone */
			b->fd_eof = 1;
			break;
		}
		buf_drop(&b->to_fd, (size_t)n);
	}
}

static void flush_st(struct lv_bridge *b)
{
	while (b->to_st.len && b->st && !b->st_eof) {
		int n = virStreamSend(b->st, b->to_st.p, b->to_st.len);

		if (n == -2)
			break;
		if (n <= 0) {
			b->to_st.len = 0;
			b->st_eof = 1;
			break;
		}
		buf_drop(&b->to_st, (size_t)n);
	}
}

static void on_stream(virStreamPtr st, int events, void *opaque)
{
	struct lv_bridge *b = opaque;
	char tmp[16384];

	if (events & VIR_STREAM_EVENT_WRITABLE)
		flush_st(b);
	if (events & (VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_HANGUP |
		      VIR_STREAM_EVENT_ERROR)) {
		while (b->to_fd.len <= BRIDGE_HOLD) {
			int n = virStreamRecv(st, tmp, sizeof(tmp));

			if (n == -2)
				break;
			if (n <= 0) {
				b->st_eof = 1;
				break;
			}
			buf_add(&b->to_fd, tmp, (size_t)n);
		}
		flush_fd(b);
	}
	bridge_update(b);
}

static void on_fd(int watch, int fd, int events, void *opaque)
{
	struct lv_bridge *b = opaque;
	char tmp[16384];

	(void)watch;
	if (events & VIR_EVENT_HANDLE_WRITABLE)
		flush_fd(b);
	if (events & (VIR_EVENT_HANDLE_READABLE | VIR_EVENT_HANDLE_HANGUP |
		      VIR_EVENT_HANDLE_ERROR)) {
		ssize_t n = read(fd, tmp, sizeof(tmp));

		if (n > 0)
			buf_add(&b->to_st, tmp, (size_t)n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			b->fd_eof = 1;
		flush_st(b);
	}
	bridge_update(b);
}

void lv_bridge_release(struct lv_bridge *b)
{
	free(b->to_fd.p);
	free(b->to_st.p);
	memset(&b->to_fd, 0, sizeof(b->to_fd));
	memset(&b->to_st, 0, sizeof(b->to_st));
}

int lv_bridge_open(virConnectPtr conn, virDomainPtr dom, struct lv_bridge *b, int console,
		   int *loop_fd, struct kerr *e)
{
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return kerr_errno(e, "socketpair");
	set_nonblock(sp[1]);
	b->fd = sp[1];
	b->st = virStreamNew(conn, VIR_STREAM_NONBLOCK);
	if (!b->st || (console ? virDomainOpenConsole(dom, NULL, b->st,
						      VIR_DOMAIN_CONSOLE_FORCE)
			       : virDomainOpenChannel(dom, VM_LIBVIRT_AGENT_PORT, b->st,
						      VIR_DOMAIN_CHANNEL_FORCE)) < 0) {
		close(sp[0]);
		return lv_error(e, console ? "cannot open the console" :
				"cannot open the agent's channel");
	}
	if (console) {
		int sz = 8 << 20; /* as QEMU's: room while the loop lets bytes gather */
		if (setsockopt(sp[0], SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
			setsockopt(sp[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	if (virStreamEventAddCallback(b->st, VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_ERROR |
				      VIR_STREAM_EVENT_HANGUP, on_stream, b, NULL) < 0) {
		close(sp[0]);
		return lv_error(e, "cannot watch a stream");
	}
	b->st_cb = 1;
	b->watch = virEventAddHandle(b->fd, VIR_EVENT_HANDLE_READABLE, on_fd, b, NULL);
	if (b->watch < 0) {
		close(sp[0]);
		return lv_error(e, "cannot watch a socket");
	}
	*loop_fd = sp[0];
	return 0;
}
