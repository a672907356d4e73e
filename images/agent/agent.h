/* agent.h: what the files of klpq-agent share (images/agent/; agent.c says what the agent is).
 *   agent.c           PID 1: the boot (mounts, boot modules, finding the port) and main()
 *   agent-util.c      clocks, I/O, diagnostics, power-off, small file and JSON helpers
 *   agent-port.c      the port: open, send, events, heartbeats, reaping
 *   agent-serve.c     the request loop: framing, the one dispatch table and its single reply path
 *   agent-livepatch.c modules, livepatch state and enable, sysctl
 *   agent-exec.c      running commands (probes) with bounded output and timeouts
 *   agent-kmsg.c      the kernel log: marks, records, taint
 *   agent-system.c    hello, tasks and their stacks, file reads, the clock, power-off requests
 */
#ifndef KLPQ_AGENT_H
#define KLPQ_AGENT_H

#include "proto.h"
#include "util.h" /* the host's I/O helpers, linked in: write_all, set_nonblock, sleep_ms */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AGENT_VERSION "klpq-agent 1"
#define PORT_NAME "org.klpq.agent"
#define VIRTIO_PORTS_DIR "/sys/class/virtio-ports"
#define BOOT_MODULES "/klpq/boot-modules"
#define LIVEPATCH_DIR "/sys/kernel/livepatch"
#define AGENT_PATH "/bin:/sbin:/usr/bin:/usr/sbin"

#define HEARTBEAT_MS 2000
#define PORT_WAIT_MS 15000     /* for the port to show up at boot */
#define REOPEN_MS 500          /* between attempts to reopen a lost port */
#define SEND_TIMEOUT_MS 5000   /* a host that stops reading must not freeze init */
#define KILL_GRACE_MS 5000     /* a probe stuck in D state may outlive SIGKILL */
#define MARK_WAIT_MS 1000

#define BOOT_LIST_MAX (64 * 1024)
#define EXEC_MAX_ARGS 256
#define EXEC_MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define EXEC_OUTPUT_MAX (16 * 1024)
#define MARK_TEXT_MAX 256
#define KMSG_RECORD_MAX 8192   /* the kernel's CONSOLE_EXT_LOG_MAX: a read never needs more */
#define KMSG_MAX_RECORDS 512
#define KMSG_MAX_TEXT (48 * 1024)
#define TASKS_MAX 64
#define STACK_MAX_LINES 32
#define PENDING_LOGS 16

/*
 * The protocol's own limits (16 KiB of output, 48 KiB of kmsg text, 64 tasks of 32 stack lines)
 * can add up to more than one KLPQ_PROTO_MAX_LINE once JSON escaping and the other members are
 * counted. These budgets bound the escaped size of what a reply carries, leaving room for the
 * envelope; hitting one sets "truncated" like the protocol's limits do.
 */
#define EXEC_OUTPUT_BUDGET (48 * 1024)
#define REPLY_BUDGET (KLPQ_PROTO_MAX_LINE - 1024)
#define KMSG_RECORD_OVERHEAD 40  /* {"seq":,"level":N,"ts_us":,"text":}, plus a comma */
#define TASK_OVERHEAD 160        /* {"pid":N,"tid":N,"comm":,"patch_state":N,"stack":[]} */

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

#define AGENT_FMT(a, b) __attribute__((format(printf, a, b)))

struct agent {
	int is_init;             /* PID 1 in the guest (not the host test mode) */
	int is_service;          /* --device: an ordinary service on a disk image's port device */
	const char *sock_path;   /* host test mode: unix socket to connect to */
	char port_dev[PATH_MAX]; /* guest: /dev/vportNpM */
	int console_fd;          /* diagnostics; -1: stderr */
	int port_fd;             /* -1 while the port is closed */
	int port_up;             /* "ready" went out on the current port */
	int said_waiting;        /* "host not connected" printed once per outage */
	int sig_fd;              /* signalfd for SIGCHLD: reaping happens in the poll loop */
	struct proto_reader rd;
	uint64_t next_beat;      /* CLOCK_MONOTONIC ms */
	uint64_t reopen_at;
	int poweroff;            /* set by do_poweroff: power off once its reply is out */
	/* Diagnostics from before the port opened, sent as "log" events once it has. */
	char pending[PENDING_LOGS][256];
	int npending;
};

