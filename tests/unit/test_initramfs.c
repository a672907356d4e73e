/* test_initramfs.c: module load order from modules.dep, and a real cpio written by libarchive
 * read back by libarchive. */
#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "initramfs.h"
#include "image.h"

/* An excerpt of Debian 6.1.0-56-amd64's modules.dep (as written by depmod -b). */
static const char dep_6_1[] =
	"kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko "
	"kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/virtio/virtio.ko:\n"
	"kernel/drivers/virtio/virtio_ring.ko:\n"
	"kernel/drivers/virtio/virtio_pci_legacy_dev.ko:\n"
	"kernel/drivers/virtio/virtio_pci_modern_dev.ko:\n"
	"kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n";

static size_t index_of(char **paths, size_t nr, const char *needle)
{
	for (size_t i = 0; i < nr; i++)
		if (strstr(paths[i], needle))
			return i;
	return (size_t)-1;
}

static void free_paths(char **paths, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		free(paths[i]);
	free(paths);
}

START_TEST(test_order_dependencies_first)
{
	const char *const wanted[] = { "virtio_pci", "virtio_console", NULL };
	char **paths;
	size_t nr;
	struct kerr e = KERR_INIT;

	ck_assert_int_eq(modules_load_order(dep_6_1, NULL, wanted, &paths, &nr, &e), 0);
	ck_assert_uint_eq(nr, 6); /* each once, fuse/virtiofs not pulled in */
	ck_assert_uint_lt(index_of(paths, nr, "/virtio.ko"), index_of(paths, nr, "virtio_pci.ko"));
	ck_assert_uint_lt(index_of(paths, nr, "virtio_ring.ko"),
			  index_of(paths, nr, "virtio_console.ko"));
	ck_assert_uint_lt(index_of(paths, nr, "virtio_pci_modern_dev.ko"),
			  index_of(paths, nr, "virtio_pci.ko"));
	ck_assert_uint_eq(index_of(paths, nr, "fuse"), (size_t)-1);
	free_paths(paths, nr);
}
END_TEST

START_TEST(test_builtin_and_missing)
{
	const char *const wanted[] = { "virtio_console", "virtio_blk", NULL };
	const char *const missing[] = { "no_such_module", NULL };
	const char builtin[] = "kernel/drivers/block/virtio_blk.ko\n";
	char **paths;
	size_t nr;
	struct kerr e = KERR_INIT;

	ck_assert_int_eq(modules_load_order(dep_6_1, builtin, wanted, &paths, &nr, &e), 0);
	ck_assert_uint_eq(nr, 3);
	free_paths(paths, nr);
	ck_assert_int_eq(modules_load_order(dep_6_1, builtin, missing, &paths, &nr, &e), -1);
	ck_assert_ptr_null(paths);
	ck_assert_ptr_nonnull(strstr(e.msg, "no_such_module"));
}
END_TEST

START_TEST(test_compressed_names)
{
	const char dep[] = "kernel/drivers/char/virtio_console.ko.xz: "
			   "kernel/drivers/virtio/virtio.ko.xz\n"
			   "kernel/drivers/virtio/virtio.ko.xz:\n";
	const char *const wanted[] = { "virtio_console", NULL };
	char **paths;
	size_t nr;
	struct kerr e = KERR_INIT;

	ck_assert_int_eq(modules_load_order(dep, NULL, wanted, &paths, &nr, &e), 0);
	ck_assert_uint_eq(nr, 2);
	ck_assert_str_eq(paths[0], "kernel/drivers/virtio/virtio.ko.xz");
	free_paths(paths, nr);
}
END_TEST

