/* cli.h: the subcommands behind klpq's command table (harness/klpq.c). */
#ifndef KLPQ_CLI_H
#define KLPQ_CLI_H

int cmd_run(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_checks(int argc, char **argv);

/* Exit codes shared by every subcommand. */
#define EXIT_PASS 0
#define EXIT_FAIL 1
#define EXIT_HARNESS 2

#endif
