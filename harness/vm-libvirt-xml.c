/* vm-libvirt-xml.c: the libvirt backend's domain XML (vm-libvirt.h), a pure function. */
#include "vm-libvirt.h"

#include <stdio.h>
#include <string.h>

/* Text for an XML attribute or element: the five markup characters escaped. */
static void xml_text(struct sb *o, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': sb_adds(o, "&amp;"); break;
		case '<': sb_adds(o, "&lt;"); break;
		case '>': sb_adds(o, "&gt;"); break;
		case '"': sb_adds(o, "&quot;"); break;
		case '\'': sb_adds(o, "&apos;"); break;
		default: sb_addch(o, *s);
		}
	}
}

void vm_libvirt_domain_xml(const struct vm_config *cfg, const char *accel, const char *name,
			   const struct vm_libvirt_owner *owner, struct sb *out)
{
	int kvm = accel && !strcmp(accel, "kvm");

	sb_addf(out, "<domain type='%s'>\n  <name>", kvm ? "kvm" : "qemu");
	xml_text(out, name);
	sb_adds(out, "</name>\n");
	/* who made it: the sweep of a later run destroys a domain whose klpq is gone */
	sb_addf(out, "  <metadata>\n    <klpq:owner xmlns:klpq='" VM_LIBVIRT_NS "' pid='%ld' "
		"start='%llu' boot='", (long)owner->pid, (unsigned long long)owner->start_ticks);
	xml_text(out, owner->boot_id);
	sb_adds(out, "' host='");
	xml_text(out, owner->host);
	sb_adds(out, "'/>\n  </metadata>\n");
	sb_addf(out, "  <memory unit='MiB'>%u</memory>\n  <vcpu>%u</vcpu>\n", cfg->memory_mb,
		cfg->cpus);
	sb_adds(out, "  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <kernel>");
	xml_text(out, cfg->kernel);
	sb_adds(out, "</kernel>\n    <initrd>");
	xml_text(out, cfg->initrd);
	sb_adds(out, "</initrd>\n    <cmdline>");
	xml_text(out, cfg->cmdline);
	sb_adds(out, "</cmdline>\n  </os>\n");
	/* ACPI: a guest's power-off ends the domain (without it the guest halts and the
	 * domain's QEMU lives on, field notes) */
	sb_adds(out, "  <features><acpi/></features>\n");
	if (cfg->cpu && *cfg->cpu && strcmp(cfg->cpu, "max") && strcmp(cfg->cpu, "host")) {
		sb_adds(out, "  <cpu mode='custom' match='exact'><model fallback='forbid'>");
		xml_text(out, cfg->cpu);
		sb_adds(out, "</model></cpu>\n");
	} else {
		sb_addf(out, "  <cpu mode='%s'/>\n", kvm ? "host-passthrough" : "maximum");
	}
	/* a reboot (panic=-1, a triple fault) ends the domain, as QEMU's -no-reboot: never a
	 * loop */
	sb_adds(out, "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n"
		     "  <on_crash>destroy</on_crash>\n  <devices>\n");
	/* the console and the agent's port: streams over the connection (virDomainOpenConsole,
	 * virDomainOpenChannel, which wants a unix socket on the host's side) */
	sb_adds(out, "    <serial type='pty'><target port='0'/></serial>\n"
		     "    <console type='pty'><target type='serial' port='0'/></console>\n"
		     "    <channel type='unix'><source mode='bind'/>"
		     "<target type='virtio' name='" VM_LIBVIRT_AGENT_PORT "'/></channel>\n"
		     "    <controller type='usb' model='none'/>\n"
		     "    <memballoon model='none'/>\n");
	if (cfg->disk && *cfg->disk) {
		/* the cell's own overlay as /dev/vda; writeback as with backend qemu */
		sb_adds(out, "    <disk type='file' device='disk'><driver name='qemu' type='qcow2' "
			     "cache='writeback'/><source file='");
		xml_text(out, cfg->disk);
		sb_adds(out, "'/><target dev='vda' bus='virtio'/></disk>\n");
	}
	if (cfg->network)
		sb_adds(out, "    <interface type='user'><model type='virtio'/></interface>\n");
	sb_adds(out, "  </devices>\n</domain>\n");
}

void vm_libvirt_health_xml(const char *name, const struct vm_libvirt_owner *owner, struct sb *out)
{
	/* no kernel, no disk: the firmware finds nothing to boot and waits, which is enough to
	 * show the host starts domains */
	sb_adds(out, "<domain type='qemu'>\n  <name>");
	xml_text(out, name);
	sb_addf(out, "</name>\n  <metadata>\n    <klpq:owner xmlns:klpq='" VM_LIBVIRT_NS "' "
		"pid='%ld' start='%llu' boot='", (long)owner->pid,
		(unsigned long long)owner->start_ticks);
	xml_text(out, owner->boot_id);
	sb_adds(out, "' host='");
	xml_text(out, owner->host);
	sb_adds(out, "'/>\n  </metadata>\n  <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n"
		     "  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n  </os>\n"
		     "  <features><acpi/></features>\n"
		     "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n"
		     "  <on_crash>destroy</on_crash>\n  <devices>\n"
		     "    <controller type='usb' model='none'/>\n"
		     "    <memballoon model='none'/>\n  </devices>\n</domain>\n");
}
