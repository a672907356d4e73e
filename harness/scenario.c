/* scenario.c: loads scenario and patch-set files (see scenario.h and docs/scenario.md).
 *
 * libyaml's event stream is first turned into a small tree of nodes that remember their
 * 1-based line and column, so that every later check can point at the node it rejects.
 * The tree keeps only what the format needs: aliases and tags are refused (a scenario
 * needs neither, and refusing aliases rules out alias bombs), nesting is bounded, files
 * are bounded in size. Validation then walks the tree with one helper per value type.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "perf.h"
#include "proto.h"
#include "scenario.h"

/* Names become folder names, run and cell ids, module and JUnit names. */
#define NAME_MAX_LEN 64
/* A probe's text, JSON-escaped, with room for the rest of its exec request. */
#define PROBE_MAX_SENT (KLPQ_PROTO_MAX_LINE - 4096)

#define YAML_MAX_BYTES (1024 * 1024)
#define YAML_MAX_DEPTH 32
#define CMDLINE_MAX 1024
#define SECONDS_MAX 3600

/* Kernel order of the taint flags: bit n is taint_letters[n]. */
static const char taint_letters[] = "PFSRMBUDAWCIOELKXTN";

#define TAINT_DEFAULT ((1u << 15) | (1u << 13) | (1u << 12)) /* K, E, O */

/* ---- the node tree ---------------------------------------------------------------- */

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

static void ynode_free(struct ynode *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->nr; i++)
		ynode_free(n->kids[i]);
	free(n->kids);
	free(n->text);
	free(n);
}

static struct ynode *ynode_new(enum ynode_kind kind, const yaml_mark_t *m)
{
	struct ynode *n = xcalloc(1, sizeof(*n));

	n->kind = kind;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	return n;
}

static void ynode_add(struct ynode *n, struct ynode *kid)
{
	if (n->nr == n->alloc) {
		n->alloc = n->alloc ? 2 * n->alloc : 8;
		n->kids = xrealloc(n->kids, n->alloc * sizeof(*n->kids));
	}
	n->kids[n->nr++] = kid;
}

/* ---- reading a file into a tree ---------------------------------------------------- */

struct yreader {
	const char *name;       /* file name as given, for messages */
	struct kerr *e;
	yaml_parser_t parser;
	const char *buf;
	size_t len;
};

static int reader_err(struct yreader *r, size_t line, size_t col, const char *fmt, ...)
	KLPQ_ATTR_FMT(4, 5);

static int reader_err(struct yreader *r, size_t line, size_t col, const char *fmt, ...)
{
	struct sb sb = SB_INIT;
	va_list ap;

	va_start(ap, fmt);
	sb_vaddf(&sb, fmt, ap);
	va_end(ap);
	kerr_set(r->e, "%s:%zu:%zu: %s", r->name, line, col, sb.buf);
	sb_release(&sb);
	return -1;
}

/* Reports libyaml's own complaint, at its mark. */
static int syntax_err(struct yreader *r)
{
	yaml_parser_t *p = &r->parser;
	const char *problem = p->problem ? p->problem : "unknown error";

	switch (p->error) {
	case YAML_READER_ERROR: {
		/* Reader errors carry a byte offset, not a mark: count lines ourselves. */
		size_t off = p->problem_offset < r->len ? p->problem_offset : r->len;
		size_t line = 1, start = 0, i;

		for (i = 0; i < off; i++) {
			if (r->buf[i] == '\n') {
				line++;
				start = i + 1;
			}
		}
		return reader_err(r, line, off - start + 1, "unreadable YAML: %s", problem);
	}
	case YAML_SCANNER_ERROR:
	case YAML_PARSER_ERROR:
		if (p->context)
			return reader_err(r, p->problem_mark.line + 1, p->problem_mark.column + 1,
					  "YAML syntax error: %s (%s at %zu:%zu)", problem, p->context,
					  p->context_mark.line + 1, p->context_mark.column + 1);
		return reader_err(r, p->problem_mark.line + 1, p->problem_mark.column + 1,
				  "YAML syntax error: %s", problem);
	default:
		return reader_err(r, p->problem_mark.line + 1, p->problem_mark.column + 1,
				  "YAML error: %s", problem);
	}
}

static int next_event(struct yreader *r, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&r->parser, ev))
		return syntax_err(r);
	return 0;
}

static int mark_err(struct yreader *r, const yaml_mark_t *m, const char *what)
{
	return reader_err(r, m->line + 1, m->column + 1, "%s", what);
}

/* Builds the node that starts with *ev (consumed, also on error) into *out. */
static int build_node(struct yreader *r, yaml_event_t *ev, int depth, struct ynode **out)
{
	struct ynode *n = NULL;
	yaml_event_type_t end;
	yaml_char_t *tag = NULL;

	*out = NULL;
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		mark_err(r, &ev->start_mark, "YAML aliases (*name) are not supported");
		yaml_event_delete(ev);
		return -1;
	case YAML_SCALAR_EVENT:
		tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		tag = ev->data.mapping_start.tag;
		break;
	default:
		mark_err(r, &ev->start_mark, "unexpected YAML event");
		yaml_event_delete(ev);
		return -1;
	}
	if (tag) {
		reader_err(r, ev->start_mark.line + 1, ev->start_mark.column + 1,
			   "YAML tags (%s) are not supported", (const char *)tag);
		yaml_event_delete(ev);
		return -1;
	}

	if (ev->type == YAML_SCALAR_EVENT) {
		n = ynode_new(YN_SCALAR, &ev->start_mark);
		n->len = ev->data.scalar.length;
		n->text = xmalloc(n->len + 1);
		memcpy(n->text, ev->data.scalar.value, n->len);
		n->text[n->len] = '\0';
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		yaml_event_delete(ev);
		*out = n;
		return 0;
	}

	if (depth >= YAML_MAX_DEPTH) {
		mark_err(r, &ev->start_mark, "nesting is too deep");
		yaml_event_delete(ev);
		return -1;
	}
	if (ev->type == YAML_SEQUENCE_START_EVENT) {
		n = ynode_new(YN_SEQ, &ev->start_mark);
		end = YAML_SEQUENCE_END_EVENT;
	} else {
		n = ynode_new(YN_MAP, &ev->start_mark);
		end = YAML_MAPPING_END_EVENT;
	}
	yaml_event_delete(ev);
	for (;;) {
		yaml_event_t kid_ev;
		struct ynode *kid;

		if (next_event(r, &kid_ev))
			goto fail;
		if (kid_ev.type == end) {
			yaml_event_delete(&kid_ev);
			break;
		}
		if (build_node(r, &kid_ev, depth + 1, &kid))
			goto fail;
		ynode_add(n, kid);
	}
	*out = n;
	return 0;
fail:
	ynode_free(n);
	return -1;
}

/* Reads one YAML document. *root is NULL when the file holds no document at all. */
static int yaml_load_tree(const char *path, struct ynode **root, struct kerr *e)
{
	struct yreader r = { .name = path, .e = e };
	struct sb data = SB_INIT;
	struct ynode *n = NULL;
	yaml_event_t ev;
	struct stat st;
	int fd, ret = -1;

	*root = NULL;
	/* O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; anything but a
	 * regular file is refused below */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return kerr_errno(e, "%s: cannot open", path);
	if (fstat(fd, &st)) {
		kerr_errno(e, "%s: cannot stat", path);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return kerr_set(e, "%s: not a regular file (%s)", path, S_ISFIFO(st.st_mode) ? "a FIFO" :
				S_ISDIR(st.st_mode) ? "a folder" : S_ISCHR(st.st_mode) ||
				S_ISBLK(st.st_mode) ? "a device" : "a socket");
	}
	for (;;) {
		ssize_t got;

		sb_grow(&data, 65536);
		got = xread(fd, data.buf + data.len, 65536);
		if (got < 0) {
			kerr_errno(e, "%s: cannot read", path);
			close(fd);
			sb_release(&data);
			return -1;
		}
		if (!got)
			break;
		data.len += (size_t)got;
		data.buf[data.len] = '\0';
		if (data.len > YAML_MAX_BYTES) {
			close(fd);
			sb_release(&data);
			return kerr_set(e, "%s: larger than %d bytes", path, YAML_MAX_BYTES);
		}
	}
	close(fd);

	if (!yaml_parser_initialize(&r.parser)) {
		sb_release(&data);
		return kerr_set(e, "%s: cannot initialize the YAML parser", path);
	}
	r.buf = data.buf;
	r.len = data.len;
	yaml_parser_set_input_string(&r.parser, (const unsigned char *)data.buf, data.len);

	if (next_event(&r, &ev))
		goto out;
	yaml_event_delete(&ev); /* STREAM-START */
	if (next_event(&r, &ev))
		goto out;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		ret = 0;
		goto out;
	}
	yaml_event_delete(&ev); /* DOCUMENT-START */
	if (next_event(&r, &ev) || build_node(&r, &ev, 0, &n))
		goto out;
	if (next_event(&r, &ev))
		goto out;
	yaml_event_delete(&ev); /* DOCUMENT-END */
	if (next_event(&r, &ev))
		goto out;
	if (ev.type != YAML_STREAM_END_EVENT) {
		mark_err(&r, &ev.start_mark, "only one YAML document is allowed per file");
		yaml_event_delete(&ev);
		goto out;
	}
	yaml_event_delete(&ev);
	*root = n;
	n = NULL;
	ret = 0;
out:
	ynode_free(n);
	yaml_parser_delete(&r.parser);
	sb_release(&data);
	return ret;
}

/* ---- typed access with positioned errors --------------------------------------------- */

struct yfile {
	const char *name;       /* file name as given, for messages */
	const char *dir;        /* absolute folder of the file, for relative paths */
	struct kerr *e;
	int sources_anywhere;   /* the scenario's sources_outside_patchset: true */
};

static int node_err(struct yfile *f, const struct ynode *n, const char *fmt, ...)
	KLPQ_ATTR_FMT(3, 4);

static int node_err(struct yfile *f, const struct ynode *n, const char *fmt, ...)
{
	struct sb sb = SB_INIT;
	va_list ap;

	va_start(ap, fmt);
	sb_vaddf(&sb, fmt, ap);
	va_end(ap);
	kerr_set(f->e, "%s:%d:%d: %s", f->name, n->line, n->col, sb.buf);
	sb_release(&sb);
	return -1;
}

