/* klpfuncs.h: the functions a livepatch module replaces, read from its .ko on the host.
 *
 * A livepatch module describes its patch in static data: an array of struct klp_object, each
 * with a name (NULL: vmlinux) and a pointer to an array of struct klp_func, each with old_name,
 * new_func and old_sympos as its first three fields (include/linux/livepatch.h, the same in 5.x,
 * 6.1 and 6.12). In the relocatable .ko those pointers are relocations: a klp_func is an 8-byte
 * relocation to a string followed by one to a function, and a klp_object is one to a string (or
 * none) followed by one to the start of a run of klp_funcs. So the list is known before the
 * module is loaded, without DWARF: what the guest's sysfs shows once it is live, and the name
 * of each replacement besides. x86-64 ELF only (what klpq builds for).
 */
#ifndef KLPQ_KLPFUNCS_H
#define KLPQ_KLPFUNCS_H

#include <stddef.h>

#include "util.h"

struct klp_fn {
	char obj[64];       /* "vmlinux" or the patched module */
	char old_name[128]; /* the function replaced */
	char new_name[128]; /* its replacement in the module ("" when it has no symbol) */
	unsigned long sympos;
};

/* Reads the functions of the livepatch module at path into *out (caller frees), *nr of them.
 * 0, or -1 with e set (not an x86-64 ELF relocatable object, truncated, no klp_func found). */
int klp_funcs_read(const char *path, struct klp_fn **out, size_t *nr, struct kerr *e);

#endif
