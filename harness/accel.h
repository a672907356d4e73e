/* accel.h: which accelerator a cell's VM gets, decided by trying, not by opening /dev/kvm.
 *
 * A /dev/kvm that opens says nothing about whether KVM can run a distro kernel: a paravirtual
 * KVM host (kvm_pvm) makes QEMU 7.2 abort at once ("failed to set MSR 0x10a"), and with
 * -cpu host,-arch-capabilities it starts a guest that never prints. So for `accel: auto` and
 * `accel: kvm` the kernel is booted once under KVM, without an initramfs, and KVM counts as
 * usable only when the kernel's banner ("Linux version") reaches the serial console within a
 * few seconds. When QEMU aborts on MSR 0x10a (nested-KVM CI runners with QEMU 7.x do), the
 * trial is repeated with -cpu host,-arch-capabilities before giving up. Otherwise TCG.
 *
 * The decision and its reason are cached under <cache>/accel/, keyed by the host (boot id and
 * host name), the QEMU binary (path, size, mtime) and the kernel image's content, so a run pays
 * for a trial at most once per kernel and later runs on the same boot of the host not at all.
 * Parallel cells on one kernel take a lock: one runs the trial, the others read its result.
 */
#ifndef KLPQ_ACCEL_H
#define KLPQ_ACCEL_H

#include <stdint.h>
#include "scenario.h"
#include "util.h"

#define ACCEL_TRIAL_MS 10000 /* the banner's deadline in one trial boot */

struct accel_choice {
	char accel[8];      /* "kvm" or "tcg" */
	char cpu[48];       /* QEMU's -cpu: "host", "host,-arch-capabilities" or "max" */
	char reason[512];   /* why, one line: "KVM unusable: QEMU aborted: failed to set MSR ..." */
	int cached;         /* taken from an earlier trial (this run or an earlier one) */
	uint64_t trial_ms;  /* what this call's trials cost (0 when cached or none ran) */
	char warning[256];  /* "" or what went wrong without changing the choice (the cache) */
};

struct accel_opts {
	const char *qemu;      /* NULL: vm_qemu_binary() */
	const char *kvm_dev;   /* NULL: /dev/kvm */
	const char *cache_dir; /* klpq's cache (entries go to its accel/); NULL: no cache */
	unsigned trial_ms;     /* 0: ACCEL_TRIAL_MS */
	int stop_fd;           /* readable -> give up (Ctrl-C); -1: none */
	const char *kernel_sha256; /* the image's SHA-256 when the caller has it; NULL: read it */
	const char *remote;    /* a remote libvirt host's name: no trial from here (the libvirt
				* backend decides by its labels), or NULL */
	int remote_kvm;        /* that host has the label kvm (pool.h) */
};

/* Decides for a VM booting vmlinuz. 0 with *c filled (for ACCEL_TCG at once). -1 with e set
 * when the scenario asks for KVM and KVM cannot run this kernel (the message says why), when
 * stopped, or when QEMU cannot be run at all. */
int accel_decide(enum accel_kind want, const char *vmlinuz, const struct accel_opts *o,
		 struct accel_choice *c, struct kerr *e);

#endif