static int is_null(const struct ynode *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	size_t i;

	if (n->kind != YN_SCALAR || !n->plain)
		return 0;
	for (i = 0; i < ARRAY_SIZE(nulls); i++)
		if (!strcmp(n->text, nulls[i]))
			return 1;
	return 0;
}

static const char *describe(const struct ynode *n)
{
	if (n->kind == YN_MAP)
		return "a mapping";
	if (n->kind == YN_SEQ)
		return "a list";
	if (is_null(n))
		return "empty (null)";
	return n->plain ? "a plain value" : "a quoted string";
}

/* "where.key", or "key" at the top. Caller frees. */
static char *field_name(const char *where, const char *key)
{
	return where && *where ? xasprintf("%s.%s", where, key) : xstrdup(key);
}

/*
 * Checks that n is a mapping whose keys are strings from `allowed` (NULL-terminated),
 * each at most once. `what` names the mapping in messages ("vm", "steps[0]").
 */
static int check_map(struct yfile *f, const struct ynode *n, const char *what,
		     const char *const *allowed)
{
	size_t i, j;

	if (n->kind != YN_MAP)
		return node_err(f, n, "%s must be a mapping, not %s", what, describe(n));
	for (i = 0; i < n->nr; i += 2) {
		const struct ynode *key = n->kids[i];
		const char *const *a;

		if (key->kind != YN_SCALAR || is_null(key))
			return node_err(f, key, "keys in %s must be names, not %s", what,
					describe(key));
		for (a = allowed; *a; a++)
			if (!strcmp(*a, key->text) && strlen(*a) == key->len)
				break;
		if (!*a) {
			struct sb known = SB_INIT;
			int ret;

			for (a = allowed; *a; a++)
				sb_addf(&known, "%s%s", a == allowed ? "" : ", ", *a);
			ret = node_err(f, key, "unknown key '%.64s' in %s (known keys: %s)",
				       key->text, what, known.buf);
			sb_release(&known);
			return ret;
		}
		for (j = 0; j < i; j += 2)
			if (!strcmp(n->kids[j]->text, key->text))
				return node_err(f, key, "duplicate key '%s' in %s (first at line %d)",
						key->text, what, n->kids[j]->line);
	}
	return 0;
}

/* The value of the first key in mapping n, or NULL. */
static const struct ynode *map_get(const struct ynode *n, const char *key)
{
	size_t i;

	for (i = 0; i < n->nr; i += 2)
		if (n->kids[i]->kind == YN_SCALAR && !strcmp(n->kids[i]->text, key))
			return n->kids[i + 1];
	return NULL;
}

static int need(struct yfile *f, const struct ynode *map, const char *what, const char *key,
		const struct ynode **out)
{
	*out = map_get(map, key);
	if (!*out)
		return node_err(f, map, "missing required key '%s' in %s", key, what);
	return 0;
}

/* Any scalar except null; no NUL bytes. *out is malloc'd. */
static int get_string(struct yfile *f, const struct ynode *n, const char *field, char **out)
{
	if (n->kind != YN_SCALAR || is_null(n))
		return node_err(f, n, "%s must be a string, not %s", field, describe(n));
	if (strlen(n->text) != n->len)
		return node_err(f, n, "%s contains a NUL byte", field);
	free(*out);
	*out = xstrdup(n->text);
	return 0;
}

static int get_name(struct yfile *f, const struct ynode *n, const char *field, char **out)
{
	if (get_string(f, n, field, out))
		return -1;
	if (strlen(*out) > NAME_MAX_LEN)
		return node_err(f, n, "%s is %zu characters long; at most %d (it names folders, "
				"modules and results)", field, strlen(*out), NAME_MAX_LEN);
	if (!name_is_safe(*out))
		return node_err(f, n, "%s '%.64s' is not a safe name (use letters, digits, '.', "
				"'_', '+' and '-'; not '.' or '..')", field, *out);
	return 0;
}

static int get_bool(struct yfile *f, const struct ynode *n, const char *field, int *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO" };
	size_t i;

	if (n->kind == YN_SCALAR && n->plain) {
		for (i = 0; i < ARRAY_SIZE(yes); i++) {
			if (!strcmp(n->text, yes[i])) {
				*out = 1;
				return 0;
			}
			if (!strcmp(n->text, no[i])) {
				*out = 0;
				return 0;
			}
		}
		if (!is_null(n))
			return node_err(f, n, "%s must be true or false, not '%.64s'", field,
					n->text);
	}
	return node_err(f, n, "%s must be true or false, not %s", field, describe(n));
}

/* A plain, unsigned decimal integer in min..max. */
static int get_uint(struct yfile *f, const struct ynode *n, const char *field,
		    unsigned min, unsigned max, unsigned *out)
{
	unsigned long long v = 0;
	const char *p;

	if (n->kind != YN_SCALAR || !n->plain || is_null(n))
		return node_err(f, n, "%s must be a whole number, not %s", field, describe(n));
	for (p = n->text; *p; p++) {
		if (*p < '0' || *p > '9')
			return node_err(f, n, "%s must be a whole number, not '%.64s'", field,
					n->text);
		if (v <= ULLONG_MAX / 100)
			v = v * 10 + (unsigned)(*p - '0');
	}
	if (n->text[0] == '0' && n->text[1])
		return node_err(f, n, "%s: '%.64s' has a leading zero", field, n->text);
	if (v < min || v > max)
		return node_err(f, n, "%s %.64s is out of range (%u..%u)", field, n->text, min, max);
	*out = (unsigned)v;
	return 0;
}

/* Seconds as a plain decimal (10, 2.5), more than 0 and at most SECONDS_MAX; out in ms. */
static int get_seconds(struct yfile *f, const struct ynode *n, const char *field,
		       unsigned *out_ms)
{
	unsigned long long whole = 0, ms = 0, scale = 100;
	const char *p = n->text;

	if (n->kind != YN_SCALAR || !n->plain || is_null(n))
		return node_err(f, n, "%s must be a number of seconds, not %s", field,
				describe(n));
	if (*p == '-')
		return node_err(f, n, "%s must be more than 0 seconds, not %.64s", field, n->text);
	if (*p < '0' || *p > '9')
		goto bad;
	for (; *p >= '0' && *p <= '9'; p++)
		if (whole <= SECONDS_MAX)
			whole = whole * 10 + (unsigned)(*p - '0');
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			goto bad;
		/* Milliseconds are the unit: digits past the third are dropped. */
		for (; *p >= '0' && *p <= '9'; p++) {
			ms += scale * (unsigned)(*p - '0');
			scale /= 10;
		}
	}
	if (*p)
		goto bad;
	if (whole > SECONDS_MAX || (whole == SECONDS_MAX && ms))
		return node_err(f, n, "%s %.64s is out of range (at most %d seconds)", field,
				n->text, SECONDS_MAX);
	if (!whole && !ms)
		return node_err(f, n, "%s must be more than 0 seconds (at least 0.001), not %.64s",
				field, n->text);
	*out_ms = (unsigned)(whole * 1000 + ms);
	return 0;
bad:
	return node_err(f, n, "%s must be a number of seconds like 10 or 2.5, not '%.64s'",
			field, n->text);
}

/* A non-empty path; relative ones are taken from f->dir. *out is absolute, malloc'd. */
static int get_path(struct yfile *f, const struct ynode *n, const char *field, char **out)
{
	char *s = NULL;

	if (get_string(f, n, field, &s))
		return -1;
	if (!*s) {
		free(s);
		return node_err(f, n, "%s must not be empty", field);
	}
	free(*out);
	*out = path_join(f->dir, s);
	free(s);
	return 0;
}

/* Like get_path, and the path must exist as a folder (want_dir) or a regular file. */
static int get_existing(struct yfile *f, const struct ynode *n, const char *field, int want_dir,
			char **out)
{
	char *joined = NULL, *real;
	struct stat st;

	if (get_path(f, n, field, &joined))
		return -1;
	real = realpath(joined, NULL);
	if (!real || stat(real, &st)) {
		node_err(f, n, "%s '%.200s' does not exist (looked for %s)", field, n->text, joined);
		goto fail;
	}
	if (want_dir && !S_ISDIR(st.st_mode)) {
		node_err(f, n, "%s '%.200s' is not a folder", field, n->text);
		goto fail;
	}
	if (!want_dir && !S_ISREG(st.st_mode)) {
		node_err(f, n, "%s '%.200s' is not a regular file", field, n->text);
		goto fail;
	}
	free(joined);
	free(*out);
	*out = real;
	return 0;
fail:
	free(real);
	free(joined);
	return -1;
}

/* A list (not null, not a mapping); empty allowed unless nonempty. */
static int check_seq(struct yfile *f, const struct ynode *n, const char *field, int nonempty)
{
	if (n->kind != YN_SEQ)
		return node_err(f, n, "%s must be a list, not %s", field, describe(n));
	if (nonempty && !n->nr)
		return node_err(f, n, "%s must not be empty", field);
	return 0;
}

/* ---- patch sets -------------------------------------------------------------------- */

static const char *const patchset_keys[] = { "name", "description", "method", "log_filter",
					      "programs", "steps", NULL };
static const char *const program_keys[] = { "name", "source", NULL };
static const char *const step_keys[] = { "name", "source", "module", "kmod", "disable",
					  "unload", "sysctl", "run", "helper", "params", "params_file", "wait",
					  "expect", "refusal", "method", "probes", "log", NULL };

/* method: cumulative (atomic replace: the step replaces every earlier patch) or stacked (it
 * adds to them). -1 on a bad value (the error is set). */
static int get_method(struct yfile *f, const struct ynode *v, const char *field, int *stacked)
{
	if (v->kind == YN_SCALAR && !strcmp(v->text, "cumulative"))
		*stacked = 0;
	else if (v->kind == YN_SCALAR && !strcmp(v->text, "stacked"))
		*stacked = 1;
	else
		return node_err(f, v, "%s must be cumulative or stacked, not %s%.64s%s", field,
				v->kind == YN_SCALAR ? "'" : "", v->kind == YN_SCALAR ? v->text :
				describe(v), v->kind == YN_SCALAR ? "'" : "");
	return 0;
}
static const char *const refusal_keys[] = { "errno", "log", NULL };

