/* yfile.h: the positioned YAML reader behind scenario.c and patchset.c (internal; scenario.h
 * is the interface). yfile.c turns libyaml's event stream into a small tree of nodes that
 * remember their 1-based line and column, so that every later check can point at the node it
 * rejects; the tree keeps only what the formats need (aliases and tags are refused, nesting and
 * size are bounded). The yf_ helpers read one value type each and fail with
 * "FILE:LINE:COL: message" in f->e.
 */
#ifndef KLPQ_YFILE_H
#define KLPQ_YFILE_H

#include "scenario.h"
#include "util.h"

/* Names become folder names, run and cell ids, module and JUnit names. */
#define NAME_MAX_LEN 64
/* A probe's text, JSON-escaped, with room for the rest of its exec request. */
#define PROBE_MAX_SENT (KLPQ_PROTO_MAX_LINE - 4096)

#define YAML_MAX_BYTES (1024 * 1024)
#define YAML_MAX_DEPTH 32
#define CMDLINE_MAX 1024
#define SECONDS_MAX 3600

enum ynode_kind { YN_SCALAR, YN_SEQ, YN_MAP };

struct ynode {
	enum ynode_kind kind;
	int line, col;          /* 1-based */
	char *text;             /* scalar: NUL-terminated copy */
	size_t len;             /* scalar: length in bytes (may hold a NUL) */
	int plain;              /* scalar: written without quotes or block style */
	struct ynode **kids;    /* seq: items; map: key, value, key, value, ... */
	size_t nr;
	size_t alloc;
};

struct yfile {
	const char *name;       /* file name as given, for messages */
	const char *dir;        /* absolute folder of the file, for relative paths */
	struct kerr *e;
	int sources_anywhere;   /* the scenario's sources_outside_patchset: true */
};

/* Name nodes already seen, to report a duplicate with the line of the first. */
struct seen_names {
	const struct ynode **nodes;
	size_t nr;
};

/* yfile.c */
int yf_check_map(struct yfile *f, const struct ynode *n, const char *what,
		 const char *const *allowed);
int yf_seq(struct yfile *f, const struct ynode *n, const char *field, int nonempty);
const char *yf_describe(const struct ynode *n);
char *yf_field(const char *where, const char *key);
int yf_bool(struct yfile *f, const struct ynode *n, const char *field, int *out);
int yf_existing(struct yfile *f, const struct ynode *n, const char *field, int want_dir,
		char **out);
int yf_line(struct yfile *f, const struct ynode *v, const char *field, size_t max,
	    char **out);
int yf_name(struct yfile *f, const struct ynode *n, const char *field, char **out);
int yf_names(struct yfile *f, const struct ynode *n, const char *field, size_t max,
	     char ***out, size_t *nr);
int yf_path(struct yfile *f, const struct ynode *n, const char *field, char **out);
int yf_seconds(struct yfile *f, const struct ynode *n, const char *field,
	       unsigned *out_ms);
int yf_string(struct yfile *f, const struct ynode *n, const char *field, char **out);
int yf_uint(struct yfile *f, const struct ynode *n, const char *field,
	    unsigned min, unsigned max, unsigned *out);
int yf_is_null(const struct ynode *n);
const struct ynode *yf_get(const struct ynode *n, const char *key);
int yf_need(struct yfile *f, const struct ynode *map, const char *what, const char *key,
	    const struct ynode **out);
int yf_err(struct yfile *f, const struct ynode *n, const char *fmt, ...) KLPQ_ATTR_FMT(3, 4);
int yf_seen(struct yfile *f, struct seen_names *seen, const struct ynode *n,
	    const char *field, const char *kind);
int yf_load_tree(const char *path, struct ynode **root, struct kerr *e);
void yf_free(struct ynode *n);

/* scenario-kernels.c */
char *scn_last_component(const char *path);
int parse_kernels(struct yfile *f, const struct ynode *n, struct scenario *s);

#endif
