/* exercise.h: the calls of the functions a patch step replaces, counted while the step is tested
 * (cell-exercise.c runs the counting in the guest; this reads what it prints and judges it). */
#ifndef KLPQ_EXERCISE_H
#define KLPQ_EXERCISE_H

#include <stddef.h>
#include <stdint.h>

#include "results.h"

#define EX_MAX_FUNCS 32

struct ex_func {
	char event[48];   /* the kprobe event: <prefix>_f<N> */
	char obj[64];     /* vmlinux or the patched module */
	char func[128];   /* the original function */
	char new_name[128]; /* its replacement, from the module's .ko (klpfuncs.h), or "" */
	char sympos[16];  /* its sympos as sysfs writes it ("0": unique) */
	int pos;
	int armed;        /* the event is counting */
	int read;         /* its count was read */
	uint64_t hits, missed;
	char why[128];    /* not armed: why */
};

struct exercise {
	long step;        /* the step being counted, -1 none */
	struct ex_func f[EX_MAX_FUNCS];
	size_t nr;
	size_t dropped;   /* functions past EX_MAX_FUNCS */
	char none[160];   /* nothing could be counted: why ("" counting works) */
};

void exercise_reset(struct exercise *x);
/* One line of the counting script's output: "armed EVENT OBJ FUNC SYMPOS", "fail EVENT OBJ FUNC
 * SYMPOS WHY...", "none WHY..." or "count EVENT HITS MISSED". Other lines are ignored. */
void exercise_parse_line(struct exercise *x, const char *line);
/* Names each function's replacement from the module's own list (klpfuncs.h): the entry of the
 * same object and name whose sympos matches (0 and 1 are both "the only one"). */
struct klp_fn;
void exercise_name_new(struct exercise *x, const struct klp_fn *fn, size_t nr);
/* The functions whose count was read as 0. */
size_t exercise_never(const struct exercise *x);
/* The exercised check: PASS every function counted was called, SKIP one was never called (what
 * ran did not test the patch: "not exercised: NEW (replacing F) was never called WHEN", or "F
 * (replaced by MOD)" when the replacement's name is not known) or
 * nothing could be counted ("not counted: ..."). when: "while step1 was tested". title gets
 * the check's title. */
enum verdict exercise_judge(const struct exercise *x, const char *when, const char *mod,
			    char *title, size_t size);

#endif
