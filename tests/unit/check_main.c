/* check_main.c: runs every unit-test suite (Check, fork mode, so a crash fails one test). */
#include <check.h>
#include <stdlib.h>

Suite *proto_suite(void);
Suite *scenario_suite(void);
Suite *kname_suite(void);
Suite *console_suite(void);
Suite *initramfs_suite(void);
Suite *plan_suite(void);
Suite *perf_suite(void);
Suite *stats_suite(void);
Suite *workloads_suite(void);
Suite *report_suite(void);
Suite *accel_suite(void);
Suite *util_suite(void);
Suite *vm_suite(void);
Suite *pool_suite(void);
Suite *spawn_suite(void);
Suite *agent_suite(void);
Suite *cell_suite(void);
Suite *qmp_suite(void);

int main(void)
{
	SRunner *sr = srunner_create(proto_suite());
	int failed;

	srunner_add_suite(sr, scenario_suite());
	srunner_add_suite(sr, kname_suite());
	srunner_add_suite(sr, console_suite());
	srunner_add_suite(sr, initramfs_suite());
	srunner_add_suite(sr, plan_suite());
	srunner_add_suite(sr, perf_suite());
	srunner_add_suite(sr, stats_suite());
	srunner_add_suite(sr, workloads_suite());
	srunner_add_suite(sr, report_suite());
	srunner_add_suite(sr, accel_suite());
	srunner_add_suite(sr, util_suite());
	srunner_add_suite(sr, vm_suite());
	srunner_add_suite(sr, pool_suite());
	srunner_add_suite(sr, spawn_suite());
	srunner_add_suite(sr, agent_suite());
	srunner_add_suite(sr, cell_suite());
	srunner_add_suite(sr, qmp_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
