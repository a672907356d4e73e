/* yfile.c: the positioned YAML reader (yfile.h). */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "yfile.h"

/* ---- the node tree ---------------------------------------------------------------- */

void yf_free(struct ynode *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->nr; i++)
		yf_free(n->kids[i]);
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
	yf_free(n);
	return -1;
}

/* Reads one YAML document. *root is NULL when the file holds no document at all. */
int yf_load_tree(const char *path, struct ynode **root, struct kerr *e)
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
	yf_free(n);
	yaml_parser_delete(&r.parser);
	sb_release(&data);
	return ret;
}

/* ---- typed access with positioned errors --------------------------------------------- */

int yf_err(struct yfile *f, const struct ynode *n, const char *fmt, ...)
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

int yf_is_null(const struct ynode *n)
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

const char *yf_describe(const struct ynode *n)
{
	if (n->kind == YN_MAP)
		return "a mapping";
	if (n->kind == YN_SEQ)
		return "a list";
	if (yf_is_null(n))
		return "empty (null)";
	return n->plain ? "a plain value" : "a quoted string";
}

/* "where.key", or "key" at the top. Caller frees. */
char *yf_field(const char *where, const char *key)
{
	return where && *where ? xasprintf("%s.%s", where, key) : xstrdup(key);
}

/*
 * Checks that n is a mapping whose keys are strings from `allowed` (NULL-terminated),
 * each at most once. `what` names the mapping in messages ("vm", "steps[0]").
 */
int yf_check_map(struct yfile *f, const struct ynode *n, const char *what,
		 const char *const *allowed)
{
	size_t i, j;

	if (n->kind != YN_MAP)
		return yf_err(f, n, "%s must be a mapping, not %s", what, yf_describe(n));
	for (i = 0; i < n->nr; i += 2) {
		const struct ynode *key = n->kids[i];
		const char *const *a;

		if (key->kind != YN_SCALAR || yf_is_null(key))
			return yf_err(f, key, "keys in %s must be names, not %s", what,
					yf_describe(key));
		for (a = allowed; *a; a++)
			if (!strcmp(*a, key->text) && strlen(*a) == key->len)
				break;
		if (!*a) {
			struct sb known = SB_INIT;
			int ret;

			for (a = allowed; *a; a++)
				sb_addf(&known, "%s%s", a == allowed ? "" : ", ", *a);
			ret = yf_err(f, key, "unknown key '%.64s' in %s (known keys: %s)",
				       key->text, what, known.buf);
			sb_release(&known);
			return ret;
		}
		for (j = 0; j < i; j += 2)
			if (!strcmp(n->kids[j]->text, key->text))
				return yf_err(f, key, "duplicate key '%s' in %s (first at line %d)",
						key->text, what, n->kids[j]->line);
	}
	return 0;
}

/* The value of the first key in mapping n, or NULL. */
const struct ynode *yf_get(const struct ynode *n, const char *key)
{
	size_t i;

	for (i = 0; i < n->nr; i += 2)
		if (n->kids[i]->kind == YN_SCALAR && !strcmp(n->kids[i]->text, key))
			return n->kids[i + 1];
	return NULL;
}

int yf_need(struct yfile *f, const struct ynode *map, const char *what, const char *key,
	    const struct ynode **out)
{
	*out = yf_get(map, key);
	if (!*out)
		return yf_err(f, map, "missing required key '%s' in %s", key, what);
	return 0;
}

/* Any scalar except null; no NUL bytes. *out is malloc'd. */
int yf_string(struct yfile *f, const struct ynode *n, const char *field, char **out)
{
	if (n->kind != YN_SCALAR || yf_is_null(n))
		return yf_err(f, n, "%s must be a string, not %s", field, yf_describe(n));
	if (strlen(n->text) != n->len)
		return yf_err(f, n, "%s contains a NUL byte", field);
	free(*out);
	*out = xstrdup(n->text);
	return 0;
}

int yf_name(struct yfile *f, const struct ynode *n, const char *field, char **out)
{
	if (yf_string(f, n, field, out))
		return -1;
	if (strlen(*out) > NAME_MAX_LEN)
		return yf_err(f, n, "%s is %zu characters long; at most %d (it names folders, "
				"modules and results)", field, strlen(*out), NAME_MAX_LEN);
	if (!name_is_safe(*out))
		return yf_err(f, n, "%s '%.64s' is not a safe name (use letters, digits, '.', "
				"'_', '+' and '-'; not '.' or '..')", field, *out);
	return 0;
}

int yf_bool(struct yfile *f, const struct ynode *n, const char *field, int *out)
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
		if (!yf_is_null(n))
			return yf_err(f, n, "%s must be true or false, not '%.64s'", field,
					n->text);
	}
	return yf_err(f, n, "%s must be true or false, not %s", field, yf_describe(n));
}

