/* vm-chan.h: a guest's two channels and the one loop that serves them, for every backend.
 *
 * A backend hands over two connected descriptors: the serial console (raw bytes, written to
 * console.log and given to cfg->on_console, the crash classifier) and the agent's port (lines
 * framed and parsed by proto.c, logged to agent.log with time stamps). vmchan_wait() is the
 * VM's one event loop: it polls both channels, the stop descriptor (Ctrl-C) and whatever the
 * backend adds through its hooks (QEMU: QMP and its pidfd), runs the timers (the caller's
 * deadline, the agent's lost heartbeat) and returns when a predicate holds, the time is up,
 * the VM ended or klpq is stopping. A descriptor poll reports invalid is dropped, never polled
 * again (no busy loop).
 */
#ifndef KLPQ_VM_CHAN_H
#define KLPQ_VM_CHAN_H

#include <poll.h>
#include "proto.h"
#include "vm.h"

/* What the loop asks of the backend that runs the VM. */
struct vmchan_hooks {
	/* Its own descriptors to poll this round (at most max) into p; returns how many. May
	 * lower *cap_ms: how long one round may sleep when the VM's end cannot be polled. */
	int (*fds)(void *be, struct pollfd *p, int max, unsigned *cap_ms);
	/* One of them has events (p[i] as filled by fds, revents set). */
	void (*event)(void *be, const struct pollfd *p);
	/* After each round: 1 once the VM has ended (then reason() says why). */
	int (*ended)(void *be);
	/* A channel broke: let the backend see whether the VM is ending (QEMU closes its sockets
	 * a moment before it can be reaped); after this, ended() is asked again. */
	void (*settle)(void *be);
	const char *(*reason)(void *be);
};

struct vmchan {
	const struct vm_config *cfg;
	const struct vmchan_hooks *hooks;
	void *be;
	const char *what_ends;     /* "QEMU", "the domain": in messages about the VM's end */
	int console_fd, agent_fd;  /* owned; -1 once closed */
	int console_log_fd, agent_log_fd;
	struct proto_reader agent_rd;
	uint64_t t0;
	int64_t next_id;
	json_object *ready;        /* the agent's ready event, once seen */
	struct proto_msg reply;    /* reply to the request in flight */
	int64_t want_id;
	int have_reply;
	uint64_t last_agent_ms;    /* when the agent last sent anything (its heartbeat: 2 s) */
	uint64_t watch_since_ms;   /* an agent request in flight since then; 0: none */
	uint64_t malformed;        /* agent lines that did not parse */
	int log_errno;             /* first failure writing console.log or agent.log */
};

/* Opens cfg's console.log and agent.log. 0, or -1 with e set. The channels come later
 * (vmchan_attach). */
int vmchan_init(struct vmchan *c, const struct vm_config *cfg, const struct vmchan_hooks *hooks,
		void *be, const char *what_ends, struct kerr *e);
/* Takes the two connected descriptors (made non-blocking here). */
void vmchan_attach(struct vmchan *c, int console_fd, int agent_fd);
void vmchan_release(struct vmchan *c);

/* A line in agent.log: "<time> <dir> <line>" (dir: ">", "<", "!", "qmp", ...). */
void vmchan_log(struct vmchan *c, const char *dir, const char *line, size_t len);

/* The loop, until done(arg) holds (VM_OK), timeout_ms passes (VM_TIMEOUT; VM_OK when done is
 * NULL: a sleep that serves the channels), the VM ends (VM_GONE), the stop descriptor fires
 * (VM_STOPPED) or poll fails (VM_BROKEN). what names the wait in e's message. */
enum vm_wait_result vmchan_wait(struct vmchan *c, unsigned timeout_ms, int (*done)(void *arg),
				void *arg, struct kerr *e, const char *what);
enum vm_wait_result vmchan_wait_ready(struct vmchan *c, unsigned timeout_ms, json_object **ready,
				      struct kerr *e);
/* vm.h's vm_agent_call. */
enum vm_wait_result vmchan_agent_call(struct vmchan *c, const char *op, json_object *args,
				      unsigned timeout_ms, struct proto_msg *reply,
				      struct kerr *e);
/* Bytes to the serial console (a SysRq key): 0, or -1 with errno. */
int vmchan_console_send(struct vmchan *c, const char *buf, size_t len, unsigned timeout_ms);
void vmchan_stats(const struct vmchan *c, uint64_t *oversized, uint64_t *malformed);

#endif
