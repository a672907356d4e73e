/* kernel.h: the kernel provider. Turns a scenario's kernel_spec into files on disk:
 * a vmlinuz, a modules folder with modules.dep, and a headers folder to build modules against.
 *
 * Debian kernels are fetched with `apt-get download` (image, headers, and the headers' common
 * and kbuild packages read from the headers package's Depends) into the cache and unpacked with
 * dpkg-deb -x: nothing is installed into the host's /boot or /usr/src. The headers Makefile's
 * absolute include is pointed at the unpacked common folder and `depmod -b` writes modules.dep.
 * A finished kernel is marked by a `.complete` file; a second run reuses it.
 */
#ifndef KLPQ_KERNEL_H
#define KLPQ_KERNEL_H

#include "scenario.h"
#include "util.h"

struct kernel {
	char *release;  /* uname -r */
	char *vmlinuz;
	char *modules;  /* .../lib/modules/<release> */
	char *build;    /* headers folder for M= builds, or NULL */
	char *label;    /* as in the scenario */
	int from_cache; /* 1 when nothing had to be fetched */
};

/* $KLPQ_CACHE, else $XDG_CACHE_HOME/klpq, else $HOME/.cache/klpq. malloc'd. */
char *klpq_cache_dir(void);

/* log: progress lines ("fetching ..."), may be NULL. stop_fd: readable -> give up (Ctrl-C). */
int kernel_prepare(const struct kernel_spec *spec, const char *cache, int stop_fd,
		   struct kernel *out, void (*log)(void *ctx, const char *msg), void *log_ctx,
		   struct kerr *e);
void kernel_release(struct kernel *k);

#endif