/* Builds a real archive from a fake modules tree and reads it back with libarchive. */
START_TEST(test_build_and_read_back)
{
	char dir[] = "/tmp/klpq-test-initramfs-XXXXXX";
	struct kerr e = KERR_INIT;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char *mods = path_join(dir, "lib/modules/9.9.9-test");
	char *out = path_join(dir, "out.cpio");
	char *agent = path_join(dir, "agent");
	char *patch = path_join(dir, "p.ko");
	char *sub = path_join(mods, "kernel/drivers/virtio");
	ck_assert_int_eq(mkdir_p(sub, 0755, &e), 0);
	char *depf = path_join(mods, "modules.dep");
	const char dep[] = "kernel/drivers/virtio/virtio.ko:\n"
			   "kernel/drivers/virtio/virtio_console.ko: kernel/drivers/virtio/virtio.ko\n";
	ck_assert_int_eq(write_file_atomic(depf, dep, strlen(dep), &e), 0);
	char *m1 = path_join(sub, "virtio.ko"), *m2 = path_join(sub, "virtio_console.ko");
	ck_assert_int_eq(write_file_atomic(m1, "A", 1, &e), 0);
	ck_assert_int_eq(write_file_atomic(m2, "BB", 2, &e), 0);
	ck_assert_int_eq(write_file_atomic(agent, "#!agent", 7, &e), 0);
	ck_assert_int_eq(write_file_atomic(patch, "KO", 2, &e), 0);

	const char *const boot[] = { "virtio_console", NULL };
	struct initramfs_file f = { patch, "/klpq/patches/p.ko", 0644, 1 };
	struct initramfs_spec s = { out, agent, "/bin/busybox", mods, "9.9.9-test", boot, &f, 1 };
	ck_assert_msg(initramfs_build(&s, &e) == 0, "%s", e.msg);

	struct archive *a = archive_read_new();
	struct archive_entry *ent;
	int saw_init = 0, saw_console = 0, saw_sh = 0, saw_patch = 0, saw_list = 0;
	archive_read_support_format_cpio(a);
	ck_assert_int_eq(archive_read_open_filename(a, out, 10240), ARCHIVE_OK);
	while (archive_read_next_header(a, &ent) == ARCHIVE_OK) {
		const char *p = archive_entry_pathname(ent);
		if (!strcmp(p, "init")) {
			saw_init = 1;
			ck_assert_int_eq(archive_entry_perm(ent) & 0777, 0755);
		} else if (!strcmp(p, "dev/console")) {
			saw_console = archive_entry_filetype(ent) == AE_IFCHR &&
				      archive_entry_rdevmajor(ent) == 5;
		} else if (!strcmp(p, "bin/sh")) {
			saw_sh = archive_entry_filetype(ent) == AE_IFLNK;
		} else if (!strcmp(p, "klpq/patches/p.ko")) {
			saw_patch = 1;
		} else if (!strcmp(p, "klpq/boot-modules")) {
			char buf[512] = { 0 };
			archive_read_data(a, buf, sizeof(buf) - 1);
			/* dependencies first */
			ck_assert_str_eq(buf, "/lib/modules/9.9.9-test/kernel/drivers/virtio/virtio.ko\n"
				     "/lib/modules/9.9.9-test/kernel/drivers/virtio/virtio_console.ko\n");
			saw_list = 1;
		}
	}
	archive_read_free(a);
	ck_assert(saw_init && saw_console && saw_sh && saw_patch && saw_list);
	rm_rf(dir);
	free(mods); free(out); free(agent); free(patch); free(sub); free(depf); free(m1); free(m2);
}
END_TEST

/* image.h over the initramfs: where each item kind lands in the guest */
START_TEST(test_image_guest_paths)
{
	const struct guest_image *g = &image_initramfs;
	char *p;

	ck_assert_str_eq(g->name, "initramfs");
	p = g->guest_path(IMAGE_PATCH, "klp_fix");
	ck_assert_str_eq(p, "/klpq/patches/klp_fix.ko");
	free(p);
	p = g->guest_path(IMAGE_KMOD, "/c/lib/modules/6.1/kernel/fs/xfs/xfs.ko.xz");
	ck_assert_str_eq(p, "/klpq/kmod/xfs.ko");
	free(p);
	p = g->guest_path(IMAGE_PROGRAM, "hammer");
	ck_assert_str_eq(p, "/klpq/bin/hammer");
	free(p);
	p = g->guest_path(IMAGE_WORKLOAD, "x");
	ck_assert_str_eq(p, "/bin/klpq-workload");
	free(p);
}
END_TEST

