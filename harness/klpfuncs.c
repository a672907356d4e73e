/* klpfuncs.c: the functions a livepatch module replaces, from its relocations (klpfuncs.h). */
#define _GNU_SOURCE
#include "klpfuncs.h"

#include <elf.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KO_MAX (64u << 20)

/* what an 8-byte pointer in the module's data points to */
enum target { T_OTHER, T_STRING, T_FUNC, T_DATA };

struct ptr {
	uint16_t sec;        /* the section holding the pointer */
	uint64_t off;        /* its offset there */
	enum target kind;
	uint16_t tsec;       /* the section pointed into */
	uint64_t tval;       /* the offset pointed at */
	const char *str;     /* T_STRING: the string; T_FUNC: the function's symbol or NULL */
};

struct ko {
	const unsigned char *b;
	size_t size;
	const Elf64_Shdr *sh;
	size_t nsh;
	const Elf64_Sym *sym;
	size_t nsym;
	const char *symstr;
	size_t symstr_size;
};

static int in_file(const struct ko *k, uint64_t off, uint64_t len)
{
	return off <= k->size && len <= k->size - off;
}

/* the NUL-terminated identifier at offset val of section s, or NULL */
static const char *ident_at(const struct ko *k, size_t s, uint64_t val)
{
	const Elf64_Shdr *h = &k->sh[s];
	const char *p;
	uint64_t n = 0;

	if (h->sh_type != SHT_PROGBITS || val >= h->sh_size)
		return NULL;
	p = (const char *)k->b + h->sh_offset + val;
	while (val + n < h->sh_size && p[n]) {
		char c = p[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return NULL;
		n++;
	}
	return n && val + n < h->sh_size ? p : NULL;
}

/* the name of a FUNC symbol at offset val of section s, or NULL */
static const char *func_at(const struct ko *k, size_t s, uint64_t val)
{
	for (size_t i = 0; i < k->nsym; i++) {
		const Elf64_Sym *y = &k->sym[i];

		if (ELF64_ST_TYPE(y->st_info) == STT_FUNC && y->st_shndx == s &&
		    y->st_value == val && y->st_name < k->symstr_size)
			return k->symstr + y->st_name;
	}
	return NULL;
}

static int ptr_cmp(const void *a, const void *b)
{
	const struct ptr *x = a, *y = b;

	if (x->sec != y->sec)
		return x->sec < y->sec ? -1 : 1;
	return (x->off > y->off) - (x->off < y->off);
}

/* Every R_X86_64_64 relocation of an allocated data section, resolved. */
static int read_ptrs(const struct ko *k, struct ptr **out, size_t *nr, struct kerr *e)
{
	size_t n = 0, alloc = 0;
	struct ptr *p = NULL;

	for (size_t s = 0; s < k->nsh; s++) {
		const Elf64_Shdr *h = &k->sh[s];
		const Elf64_Rela *r;
		size_t cnt;

		if (h->sh_type != SHT_RELA || h->sh_info >= k->nsh || h->sh_link >= k->nsh ||
		    k->sh[h->sh_link].sh_type != SHT_SYMTAB)
			continue;
		if (!(k->sh[h->sh_info].sh_flags & SHF_ALLOC) ||
		    (k->sh[h->sh_info].sh_flags & SHF_EXECINSTR))
			continue;
		if (h->sh_entsize != sizeof(Elf64_Rela) || !in_file(k, h->sh_offset, h->sh_size)) {
			free(p);
			return kerr_set(e, "relocation section %zu is malformed", s);
		}
		r = (const Elf64_Rela *)(k->b + h->sh_offset);
		cnt = h->sh_size / sizeof(Elf64_Rela);
		for (size_t i = 0; i < cnt; i++) {
			size_t si = ELF64_R_SYM(r[i].r_info);
			const Elf64_Sym *y;
			struct ptr *q;
			uint64_t val;

			if (ELF64_R_TYPE(r[i].r_info) != R_X86_64_64 || si >= k->nsym)
				continue;
			y = &k->sym[si];
			if (y->st_shndx == SHN_UNDEF || y->st_shndx >= k->nsh)
				continue;
			val = y->st_value + (uint64_t)r[i].r_addend;
			if (n == alloc) {
				alloc = alloc ? alloc * 2 : 64;
				p = xrealloc(p, alloc * sizeof(*p));
			}
			q = &p[n++];
			memset(q, 0, sizeof(*q));
			q->sec = (uint16_t)h->sh_info;
			q->off = r[i].r_offset;
			q->tsec = y->st_shndx;
			q->tval = val;
			if (k->sh[y->st_shndx].sh_flags & SHF_EXECINSTR) {
				q->kind = T_FUNC;
				q->str = func_at(k, y->st_shndx, val);
			} else if (k->sh[y->st_shndx].sh_flags & SHF_WRITE) {
				q->kind = T_DATA;
			} else if ((q->str = ident_at(k, y->st_shndx, val))) {
				q->kind = T_STRING;
			}
		}
	}
	qsort(p, n, sizeof(*p), ptr_cmp);
	*out = p;
	*nr = n;
	return 0;
}

static const struct ptr *ptr_at(const struct ptr *p, size_t n, uint16_t sec, uint64_t off)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t m = (lo + hi) / 2;

		if (p[m].sec < sec || (p[m].sec == sec && p[m].off < off))
			lo = m + 1;
		else
			hi = m;
	}
	return lo < n && p[lo].sec == sec && p[lo].off == off ? &p[lo] : NULL;
}