/* The errno names a refused module load can give, and their numbers (x86_64 Linux). */
static const struct { const char *name; int num; } errno_names[] = {
	{ "EPERM", 1 }, { "ENOENT", 2 }, { "ENOEXEC", 8 }, { "EAGAIN", 11 }, { "ENOMEM", 12 },
	{ "EACCES", 13 }, { "EFAULT", 14 }, { "EBUSY", 16 }, { "EEXIST", 17 }, { "ENODEV", 19 },
	{ "EINVAL", 22 }, { "ENOSPC", 28 }, { "ENOSYS", 38 }, { "ENODATA", 61 },
	{ "EOPNOTSUPP", 95 }, { "ETIMEDOUT", 110 }, { "EKEYREJECTED", 129 },
};

const char *errno_name(int num)
{
	for (size_t i = 0; i < ARRAY_SIZE(errno_names); i++)
		if (errno_names[i].num == num)
			return errno_names[i].name;
	return NULL;
}
static const char *const probe_keys[] = { "name", "run", "timeout_s", "rollback", "expect",
					   "recheck", NULL };

static void probe_release(struct probe *pr)
{
	free(pr->name);
	free(pr->run);
}

static void step_release(struct step *st)
{
	size_t i;

	free(st->name);
	free(st->source);
	free(st->module);
	free(st->refusal_log);
	free(st->params);
	free(st->params_file);
	free(st->kmod);
	free(st->sysctl_key);
	free(st->sysctl_value);
	free(st->run);
	for (i = 0; i < st->nr_log; i++)
		free(st->log[i]);
	free(st->log);
	for (i = 0; i < st->nr_probes; i++)
		probe_release(&st->probes[i]);
	free(st->probes);
}

void patchset_release(struct patchset *p)
{
	size_t i;

	free(p->name);
	free(p->dir);
	free(p->file);
	free(p->description);
	for (i = 0; i < p->nr_log_filter; i++)
		free(p->log_filter[i]);
	free(p->log_filter);
	for (i = 0; i < p->nr_programs; i++) {
		free(p->programs[i].name);
		free(p->programs[i].source);
	}
	free(p->programs);
	for (i = 0; i < p->nr_steps; i++)
		step_release(&p->steps[i]);
	free(p->steps);
	memset(p, 0, sizeof(*p));
}

/* Name nodes already seen, to report a duplicate with the line of the first. */
struct seen_names {
	const struct ynode **nodes;
	size_t nr;
};

static int seen_check(struct yfile *f, struct seen_names *seen, const struct ynode *n,
		      const char *field, const char *kind)
{
	size_t i;

	for (i = 0; i < seen->nr; i++)
		if (!strcmp(seen->nodes[i]->text, n->text))
			return node_err(f, n, "%s: %s name '%s' is used twice (first at line %d)",
					field, kind, n->text, seen->nodes[i]->line);
	seen->nodes[seen->nr++] = n;
	return 0;
}

static int parse_probe(struct yfile *f, const struct ynode *n, const char *where,
		       struct seen_names *seen, struct probe *pr)
{
	const struct ynode *v;
	char *field = NULL;
	int ret = -1;

	pr->rollback_check = 1;
	if (check_map(f, n, where, probe_keys))
		return -1;

	field = field_name(where, "name");
	if (need(f, n, where, "name", &v) || get_name(f, v, field, &pr->name) ||
	    seen_check(f, seen, v, field, "probe"))
		goto out;
	free(field);

	field = field_name(where, "run");
	if (need(f, n, where, "run", &v) || get_string(f, v, field, &pr->run))
		goto out;
	if (!pr->run[strspn(pr->run, " \t\r\n")]) {
		node_err(f, v, "%s must not be empty", field);
		goto out;
	}
	{
		/* it travels JSON-escaped inside one agent request line: refuse here what the
		 * protocol would drop after a whole boot */
		json_object *j = json_object_new_string(pr->run);
		size_t sent = strlen(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));

		json_object_put(j);
		if (sent > PROBE_MAX_SENT) {
			node_err(f, v, "%s is %zu bytes as sent to the guest (JSON-escaped); the agent "
				 "protocol allows at most %d: put the script in the guest another way",
				 field, sent, PROBE_MAX_SENT);
			goto out;
		}
	}
	free(field);

	field = field_name(where, "timeout_s");
	v = map_get(n, "timeout_s");
	if (v && get_seconds(f, v, field, &pr->timeout_ms))
		goto out;
	free(field);

	field = field_name(where, "rollback");
	v = map_get(n, "rollback");
	if (v && get_bool(f, v, field, &pr->rollback_check))
		goto out;
	free(field);

	pr->recheck = 1;
	field = field_name(where, "recheck");
	v = map_get(n, "recheck");
	if (v && get_bool(f, v, field, &pr->recheck))
		goto out;
	free(field);

	field = field_name(where, "expect");
	v = map_get(n, "expect");
	if (v) {
		if (v->kind == YN_SCALAR && !strcmp(v->text, "passes")) {
			pr->expect_fail = 0;
		} else if (v->kind == YN_SCALAR && !strcmp(v->text, "fails")) {
			/* "this fix is gone now": checked after its own step only */
			pr->expect_fail = 1;
			pr->recheck = 0;
			pr->rollback_check = 0;
		} else {
			node_err(f, v, "%s must be passes or fails, not %s%.64s%s", field,
				 v->kind == YN_SCALAR ? "'" : "", v->kind == YN_SCALAR ? v->text :
				 describe(v), v->kind == YN_SCALAR ? "'" : "");
			goto out;
		}
	}
	ret = 0;
out:
	free(field);
	return ret;
}

/* The actions a step can take; exactly one per step. */
static const char *const step_actions[] = { "source", "module", "kmod", "disable", "unload",
					     "sysctl", "run", NULL };

