/* pbuild.h: builds a patch step's livepatch module against one kernel's headers.
 *
 * The cache key is SHA-256 over the kernel release, the headers' Module.symvers and .config,
 * and every file of the step's source folder (names and contents, sorted). A hit reuses
 * CACHE/modules/<key>/<name>.ko; a miss copies the source to a fresh folder, runs
 * `make -C BUILD M=DIR modules` (argv, no shell) and moves the result in place atomically.
 * Prebuilt steps (module:) are used as they are.
 */
#ifndef KLPQ_PBUILD_H
#define KLPQ_PBUILD_H

#include "kernel.h"
#include "scenario.h"
#include "util.h"

struct built_module {
	char *path;     /* the .ko */
	char *name;     /* module name: file name without .ko, '-' turned into '_' */
	int from_cache;
	char key[65];
};

/* Fills out. On a failed compile returns -1 with the compiler's last lines in e and
 * *patch_fault = 1 (the patch's fault, not the harness's); a make that could not run, timed
 * out or was stopped (stop_fd readable) leaves *patch_fault = 0. build_log receives the log. */
int pbuild_step(const struct step *st, const struct kernel *k, const char *cache, int stop_fd,
		struct built_module *out, int *patch_fault, struct sb *build_log, struct kerr *e);
/* Compiles a patch set's helper program for the guest (static), cached by content; the path
 * of the binary in *out_path (the caller frees). Faults as pbuild_step. */
int pbuild_program(const struct program *pg, const char *cache, int stop_fd, char **out_path,
		   int *patch_fault, struct sb *build_log, struct kerr *e);
void built_module_release(struct built_module *m);
/* SHA-256 over the patch set's content: patchset.yaml and every step's source files (or its
 * prebuilt .ko). What --resume compares before it keeps a finished cell. */
int pbuild_patchset_hash(const struct patchset *ps, char out[65], struct kerr *e);
/* SHA-256 of a file's bytes, as hex. */
int sha256_file(const char *path, char out[65], struct kerr *e);
/* SHA-256 of len bytes, as hex. 0. */
int sha256_text(const void *data, size_t len, char out[65]);

#endif
