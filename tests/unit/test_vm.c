/* test_vm.c: the QEMU command line (vm_qemu_argv) and libvirt's domain XML
 * (vm_libvirt_domain_xml), built without starting anything; the backend table. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm-libvirt.h"
#include "vm-qemu.h"

/* The value after option opt (its first occurrence), or NULL. */
static const char *after(const struct qemu_argv *a, const char *opt)
{
	for (size_t i = 0; i + 1 < a->n; i++)
		if (!strcmp(a->v[i], opt))
			return a->v[i + 1];
	return NULL;
}

static size_t count(const struct qemu_argv *a, const char *opt)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n; i++)
		n += !strcmp(a->v[i], opt);
	return n;
}

static const char *const socks[3] = { "/s/console.sock", "/s/agent.sock", "/s/qmp.sock" };

static struct vm_config cfg_base(void)
{
	struct vm_config c;

	memset(&c, 0, sizeof(c));
	c.name = "6.1.0-56-amd64_demo";
	c.kernel = "/k/vmlinuz";
	c.initrd = "/t/initramfs.cpio";
	c.cmdline = "console=ttyS0,115200 panic=-1 dyndbg=\"file kernel/livepatch/* +p\"";
	c.memory_mb = 1024;
	c.cpus = 2;
	return c;
}

START_TEST(test_argv_tcg)
{
	struct vm_config c = cfg_base();
	struct qemu_argv a;

	unsetenv("KLPQ_QEMU");
	vm_qemu_argv(&c, "tcg", socks, &a);
	ck_assert_ptr_null(a.v[a.n]);
	ck_assert_str_eq(a.v[0], "qemu-system-x86_64");
	ck_assert_str_eq(after(&a, "-name"), "6.1.0-56-amd64_demo");
	ck_assert_str_eq(after(&a, "-machine"), "q35,accel=tcg");
	ck_assert_str_eq(after(&a, "-cpu"), "max");
	ck_assert_str_eq(after(&a, "-m"), "1024");
	ck_assert_str_eq(after(&a, "-smp"), "2");
	ck_assert_str_eq(after(&a, "-kernel"), "/k/vmlinuz");
	ck_assert_str_eq(after(&a, "-initrd"), "/t/initramfs.cpio");
	/* the command line is one argument, quotes and spaces as they are */
	ck_assert_str_eq(after(&a, "-append"), c.cmdline);
	ck_assert_uint_eq(count(&a, "-no-reboot"), 1);
	ck_assert_uint_eq(count(&a, "-nodefaults"), 1);
	ck_assert_uint_eq(count(&a, "-chardev"), 3);
	ck_assert_str_eq(after(&a, "-chardev"), "socket,id=con,path=/s/console.sock");
	ck_assert_str_eq(after(&a, "-serial"), "chardev:con");
	ck_assert_str_eq(after(&a, "-mon"), "chardev=qmp,mode=control");
	ck_assert_str_eq(after(&a, "-nic"), "none");
	{
		int agent = 0, qmp = 0;

		for (size_t i = 0; i < a.n; i++) {
			agent |= !strcmp(a.v[i], "socket,id=agent,path=/s/agent.sock");
			qmp |= !strcmp(a.v[i], "socket,id=qmp,path=/s/qmp.sock");
		}
		ck_assert(agent && qmp);
	}
	ck_assert_uint_eq(count(&a, "-drive"), 0);
	vm_qemu_argv_release(&a);
	ck_assert_uint_eq(a.n, 0);

	/* a disk guest: its overlay on virtio, a comma in its path doubled */
	c.disk = "/w/a,b.qcow2";
	vm_qemu_argv(&c, "tcg", socks, &a);
	ck_assert_str_eq(after(&a, "-drive"), "file=/w/a,,b.qcow2,if=virtio,format=qcow2,"
			 "cache=writeback");
	vm_qemu_argv_release(&a);
}
END_TEST

