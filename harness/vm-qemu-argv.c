/* vm-qemu-argv.c: the QEMU backend's command line (vm-qemu.h): which binary, its first error
 * message, and vm_qemu_argv, a pure function the unit tests call without starting anything. */
#define _GNU_SOURCE
#include "vm-qemu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *vm_qemu_binary(void)
{
	const char *q = getenv("KLPQ_QEMU");
	return q && *q ? q : "qemu-system-x86_64";
}

void vm_qemu_message(const char *text, char *out, size_t len)
{
	const char *p = text, *nl, *colon;
	size_t n;

	while (*p == '\n')
		p++;
	nl = strchr(p, '\n');
	n = nl ? (size_t)(nl - p) : strlen(p);
	colon = memmem(p, n, ": ", 2);
	if (colon && !memchr(p, ' ', (size_t)(colon - p))) { /* "qemu-system-x86_64: " */
		n -= (size_t)(colon + 2 - p);
		p = colon + 2;
	}
	if (n >= 7 && !strncmp(p, "error: ", 7)) {
		p += 7;
		n -= 7;
	}
	snprintf(out, len, "%.*s", (int)(n < 200 ? n : 200), p);
}

void vm_qemu_argv(const struct vm_config *cfg, const char *accel, const char *const sock[3],
		  struct qemu_argv *out)
{
	static const char *const id[3] = { "con", "agent", "qmp" };
	size_t n = 0;

#define ARG(x) (out->v[n++] = xstrdup(x))
	memset(out, 0, sizeof(*out));
	ARG(vm_qemu_binary());
	ARG("-name");
	ARG(cfg->name);
	/* q35, not microvm: microvm lacks the HPET/PM timer the 6.1 kernels fall back on and
	 * hung in early boot in 4 of 24 TCG boots (field notes). */
	ARG("-machine");
	out->v[n++] = xasprintf("q35,accel=%s", accel);
	ARG("-cpu");
	ARG(cfg->cpu && *cfg->cpu ? cfg->cpu : strcmp(accel, "kvm") ? "max" : "host");
	ARG("-m");
	out->v[n++] = xasprintf("%u", cfg->memory_mb);
	ARG("-smp");
	out->v[n++] = xasprintf("%u", cfg->cpus);
	ARG("-nodefaults");
	ARG("-no-user-config");
	ARG("-display");
	ARG("none");
	ARG("-no-reboot"); /* a reboot (panic=-1, triple fault) ends QEMU: never a loop */
	ARG("-kernel");
	ARG(cfg->kernel);
	ARG("-initrd");
	ARG(cfg->initrd);
	ARG("-append");
	ARG(cfg->cmdline);
	for (int ch = 0; ch < 3; ch++) {
		ARG("-chardev");
		out->v[n++] = xasprintf("socket,id=%s,path=%s", id[ch], sock[ch]);
		if (ch == 0) {
			ARG("-serial");
			ARG("chardev:con");
			ARG("-device");
			ARG("virtio-serial-pci,id=vser0");
		} else if (ch == 1) {
			ARG("-device");
			ARG("virtserialport,bus=vser0.0,chardev=agent,name=org.klpq.agent");
		} else {
			ARG("-mon");
			ARG("chardev=qmp,mode=control");
		}
	}
	if (cfg->disk && *cfg->disk) {
		/* the cell's own overlay: writeback, not unsafe, so that a killed QEMU still leaves
		 * a disk the post-mortem can read; a comma in the path is doubled for QEMU */
		struct sb d = SB_INIT;

		sb_adds(&d, "file=");
		for (const char *c = cfg->disk; *c; c++) {
			if (*c == ',')
				sb_addch(&d, ',');
			sb_addch(&d, *c);
		}
		sb_adds(&d, ",if=virtio,format=qcow2,cache=writeback");
		ARG("-drive");
		out->v[n++] = sb_detach(&d, NULL);
	}
	ARG("-nic");
	ARG(cfg->network ? "user,model=virtio-net-pci" : "none");
#undef ARG
	out->n = n;
}

void vm_qemu_argv_release(struct qemu_argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	memset(a, 0, sizeof(*a));
}