/* A plain, unsigned decimal integer in min..max. */
int yf_uint(struct yfile *f, const struct ynode *n, const char *field,
	    unsigned min, unsigned max, unsigned *out)
{
	unsigned long long v = 0;
	const char *p;

	if (n->kind != YN_SCALAR || !n->plain || yf_is_null(n))
		return yf_err(f, n, "%s must be a whole number, not %s", field, yf_describe(n));
	for (p = n->text; *p; p++) {
		if (*p < '0' || *p > '9')
			return yf_err(f, n, "%s must be a whole number, not '%.64s'", field,
					n->text);
		if (v <= ULLONG_MAX / 100)
			v = v * 10 + (unsigned)(*p - '0');
	}
	if (n->text[0] == '0' && n->text[1])
		return yf_err(f, n, "%s: '%.64s' has a leading zero", field, n->text);
	if (v < min || v > max)
		return yf_err(f, n, "%s %.64s is out of range (%u..%u)", field, n->text, min, max);
	*out = (unsigned)v;
	return 0;
}

/* Seconds as a plain decimal (10, 2.5), more than 0 and at most SECONDS_MAX; out in ms. */
int yf_seconds(struct yfile *f, const struct ynode *n, const char *field,
	       unsigned *out_ms)
{
	unsigned long long whole = 0, ms = 0, scale = 100;
	const char *p = n->text;

	if (n->kind != YN_SCALAR || !n->plain || yf_is_null(n))
		return yf_err(f, n, "%s must be a number of seconds, not %s", field,
				yf_describe(n));
	if (*p == '-')
		return yf_err(f, n, "%s must be more than 0 seconds, not %.64s", field, n->text);
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
		return yf_err(f, n, "%s %.64s is out of range (at most %d seconds)", field,
				n->text, SECONDS_MAX);
	if (!whole && !ms)
		return yf_err(f, n, "%s must be more than 0 seconds (at least 0.001), not %.64s",
				field, n->text);
	*out_ms = (unsigned)(whole * 1000 + ms);
	return 0;
bad:
	return yf_err(f, n, "%s must be a number of seconds like 10 or 2.5, not '%.64s'",
			field, n->text);
}

/* A non-empty path; relative ones are taken from f->dir. *out is absolute, malloc'd. */
int yf_path(struct yfile *f, const struct ynode *n, const char *field, char **out)
{
	char *s = NULL;

	if (yf_string(f, n, field, &s))
		return -1;
	if (!*s) {
		free(s);
		return yf_err(f, n, "%s must not be empty", field);
	}
	free(*out);
	*out = path_join(f->dir, s);
	free(s);
	return 0;
}

/* Like get_path, and the path must exist as a folder (want_dir) or a regular file. */
int yf_existing(struct yfile *f, const struct ynode *n, const char *field, int want_dir,
		char **out)
{
	char *joined = NULL, *real;
	struct stat st;

	if (yf_path(f, n, field, &joined))
		return -1;
	real = realpath(joined, NULL);
	if (!real || stat(real, &st)) {
		yf_err(f, n, "%s '%.200s' does not exist (looked for %s)", field, n->text, joined);
		goto fail;
	}
	if (want_dir && !S_ISDIR(st.st_mode)) {
		yf_err(f, n, "%s '%.200s' is not a folder", field, n->text);
		goto fail;
	}
	if (!want_dir && !S_ISREG(st.st_mode)) {
		yf_err(f, n, "%s '%.200s' is not a regular file", field, n->text);
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
int yf_seq(struct yfile *f, const struct ynode *n, const char *field, int nonempty)
{
	if (n->kind != YN_SEQ)
		return yf_err(f, n, "%s must be a list, not %s", field, yf_describe(n));
	if (nonempty && !n->nr)
		return yf_err(f, n, "%s must not be empty", field);
	return 0;
}


/* Name nodes already seen, to report a duplicate with the line of the first. */
int yf_seen(struct yfile *f, struct seen_names *seen, const struct ynode *n,
	    const char *field, const char *kind)
{
	size_t i;

	for (i = 0; i < seen->nr; i++)
		if (!strcmp(seen->nodes[i]->text, n->text))
			return yf_err(f, n, "%s: %s name '%s' is used twice (first at line %d)",
					field, kind, n->text, seen->nodes[i]->line);
	seen->nodes[seen->nr++] = n;
	return 0;
}

/* A one-line text sent to the guest: no control characters, at most max bytes. */
int yf_line(struct yfile *f, const struct ynode *v, const char *field, size_t max,
	    char **out)
{
	if (yf_string(f, v, field, out))
		return -1;
	for (const char *c = *out; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return yf_err(f, v, "%s must be one line without control characters", field);
	if (strlen(*out) > max)
		return yf_err(f, v, "%s is %zu bytes, more than %zu", field, strlen(*out), max);
	return 0;
}

/* A list of at most max safe names (yf_name), field[i] each: *out (NULL-terminated) and *nr,
 * filled as far as they were read (the caller frees them either way). */
int yf_names(struct yfile *f, const struct ynode *n, const char *field, size_t max,
	     char ***out, size_t *nr)
{
	if (yf_seq(f, n, field, 0))
		return -1;
	if (n->nr > max)
		return yf_err(f, n, "%s has %zu labels; at most %zu", field, n->nr, max);
	*out = xcalloc(n->nr + 1, sizeof(**out));
	for (size_t i = 0; i < n->nr; i++) {
		char item[160];

		snprintf(item, sizeof(item), "%s[%zu]", field, i);
		if (yf_name(f, n->kids[i], item, &(*out)[*nr]))
			return -1;
		(*nr)++;
	}
	return 0;
}