START_TEST(test_argv_kvm_cpu_network)
{
	struct vm_config c = cfg_base();
	struct qemu_argv a;

	setenv("KLPQ_QEMU", "/opt/qemu/bin/qemu-system-x86_64", 1);
	vm_qemu_argv(&c, "kvm", socks, &a);
	ck_assert_str_eq(a.v[0], "/opt/qemu/bin/qemu-system-x86_64");
	ck_assert_str_eq(after(&a, "-machine"), "q35,accel=kvm");
	ck_assert_str_eq(after(&a, "-cpu"), "host");
	vm_qemu_argv_release(&a);
	/* the accelerator trial's CPU model wins (a nested-KVM host without arch-capabilities) */
	c.cpu = "host,-arch-capabilities";
	c.network = 1;
	c.memory_mb = 512;
	c.cpus = 1;
	vm_qemu_argv(&c, "kvm", socks, &a);
	ck_assert_str_eq(after(&a, "-cpu"), "host,-arch-capabilities");
	ck_assert_str_eq(after(&a, "-nic"), "user,model=virtio-net-pci");
	ck_assert_str_eq(after(&a, "-m"), "512");
	ck_assert_str_eq(after(&a, "-smp"), "1");
	vm_qemu_argv_release(&a);
	unsetenv("KLPQ_QEMU");
}
END_TEST

/* The backend table: names a scenario can give, and what the QEMU backend owns. */
START_TEST(test_backends)
{
	const struct vm_backend *q = vm_backend_find("qemu");
	int virtio_console = 0;

	ck_assert_ptr_eq(q, &vm_backend_qemu);
	ck_assert_ptr_eq(vm_backend_default(), q);
	ck_assert_ptr_null(vm_backend_find("xen"));
	ck_assert_ptr_null(vm_backend_find(""));
	ck_assert_ptr_nonnull(strstr(vm_backend_names(), "qemu"));
	ck_assert_str_eq(q->name, "qemu");
	ck_assert_ptr_nonnull(strstr(q->guest_cmdline, "console=ttyS0"));
	for (const char *const *m = q->boot_modules; *m; m++)
		virtio_console |= !strcmp(*m, "virtio_console");
	ck_assert_int_eq(virtio_console, 1);
	/* every operation is there: vm.c calls them without asking */
	ck_assert_ptr_eq(vm_backend_find("libvirt"), &vm_backend_libvirt);
	ck_assert_ptr_nonnull(strstr(vm_backend_names(), "libvirt"));
	for (const struct vm_backend *b = q; b; b = b == q ? &vm_backend_libvirt : NULL)
		ck_assert_msg(b->decide_accel && b->start && b->accel && b->version &&
			      b->wait_ready && b->agent_call && b->dump && b->alive && b->pump &&
			      b->exit_reason && b->guest_reset && b->host_ended && b->log_errno &&
			      b->channel_stats && b->stop && b->destroy && b->guest_cmdline &&
			      b->boot_modules, "backend %s lacks an operation", b->name);
}
END_TEST

/* The domain XML: direct kernel boot, every end of the guest ends the domain, the console on
 * a pty and the agent on a unix channel (what virDomainOpenConsole / OpenChannel accept),
 * the owner for the sweep, and text escaped. */
