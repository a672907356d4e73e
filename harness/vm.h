/* vm.h: what a cell needs of a VM, whatever runs it: the backend seam.
 *
 * A backend (struct vm_backend) starts a guest from a boot spec (struct vm_config: kernel,
 * initrd, command line, memory, vCPUs, accelerator, log files), carries its serial console
 * and the agent's channel, powers it off or kills it, says why it ended and dumps a hung
 * guest's state. It also owns what only it knows: the kernel command line its channels need,
 * the modules the guest loads before the agent can talk, and how the accelerator is chosen.
 * The cell flow (runner.c, cell-*.c) calls the vm_*() functions below and knows no backend.
 *
 * Backends: "qemu" (vm-qemu.c, the embedded default: klpq spawns qemu-system-x86_64 itself,
 * no daemon) and "libvirt" (vm-libvirt.c: a transient domain on vm.uri, by default libvirt's
 * embedded QEMU driver, again no daemon). A new backend is one file defining a struct vm_backend and one line in vm.c's
 * table; a scenario picks it with vm.backend.
 */
#ifndef KLPQ_VM_H
#define KLPQ_VM_H

#include <json-c/json.h>
#include "proto.h"
#include "scenario.h"
#include "util.h"

struct vm_backend;

struct vm_config {
	const struct vm_backend *backend; /* NULL: vm_backend_default() */
	const char *name;
	const char *kernel;
	const char *initrd;
	const char *disk;         /* a qcow2 image the guest sees as /dev/vda (virtio), written
				   * in place (the cell's own overlay), or NULL: no disk */
	const char *cmdline;
	unsigned memory_mb;
	unsigned cpus;
	const char *accel;        /* "kvm" or "tcg" (accel_decide) */
	const char *cpu;          /* the CPU model for it (QEMU's -cpu) */
	int network;              /* 0: no network device at all */
	const char *console_log;  /* raw serial output */
	const char *agent_log;    /* every agent line, both ways, with time stamps */
	const char *qemu_log;     /* QEMU's own stdout/stderr (libvirt: the domain XML and
				   * QEMU's log) */
	const char *uri;          /* libvirt: the connection URI; NULL or "": the embedded
				   * driver on a root of the cell's own */
	const char *cache_dir;    /* klpq's cache (libvirt keeps QEMU's probed capabilities
				   * there), or NULL */
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

/* Every backend's VM begins with this. */
struct vm {
	const struct vm_backend *be;
};

/* vm_start's -1 variant (e set) when the backend refused the boot spec during start-up (a bad
 * option, an accelerator it cannot use): deterministic, the same spec fails again. The message
 * names how it ended and its first error line. */
#define VM_START_REFUSED (-2)
/* vm_start's -1 variant when the hypervisor host itself could not be reached (a libvirt
 * connection refused): the host's fault, not the boot spec's (pool.h). */
#define VM_START_NO_HOST (-3)

struct accel_opts;
struct accel_choice;

struct vm_backend {
	const char *name;                  /* the scenario's vm.backend */
	const char *guest_cmdline;         /* kernel command line its console needs */
	const char *const *boot_modules;   /* loaded by the guest before the agent's port opens */
	/* The accelerator for a VM booting kernel (accel.h); -1 with e set when want cannot be
	 * met. */
	int (*decide_accel)(enum accel_kind want, const char *kernel, const struct accel_opts *o,
			    struct accel_choice *c, struct kerr *e);
	int (*start)(const struct vm_config *cfg, struct vm **out, struct kerr *e);
	const char *(*accel)(const struct vm *vm);
	const char *(*version)(const struct vm *vm);
	enum vm_wait_result (*wait_ready)(struct vm *vm, unsigned timeout_ms, json_object **ready,
					  struct kerr *e);
	enum vm_wait_result (*agent_call)(struct vm *vm, const char *op, json_object *args,
					  unsigned timeout_ms, struct proto_msg *reply,
					  struct kerr *e);
	int (*dump)(struct vm *vm, struct sb *out, struct kerr *e);
	int (*alive)(struct vm *vm, unsigned timeout_ms);
	enum vm_wait_result (*pump)(struct vm *vm, unsigned ms, struct kerr *e);
	const char *(*exit_reason)(const struct vm *vm);
	int (*guest_reset)(const struct vm *vm);
	int (*host_ended)(const struct vm *vm);
	/* NULL, or why the connection to the VM's host was lost (libvirt); may be NULL */
	const char *(*host_lost)(const struct vm *vm);
	int (*log_errno)(const struct vm *vm);
	void (*channel_stats)(const struct vm *vm, uint64_t *oversized, uint64_t *malformed);
	void (*stop)(struct vm *vm, unsigned grace_ms);
	void (*destroy)(struct vm *vm);
};

extern const struct vm_backend vm_backend_qemu;
extern const struct vm_backend vm_backend_libvirt;

/* The backend named name, or NULL. */
const struct vm_backend *vm_backend_find(const char *name);
const struct vm_backend *vm_backend_default(void);
/* "qemu" or "qemu, libvirt": the names vm_backend_find knows, for error messages. */
const char *vm_backend_names(void);

/* The operations, on whichever backend runs vm. vm_start: 0; -1 with e set;
 * VM_START_REFUSED. */
int vm_start(const struct vm_config *cfg, struct vm **out, struct kerr *e);
const char *vm_accel(const struct vm *vm);
/* The backend's own version ("7.2.22" for QEMU). */
const char *vm_version(const struct vm *vm);
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
/* For a hung guest, before it is killed: the hypervisor's view (QEMU: QMP status and every
 * CPU's registers) into out, then magic SysRq t, w and l over the serial line (task states,
 * blocked tasks, CPU backtraces; they arrive on the console, a few seconds). 0, or -1 when the
 * hypervisor did not answer. */
int vm_dump(struct vm *vm, struct sb *out, struct kerr *e);
/* 1 when the hypervisor itself still answers (QEMU: QMP query-status) within timeout_ms: a
 * guest that stopped answering inside a live hypervisor is the guest's trouble; with the
 * hypervisor silent too, the infrastructure is stuck. */
int vm_alive(struct vm *vm, unsigned timeout_ms);
/* Processes I/O for ms milliseconds (a sleep that keeps draining the console). */
enum vm_wait_result vm_pump(struct vm *vm, unsigned ms, struct kerr *e);
/* Why the VM ended: "guest powered off", "guest reset (reboot or panic=-1)", "QEMU killed by
 * signal 9", ... or NULL while it runs. */
const char *vm_exit_reason(const struct vm *vm);
int vm_guest_reset(const struct vm *vm);    /* the guest asked for a reset/reboot */
/* 1 when the VM ended for a reason outside the guest (its process killed by a signal, told to
 * quit by its host) rather than by a guest power-off, reset or panic: an infrastructure
 * failure. */
int vm_host_ended(const struct vm *vm);
/* The first errno met writing console.log or agent.log (a full disk), or 0. */
int vm_log_errno(const struct vm *vm);
/* Why the connection to the VM's host broke while the VM ran (the libvirt backend's close
 * callback, its keepalive), or NULL: the host's fault, pool.h. */
const char *vm_host_lost(const struct vm *vm);
/* Agent-channel lines dropped so far: longer than the protocol bound, or not parsable. */
void vm_channel_stats(const struct vm *vm, uint64_t *oversized, uint64_t *malformed);
/* A host file into the running guest through the agent's `upload` op (docs/protocol.md), in
 * chunks of KLPQ_UPLOAD_CHUNK bytes, each with timeout_ms: how patch modules reach a guest
 * whose image was not built with them. VM_OK; or how it failed, e set (a refusal by the agent,
 * a file over KLPQ_UPLOAD_MAX or unreadable: VM_BROKEN). */
enum vm_wait_result vm_upload(struct vm *vm, const char *host_path, const char *guest_path,
			      unsigned mode, unsigned timeout_ms, struct kerr *e);
/* Orderly stop: agent poweroff, then the hypervisor's quit, then a kill; always reaps. */
void vm_stop(struct vm *vm, unsigned grace_ms);
void vm_destroy(struct vm *vm); /* stops if needed, frees, removes what it made */

#endif