/* One request being served: do_<op>() fills result or calls fail() once. */
struct req {
	struct agent *a;
	const char *op;
	json_object *args;   /* the whole request, borrowed */
	json_object *result; /* owned until the reply is built */
	int failed;
	int err_no;
	char error[512];     /* longer messages are cut: they are for people */
};

/* A child started by exec. */
struct probe {
	pid_t pid;
	int out_fd;          /* read end of the stdout+stderr pipe; -1 once closed */
	int exited;
	int status;
	int timed_out;
	int truncated;
	size_t out_len;
	char out[EXEC_OUTPUT_MAX];
};

/* agent-util.c */
void append(json_object *array, json_object *val);
void AGENT_FMT(2, 3) diag(struct agent *a, const char *fmt, ...);
void __attribute__((noreturn)) AGENT_FMT(2, 3) die(struct agent *a, const char *fmt, ...);
size_t digits(uint64_t v);
int is_number(const char *s);
size_t json_cost(const char *s, size_t len);
size_t json_fit(const char *s, size_t len, size_t budget);
uint64_t mono_ms(void);
int name_is_component(const char *name);
int AGENT_FMT(3, 4) path_fmt(char *buf, size_t size, const char *fmt, ...);
void __attribute__((noreturn)) power_off(struct agent *a);
void put(json_object *o, const char *key, json_object *val);
void put_bool(json_object *o, const char *key, int v);
void put_int(json_object *o, const char *key, int64_t v);
void put_str(json_object *o, const char *key, const char *s);
int read_int_file(const char *path, int64_t *out);
int read_text_file(const char *path, char *buf, size_t size, size_t *len);
void strip_newline(char *s);
uint64_t uptime_ms(void);
void vdiag(struct agent *a, const char *fmt, va_list ap);

/* agent-port.c */
void add_identity(json_object *o);
void heartbeat_if_due(struct agent *a);
int ms_until(uint64_t when);
void AGENT_FMT(2, 3) note(struct agent *a, const char *fmt, ...);
void port_close(struct agent *a, const char *why);
int port_open(struct agent *a);
int port_send(struct agent *a, const char *line, size_t len);
void reap(struct agent *a, struct probe *pr);
int send_line(struct agent *a, char *line, size_t len, const char *what);
void AGENT_FMT(2, 3) send_log(struct agent *a, const char *fmt, ...);

/* agent-serve.c */
int arg_int(struct req *rq, const char *key, int64_t min, int64_t max, int def_ok,
	    int64_t def, int64_t *out);
const char *arg_str(struct req *rq, const char *key);
int AGENT_FMT(3, 4) fail(struct req *rq, int err_no, const char *fmt, ...);
int AGENT_FMT(2, 3) fail_errno(struct req *rq, const char *fmt, ...);
void __attribute__((noreturn)) serve(struct agent *a);

/* agent-livepatch.c */
int do_load(struct req *rq);
int do_lp_enable(struct req *rq);
int do_lp_state(struct req *rq);
int do_sysctl(struct req *rq);
int do_unload(struct req *rq);
int load_module(const char *path, const char *params);

/* agent-exec.c */
int do_exec(struct req *rq);

/* agent-kmsg.c */
int do_kmsg(struct req *rq);
int do_mark(struct req *rq);
int do_taint(struct req *rq);

/* agent-system.c */
int do_hello(struct req *rq);
int do_now(struct req *rq);
int do_poweroff(struct req *rq);
int do_read(struct req *rq);
int do_tasks(struct req *rq);

/* agent-files.c */
int do_upload(struct req *rq);

/* agent.c */
void boot(struct agent *a);

#endif
