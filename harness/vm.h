/* vm.h: the VM backend. The only place that knows QEMU's command line.
 *
 * vm_start() spawns qemu-system-x86_64 itself (the embedded default: no daemon) with direct
 * kernel boot, the serial console, the agent's virtio-serial port and QMP each on a unix socket
 * that klpq listens on and QEMU connects to. QEMU gets PR_SET_PDEATHSIG(SIGKILL), so it dies
 * with klpq, and its own process group, so Ctrl-C reaches klpq only (which then stops it).
 * The accelerator and CPU model come from the caller (accel.c decides them by a trial boot).
 *
 * One poll loop (vm_pump) drains the console (written to console.log and handed to a callback,
 * the crash classifier), the agent channel (framed and parsed by proto.c, logged to agent.log)
 * and QMP events, and watches a stop descriptor (Ctrl-C) and QEMU's exit.
 */
#ifndef KLPQ_VM_H
#define KLPQ_VM_H

#include <json-c/json.h>
#include "proto.h"
#include "scenario.h"
#include "util.h"

struct vm_config {
	const char *name;
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned memory_mb;
	unsigned cpus;
	const char *accel;        /* "kvm" or "tcg" (accel_decide) */
	const char *cpu;          /* QEMU's -cpu model for it */
	int network;              /* 0: no network device at all */
	const char *console_log;  /* raw serial output */
	const char *agent_log;    /* every agent line, both ways, with time stamps */
	const char *qemu_log;     /* QEMU's own stdout/stderr */
	int stop_fd;              /* readable -> stop waiting (Ctrl-C); -1 for none */
	void (*on_console)(void *ctx, const char *buf, size_t len);
	void *ctx;
};

enum vm_wait_result {
	VM_OK = 0,
	VM_TIMEOUT = -1,     /* nothing in time; the VM still runs */
	VM_GONE = -2,        /* QEMU exited (see vm_exit_reason) */
	VM_STOPPED = -3,     /* the stop descriptor fired */
	VM_BROKEN = -4,      /* infrastructure error (message in kerr) */
};

struct vm;

/* The QEMU binary klpq runs: $KLPQ_QEMU or "qemu-system-x86_64". */
const char *vm_qemu_binary(void);
/* QEMU's first message line in text, without its "qemu-system-x86_64: " and "error: "
 * prefixes, at most 200 bytes, into out. */
void vm_qemu_message(const char *text, char *out, size_t len);

/* 0; -1 with e set; VM_START_REFUSED (e set) when QEMU itself exited during its start-up (a bad
 * option, an accelerator it cannot use): deterministic, the same command line fails again. The
 * message then names how QEMU ended and its first error line (the rest is in qemu_log). */
#define VM_START_REFUSED (-2)
/* The QEMU command line for cfg (a pure function, for tests too): accel "kvm" or "tcg", sock
 * the console, agent and QMP socket paths. The strings are owned by out (release it). */
struct qemu_argv {
	char *v[64];          /* NULL-terminated */
	size_t n;
};
void vm_qemu_argv(const struct vm_config *cfg, const char *accel, const char *const sock[3],
		  struct qemu_argv *out);
void vm_qemu_argv_release(struct qemu_argv *a);

int vm_start(const struct vm_config *cfg, struct vm **out, struct kerr *e);
const char *vm_accel(const struct vm *vm);
const char *vm_qemu_version(const struct vm *vm);
/* Waits for the agent's "ready" event. *ready (may be NULL) gets it (caller puts). */
enum vm_wait_result vm_wait_ready(struct vm *vm, unsigned timeout_ms, json_object **ready,
				  struct kerr *e);
/* The agent sends a heartbeat every 2 s, busy or idle: a request whose wait sees nothing at all
 * from it for this long ends early with VM_TIMEOUT ("heartbeat lost"), instead of at the end of
 * its budget. */
#define VM_HEARTBEAT_LOST_MS 10000
/* One request, one reply. Takes args. On VM_OK *reply holds the reply (release it). */
enum vm_wait_result vm_agent_call(struct vm *vm, const char *op, json_object *args,
				  unsigned timeout_ms, struct proto_msg *reply, struct kerr *e);
/* For a hung guest, before it is killed: QMP status and every CPU's registers into out, then
 * magic SysRq t, w and l over the serial line (task states, blocked tasks, CPU backtraces;
 * they arrive on the console, a few seconds). 0, or -1 when QMP did not answer. */
int vm_dump(struct vm *vm, struct sb *out, struct kerr *e);
/* 1 when QEMU itself still answers QMP (query-status) within timeout_ms: a guest that stopped
 * answering inside a live QEMU is the guest's trouble; with QMP silent too, QEMU is stuck. */
int vm_qmp_alive(struct vm *vm, unsigned timeout_ms);
/* Processes I/O for ms milliseconds (a sleep that keeps draining the console). */
enum vm_wait_result vm_pump(struct vm *vm, unsigned ms, struct kerr *e);
/* Why QEMU ended: "guest powered off", "guest reset (reboot or panic=-1)", "QEMU killed by
 * signal 9", ... or NULL while it runs. */
const char *vm_exit_reason(const struct vm *vm);
int vm_guest_reset(const struct vm *vm);    /* QEMU saw a reset/reboot request */
/* 1 when QEMU ended for a reason outside the guest (killed by a signal, told to quit by its
 * host) rather than by a guest power-off, reset or panic: an infrastructure failure. */
int vm_host_ended(const struct vm *vm);
/* The first errno met writing console.log or agent.log (a full disk), or 0. */
int vm_log_errno(const struct vm *vm);
/* Agent-channel lines dropped so far: longer than the protocol bound, or not parsable. */
void vm_channel_stats(const struct vm *vm, uint64_t *oversized, uint64_t *malformed);
/* Orderly stop: agent poweroff, then QMP quit, then SIGKILL; always reaps QEMU. */
void vm_stop(struct vm *vm, unsigned grace_ms);
void vm_destroy(struct vm *vm); /* stops if needed, frees, removes its socket folder */

#endif
