/* plan.c: expands a scenario's matrix into cells (see plan.h). */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

static int glob_ok(const char *pattern, const char *value)
{
	return !pattern || !fnmatch(pattern, value ? value : "", 0);
}

static int excluded_by(const struct matrix_rule *r, const struct kernel_spec *k,
		       const struct patchset *ps, const struct vm_spec *vm)
{
	int deb = k->kind == KERNEL_DEBIAN;

	return glob_ok(r->kernel, k->label) && glob_ok(r->abi, deb ? k->deb.abi : "") &&
	       glob_ok(r->flavor, deb ? k->deb.flavor : "") &&
	       glob_ok(r->series, deb ? k->deb.series : "") && glob_ok(r->patchset, ps->name) &&
	       glob_ok(r->vm, vm->name);
}

static void add_cell(struct plan *p, size_t *alloc, const struct kernel_spec *k,
		     const struct patchset *ps, const struct vm_spec *vm)
{
	struct plan_cell *c;

	if (p->nr == *alloc) {
		*alloc = *alloc ? *alloc * 2 : 16;
		p->cells = xrealloc(p->cells, *alloc * sizeof(*p->cells));
	}
	c = &p->cells[p->nr];
	memset(c, 0, sizeof(*c));
	c->kernel = k;
	c->patchset = ps;
	c->vm = vm;
	c->index = p->nr++;
}

static int rule_err(const struct scenario *sc, const struct matrix_rule *r, struct kerr *e,
		    const char *what, size_t i, const char *msg)
{
	kerr_set(e, "%s:%d:%d: %s[%zu] %s", sc->file, r->line, r->col, what, i, msg);
	return -1;
}

