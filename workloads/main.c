/* main.c: klpq-workload NAME [options] (see wl.h, docs/workloads.md). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "wl.h"

static void on_stop(int sig)
{
	(void)sig;
	wl_stop = 1;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "gaming", wl_gaming }, { "streaming", wl_streaming },
		{ "mining", wl_mining }, { "callbench", wl_callbench },
	};
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		fprintf(stderr, "usage: klpq-workload gaming|streaming|mining|callbench [options] "
				"[--duration-s N] [--self-test]\n");
		return 2;
	}
	wl_out_init(1);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name)) {
			int r = cmds[i].fn(argc - 2, argv + 2);
			wl_flush();
			return r;
		}
	fprintf(stderr, "klpq-workload: unknown workload '%s'\n", argv[1]);
	return 2;
}
