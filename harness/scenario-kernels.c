/* scenario-kernels.c: the kernels: list of a scenario (docs/scenario.md, "kernels"). */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kname.h"
#include "yfile.h"

static const char *const local_keys[] = { "vmlinuz", "modules", "build", "release", NULL };
static const char *const kernel_keys[] = { "local", NULL };
static const char *const range_keys[] = { "debian", "flavors", NULL };

/* Bounds a matrix so that a typo (6.1.0-1..99999999) cannot exhaust memory. */
#define MAX_KERNELS 100000

/* The last component of a path, trailing slashes ignored; malloc'd, maybe "". */
char *scn_last_component(const char *path)
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

	if (yf_check_map(f, n, where, local_keys))
		return -1;
	k->kind = KERNEL_LOCAL;

	field = yf_field(where, "vmlinuz");
	if (yf_need(f, n, where, "vmlinuz", &v) || yf_path(f, v, field, &k->vmlinuz))
		goto out;
	free(field);
	field = yf_field(where, "modules");
	if (yf_need(f, n, where, "modules", &mod) || yf_path(f, mod, field, &k->modules))
		goto out;
	free(field);
	field = yf_field(where, "build");
	v = yf_get(n, "build");
	if (v && yf_path(f, v, field, &k->build))
		goto out;
	free(field);
	field = yf_field(where, "release");
	v = yf_get(n, "release");
	if (v) {
		if (yf_name(f, v, field, &k->release))
			goto out;
	} else {
		k->release = scn_last_component(k->modules);
		if (!name_is_safe(k->release)) {
			yf_err(f, mod, "%s.modules: cannot take a release from '%.200s'; add "
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
	if (n->kind == YN_SCALAR && !yf_is_null(n)) {
		k->kind = KERNEL_DEBIAN;
		if (yf_string(f, n, where, &k->label))
			return -1;
		if (kname_parse_debian(k->label, &k->deb, &ke))
			return yf_err(f, n, "%s: %s", where, ke.msg);
		return 0;
	}
	if (n->kind == YN_MAP) {
		const struct ynode *local;

		if (n->nr >= 2 && n->kids[0]->kind == YN_SCALAR &&
		    !strcmp(n->kids[0]->text, "debian") && !yf_get(n, "flavors"))
			return yf_err(f, n->kids[0], "%s: write a Debian kernel as one string, "
					"'debian:<abi>-<flavor>' with no space after the colon, or "
					"give 'debian: <abi or range>' with 'flavors: [...]'", where);
		if (yf_check_map(f, n, where, kernel_keys) || yf_need(f, n, where, "local", &local))
			return -1;
		{
			char *lwhere = yf_field(where, "local");
			int r = parse_local(f, local, lwhere, k);

			free(lwhere);
			return r;
		}
	}
	return yf_err(f, n, "%s must be 'debian:<abi>-<flavor>' or a 'local:' mapping, not %s",
			where, yf_describe(n));
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

	if (abi->kind != YN_SCALAR || yf_is_null(abi))
		return yf_err(f, abi, "%s.debian must be an ABI (6.1.0-56), a range "
				"(6.1.0-50..56) or a list of them, not %s", where, yf_describe(abi));
	if (split_range(abi->text, &prefix, &first, &last, &suffix) ||
	    (suffix && last < first)) {
		yf_err(f, abi, "%s.debian: '%.64s' is not a range like 6.1.0-50..56 or "
			 "6.12.100..111+deb12 (first..last, ascending)", where, abi->text);
		goto out;
	}
	if (suffix && last - first >= MAX_KERNELS) {
		yf_err(f, abi, "%s.debian: the range '%.64s' holds more than %d ABIs", where,
			 abi->text, MAX_KERNELS);
		goto out;
	}
	for (v = first; v <= last; v++) {
		for (j = 0; j < fl->nr; j++) {
			const struct ynode *fv = fl->kids[j];
			struct kernel_spec *k;
			struct kerr ke = KERR_INIT;

			if (fv->kind != YN_SCALAR || yf_is_null(fv)) {
				yf_err(f, fv, "%s.flavors[%zu] must be a flavor (amd64, cloud-amd64, "
					 "rt-amd64, ...), not %s", where, j, yf_describe(fv));
				goto out;
			}
			if (s->nr_kernels >= MAX_KERNELS) {
				yf_err(f, abi, "%s: more than %d kernels in the scenario", where,
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
				yf_err(f, strstr(ke.msg, "flavor") ? fv : abi, "%s: %s", where,
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

	if (yf_check_map(f, n, where, range_keys) || yf_need(f, n, where, "debian", &abi) ||
	    yf_need(f, n, where, "flavors", &fl))
		return -1;
	if (yf_seq(f, fl, "flavors", 1))
		return -1;
	if (abi->kind != YN_SEQ)
		return parse_kernel_abis(f, abi, fl, where, s, alloc);
	if (yf_seq(f, abi, "debian", 1))
		return -1;
	for (size_t i = 0; i < abi->nr; i++)
		if (parse_kernel_abis(f, abi->kids[i], fl, where, s, alloc))
			return -1;
	return 0;
}

int parse_kernels(struct yfile *f, const struct ynode *n, struct scenario *s)
{
	struct kernel_spec **sorted;
	size_t i, alloc = 0;
	int ret = 0;

	if (yf_seq(f, n, "kernels", 1))
		return -1;
	for (i = 0; i < n->nr; i++) {
		const struct ynode *k = n->kids[i];
		char *where = xasprintf("kernels[%zu]", i);
		int r;

		if (k->kind == YN_MAP && yf_get(k, "debian") && yf_get(k, "flavors"))
			r = parse_kernel_range(f, k, where, s, &alloc);
		else if (s->nr_kernels >= MAX_KERNELS)
			r = yf_err(f, k, "%s: more than %d kernels in the scenario", where,
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