static int id_cmp(const void *a, const void *b)
{
	const struct plan_cell *x = *(const struct plan_cell *const *)a;
	const struct plan_cell *y = *(const struct plan_cell *const *)b;
	int c = strcmp(x->id, y->id);

	return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* <release>_<patchset>[_<vm>], unsafe characters as '-'; duplicates (a debian: and a local:
 * kernel of one release) numbered -2, -3 ... in plan order. */
static void make_ids(const struct scenario *sc, struct plan *p)
{
	struct plan_cell **by_id = xcalloc(p->nr ? p->nr : 1, sizeof(*by_id));
	size_t i;

	for (i = 0; i < p->nr; i++) {
		struct plan_cell *c = &p->cells[i];
		const struct kernel_spec *k = c->kernel;
		const char *rel = k->kind == KERNEL_DEBIAN ? k->deb.release : k->release;

		if (sc->nr_vms > 1)
			c->id = xasprintf("%.100s_%.60s_%.40s", rel ? rel : "kernel",
					  c->patchset->name, c->vm->name);
		else
			c->id = xasprintf("%.100s_%.60s", rel ? rel : "kernel", c->patchset->name);
		for (char *q = c->id; *q; q++)
			if (!name_char_ok(*q))
				*q = '-';
		by_id[i] = c;
	}
	qsort(by_id, p->nr, sizeof(*by_id), id_cmp);
	for (i = 1; i < p->nr; i++) {
		size_t first = i - 1, n = 2;

		/* a group of equal ids is contiguous, and in plan order (id_cmp's tie-break) */
		while (i < p->nr && !strcmp(by_id[i]->id, by_id[first]->id)) {
			char *id = xasprintf("%s-%zu", by_id[i]->id, n++);

			free(by_id[i]->id);
			by_id[i]->id = id;
			i++;
		}
	}
	free(by_id);
}

static const struct patchset *find_patchset(const struct scenario *sc, const char *name)
{
	for (size_t i = 0; i < sc->nr_patchsets; i++)
		if (!name || !strcmp(sc->patchsets[i].name, name))
			return &sc->patchsets[i];
	return NULL;
}

static const struct vm_spec *find_vm(const struct scenario *sc, const char *name)
{
	for (size_t i = 0; i < sc->nr_vms; i++)
		if (!name || (sc->vms[i].name && !strcmp(sc->vms[i].name, name)))
			return &sc->vms[i];
	return NULL;
}

static int add_includes(const struct scenario *sc, struct plan *p, size_t *alloc,
			struct kerr *e)
{
	size_t i, j;

	p->extra = xcalloc(sc->nr_include ? sc->nr_include : 1, sizeof(*p->extra));
	for (i = 0; i < sc->nr_include; i++) {
		const struct matrix_rule *r = &sc->include[i];
		const struct kernel_spec *k = NULL;
		const struct patchset *ps;
		const struct vm_spec *vm;
		struct kerr ke = KERR_INIT;

		for (j = 0; j < sc->nr_kernels && !k; j++)
			if (!strcmp(sc->kernels[j].label, r->kernel))
				k = &sc->kernels[j];
		for (j = 0; j < p->nr_extra && !k; j++)
			if (!strcmp(p->extra[j].label, r->kernel))
				k = &p->extra[j];
		if (!k) {
			struct kernel_spec *nk = &p->extra[p->nr_extra];

			if (kname_parse_debian(r->kernel, &nk->deb, &ke)) {
				char *msg = xasprintf("kernel: %s (an include names a debian: kernel "
						      "or a kernel listed in kernels)", ke.msg);
				rule_err(sc, r, e, "include", i, msg);
				free(msg);
				return -1;
			}
			nk->kind = KERNEL_DEBIAN;
			nk->label = xstrdup(r->kernel);
			nk->line = r->line;
			nk->col = r->col;
			k = nk;
			p->nr_extra++;
		}
		if (!r->patchset && sc->nr_patchsets > 1)
			return rule_err(sc, r, e, "include", i, "needs 'patchset' (the scenario "
					"lists several)");
		if (!(ps = find_patchset(sc, r->patchset)))
			return rule_err(sc, r, e, "include", i, "names a patch set that is not in "
					"patchsets");
		if (!r->vm && sc->nr_vms > 1)
			return rule_err(sc, r, e, "include", i, "needs 'vm' (the scenario lists "
					"several vms)");
		if (!(vm = find_vm(sc, r->vm)))
			return rule_err(sc, r, e, "include", i, "names a vm that is not in vms");
		for (j = 0; j < p->nr; j++)
			if (p->cells[j].kernel == k && p->cells[j].patchset == ps &&
			    p->cells[j].vm == vm)
				return rule_err(sc, r, e, "include", i, "adds a cell that is already "
						"in the matrix");
		add_cell(p, alloc, k, ps, vm);
	}
	return 0;
}

int plan_build(const struct scenario *sc, struct plan *p, struct kerr *e)
{
	size_t alloc = 0, ki, pi, vi, r;
	size_t *hits = xcalloc(sc->nr_exclude ? sc->nr_exclude : 1, sizeof(*hits));
	int ret = -1;

	memset(p, 0, sizeof(*p));
	for (ki = 0; ki < sc->nr_kernels; ki++)
		for (pi = 0; pi < sc->nr_patchsets; pi++)
			for (vi = 0; vi < sc->nr_vms; vi++) {
				const struct kernel_spec *k = &sc->kernels[ki];
				const struct patchset *ps = &sc->patchsets[pi];
				const struct vm_spec *vm = &sc->vms[vi];
				int out = 0;

				for (r = 0; r < sc->nr_exclude; r++)
					if (excluded_by(&sc->exclude[r], k, ps, vm)) {
						hits[r]++;
						out = 1;
					}
				if (!out)
					add_cell(p, &alloc, k, ps, vm);
			}
	for (r = 0; r < sc->nr_exclude; r++)
		if (!hits[r]) {
			rule_err(sc, &sc->exclude[r], e, "exclude", r, "matches no cell (a typo?)");
			goto out;
		}
	if (add_includes(sc, p, &alloc, e))
		goto out;
	if (!p->nr) {
		const struct matrix_rule *first = sc->nr_exclude ? &sc->exclude[0] : NULL;
		kerr_set(e, "%s:%d:%d: exclude: the matrix has no cells left (every cell is "
			 "excluded)", sc->file, first ? first->line : 1, first ? first->col : 1);
		goto out;
	}
	make_ids(sc, p);
	p->total = p->nr;
	ret = 0;
out:
	free(hits);
	if (ret)
		plan_release(p);
	return ret;
}

int plan_parse_shard(const char *text, unsigned *i, unsigned *n, struct kerr *e)
{
	char *end;
	unsigned long a, b;

	a = strtoul(text, &end, 10);
	if (end == text || *end != '/' || text[0] == '-' || text[0] == '+')
		goto bad;
	text = end + 1;
	b = strtoul(text, &end, 10);
	if (end == text || *end || text[0] == '-' || text[0] == '+')
		goto bad;
	if (a < 1 || b < 1 || a > b || b > 10000)
		goto bad;
	*i = (unsigned)a;
	*n = (unsigned)b;
	return 0;
bad:
	kerr_set(e, "--shard wants I/N with 1 <= I <= N <= 10000 (for example 2/4)");
	return -1;
}

void plan_shard(struct plan *p, unsigned i, unsigned n)
{
	size_t k, kept = 0;

	for (k = 0; k < p->nr; k++) {
		if (p->cells[k].index % n == i - 1)
			p->cells[kept++] = p->cells[k];
		else
			free(p->cells[k].id);
	}
	p->nr = kept;
}

void plan_release(struct plan *p)
{
	size_t i;

	for (i = 0; i < p->nr; i++)
		free(p->cells[i].id);
	free(p->cells);
	for (i = 0; i < p->nr_extra; i++)
		free(p->extra[i].label);
	free(p->extra);
	memset(p, 0, sizeof(*p));
}
