/* vm-qemu.h: the QEMU backend's own helpers (its struct vm_backend is vm_backend_qemu, vm.h).
 * accel.c's trial boots and the unit tests use them; the cell flow does not. */
#ifndef KLPQ_VM_QEMU_H
#define KLPQ_VM_QEMU_H

#include "vm.h"

/* The QEMU binary klpq runs: $KLPQ_QEMU or "qemu-system-x86_64". */
const char *vm_qemu_binary(void);
/* QEMU's first message line in text, without its "qemu-system-x86_64: " and "error: "
 * prefixes, at most 200 bytes, into out. */
void vm_qemu_message(const char *text, char *out, size_t len);

/* The QEMU command line for cfg (a pure function, for tests too): accel "kvm" or "tcg", sock
 * the console, agent and QMP socket paths. The strings are owned by out (release it). */
struct qemu_argv {
	char *v[64];          /* NULL-terminated */
	size_t n;
};
void vm_qemu_argv(const struct vm_config *cfg, const char *accel, const char *const sock[3],
		  struct qemu_argv *out);
void vm_qemu_argv_release(struct qemu_argv *a);

#endif