/* An image request with every item kind, twice the same guest path: the first is kept. */
START_TEST(test_image_build)
{
	char dir[] = "/tmp/klpq-test-image-XXXXXX";
	struct kerr e = KERR_INIT;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char *mods = path_join(dir, "lib/modules/9.9.9-test");
	char *depf = path_join(mods, "modules.dep");
	char *out = path_join(dir, "out.cpio"), *agent = path_join(dir, "agent");
	char *p1 = path_join(dir, "p1.ko"), *p2 = path_join(dir, "p2.ko");
	char *tool = path_join(dir, "tool"), *km = path_join(mods, "foo.ko");
	ck_assert_int_eq(mkdir_p(mods, 0755, &e), 0);
	ck_assert_int_eq(write_file_atomic(depf, "foo.ko:\n", 8, &e), 0);
	ck_assert_int_eq(write_file_atomic(agent, "#!agent", 7, &e), 0);
	ck_assert_int_eq(write_file_atomic(p1, "FIRST", 5, &e), 0);
	ck_assert_int_eq(write_file_atomic(p2, "SECOND", 6, &e), 0);
	ck_assert_int_eq(write_file_atomic(tool, "#!tool", 6, &e), 0);
	ck_assert_int_eq(write_file_atomic(km, "KM", 2, &e), 0);

	const char *const boot[] = { NULL };
	const struct image_item items[] = {
		{ IMAGE_PATCH, "p", p1 }, { IMAGE_PATCH, "p", p2 }, { IMAGE_PROGRAM, "tool", tool },
		{ IMAGE_KMOD, km, km }, { IMAGE_KMOD, km, km }, { IMAGE_WORKLOAD, "w", tool },
	};
	struct image_request req = { "9.9.9-test", mods, agent, "/bin/busybox", boot, items, 6 };
	ck_assert_msg(image_initramfs.build(&req, out, &e) == 0, "%s", e.msg);

	struct archive *a = archive_read_new();
	struct archive_entry *ent;
	int n_patch = 0, n_kmod = 0, tool_ok = 0, wl_ok = 0;
	archive_read_support_format_cpio(a);
	ck_assert_int_eq(archive_read_open_filename(a, out, 10240), ARCHIVE_OK);
	while (archive_read_next_header(a, &ent) == ARCHIVE_OK) {
		const char *p = archive_entry_pathname(ent);
		char buf[16] = { 0 };

		if (!strcmp(p, "klpq/patches/p.ko")) {
			archive_read_data(a, buf, sizeof(buf) - 1);
			ck_assert_str_eq(buf, "FIRST");
			n_patch++;
		} else if (!strcmp(p, "klpq/kmod/foo.ko")) {
			n_kmod++;
		} else if (!strcmp(p, "klpq/bin/tool")) {
			tool_ok = (archive_entry_perm(ent) & 0777) == 0755;
		} else if (!strcmp(p, "bin/klpq-workload")) {
			wl_ok = (archive_entry_perm(ent) & 0777) == 0755;
		}
	}
	archive_read_free(a);
	ck_assert_int_eq(n_patch, 1);
	ck_assert_int_eq(n_kmod, 1);
	ck_assert(tool_ok && wl_ok);
	rm_rf(dir);
	free(mods); free(depf); free(out); free(agent); free(p1); free(p2); free(tool); free(km);
}
END_TEST

Suite *initramfs_suite(void)
{
	Suite *s = suite_create("initramfs");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_order_dependencies_first);
	tcase_add_test(tc, test_builtin_and_missing);
	tcase_add_test(tc, test_compressed_names);
	tcase_add_test(tc, test_build_and_read_back);
	tcase_add_test(tc, test_image_guest_paths);
	tcase_add_test(tc, test_image_build);
	suite_add_tcase(s, tc);
	return s;
}
