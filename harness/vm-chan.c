/* vm-chan.c: the console and agent channels of a VM and its one event loop (vm-chan.h). */
#define _GNU_SOURCE
#include "vm-chan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int vmchan_init(struct vmchan *c, const struct vm_config *cfg, const struct vmchan_hooks *hooks,
		void *be, const char *what_ends, struct kerr *e)
{
	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->hooks = hooks;
	c->be = be;
	c->what_ends = what_ends;
	c->console_fd = c->agent_fd = -1;
	c->t0 = now_ms();
	c->next_id = 1;
	proto_reader_init(&c->agent_rd);
	c->console_log_fd = open(cfg->console_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	c->agent_log_fd = open(cfg->agent_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (c->console_log_fd < 0 || c->agent_log_fd < 0)
		return kerr_errno(e, "cannot create the logs of VM %s", cfg->name);
	return 0;
}

void vmchan_attach(struct vmchan *c, int console_fd, int agent_fd)
{
	c->console_fd = console_fd;
	c->agent_fd = agent_fd;
	if (console_fd >= 0)
		set_nonblock(console_fd);
	if (agent_fd >= 0)
		set_nonblock(agent_fd);
}

void vmchan_release(struct vmchan *c)
{
	if (c->console_fd >= 0)
		close(c->console_fd);
	if (c->agent_fd >= 0)
		close(c->agent_fd);
	c->console_fd = c->agent_fd = -1;
	proto_reader_release(&c->agent_rd);
	if (c->have_reply)
		proto_msg_release(&c->reply);
	c->have_reply = 0;
	json_object_put(c->ready);
	c->ready = NULL;
	if (c->console_log_fd >= 0)
		close(c->console_log_fd);
	if (c->agent_log_fd >= 0)
		close(c->agent_log_fd);
	c->console_log_fd = c->agent_log_fd = -1;
}

void vmchan_log(struct vmchan *c, const char *dir, const char *line, size_t len)
{
	char head[48];
	int n;

	if (c->agent_log_fd < 0)
		return;
	n = snprintf(head, sizeof(head), "%9.3f %s ", (double)(now_ms() - c->t0) / 1000.0, dir);
	if ((write_all(c->agent_log_fd, head, (size_t)n) < 0 ||
	     write_all(c->agent_log_fd, line, len) < 0 ||
	     write_all(c->agent_log_fd, "\n", 1) < 0) && !c->log_errno)
		c->log_errno = errno;
}

static void handle_agent_line(struct vmchan *c, const char *line, size_t len)
{
	struct proto_msg m;
	char err[128];

	vmchan_log(c, "<", line, len);
	if (proto_parse(line, len, &m, err, sizeof(err)) < 0) {
		char note[256];
		int n = snprintf(note, sizeof(note), "unparsable agent line dropped: %s", err);
		c->malformed++;
		vmchan_log(c, "!", note, (size_t)n);
		return;
	}
	if (m.kind == PROTO_EVENT) {
		if (!strcmp(m.event, "ready") && !c->ready)
			c->ready = json_object_get(m.obj);
		proto_msg_release(&m);
		return;
	}
	if (m.kind == PROTO_REPLY && c->want_id && m.id == c->want_id && !c->have_reply) {
		c->reply = m;
		c->have_reply = 1;
		return;
	}
	proto_msg_release(&m); /* a late reply to a request already given up on */
}

/* Reads what one channel holds: how many bytes (0 on EOF, which closes it, or nothing). */
static ssize_t read_channel(struct vmchan *c, int *fd)
{
	char buf[16384];
	ssize_t n = read(*fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return 0;
	}
	if (fd == &c->console_fd) {
		if (c->console_log_fd >= 0 && write_all(c->console_log_fd, buf, (size_t)n) < 0 &&
		    !c->log_errno)
			c->log_errno = errno;
		if (c->cfg->on_console)
			c->cfg->on_console(c->cfg->ctx, buf, (size_t)n);
		return n;
	}
	size_t off = 0;
	const char *line;
	size_t len;

	c->last_agent_ms = now_ms();
	while (off < (size_t)n) {
		off += proto_reader_feed(&c->agent_rd, buf + off, (size_t)n - off);
		while (proto_reader_next(&c->agent_rd, &line, &len) == 1)
			handle_agent_line(c, line, len);
	}
	return n;
}

enum { MAX_BE_FDS = 4 };

/* One round of poll over the channels, the stop descriptor and the backend's own; returns
 * after at most ms. */
static enum vm_wait_result pump_once(struct vmchan *c, unsigned ms)
{
	struct pollfd p[3 + MAX_BE_FDS];
	int n = 0, nbe, r, stop = 0, trickle = 0;
	int i_console = -1, i_stop = -1;
	unsigned cap = ms;

	if (c->console_fd >= 0) {
		p[n] = (struct pollfd){ c->console_fd, POLLIN, 0 };
		i_console = n++;
	}
	if (c->agent_fd >= 0) {
		p[n++] = (struct pollfd){ c->agent_fd, POLLIN, 0 };
	}
	if (c->cfg->stop_fd >= 0) {
		p[n] = (struct pollfd){ c->cfg->stop_fd, POLLIN, 0 };
		i_stop = n++;
	}
	nbe = c->hooks->fds(c->be, p + n, MAX_BE_FDS, &cap);
	if (cap < ms)
		ms = cap;
	r = poll(p, (nfds_t)(n + nbe), (int)ms);
	if (r < 0 && errno != EINTR)
		return VM_BROKEN;
	for (int i = 0; r > 0 && i < n + nbe; i++) {
		if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
			continue;
		if (i >= n) {
			c->hooks->event(c->be, &p[i]);
			continue;
		}
		if (i == i_stop) {
			stop = 1; /* after the channels: what they hold is still read */
			continue;
		}
		int *fd = i == i_console ? &c->console_fd : &c->agent_fd;
		if (p[i].revents & POLLNVAL) {
			*fd = -1; /* a descriptor that is not open: never poll it again */
			continue;
		}
		ssize_t got = read_channel(c, fd);
		if (i == i_console && got > 0 && got < 512)
			trickle = 1;
	}
	c->hooks->ended(c->be);
	/* QEMU's serial port hands over the console a byte or a few at a time: under a console
	 * flood, reading each one costs a syscall round per byte. Waiting a moment lets them
	 * gather (the socket buffers them). 1 ms: longer throttles the guest's serial output (5 ms
	 * cut it from 175 to 51 KB/s under TCG), shorter brings back the per-byte cost. */
	if (trickle && !stop)
		sleep_ms(1);
	return stop ? VM_STOPPED : VM_OK;
}

enum vm_wait_result vmchan_wait(struct vmchan *c, unsigned timeout_ms, int (*done)(void *arg),
				void *arg, struct kerr *e, const char *what)
{
	uint64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		if (done && done(arg))
			return VM_OK;
		if (c->hooks->ended(c->be)) {
			/* drain what the console and agent still hold (they reach EOF at once:
			 * the VM's descriptors closed before it ended) */
			for (uint64_t end = now_ms() + 1000;
			     (c->console_fd >= 0 || c->agent_fd >= 0) && now_ms() < end;)
				if (pump_once(c, 50) != VM_OK)
					break;
			if (done && done(arg))
				return VM_OK;
			kerr_set(e, "%s: %s ended: %s", what, c->what_ends, c->hooks->reason(c->be));
			return VM_GONE;
		}
		uint64_t now = now_ms(), wake = deadline;
		if (c->watch_since_ms && c->ready) {
			uint64_t since = c->last_agent_ms > c->watch_since_ms ? c->last_agent_ms :
					 c->watch_since_ms;
			if (now - since >= VM_HEARTBEAT_LOST_MS) {
				kerr_set(e, "%s: heartbeat lost: nothing from the agent for %.1f s", what,
					 (now - since) / 1000.0);
				return VM_TIMEOUT;
			}
			/* the loop's timers: the deadline, and the moment the heartbeat is lost */
			if (since + VM_HEARTBEAT_LOST_MS < wake)
				wake = since + VM_HEARTBEAT_LOST_MS;
		}
		if (now >= deadline) {
			if (!done)
				return VM_OK;
			kerr_set(e, "%s: no answer within %.1f s", what, timeout_ms / 1000.0);
			return VM_TIMEOUT;
		}
		enum vm_wait_result r = pump_once(c, (unsigned)(wake - now));
		if (r == VM_STOPPED) {
			kerr_set(e, "%s: interrupted", what);
			return r;
		}
		if (r == VM_BROKEN) {
			kerr_errno(e, "%s: poll", what);
			return r;
		}
	}
}

static int have_ready(void *arg)
{
	return ((struct vmchan *)arg)->ready != NULL;
}

static int have_reply(void *arg)
{
	return ((struct vmchan *)arg)->have_reply;
}

enum vm_wait_result vmchan_wait_ready(struct vmchan *c, unsigned timeout_ms, json_object **ready,
				      struct kerr *e)
{
	enum vm_wait_result r = vmchan_wait(c, timeout_ms, have_ready, c, e,
					    "waiting for the agent");

	if (r == VM_OK && ready)
		*ready = json_object_get(c->ready);
	return r;
}

/* A channel that broke: the VM's end if it is ending (VM_GONE, e says why), else VM_BROKEN. */
static enum vm_wait_result broken(struct vmchan *c)
{
	c->hooks->settle(c->be);
	return c->hooks->ended(c->be) ? VM_GONE : VM_BROKEN;
}

enum vm_wait_result vmchan_agent_call(struct vmchan *c, const char *op, json_object *args,
				      unsigned timeout_ms, struct proto_msg *reply,
				      struct kerr *e)
{
	size_t len;
	int64_t id = c->next_id++;
	char *line = proto_request(id, op, args, &len);
	enum vm_wait_result r;
	char what[96];

	memset(reply, 0, sizeof(*reply));
	if (!line) {
		kerr_set(e, "agent request %s is larger than the protocol allows", op);
		return VM_BROKEN;
	}
	if (c->agent_fd < 0) {
		free(line);
		r = broken(c);
		kerr_set(e, "agent %s: channel closed%s%s%s%s", op, r == VM_GONE ? ": " : "",
			 r == VM_GONE ? c->what_ends : "", r == VM_GONE ? " ended: " : "",
			 r == VM_GONE ? c->hooks->reason(c->be) : "");
		return r;
	}
	vmchan_log(c, ">", line, len - 1);
	c->want_id = id;
	c->have_reply = 0;
	if (send_all(c->agent_fd, line, len, timeout_ms) < 0) {
		int saved = errno;
		free(line);
		c->want_id = 0;
		if (saved == ETIMEDOUT) {
			kerr_set(e, "agent %s: the guest takes no input (channel full for %u ms)", op,
				 timeout_ms);
			return VM_TIMEOUT;
		}
		r = broken(c);
		errno = saved;
		kerr_errno(e, "agent %s: cannot send", op);
		return r;
	}
	free(line);
	snprintf(what, sizeof(what), "agent request '%s'", op);
	c->watch_since_ms = now_ms();
	r = vmchan_wait(c, timeout_ms, have_reply, c, e, what);
	c->watch_since_ms = 0;
	c->want_id = 0;
	if (r == VM_OK) {
		*reply = c->reply;
		memset(&c->reply, 0, sizeof(c->reply));
	} else if (c->have_reply) {
		proto_msg_release(&c->reply); /* arrived with the stop: nobody takes it now */
	}
	c->have_reply = 0;
	return r;
}

int vmchan_console_send(struct vmchan *c, const char *buf, size_t len, unsigned timeout_ms)
{
	if (c->console_fd < 0) {
		errno = EPIPE;
		return -1;
	}
	return send_all(c->console_fd, buf, len, timeout_ms);
}

void vmchan_stats(const struct vmchan *c, uint64_t *oversized, uint64_t *malformed)
{
	*oversized = c->agent_rd.oversized;
	*malformed = c->malformed;
}
