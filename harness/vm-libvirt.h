/* vm-libvirt.h: the libvirt backend's own helpers (its struct vm_backend is vm_backend_libvirt,
 * vm.h). The unit tests use them; the cell flow does not. */
#ifndef KLPQ_VM_LIBVIRT_H
#define KLPQ_VM_LIBVIRT_H

#include <sys/types.h>
#include "vm.h"

/* The agent's virtio-serial port, as the QEMU backend names it (vm-qemu-argv.c). */
#define VM_LIBVIRT_AGENT_PORT "org.klpq.agent"
/* The namespace of klpq's <metadata> element in a domain's XML. */
#define VM_LIBVIRT_NS "https://klpq.invalid/xmlns/owner/1"
/* Every domain klpq makes is named "klpq-..." (the sweep looks at no other). */
#define VM_LIBVIRT_PREFIX "klpq-"

/* Who made a domain: the klpq process (its pid and start time in clock ticks since boot,
 * /proc/PID/stat field 22, so a reused pid is not taken for it), the host's boot and name. */
struct vm_libvirt_owner {
	pid_t pid;
	unsigned long long start_ticks;
	char boot_id[40];
	char host[64];
};

/* The owner record of this process. */
void vm_libvirt_owner_self(struct vm_libvirt_owner *o);
/* 1 when the process an owner record names is gone (on this host, this boot): its domains are
 * leftovers. 0 while it runs, and for a record of another host. */
int vm_libvirt_owner_gone(const struct vm_libvirt_owner *o);
/* Reads the owner record from a domain's <metadata> XML; 0, or -1 when it is not one. */
int vm_libvirt_owner_parse(const char *xml, struct vm_libvirt_owner *o);

/* The transient domain's XML for cfg (a pure function, for tests too): direct kernel boot,
 * ACPI, every end of the guest ends the domain, the console on a pty and the agent's port on
 * a unix socket (both reached as streams over the connection). */
void vm_libvirt_domain_xml(const struct vm_config *cfg, const char *accel, const char *name,
			   const struct vm_libvirt_owner *owner, struct sb *out);

/* A health-check domain's XML (no kernel, no disk: the firmware waits). */
void vm_libvirt_health_xml(const char *name, const struct vm_libvirt_owner *owner,
			   struct sb *out);
/* A pool host's health check: connects to uri, starts the health-check domain, sees it
 * running, destroys it. 0, or -1 with e saying what failed. */
int vm_libvirt_health(const char *uri, struct kerr *e);

/* The URI a scenario without vm.uri gets: libvirt's embedded QEMU driver in a folder of its
 * own under cache_dir (no daemon). Owned by the caller. */
char *vm_libvirt_default_uri(const char *cache_dir);

#endif