/* A one-line text sent to the guest: no control characters, at most max bytes. */
static int get_line(struct yfile *f, const struct ynode *v, const char *field, size_t max,
		    char **out)
{
	if (get_string(f, v, field, out))
		return -1;
	for (const char *c = *out; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return node_err(f, v, "%s must be one line without control characters", field);
	if (strlen(*out) > max)
		return node_err(f, v, "%s is %zu bytes, more than %zu", field, strlen(*out), max);
	return 0;
}

/* params: "a=1 b=2" or a mapping {a: 1, b: 2} (its values plain scalars). */
static int get_params(struct yfile *f, const struct ynode *v, const char *field, char **out)
{
	struct sb b = SB_INIT;

	if (v->kind != YN_MAP)
		return get_line(f, v, field, 1024, out);
	for (size_t i = 0; i + 1 < v->nr; i += 2) {
		const struct ynode *k = v->kids[i], *val = v->kids[i + 1];

		if (val->kind != YN_SCALAR || is_null(val) || strpbrk(val->text, " \t\n\"")) {
			sb_release(&b);
			return node_err(f, val, "%s.%s must be a value without spaces or quotes, not "
					"%s", field, k->text, val->kind == YN_SCALAR ? "that" :
					describe(val));
		}
		if (!*k->text || strpbrk(k->text, " =\t\n\"")) {
			sb_release(&b);
			return node_err(f, k, "%s: '%.64s' is not a module parameter name", field,
					k->text);
		}
		sb_addf(&b, "%s%s=%s", b.len ? " " : "", k->text, val->text);
	}
	if (b.len > 1024) {
		sb_release(&b);
		return node_err(f, v, "%s is more than 1024 bytes", field);
	}
	*out = xstrdup(b.len ? b.buf : "");
	sb_release(&b);
	return 0;
}

/* The earlier step a disable/unload names; -1 with the error set. */
static int earlier_step(struct yfile *f, const struct ynode *v, const char *field,
			const struct step *steps, size_t idx, int patch_only, size_t *out)
{
	if (v->kind != YN_SCALAR || is_null(v))
		return node_err(f, v, "%s must be the name of an earlier step, not %s", field,
				describe(v));
	for (size_t i = 0; i < idx; i++) {
		if (strcmp(steps[i].name, v->text))
			continue;
		if (patch_only ? steps[i].kind != STEP_PATCH :
		    steps[i].kind != STEP_PATCH && steps[i].kind != STEP_HELPER &&
		    steps[i].kind != STEP_KMOD)
			return node_err(f, v, "%s: step '%s' (line %d) %s", field, v->text,
					steps[i].line, patch_only ? "loads no livepatch" :
					"loads no module");
		*out = i;
		return 0;
	}
	return node_err(f, v, "%s: no earlier step is named '%.64s'", field, v->text);
}

static int parse_step(struct yfile *f, const struct ynode *n, const char *where,
		      struct seen_names *step_names, struct seen_names *probe_names,
		      struct step *steps, size_t idx)
{
	struct step *st = &steps[idx];
	const struct ynode *v, *act = NULL;
	const char *act_key = NULL;
	char *field = NULL;
	size_t i;
	int ret = -1, helper = 0, loads;

	if (check_map(f, n, where, step_keys))
		return -1;
	st->line = n->line;

	field = field_name(where, "name");
	if (need(f, n, where, "name", &v) || get_name(f, v, field, &st->name) ||
	    seen_check(f, step_names, v, field, "step"))
		goto out;
	free(field);
	field = NULL;

	for (i = 0; step_actions[i]; i++) {
		const struct ynode *a = map_get(n, step_actions[i]);

		if (!a)
			continue;
		if (act) {
			node_err(f, a->line > act->line ? a : act, "%s: give one of '%s' and '%s', "
				 "not both", where, act_key, step_actions[i]);
			goto out;
		}
		act = a;
		act_key = step_actions[i];
	}
	if (!act) {
		node_err(f, n, "%s: missing what the step does: 'source' (a folder with C source and "
			 "Kbuild), 'module' (a prebuilt .ko), 'kmod' (a module of the kernel), "
			 "'disable', 'unload', 'sysctl' or 'run'", where);
		goto out;
	}
	field = field_name(where, act_key);
	if (!strcmp(act_key, "source") || !strcmp(act_key, "module")) {
		st->kind = STEP_PATCH;
		if (act_key[0] == 's' ? get_existing(f, act, field, 1, &st->source) :
					get_existing(f, act, field, 0, &st->module))
			goto out;
	} else if (!strcmp(act_key, "kmod")) {
		st->kind = STEP_KMOD;
		if (get_name(f, act, field, &st->kmod))
			goto out;
	} else if (!strcmp(act_key, "disable") || !strcmp(act_key, "unload")) {
		st->kind = act_key[0] == 'd' ? STEP_DISABLE : STEP_UNLOAD;
		if (earlier_step(f, act, field, steps, idx, st->kind == STEP_DISABLE, &st->target))
			goto out;
	} else if (!strcmp(act_key, "sysctl")) {
		const struct ynode *k;

		st->kind = STEP_SYSCTL;
		if (act->kind != YN_MAP || act->nr != 2) {
			node_err(f, act, "%s must be a mapping of one key to its value "
				 "({kernel.ftrace_enabled: 0}), not %s", field, describe(act));
			goto out;
		}
		k = act->kids[0];
		if (!*k->text || strspn(k->text, "abcdefghijklmnopqrstuvwxyz0123456789_.-") !=
				     strlen(k->text) || strstr(k->text, "..") || *k->text == '.') {
			node_err(f, k, "%s: '%.64s' is not a sysctl name (kernel.ftrace_enabled)",
				 field, k->text);
			goto out;
		}
		st->sysctl_key = xstrdup(k->text);
		if (get_line(f, act->kids[1], field, 256, &st->sysctl_value))
			goto out;
	} else {
		st->kind = STEP_RUN;
		if (get_string(f, act, field, &st->run))
			goto out;
		if (!st->run[strspn(st->run, " \t\r\n")]) {
			node_err(f, act, "%s must not be empty", field);
			goto out;
		}
	}
	free(field);
	field = NULL;

	v = map_get(n, "helper");
	if (v && (get_bool(f, v, "helper", &helper) ||
		  (st->kind != STEP_PATCH &&
		   node_err(f, v, "%s.helper is for a step with source or module", where))))
		goto out;
	if (helper)
		st->kind = STEP_HELPER;
	loads = st->kind == STEP_PATCH || st->kind == STEP_HELPER || st->kind == STEP_KMOD;

	field = field_name(where, "params");
	v = map_get(n, "params");
	if (v && !loads) {
		node_err(f, v, "%s is for a step that loads a module", field);
		goto out;
	}
	if (v && get_params(f, v, field, &st->params))
		goto out;
	free(field);

	field = field_name(where, "params_file");
	v = map_get(n, "params_file");
	if (v && (!loads ? node_err(f, v, "%s is for a step that loads a module", field) :
		  get_line(f, v, field, 256, &st->params_file)))
		goto out;
	if (st->params_file && *st->params_file != '/') {
		node_err(f, v, "%s must be an absolute path in the guest, not '%.64s'", field,
			 st->params_file);
		goto out;
	}
	free(field);

	field = field_name(where, "wait");
	v = map_get(n, "wait");
	if (v) {
		int w = 1;

		if (get_bool(f, v, field, &w))
			goto out;
		if (st->kind != STEP_PATCH) {
			node_err(f, v, "%s is for a step that loads a livepatch", field);
			goto out;
		}
		st->nowait = !w;
	}
	free(field);

	field = field_name(where, "expect");
	v = map_get(n, "expect");
	if (v) {
		if (v->kind == YN_SCALAR && (!strcmp(v->text, "loads") || !strcmp(v->text, "ok"))) {
			st->expect_load_fail = 0;
		} else if (v->kind == YN_SCALAR && (!strcmp(v->text, "load-fails") ||
						    !strcmp(v->text, "fails"))) {
			st->expect_load_fail = 1;
		} else {
			node_err(f, v, "%s must be 'ok' (or loads) or 'fails' (or load-fails), not "
				 "%s%.64s%s", field, v->kind == YN_SCALAR ? "'" : "",
				 v->kind == YN_SCALAR ? v->text : describe(v),
				 v->kind == YN_SCALAR ? "'" : "");
			goto out;
		}
		if (st->expect_load_fail && st->kind == STEP_RUN) {
			node_err(f, v, "%s: a run step fails by its exit status; say the failing "
				 "command's test in the shell instead", field);
			goto out;
		}
		if (st->expect_load_fail && st->nowait) {
			node_err(f, v, "%s: a refused load has no transition to leave waiting", field);
			goto out;
		}
	}
	free(field);

	field = field_name(where, "method");
	v = map_get(n, "method");
	st->stacked = -1; /* the patch set's method */
	if (v && st->kind != STEP_PATCH) {
		node_err(f, v, "%s is for a step that loads a livepatch", field);
		goto out;
	}
	if (v && get_method(f, v, field, &st->stacked))
		goto out;
	free(field);

	field = field_name(where, "log");
	v = map_get(n, "log");
	if (v) {
		if (check_seq(f, v, field, 0))
			goto out;
		st->has_log = 1;
		st->log = xcalloc(v->nr + 1, sizeof(*st->log));
		for (i = 0; i < v->nr; i++) {
			char *lf = xasprintf("%s[%zu]", field, i);
			int bad = get_line(f, v->kids[i], lf, 1000, &st->log[i]);

			free(lf);
			st->nr_log = i + !bad;
			if (bad)
				goto out;
			if (!*st->log[i]) {
				node_err(f, v->kids[i], "%s[%zu] must not be empty", field, i);
				goto out;
			}
		}
	}
	free(field);

	field = field_name(where, "refusal");
	v = map_get(n, "refusal");
	if (v && !st->expect_load_fail) {
		node_err(f, v, "%s is for a step with 'expect: fails' (or load-fails)", field);
		goto out;
	}
	if (st->expect_load_fail && !v) {
		node_err(f, map_get(n, "expect"), "%s: 'expect: %s' needs 'refusal' naming what "
			 "the kernel must answer: errno (EINVAL, EBUSY, ... or a number) and/or log (a "
			 "text of the kernel's lines)", where, map_get(n, "expect")->text);
		goto out;
	}
	if (v) {
		const struct ynode *en, *lg;

		if (check_map(f, v, field, refusal_keys))
			goto out;
		en = map_get(v, "errno");
		lg = map_get(v, "log");
		if (!en && !lg) {
			node_err(f, v, "%s needs errno and/or log", field);
			goto out;
		}
		if (en) {
			char *end;
			long num;

			if (en->kind != YN_SCALAR || is_null(en)) {
				node_err(f, en, "%s.errno must be an errno name or number, not %s", field,
					 describe(en));
				goto out;
			}
			num = strtol(en->text, &end, 10);
			if (*en->text && !*end && num > 0 && num < 4096) {
				st->refusal_errno = (int)num;
			} else {
				for (size_t k = 0; k < ARRAY_SIZE(errno_names); k++)
					if (!strcmp(en->text, errno_names[k].name))
						st->refusal_errno = errno_names[k].num;
				if (!st->refusal_errno) {
					node_err(f, en, "%s.errno '%.32s' is not an errno klpq knows (EPERM, "
						 "ENOENT, ENOEXEC, EAGAIN, ENOMEM, EACCES, EFAULT, EBUSY, "
						 "EEXIST, ENODEV, EINVAL, ENOSPC, ENOSYS, ENODATA, "
						 "EOPNOTSUPP, ETIMEDOUT, EKEYREJECTED, or a number)", field,
						 en->text);
					goto out;
				}
			}
		}
		if (lg) {
			char *lf = field_name(field, "log");
			int bad = get_string(f, lg, lf, &st->refusal_log);

			free(lf);
			if (bad)
				goto out;
			if (!*st->refusal_log) {
				node_err(f, lg, "%s.log must not be empty", field);
				goto out;
			}
		}
	}
	free(field);

	field = field_name(where, "probes");
	v = map_get(n, "probes");
	if (v) {
		if (check_seq(f, v, field, 0))
			goto out;
		st->probes = xcalloc(v->nr ? v->nr : 1, sizeof(*st->probes));
		st->nr_probes = v->nr;
		for (i = 0; i < v->nr; i++) {
			char *pwhere = xasprintf("%s[%zu]", field, i);
			int r = parse_probe(f, v->kids[i], pwhere, probe_names, &st->probes[i]);

			free(pwhere);
			if (r)
				goto out;
		}
	}
	ret = 0;
out:
	free(field);
	return ret;
}

static size_t count_probes(const struct ynode *steps)
{
	size_t i, nr = 0;

	for (i = 0; i < steps->nr; i++) {
		const struct ynode *pr;

		if (steps->kids[i]->kind != YN_MAP)
			continue;
		pr = map_get(steps->kids[i], "probes");
		if (pr && pr->kind == YN_SEQ)
			nr += pr->nr;
	}
	return nr;
}

static int parse_patchset(struct yfile *f, const struct ynode *root, struct patchset *out)
{
	struct seen_names step_names = { NULL, 0 }, probe_names = { NULL, 0 };
	const struct ynode *v, *steps;
	size_t i;
	int ret = -1;

	if (check_map(f, root, "the patch set", patchset_keys))
		return -1;
	if (need(f, root, "the patch set", "name", &v) || get_name(f, v, "name", &out->name))
		return -1;
	v = map_get(root, "description");
	if (v && get_string(f, v, "description", &out->description))
		return -1;
	if (need(f, root, "the patch set", "steps", &steps) || check_seq(f, steps, "steps", 1))
		return -1;
	v = map_get(root, "method");
	if (v && get_method(f, v, "method", &out->stacked))
		return -1;
	v = map_get(root, "log_filter");
	if (v) {
		if (check_seq(f, v, "log_filter", 1))
			return -1;
		out->log_filter = xcalloc(v->nr, sizeof(*out->log_filter));
		for (i = 0; i < v->nr; i++) {
			char *lf = xasprintf("log_filter[%zu]", i);
			int bad = get_line(f, v->kids[i], lf, 256, &out->log_filter[i]);

			free(lf);
			out->nr_log_filter = i + !bad;
			if (bad)
				return -1;
			if (!*out->log_filter[i])
				return node_err(f, v->kids[i], "log_filter[%zu] must not be empty", i);
		}
	}

	v = map_get(root, "programs");
	if (v) {
		struct seen_names pn = { NULL, 0 };

		if (check_seq(f, v, "programs", 1))
			return -1;
		pn.nodes = xcalloc(v->nr, sizeof(*pn.nodes));
		out->programs = xcalloc(v->nr, sizeof(*out->programs));
		for (i = 0; i < v->nr; i++) {
			const struct ynode *pg = v->kids[i], *x;
			char *w = xasprintf("programs[%zu]", i), *fld = NULL;
			int bad = check_map(f, pg, w, program_keys);

			out->nr_programs = i + 1;
			if (!bad) {
				fld = field_name(w, "name");
				bad = need(f, pg, w, "name", &x) ||
				      get_name(f, x, fld, &out->programs[i].name) ||
				      seen_check(f, &pn, x, fld, "program");
				free(fld);
			}
			if (!bad) {
				fld = field_name(w, "source");
				bad = need(f, pg, w, "source", &x) ||
				      get_existing(f, x, fld, 0, &out->programs[i].source);
				if (!bad && !f->sources_anywhere &&
				    (strncmp(out->programs[i].source, f->dir, strlen(f->dir)) ||
				     out->programs[i].source[strlen(f->dir)] != '/'))
					bad = node_err(f, x, "%s '%.200s' resolves to %s, outside the "
						       "patch set's folder %s", fld, x->text,
						       out->programs[i].source, f->dir);
				free(fld);
			}
			free(w);
			if (bad) {
				free(pn.nodes);
				return -1;
			}
		}
		free(pn.nodes);
	}

	/* check_map has not run on the steps yet: count generously, map_get only reads. */
	step_names.nodes = xcalloc(steps->nr, sizeof(*step_names.nodes));
	probe_names.nodes = xcalloc(count_probes(steps) + 1, sizeof(*probe_names.nodes));
	out->steps = xcalloc(steps->nr, sizeof(*out->steps));
	out->nr_steps = steps->nr;
	for (i = 0; i < steps->nr; i++) {
		char *where = xasprintf("steps[%zu]", i);
		int r = parse_step(f, steps->kids[i], where, &step_names, &probe_names,
				   out->steps, i);

		free(where);
		if (r)
			goto out;
	}
	for (i = 0; i < steps->nr; i++)
		if (out->steps[i].stacked < 0)
			out->steps[i].stacked = out->stacked;
	/* A step builds (or loads) the patch set's own files: `../../etc` or a symlink out of
	 * its folder would copy what it names into the module cache and run its Kbuild. The
	 * scenario may allow otherwise (sources_outside_patchset: true). Checked last, so the
	 * other errors of a file come first. */
	for (i = 0; i < steps->nr && !f->sources_anywhere; i++) {
		const struct step *st = &out->steps[i];
		const char *got = st->source ? st->source : st->module;
		const struct ynode *n = map_get(steps->kids[i], st->source ? "source" : "module");
		size_t tl = strlen(f->dir);

		if (!got)
			continue; /* a step that builds nothing */
		if (strncmp(got, f->dir, tl) || got[tl] != '/') {
			node_err(f, n, "steps[%zu].%s '%.200s' resolves to %s, outside the patch set's "
				 "folder %s (a scenario that trusts it says sources_outside_patchset: "
				 "true)", i, st->source ? "source" : "module", n->text, got, f->dir);
			goto out;
		}
	}
	ret = 0;
out:
	free(step_names.nodes);
	free(probe_names.nodes);
	return ret;
}

int patchset_load(const char *dir, struct patchset *out, struct kerr *e)
{
	return patchset_load_opts(dir, 0, out, e);
}

int patchset_load_opts(const char *dir, int sources_anywhere, struct patchset *out,
		       struct kerr *e)
{
	char *file = path_join(dir, "patchset.yaml");
	struct ynode *root = NULL;
	struct yfile f = { file, NULL, e, sources_anywhere };
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (yaml_load_tree(file, &root, e))
		goto out;
	if (!root) {
		kerr_set(e, "%s:1:1: the file is empty; a patch set needs 'name' and 'steps'", file);
		goto out;
	}
	out->dir = realpath(dir, NULL);
	if (!out->dir) {
		kerr_errno(e, "%s: cannot resolve", dir);
		goto out;
	}
	out->file = path_join(out->dir, "patchset.yaml");
	f.dir = out->dir;
	ret = parse_patchset(&f, root, out);
out:
	if (ret)
		patchset_release(out);
	ynode_free(root);
	free(file);
	return ret;
}

/* ---- scenarios --------------------------------------------------------------------- */

static const char *const scenario_keys[] = {
	"name", "description", "kernels", "vm", "vms", "patchset", "patchsets", "exclude",
	"include", "timeouts", "taint", "rollback", "workloads", "perf", "leak", "stall_recovery",
	"sources_outside_patchset", "livepatch_debug", NULL
};
static const char *const leak_keys[] = { "cycles", "threshold_kb", "exercise", NULL };
static const char *const perf_keys[] = {
	"warmup_s", "phase_s", "pairs", "threshold_pct", "thresholds", "transition_pct",
	"confidence", "resamples", NULL
};
static const char *const local_keys[] = { "vmlinuz", "modules", "build", "release", NULL };
static const char *const kernel_keys[] = { "local", NULL };
static const char *const range_keys[] = { "debian", "flavors", NULL };
static const char *const vm_keys[] = {
	"memory_mb", "cpus", "accel", "cmdline", "network", NULL
};
static const char *const vms_keys[] = {
	"name", "memory_mb", "cpus", "accel", "cmdline", "network", NULL
};
static const char *const exclude_keys[] = {
	"kernel", "abi", "flavor", "series", "patchset", "vm", NULL
};
static const char *const include_keys[] = { "kernel", "patchset", "vm", NULL };

/* Bounds a matrix so that a typo (6.1.0-1..99999999) cannot exhaust memory. */
#define MAX_KERNELS 100000
static const char *const timeout_keys[] = {
	"boot_s", "console_s", "transition_s", "probe_s", "agent_s", NULL
};
static const char *const taint_keys[] = { "allow", NULL };

static void kernel_spec_release(struct kernel_spec *k)
{
	free(k->label);
	free(k->vmlinuz);
	free(k->modules);
	free(k->build);
	free(k->release);
}

static void rule_release(struct matrix_rule *r)
{
	free(r->kernel);
	free(r->abi);
	free(r->flavor);
	free(r->series);
	free(r->patchset);
	free(r->vm);
}

void scenario_release(struct scenario *s)
{
	size_t i;

	free(s->file);
	free(s->name);
	free(s->description);
	for (i = 0; i < s->nr_kernels; i++)
		kernel_spec_release(&s->kernels[i]);
	free(s->kernels);
	for (i = 0; i < s->nr_vms; i++) {
		free(s->vms[i].name);
		free(s->vms[i].extra_cmdline);
	}
	free(s->vms);
	for (i = 0; i < s->nr_patchsets; i++)
		patchset_release(&s->patchsets[i]);
	free(s->patchsets);
	for (i = 0; i < s->nr_workloads; i++) {
		for (size_t j = 0; j < s->workloads[i].nr_args; j++)
			free(s->workloads[i].args[j]);
		free(s->workloads[i].args);
		free(s->workloads[i].name);
	}
	free(s->workloads);
	for (i = 0; i < s->perf.nr_thresholds; i++)
		free(s->perf.thresholds[i].metric);
	free(s->perf.thresholds);
	free(s->leak.exercise);
	for (i = 0; i < s->nr_exclude; i++)
		rule_release(&s->exclude[i]);
	free(s->exclude);
	for (i = 0; i < s->nr_include; i++)
		rule_release(&s->include[i]);
	free(s->include);
	memset(s, 0, sizeof(*s));
}

/* The last component of a path, trailing slashes ignored; malloc'd, maybe "". */
static char *last_component(const char *path)
{
	size_t end = strlen(path), start;

	while (end > 0 && path[end - 1] == '/')
		end--;
	start = end;
	while (start > 0 && path[start - 1] != '/')
		start--;
	return xstrndup(path + start, end - start);
}

static int parse_local(struct yfile *f, const struct ynode *n, const char *where,
		       struct kernel_spec *k)
{
	const struct ynode *v, *mod;
	char *field = NULL;
	int ret = -1;

	if (check_map(f, n, where, local_keys))
		return -1;
	k->kind = KERNEL_LOCAL;

	field = field_name(where, "vmlinuz");
	if (need(f, n, where, "vmlinuz", &v) || get_path(f, v, field, &k->vmlinuz))
		goto out;
	free(field);
	field = field_name(where, "modules");
	if (need(f, n, where, "modules", &mod) || get_path(f, mod, field, &k->modules))
		goto out;
	free(field);
	field = field_name(where, "build");
	v = map_get(n, "build");
	if (v && get_path(f, v, field, &k->build))
		goto out;
	free(field);
	field = field_name(where, "release");
	v = map_get(n, "release");
	if (v) {
		if (get_name(f, v, field, &k->release))
			goto out;
	} else {
		k->release = last_component(k->modules);
		if (!name_is_safe(k->release)) {
			node_err(f, mod, "%s.modules: cannot take a release from '%.200s'; add "
				 "'release:'", where, mod->text);
			goto out;
		}
	}
	k->label = xasprintf("local:%s", k->release);
	ret = 0;
out:
	free(field);
	return ret;
}

static int parse_kernel(struct yfile *f, const struct ynode *n, const char *where,
			struct kernel_spec *k)
{
	struct kerr ke = KERR_INIT;

	k->line = n->line;
	k->col = n->col;
	if (n->kind == YN_SCALAR && !is_null(n)) {
		k->kind = KERNEL_DEBIAN;
		if (get_string(f, n, where, &k->label))
			return -1;
		if (kname_parse_debian(k->label, &k->deb, &ke))
			return node_err(f, n, "%s: %s", where, ke.msg);
		return 0;
	}
	if (n->kind == YN_MAP) {
		const struct ynode *local;

		if (n->nr >= 2 && n->kids[0]->kind == YN_SCALAR &&
		    !strcmp(n->kids[0]->text, "debian") && !map_get(n, "flavors"))
			return node_err(f, n->kids[0], "%s: write a Debian kernel as one string, "
					"'debian:<abi>-<flavor>' with no space after the colon, or "
					"give 'debian: <abi or range>' with 'flavors: [...]'", where);
		if (check_map(f, n, where, kernel_keys) || need(f, n, where, "local", &local))
			return -1;
		{
			char *lwhere = field_name(where, "local");
			int r = parse_local(f, local, lwhere, k);

			free(lwhere);
			return r;
		}
	}
	return node_err(f, n, "%s must be 'debian:<abi>-<flavor>' or a 'local:' mapping, not %s",
			where, describe(n));
}

static int label_cmp(const void *a, const void *b)
{
	const struct kernel_spec *x = *(const struct kernel_spec *const *)a;
	const struct kernel_spec *y = *(const struct kernel_spec *const *)b;
	int c = strcmp(x->label, y->label);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static struct kernel_spec *add_kernel(struct scenario *s, size_t *alloc)
{
	if (s->nr_kernels == *alloc) {
		*alloc = *alloc ? *alloc * 2 : 8;
		s->kernels = xrealloc(s->kernels, *alloc * sizeof(*s->kernels));
	}
	memset(&s->kernels[s->nr_kernels], 0, sizeof(*s->kernels));
	return &s->kernels[s->nr_kernels++];
}

/* Splits "6.1.0-50..56" (or a plain ABI) into prefix, first, last and suffix. */
static int split_range(const char *text, struct sb *prefix, unsigned long *first,
		       unsigned long *last, const char **suffix)
{
	const char *dots = strstr(text, ".."), *a, *b;
	char *end;

	if (!dots) {
		sb_adds(prefix, text);
		*first = *last = 0;
		*suffix = NULL;
		return 0;
	}
	for (a = dots; a > text && a[-1] >= '0' && a[-1] <= '9'; a--)
		;
	b = dots + 2;
	if (a == dots || !(*b >= '0' && *b <= '9'))
		return -1;
	sb_add(prefix, text, (size_t)(a - text));
	*first = strtoul(a, NULL, 10);
	*last = strtoul(b, &end, 10);
	if ((end - b) > 9 || (dots - a) > 9 || strstr(end, ".."))
		return -1;
	*suffix = end;
	return 0;
}

/* kernels[i] as {debian: <abi, N..M range, or a list of them>, flavors: [...]}: one kernel
 * per ABI and flavor. */
static int parse_kernel_abis(struct yfile *f, const struct ynode *abi, const struct ynode *fl,
			     const char *where, struct scenario *s, size_t *alloc)
{
	struct sb prefix = SB_INIT;
	const char *suffix;
	unsigned long first, last, v;
	size_t j;
	int ret = -1;

	if (abi->kind != YN_SCALAR || is_null(abi))
		return node_err(f, abi, "%s.debian must be an ABI (6.1.0-56), a range "
				"(6.1.0-50..56) or a list of them, not %s", where, describe(abi));
	if (split_range(abi->text, &prefix, &first, &last, &suffix) ||
	    (suffix && last < first)) {
		node_err(f, abi, "%s.debian: '%.64s' is not a range like 6.1.0-50..56 or "
			 "6.12.100..111+deb12 (first..last, ascending)", where, abi->text);
		goto out;
	}
	if (suffix && last - first >= MAX_KERNELS) {
		node_err(f, abi, "%s.debian: the range '%.64s' holds more than %d ABIs", where,
			 abi->text, MAX_KERNELS);
		goto out;
	}
	for (v = first; v <= last; v++) {
		for (j = 0; j < fl->nr; j++) {
			const struct ynode *fv = fl->kids[j];
			struct kernel_spec *k;
			struct kerr ke = KERR_INIT;

			if (fv->kind != YN_SCALAR || is_null(fv)) {
				node_err(f, fv, "%s.flavors[%zu] must be a flavor (amd64, cloud-amd64, "
					 "rt-amd64, ...), not %s", where, j, describe(fv));
				goto out;
			}
			if (s->nr_kernels >= MAX_KERNELS) {
				node_err(f, abi, "%s: more than %d kernels in the scenario", where,
					 MAX_KERNELS);
				goto out;
			}
			k = add_kernel(s, alloc);
			k->kind = KERNEL_DEBIAN;
			k->line = abi->line;
			k->col = abi->col;
			k->label = suffix ? xasprintf("debian:%s%lu%s-%s", prefix.buf, v, suffix,
						      fv->text)
					  : xasprintf("debian:%s-%s", prefix.buf, fv->text);
			if (kname_parse_debian(k->label, &k->deb, &ke)) {
				node_err(f, strstr(ke.msg, "flavor") ? fv : abi, "%s: %s", where,
					 ke.msg);
				goto out;
			}
		}
		if (!suffix)
			break;
	}
	ret = 0;
out:
	sb_release(&prefix);
	return ret;
}

static int parse_kernel_range(struct yfile *f, const struct ynode *n, const char *where,
			      struct scenario *s, size_t *alloc)
{
	const struct ynode *abi, *fl;

	if (check_map(f, n, where, range_keys) || need(f, n, where, "debian", &abi) ||
	    need(f, n, where, "flavors", &fl))
		return -1;
	if (check_seq(f, fl, "flavors", 1))
		return -1;
	if (abi->kind != YN_SEQ)
		return parse_kernel_abis(f, abi, fl, where, s, alloc);
	if (check_seq(f, abi, "debian", 1))
		return -1;
	for (size_t i = 0; i < abi->nr; i++)
		if (parse_kernel_abis(f, abi->kids[i], fl, where, s, alloc))
			return -1;
	return 0;
}

static int parse_kernels(struct yfile *f, const struct ynode *n, struct scenario *s)
{
	struct kernel_spec **sorted;
	size_t i, alloc = 0;
	int ret = 0;

	if (check_seq(f, n, "kernels", 1))
		return -1;
	for (i = 0; i < n->nr; i++) {
		const struct ynode *k = n->kids[i];
		char *where = xasprintf("kernels[%zu]", i);
		int r;

		if (k->kind == YN_MAP && map_get(k, "debian") && map_get(k, "flavors"))
			r = parse_kernel_range(f, k, where, s, &alloc);
		else if (s->nr_kernels >= MAX_KERNELS)
			r = node_err(f, k, "%s: more than %d kernels in the scenario", where,
				     MAX_KERNELS);
		else
			r = parse_kernel(f, k, where, add_kernel(s, &alloc));
		free(where);
		if (r)
			return -1;
	}
	/* No kernel twice; sorted so that a 10,000-kernel matrix checks in milliseconds. */
	sorted = xcalloc(s->nr_kernels, sizeof(*sorted));
	for (i = 0; i < s->nr_kernels; i++)
		sorted[i] = &s->kernels[i];
	qsort(sorted, s->nr_kernels, sizeof(*sorted), label_cmp);
	for (i = 1; i < s->nr_kernels; i++) {
		if (!strcmp(sorted[i]->label, sorted[i - 1]->label)) {
			kerr_set(f->e, "%s:%d:%d: kernels: '%s' is listed twice (first at line %d)",
				 f->name, sorted[i]->line, sorted[i]->col, sorted[i]->label,
				 sorted[i - 1]->line);
			ret = -1;
			break;
		}
	}
	free(sorted);
	return ret;
}

static int parse_vm(struct yfile *f, const struct ynode *n, const char *w, struct vm_spec *vm)
{
	const struct ynode *v;
	char field[96];

#define FIELD(k) (snprintf(field, sizeof(field), "%s.%s", w, k), field)
	if (check_map(f, n, w, strcmp(w, "vm") ? vms_keys : vm_keys))
		return -1;
	v = map_get(n, "name");
	if (v && get_name(f, v, FIELD("name"), &vm->name))
		return -1;
	v = map_get(n, "memory_mb");
	if (v && get_uint(f, v, FIELD("memory_mb"), 128, 65536, &vm->memory_mb))
		return -1;
	v = map_get(n, "cpus");
	if (v && get_uint(f, v, FIELD("cpus"), 1, 64, &vm->cpus))
		return -1;
	v = map_get(n, "accel");
	if (v) {
		if (v->kind != YN_SCALAR || is_null(v))
			return node_err(f, v, "%s.accel must be auto, kvm or tcg, not %s",
					w, describe(v));
		if (!strcmp(v->text, "auto"))
			vm->accel = ACCEL_AUTO;
		else if (!strcmp(v->text, "kvm"))
			vm->accel = ACCEL_KVM;
		else if (!strcmp(v->text, "tcg"))
			vm->accel = ACCEL_TCG;
		else
			return node_err(f, v, "%s.accel must be auto, kvm or tcg, not '%.64s'",
					w, v->text);
	}
	v = map_get(n, "cmdline");
	if (v) {
		const char *p;

		if (get_string(f, v, FIELD("cmdline"), &vm->extra_cmdline))
			return -1;
		for (p = vm->extra_cmdline; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return node_err(f, v, "%s.cmdline must be one line without control "
						"characters", w);
		if (strlen(vm->extra_cmdline) > CMDLINE_MAX)
			return node_err(f, v, "%s.cmdline is longer than %d bytes", w,
					CMDLINE_MAX);
		if (!*vm->extra_cmdline) {
			free(vm->extra_cmdline);
			vm->extra_cmdline = NULL;
		}
	}
	v = map_get(n, "network");
	if (v && get_bool(f, v, FIELD("network"), &vm->network))
		return -1;
	return 0;
#undef FIELD
}

static int parse_timeouts(struct yfile *f, const struct ynode *n, struct timeouts *t)
{
	const struct ynode *v;

	if (check_map(f, n, "timeouts", timeout_keys))
		return -1;
	if ((v = map_get(n, "boot_s")) && get_seconds(f, v, "timeouts.boot_s", &t->boot_ms))
		return -1;
	if ((v = map_get(n, "console_s")) && get_seconds(f, v, "timeouts.console_s", &t->console_ms))
		return -1;
	if ((v = map_get(n, "transition_s")) &&
	    get_seconds(f, v, "timeouts.transition_s", &t->transition_ms))
		return -1;
	if ((v = map_get(n, "probe_s")) && get_seconds(f, v, "timeouts.probe_s", &t->probe_ms))
		return -1;
	if ((v = map_get(n, "agent_s")) && get_seconds(f, v, "timeouts.agent_s", &t->agent_ms))
		return -1;
	return 0;
}

static int parse_taint(struct yfile *f, const struct ynode *n, unsigned *mask)
{
	const struct ynode *allow;
	size_t i;

	if (check_map(f, n, "taint", taint_keys))
		return -1;
	allow = map_get(n, "allow");
	if (!allow)
		return 0;
	if (check_seq(f, allow, "taint.allow", 0))
		return -1;
	*mask = 0;
	for (i = 0; i < allow->nr; i++) {
		const struct ynode *l = allow->kids[i];
		int bit;

		if (l->kind != YN_SCALAR || is_null(l))
			return node_err(f, l, "taint.allow[%zu] must be a taint letter, not %s", i,
					describe(l));
		bit = l->len == 1 ? taint_letter_bit(l->text[0]) : -1;
		if (bit < 0)
			return node_err(f, l, "taint.allow[%zu]: unknown taint letter '%.16s' (known, "
					"in kernel order: %s)", i, l->text, taint_letters);
		*mask |= 1u << bit;
	}
	return 0;
}

/* Default name: the file name without .yaml (or .yml). */
static char *default_name(const char *path)
{
	char *base = last_component(path);
	size_t len = strlen(base);

	if (len > 5 && !strcmp(base + len - 5, ".yaml"))
		base[len - 5] = '\0';
	else if (len > 4 && !strcmp(base + len - 4, ".yml"))
		base[len - 4] = '\0';
	return base;
}

/* A plain decimal number (12, 2.5) in [min, max]. */
static int get_number(struct yfile *f, const struct ynode *n, const char *field, double min,
		      double max, double *out)
{
	const char *p;
	char *end;
	double v;

	if (n->kind != YN_SCALAR || !n->plain || is_null(n))
		return node_err(f, n, "%s must be a number, not %s", field, describe(n));
	p = n->text;
	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9')
		goto bad;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			goto bad;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		goto bad;
	v = strtod(n->text, &end);
	if (v < min || v > max)
		return node_err(f, n, "%s must be from %g to %g, not %.64s", field, min, max,
				n->text);
	*out = v;
	return 0;
bad:
	return node_err(f, n, "%s must be a plain number like 5 or 2.5, not '%.64s'", field,
			n->text);
}

/* workloads: [gaming, {name: streaming, bitrate_kbps: 4000}, ...] */
static int parse_workloads(struct yfile *f, const struct ynode *n, struct scenario *s)
{
	if (check_seq(f, n, "workloads", 1))
		return -1;
	s->workloads = xcalloc(n->nr, sizeof(*s->workloads));
	for (size_t i = 0; i < n->nr; i++) {
		const struct ynode *w = n->kids[i], *name = w;
		struct workload_spec *ws = &s->workloads[i];
		char where[32];

		s->nr_workloads = i + 1;
		snprintf(where, sizeof(where), "workloads[%zu]", i);
		ws->line = w->line;
		ws->col = w->col;
		if (w->kind == YN_MAP) {
			if (need(f, w, where, "name", &name))
				return -1;
		} else if (w->kind != YN_SCALAR || is_null(w)) {
			return node_err(f, w, "%s must be a workload name or a mapping with 'name', "
					"not %s", where, describe(w));
		}
		if (name->kind != YN_SCALAR || is_null(name) || !perf_workload_known(name->text))
			return node_err(f, name, "%s: unknown workload '%.64s' (known: %s)", where,
					name->kind == YN_SCALAR ? name->text : "", perf_workload_names());
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->workloads[j].name, name->text))
				return node_err(f, name, "%s: workload '%s' is listed twice", where,
						name->text);
		ws->name = xstrdup(name->text);
		if (w->kind != YN_MAP)
			continue;
		ws->args = xcalloc(w->nr + 1, sizeof(*ws->args));
		for (size_t k = 0; k < w->nr; k += 2) {
			const struct ynode *key = w->kids[k], *val = w->kids[k + 1];
			const struct perf_option *opt;
			char *field, *flag;

			if (key->kind != YN_SCALAR || !strcmp(key->text, "name"))
				continue;
			opt = perf_option_find(ws->name, key->text);
			if (!opt) {
				struct sb known = SB_INIT;
				int r;

				perf_option_names(ws->name, &known);
				r = node_err(f, key, "unknown key '%.64s' in %s (a %s workload takes: "
					     "name, %s)", key->text, where, ws->name, known.buf);
				sb_release(&known);
				return r;
			}
			for (size_t j = 0; j < k; j += 2)
				if (!strcmp(w->kids[j]->text, key->text))
					return node_err(f, key, "duplicate key '%s' in %s", key->text,
							where);
			field = field_name(where, key->text);
			if (opt->min <= opt->max) {
				unsigned v;
				int r = get_uint(f, val, field, (unsigned)opt->min, (unsigned)opt->max,
						 &v);
				free(field);
				if (r)
					return -1;
				ws->args[ws->nr_args + 1] = xasprintf("%u", v);
			} else {
				char *v = NULL;
				int ok = 1;

				if (get_string(f, val, field, &v)) {
					free(field);
					return -1;
				}
				if (opt->choices) {
					ok = 0;
					for (const char *const *c = opt->choices; *c; c++)
						ok |= !strcmp(*c, v);
				}
				if (!ok || !*v || v[0] == '-') {
					node_err(f, val, "%s: '%.64s' is not allowed here", field, v);
					free(v);
					free(field);
					return -1;
				}
				free(field);
				ws->args[ws->nr_args + 1] = v;
			}
			flag = xasprintf("--%s", key->text);
			for (char *c = flag; *c; c++)
				if (*c == '_')
					*c = '-';
			ws->args[ws->nr_args] = flag;
			ws->nr_args += 2;
		}
	}
	return 0;
}

static int parse_leak(struct yfile *f, const struct ynode *n, struct leak_spec *l)
{
	const struct ynode *v;

	if (check_map(f, n, "leak", leak_keys))
		return -1;
	if ((v = map_get(n, "cycles")) && get_uint(f, v, "leak.cycles", 0, 50, &l->cycles))
		return -1;
	if ((v = map_get(n, "threshold_kb")) &&
	    get_uint(f, v, "leak.threshold_kb", 1, 10000000, &l->threshold_kb))
		return -1;
	if ((v = map_get(n, "exercise"))) {
		if (get_string(f, v, "leak.exercise", &l->exercise))
			return -1;
		if (!*l->exercise)
			return node_err(f, v, "leak.exercise must not be empty");
	}
	return 0;
}

static int parse_perf(struct yfile *f, const struct ynode *n, struct perf_spec *pf)
{
	const struct ynode *v;
	double d;

	if (check_map(f, n, "perf", perf_keys))
		return -1;
	if ((v = map_get(n, "warmup_s")) && get_seconds(f, v, "perf.warmup_s", &pf->warmup_ms))
		return -1;
	if ((v = map_get(n, "phase_s")) && get_seconds(f, v, "perf.phase_s", &pf->phase_ms))
		return -1;
	if ((v = map_get(n, "pairs")) && get_uint(f, v, "perf.pairs", 1, 20, &pf->pairs))
		return -1;
	if ((v = map_get(n, "resamples")) &&
	    get_uint(f, v, "perf.resamples", 100, 100000, &pf->resamples))
		return -1;
	if ((v = map_get(n, "threshold_pct")) &&
	    get_number(f, v, "perf.threshold_pct", 0.01, 1000, &pf->threshold_pct))
		return -1;
	if ((v = map_get(n, "transition_pct")) &&
	    get_number(f, v, "perf.transition_pct", 0.01, 100000, &pf->transition_pct))
		return -1;
	if ((v = map_get(n, "confidence")) && get_number(f, v, "perf.confidence", 0.5, 0.999, &d))
		return -1;
	if (v)
		pf->confidence = d;
	if ((v = map_get(n, "thresholds"))) {
		if (v->kind != YN_MAP)
			return node_err(f, v, "perf.thresholds must be a mapping of metric: percent, "
					"not %s", describe(v));
		pf->thresholds = xcalloc(v->nr / 2 + 1, sizeof(*pf->thresholds));
		for (size_t i = 0; i < v->nr; i += 2) {
			const struct ynode *key = v->kids[i];
			char *field;
			int r;

			if (key->kind != YN_SCALAR || !perf_metric_find(key->text)) {
				struct sb known = SB_INIT;
				size_t nm;
				const struct perf_metric *m = perf_metrics(&nm);

				for (size_t k = 0; k < nm; k++)
					sb_addf(&known, "%s%s", k ? ", " : "", m[k].name);
				r = node_err(f, key, "perf.thresholds: unknown metric '%.64s' (known: %s)",
					     key->kind == YN_SCALAR ? key->text : "", known.buf);
				sb_release(&known);
				return r;
			}
			for (size_t j = 0; j < i; j += 2)
				if (!strcmp(v->kids[j]->text, key->text))
					return node_err(f, key, "duplicate key '%s' in perf.thresholds",
							key->text);
			field = field_name("perf.thresholds", key->text);
			r = get_number(f, v->kids[i + 1], field, 0.01, 1000, &d);
			free(field);
			if (r)
				return -1;
			pf->thresholds[pf->nr_thresholds].metric = xstrdup(key->text);
			pf->thresholds[pf->nr_thresholds++].pct = d;
		}
	}
	return 0;
}

/* A patch-set folder named at node ps (relative to the scenario as given, so that messages
 * keep the caller's spelling), loaded into out. */
static int load_patchset_at(struct yfile *f, const char *path, const struct ynode *ps,
			    const char *field, struct patchset *out)
{
	char *ps_dir = NULL, *ps_file = NULL, *given_dir = NULL;
	int ret = -1;

	if (get_path(f, ps, field, &ps_dir))
		return -1;
	given_dir = path_dirname(path);
	free(ps_dir);
	ps_dir = path_join(given_dir, ps->text);
	if (!is_dir(ps_dir)) {
		node_err(f, ps, "%s '%.200s' is not a folder (looked for %s)", field, ps->text,
			 ps_dir);
		goto out;
	}
	ps_file = path_join(ps_dir, "patchset.yaml");
	if (!path_exists(ps_file)) {
		node_err(f, ps, "%s '%.200s' holds no patchset.yaml", field, ps->text);
		goto out;
	}
	ret = patchset_load_opts(ps_dir, f->sources_anywhere, out, f->e);
out:
	free(given_dir);
	free(ps_dir);
	free(ps_file);
	return ret;
}

static int parse_vms(struct yfile *f, const struct ynode *root, struct scenario *s)
{
	const struct ynode *one = map_get(root, "vm"), *many = map_get(root, "vms");
	size_t i, j;

	if (one && many)
		return node_err(f, many, "give either 'vm' (one VM) or 'vms' (a matrix axis), "
				"not both");
	if (many && check_seq(f, many, "vms", 1))
		return -1;
	s->nr_vms = many ? many->nr : 1;
	s->vms = xcalloc(s->nr_vms, sizeof(*s->vms));
	for (i = 0; i < s->nr_vms; i++) {
		struct vm_spec *vm = &s->vms[i];
		char w[32];

		vm->memory_mb = 1024;
		vm->cpus = 2;
		vm->accel = ACCEL_AUTO;
		if (!many) {
			if (one && parse_vm(f, one, "vm", vm))
				return -1;
			continue;
		}
		snprintf(w, sizeof(w), "vms[%zu]", i);
		if (parse_vm(f, many->kids[i], w, vm))
			return -1;
		if (!vm->name)
			return node_err(f, many->kids[i], "missing required key 'name' in %s", w);
		for (j = 0; j < i; j++)
			if (!strcmp(s->vms[j].name, vm->name))
				return node_err(f, many->kids[i], "%s: the name '%s' is used twice", w,
						vm->name);
	}
	return 0;
}

static int parse_patchsets(struct yfile *f, const char *path, const struct ynode *root,
			   struct scenario *s)
{
	const struct ynode *one = map_get(root, "patchset"), *many = map_get(root, "patchsets");
	size_t i, j;

	if (one && many)
		return node_err(f, many, "give either 'patchset' or 'patchsets', not both");
	if (!one && !many)
		return node_err(f, root, "missing required key 'patchset' (or 'patchsets') in "
				"the scenario");
	if (many && check_seq(f, many, "patchsets", 1))
		return -1;
	s->nr_patchsets = many ? many->nr : 1;
	s->patchsets = xcalloc(s->nr_patchsets, sizeof(*s->patchsets));
	for (i = 0; i < s->nr_patchsets; i++) {
		char w[32];

		snprintf(w, sizeof(w), "patchsets[%zu]", i);
		if (load_patchset_at(f, path, many ? many->kids[i] : one, many ? w : "patchset",
				     &s->patchsets[i]))
			return -1;
		for (j = 0; j < i; j++)
			if (!strcmp(s->patchsets[j].name, s->patchsets[i].name))
				return node_err(f, many->kids[i], "%s: patch set name '%s' is used "
						"twice (cell names would clash)", w,
						s->patchsets[i].name);
	}
	return 0;
}

/* exclude: / include: entries. */
static int parse_rules(struct yfile *f, const struct ynode *n, const char *what, int include,
		       struct matrix_rule **out, size_t *nr)
{
	size_t i;

	if (check_seq(f, n, what, 0))
		return -1;
	*out = xcalloc(n->nr ? n->nr : 1, sizeof(**out));
	for (i = 0; i < n->nr; i++) {
		const struct ynode *r = n->kids[i];
		struct matrix_rule *m = &(*out)[i];
		char w[32];
		const struct ynode *v;
		struct { const char *key; char **dst; } fields[] = {
			{ "kernel", &m->kernel }, { "abi", &m->abi }, { "flavor", &m->flavor },
			{ "series", &m->series }, { "patchset", &m->patchset }, { "vm", &m->vm },
		};

		*nr = i + 1;
		snprintf(w, sizeof(w), "%s[%zu]", what, i);
		if (check_map(f, r, w, include ? include_keys : exclude_keys))
			return -1;
		if (!r->nr)
			return node_err(f, r, "%s must name at least one of its keys", w);
		m->line = r->line;
		m->col = r->col;
		for (size_t k = 0; k < ARRAY_SIZE(fields); k++) {
			char *field;
			int bad;

			if (!(v = map_get(r, fields[k].key)))
				continue;
			field = field_name(w, fields[k].key);
			bad = get_string(f, v, field, fields[k].dst) ||
			      (!**fields[k].dst && node_err(f, v, "%s must not be empty", field));
			free(field);
			if (bad)
				return -1;
		}
		if (include && !m->kernel)
			return node_err(f, r, "missing required key 'kernel' in %s", w);
	}
	return 0;
}

static int parse_scenario(struct yfile *f, const char *path, const struct ynode *root,
			  struct scenario *s)
{
	const struct ynode *v;

	if (check_map(f, root, "the scenario", scenario_keys))
		return -1;
	v = map_get(root, "name");
	if (v) {
		if (get_name(f, v, "name", &s->name))
			return -1;
	} else {
		s->name = default_name(path);
		if (!name_is_safe(s->name) || strlen(s->name) > NAME_MAX_LEN)
			return node_err(f, root, "the file name gives no safe scenario name ('%.64s'); "
					"add 'name:'", s->name);
	}
	v = map_get(root, "description");
	if (v && get_string(f, v, "description", &s->description))
		return -1;
	if (need(f, root, "the scenario", "kernels", &v) || parse_kernels(f, v, s))
		return -1;
	if (parse_vms(f, root, s))
		return -1;
	s->vm = s->vms[0];
	if ((v = map_get(root, "timeouts")) && parse_timeouts(f, v, &s->timeouts))
		return -1;
	if ((v = map_get(root, "taint")) && parse_taint(f, v, &s->taint_allow))
		return -1;
	if ((v = map_get(root, "livepatch_debug")) &&
	    get_bool(f, v, "livepatch_debug", &s->livepatch_debug))
		return -1;
	if ((v = map_get(root, "rollback")) && get_bool(f, v, "rollback", &s->rollback))
		return -1;
	if ((v = map_get(root, "leak")) && parse_leak(f, v, &s->leak))
		return -1;
	if ((v = map_get(root, "stall_recovery"))) {
		if (v->kind == YN_SCALAR && !strcmp(v->text, "none"))
			s->stall_recovery = RECOVER_NONE;
		else if (v->kind == YN_SCALAR && !strcmp(v->text, "signal"))
			s->stall_recovery = RECOVER_SIGNAL;
		else if (v->kind == YN_SCALAR && !strcmp(v->text, "reverse"))
			s->stall_recovery = RECOVER_REVERSE;
		else
			return node_err(f, v, "stall_recovery must be none, signal or reverse, not "
					"'%.64s'", v->kind == YN_SCALAR ? v->text : describe(v));
	}
	if ((v = map_get(root, "workloads")) && parse_workloads(f, v, s))
		return -1;
	if ((v = map_get(root, "perf")) && parse_perf(f, v, &s->perf))
		return -1;
	if (map_get(root, "perf") && !s->nr_workloads)
		return node_err(f, map_get(root, "perf"), "perf needs 'workloads' to measure");
	if ((v = map_get(root, "exclude")) &&
	    parse_rules(f, v, "exclude", 0, &s->exclude, &s->nr_exclude))
		return -1;
	if ((v = map_get(root, "include")) &&
	    parse_rules(f, v, "include", 1, &s->include, &s->nr_include))
		return -1;

	/* The patch sets last, so that the scenario's own mistakes are reported first. */
	v = map_get(root, "sources_outside_patchset");
	if (v && get_bool(f, v, "sources_outside_patchset", &f->sources_anywhere))
		return -1;
	if (parse_patchsets(f, path, root, s))
		return -1;
	s->patchset = s->patchsets[0];
	return 0;
}

int scenario_load(const char *path, struct scenario *out, struct kerr *e)
{
	struct ynode *root = NULL;
	struct yfile f = { path, NULL, e, 0 };
	char *dir = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	out->timeouts.boot_ms = 180 * 1000;
	out->timeouts.console_ms = 20 * 1000;
	out->timeouts.transition_ms = 60 * 1000;
	out->timeouts.probe_ms = 10 * 1000;
	out->timeouts.agent_ms = 30 * 1000;
	out->taint_allow = TAINT_DEFAULT;
	out->perf.warmup_ms = 2000;
	out->perf.phase_ms = 10000;
	out->perf.pairs = 3;
	out->perf.threshold_pct = 5;
	out->perf.transition_pct = 100;
	out->perf.confidence = 0.95;
	out->perf.resamples = 2000;
	out->leak.cycles = 3;
	out->stall_recovery = RECOVER_SIGNAL;
	out->leak.threshold_kb = 1024;
	out->rollback = 1;

	if (yaml_load_tree(path, &root, e))
		goto out;
	if (!root) {
		kerr_set(e, "%s:1:1: the file is empty; a scenario needs 'kernels' and 'patchset'",
			 path);
		goto out;
	}
	out->file = realpath(path, NULL);
	if (!out->file) {
		kerr_errno(e, "%s: cannot resolve", path);
		goto out;
	}
	dir = path_dirname(out->file);
	f.dir = dir;
	ret = parse_scenario(&f, path, root, out);
out:
	if (ret)
		scenario_release(out);
	ynode_free(root);
	free(dir);
	return ret;
}

/* ---- taint ------------------------------------------------------------------------- */

int taint_letter_bit(char letter)
{
	const char *p;

	if (!letter)
		return -1;
	p = strchr(taint_letters, letter);
	return p ? (int)(p - taint_letters) : -1;
}

void taint_format(unsigned long taint, char *out, size_t outlen)
{
	size_t i, n = 0;

	if (!outlen)
		return;
	for (i = 0; i < sizeof(taint_letters) - 1 && n + 1 < outlen; i++)
		if (taint & (1ul << i))
			out[n++] = taint_letters[i];
	out[n] = '\0';
}