START_TEST(test_libvirt_xml)
{
	struct vm_config c = cfg_base();
	struct vm_libvirt_owner o = { 4242, 123456, "b00t-1d", "host<1>" }, back;
	struct sb x = SB_INIT;

	vm_libvirt_domain_xml(&c, "tcg", "klpq-4242-cell", &o, &x);
	ck_assert_ptr_nonnull(strstr(x.buf, "<domain type='qemu'>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<name>klpq-4242-cell</name>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<kernel>/k/vmlinuz</kernel>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<initrd>/t/initramfs.cpio</initrd>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<cmdline>console=ttyS0,115200 panic=-1 dyndbg=&quot;"
					     "file kernel/livepatch/* +p&quot;</cmdline>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<features><acpi/></features>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<on_reboot>destroy</on_reboot>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<on_poweroff>destroy</on_poweroff>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<serial type='pty'>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<channel type='unix'><source mode='bind'/><target "
					     "type='virtio' name='org.klpq.agent'/></channel>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<memory unit='MiB'>1024</memory>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<vcpu>2</vcpu>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<cpu mode='maximum'/>"));
	ck_assert_ptr_null(strstr(x.buf, "<interface"));
	ck_assert_ptr_nonnull(strstr(x.buf, "host='host&lt;1&gt;'"));
	/* the owner record reads back from the metadata element */
	ck_assert_int_eq(vm_libvirt_owner_parse(strstr(x.buf, "<klpq:owner"), &back), 0);
	ck_assert_int_eq(back.pid, 4242);
	ck_assert_uint_eq(back.start_ticks, 123456);
	ck_assert_str_eq(back.boot_id, "b00t-1d");
	ck_assert_int_eq(vm_libvirt_owner_parse("<other/>", &back), -1);
	ck_assert_ptr_null(strstr(x.buf, "<disk"));
	sb_release(&x);

	/* a disk guest: its overlay as vda, escaped */
	c.disk = "/w/cell's overlay.qcow2";
	vm_libvirt_domain_xml(&c, "tcg", "klpq-4242-cell", &o, &x);
	ck_assert_ptr_nonnull(strstr(x.buf, "<disk type='file' device='disk'><driver name='qemu' "
					     "type='qcow2' cache='writeback'/><source file='/w/cell&apos;s "
					     "overlay.qcow2'/><target dev='vda' bus='virtio'/></disk>"));
	sb_release(&x);

	/* the pool's health-check domain: no kernel, no disk, the same owner record, every end
	 * destroys it */
	vm_libvirt_health_xml("klpq-health-7", &o, &x);
	ck_assert_ptr_nonnull(strstr(x.buf, "<name>klpq-health-7</name>"));
	ck_assert_ptr_null(strstr(x.buf, "<kernel>"));
	ck_assert_ptr_null(strstr(x.buf, "<disk"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<on_poweroff>destroy</on_poweroff>"));
	ck_assert_int_eq(vm_libvirt_owner_parse(strstr(x.buf, "<klpq:owner"), &back), 0);
	ck_assert_int_eq(back.pid, 4242);
	ck_assert_str_eq(back.host, "host<1>");
	sb_release(&x);
	c.network = 1;
	c.cpu = "qemu64";
	vm_libvirt_domain_xml(&c, "kvm", "klpq-1-x", &o, &x);
	ck_assert_ptr_nonnull(strstr(x.buf, "<domain type='kvm'>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<model fallback='forbid'>qemu64</model>"));
	ck_assert_ptr_nonnull(strstr(x.buf, "<interface type='user'><model type='virtio'/>"));
	sb_release(&x);
}
END_TEST

/* An owner record is gone when its process is: this process is not, a dead pid is, and so is
 * a live pid whose start time differs (reused); another host's record is not judged. */
START_TEST(test_libvirt_owner)
{
	struct vm_libvirt_owner me, o;

	vm_libvirt_owner_self(&me);
	ck_assert_int_eq(me.pid, getpid());
	ck_assert(me.start_ticks > 0);
	ck_assert(strlen(me.boot_id) > 10);
	ck_assert_int_eq(vm_libvirt_owner_gone(&me), 0);
	o = me;
	o.start_ticks++;
	ck_assert_int_eq(vm_libvirt_owner_gone(&o), 1);
	o = me;
	o.pid = 999999999; /* beyond pid_max */
	ck_assert_int_eq(vm_libvirt_owner_gone(&o), 1);
	o = me;
	o.pid = 999999999;
	snprintf(o.host, sizeof(o.host), "another-host");
	ck_assert_int_eq(vm_libvirt_owner_gone(&o), 0);
}
END_TEST

Suite *vm_suite(void)
{
	Suite *s = suite_create("vm");
	TCase *tc = tcase_create("argv");

	tcase_add_test(tc, test_argv_tcg);
	tcase_add_test(tc, test_argv_kvm_cpu_network);
	tcase_add_test(tc, test_backends);
	tcase_add_test(tc, test_libvirt_xml);
	tcase_add_test(tc, test_libvirt_owner);
	suite_add_tcase(s, tc);
	return s;
}
