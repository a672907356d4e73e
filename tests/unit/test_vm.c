/* test_vm.c: the QEMU command line (vm_qemu_argv), built without starting anything. */
#define _GNU_SOURCE
#include <check.h>
#include <stdlib.h>
#include <string.h>

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
	vm_qemu_argv_release(&a);
	ck_assert_uint_eq(a.n, 0);
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
	ck_assert(q->decide_accel && q->start && q->accel && q->version && q->wait_ready &&
		  q->agent_call && q->dump && q->alive && q->pump && q->exit_reason &&
		  q->guest_reset && q->host_ended && q->log_errno && q->channel_stats &&
		  q->stop && q->destroy);
}
END_TEST

Suite *vm_suite(void)
{
	Suite *s = suite_create("vm");
	TCase *tc = tcase_create("argv");

	tcase_add_test(tc, test_argv_tcg);
	tcase_add_test(tc, test_argv_kvm_cpu_network);
	tcase_add_test(tc, test_backends);
	suite_add_tcase(s, tc);
	return s;
}