int klp_funcs_read(const char *path, struct klp_fn **out, size_t *nr, struct kerr *e)
{
	struct sb file = SB_INIT;
	struct ko k = { 0 };
	const Elf64_Ehdr *eh;
	struct ptr *p = NULL;
	size_t np = 0, n = 0;
	struct klp_fn *f = NULL;
	int rc = -1;

	*out = NULL;
	*nr = 0;
	if (read_file(path, &file, KO_MAX, e) < 0)
		return -1;
	k.b = (const unsigned char *)file.buf;
	k.size = file.len;
	eh = (const Elf64_Ehdr *)k.b;
	if (k.size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_type != ET_REL || eh->e_machine != EM_X86_64) {
		kerr_set(e, "%s: not an x86-64 ELF relocatable object (a kernel module)", path);
		goto out;
	}
	if (eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    !in_file(&k, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr))) {
		kerr_set(e, "%s: truncated section headers", path);
		goto out;
	}
	k.sh = (const Elf64_Shdr *)(k.b + eh->e_shoff);
	k.nsh = eh->e_shnum;
	for (size_t s = 0; s < k.nsh; s++) {
		const Elf64_Shdr *h = &k.sh[s];

		if (h->sh_type != SHT_NOBITS && !in_file(&k, h->sh_offset, h->sh_size)) {
			kerr_set(e, "%s: section %zu lies outside the file", path, s);
			goto out;
		}
		if (h->sh_type == SHT_SYMTAB && h->sh_entsize == sizeof(Elf64_Sym) &&
		    h->sh_link < k.nsh) {
			k.sym = (const Elf64_Sym *)(k.b + h->sh_offset);
			k.nsym = h->sh_size / sizeof(Elf64_Sym);
			k.symstr = (const char *)k.b + k.sh[h->sh_link].sh_offset;
			k.symstr_size = k.sh[h->sh_link].sh_size;
		}
	}
	if (!k.sym || !k.symstr_size || k.symstr[k.symstr_size - 1]) {
		kerr_set(e, "%s: no symbol table", path);
		goto out;
	}
	if (read_ptrs(&k, &p, &np, e) < 0)
		goto out;
	/* a klp_func: a pointer to a name, then one to a function; it belongs to the object whose
	 * funcs pointer is the nearest at or before it in the same section */
	for (size_t i = 0; i + 1 < np; i++) {
		const struct ptr *a = &p[i], *b = &p[i + 1], *owner = NULL;
		const Elf64_Shdr *h = &k.sh[a->sec];
		struct klp_fn *x;

		if (a->kind != T_STRING || b->kind != T_FUNC || b->sec != a->sec ||
		    b->off != a->off + 8)
			continue;
		for (size_t j = 0; j < np; j++)
			if (p[j].kind == T_DATA && p[j].tsec == a->sec && p[j].tval <= a->off &&
			    (!owner || p[j].tval > owner->tval))
				owner = &p[j];
		if (!owner)
			continue;
		f = xrealloc(f, (n + 1) * sizeof(*f));
		x = &f[n++];
		memset(x, 0, sizeof(*x));
		{
			const struct ptr *name = owner->off >= 8 ?
				ptr_at(p, np, owner->sec, owner->off - 8) : NULL;

			snprintf(x->obj, sizeof(x->obj), "%s",
				 name && name->kind == T_STRING ? name->str : "vmlinux");
		}
		snprintf(x->old_name, sizeof(x->old_name), "%s", a->str);
		snprintf(x->new_name, sizeof(x->new_name), "%s", b->str ? b->str : "");
		if (h->sh_type == SHT_PROGBITS && a->off + 24 <= h->sh_size)
			memcpy(&x->sympos, k.b + h->sh_offset + a->off + 16, sizeof(x->sympos));
	}
	if (!n) {
		kerr_set(e, "%s: no struct klp_func found (not a livepatch module?)", path);
		goto out;
	}
	*out = f;
	*nr = n;
	f = NULL;
	rc = 0;
out:
	free(f);
	free(p);
	sb_release(&file);
	return rc;
}
