/* pool.c: the hosts file and the pool's rules (pool.h). */
#define _GNU_SOURCE
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yfile.h"

static const char *const host_keys[] = { "uri", "name", "capacity", "labels", NULL };
static const char *const file_keys[] = { "hosts", "health_s", NULL };

int pool_uri_remote(const char *uri, char *host, size_t len)
{
	const char *p = uri ? strstr(uri, "://") : NULL, *end, *at;

	if (host && len)
		*host = '\0';
	if (!p)
		return 0;
	p += 3;
	end = p + strcspn(p, "/?");
	if (end == p)
		return 0;
	at = memchr(p, '@', (size_t)(end - p));
	if (at)
		p = at + 1;
	if (host && len) {
		const char *colon = *p == '[' ? NULL : memchr(p, ':', (size_t)(end - p));
		size_t n = (size_t)((colon ? colon : end) - p);

		snprintf(host, len, "%.*s", (int)n, p);
	}
	return end > p;
}

void pool_release(struct pool *p)
{
	for (size_t i = 0; i < p->nr; i++) {
		struct pool_host *h = &p->hosts[i];

		free(h->name);
		free(h->uri);
		for (size_t j = 0; j < h->nr_labels; j++)
			free(h->labels[j]);
		free(h->labels);
	}
	free(p->hosts);
	free(p->file);
	memset(p, 0, sizeof(*p));
}

static int parse_host(struct yfile *f, const struct ynode *n, const char *w,
		      struct pool_host *h)
{
	const struct ynode *v;
	char field[96];

#define FIELD(k) (snprintf(field, sizeof(field), "%s.%s", w, k), field)
	memset(h, 0, sizeof(*h));
	h->capacity = 1;
	h->line = n->line;
	h->probe_fd = -1;
	if (n->kind == YN_SCALAR) {
		v = n;
	} else {
		if (yf_check_map(f, n, w, host_keys))
			return -1;
		if (yf_need(f, n, w, "uri", &v))
			return -1;
	}
	if (yf_string(f, v, n == v ? w : FIELD("uri"), &h->uri))
		return -1;
	if (!strstr(h->uri, "://") || strlen(h->uri) > 1024 || strpbrk(h->uri, " \t\n\r\"'<>"))
		return yf_err(f, v, "%s must be a libvirt URI such as qemu+ssh://user@host/system "
				"or qemu+tls://host/system, not '%.64s'", n == v ? w : field, h->uri);
	if (n->kind == YN_MAP) {
		v = yf_get(n, "name");
		if (v && yf_name(f, v, FIELD("name"), &h->name))
			return -1;
		v = yf_get(n, "capacity");
		if (v && yf_uint(f, v, FIELD("capacity"), 1, 256, &h->capacity))
			return -1;
		v = yf_get(n, "labels");
		if (v && yf_names(f, v, FIELD("labels"), POOL_MAX_LABELS, &h->labels,
				  &h->nr_labels))
			return -1;
	}
	if (!h->name) {
		char host[256];

		if (pool_uri_remote(h->uri, host, sizeof(host)) && *host)
			h->name = xstrdup(host);
		else
			h->name = xstrdup("localhost");
	}
#undef FIELD
	return 0;
}

int pool_parse(struct yfile *f, const struct ynode *n, const char *field, struct pool *p)
{
	const struct ynode *list = n, *v;

	p->health_s = POOL_HEALTH_S;
	if (n->kind == YN_MAP) {
		if (yf_check_map(f, n, field, file_keys))
			return -1;
		if (yf_need(f, n, field, "hosts", &list))
			return -1;
		v = yf_get(n, "health_s");
		if (v && yf_uint(f, v, "health_s", 1, SECONDS_MAX, &p->health_s))
			return -1;
	}
	if (yf_seq(f, list, field, 1))
		return -1;
	if (list->nr > POOL_MAX_HOSTS)
		return yf_err(f, list, "%s lists %zu hosts; at most %d", field, list->nr,
				POOL_MAX_HOSTS);
	p->hosts = xcalloc(list->nr, sizeof(*p->hosts));
	for (size_t i = 0; i < list->nr; i++) {
		char w[64];

		snprintf(w, sizeof(w), "%s[%zu]", field, i);
		if (parse_host(f, list->kids[i], w, &p->hosts[p->nr]) < 0) {
			p->nr++;
			return -1;
		}
		p->nr++;
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(p->hosts[j].uri, p->hosts[i].uri))
				return yf_err(f, list->kids[i], "%s: the URI '%.64s' is listed twice "
						"(first at line %d); raise its capacity instead", w,
						p->hosts[i].uri, p->hosts[j].line);
			if (!strcmp(p->hosts[j].name, p->hosts[i].name))
				return yf_err(f, list->kids[i], "%s: the host name '%s' is used twice "
						"(first at line %d); give each a name", w,
						p->hosts[i].name, p->hosts[j].line);
		}
	}
	return 0;
}

int pool_load(const char *path, struct pool *p, struct kerr *e)
{
	struct ynode *root = NULL;
	struct yfile f = { path, NULL, e, 0 };
	int ret = -1;

	memset(p, 0, sizeof(*p));
	if (yf_load_tree(path, &root, e))
		goto out;
	if (!root) {
		kerr_set(e, "%s:1:1: the hosts file is empty; it lists libvirt URIs "
			 "(docs/pool.md)", path);
		goto out;
	}
	ret = pool_parse(&f, root, "hosts", p);
	if (ret == 0)
		p->file = xstrdup(path);
out:
	if (ret)
		pool_release(p);
	yf_free(root);
	return ret;
}

unsigned pool_capacity(const struct pool *p)
{
	unsigned n = 0;

	for (size_t i = 0; i < p->nr; i++)
		if (!p->hosts[i].down)
			n += p->hosts[i].capacity;
	return n;
}

int pool_host_has(const struct pool_host *h, const char *const *req, size_t nr_req)
{
	for (size_t i = 0; i < nr_req; i++) {
		size_t j;

		for (j = 0; j < h->nr_labels; j++)
			if (!strcmp(h->labels[j], req[i]))
				break;
		if (j == h->nr_labels)
			return 0;
	}
	return 1;
}

int pool_pick(const struct pool *p, const char *const *req, size_t nr_req, uint64_t avoid)
{
	int best = -1;

	for (size_t i = 0; i < p->nr; i++) {
		const struct pool_host *h = &p->hosts[i];
		const struct pool_host *b = best >= 0 ? &p->hosts[best] : NULL;

		if (h->down || h->running >= h->capacity || (i < 64 && (avoid >> i) & 1) ||
		    !pool_host_has(h, req, nr_req))
			continue;
		if (!b || h->capacity - h->running > b->capacity - b->running ||
		    (h->capacity - h->running == b->capacity - b->running &&
		     h->started < b->started))
			best = (int)i;
	}
	return best;
}

int pool_any_has(const struct pool *p, const char *const *req, size_t nr_req)
{
	for (size_t i = 0; i < p->nr; i++)
		if (pool_host_has(&p->hosts[i], req, nr_req))
			return 1;
	return 0;
}

int pool_fault(struct pool *p, size_t i, const char *kind, const char *msg, uint64_t now)
{
	struct pool_host *h = &p->hosts[i];

	if (h->down)
		return 0;
	if (!strcmp(kind, "start") && ++h->start_faults < 2)
		return 0;
	h->down = 1;
	h->probe_at_ms = now + (uint64_t)p->health_s * 1000;
	if (!strcmp(kind, "start"))
		snprintf(h->reason, sizeof(h->reason), "failed to start domains twice; the last: "
			 "%s", msg);
	else if (!strcmp(kind, "connect"))
		snprintf(h->reason, sizeof(h->reason), "refused the connection: %s", msg);
	else
		snprintf(h->reason, sizeof(h->reason), "lost the connection mid-cell: %s", msg);
	return 1;
}

size_t pool_up(const struct pool *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->nr; i++)
		n += !p->hosts[i].down;
	return n;
}

char *pool_down_reasons(const struct pool *p)
{
	struct sb o = SB_INIT;

	for (size_t i = 0; i < p->nr; i++)
		if (p->hosts[i].down)
			sb_addf(&o, "%s%s: %s", o.len ? "; " : "", p->hosts[i].name,
				p->hosts[i].reason);
	return sb_detach(&o, NULL);
}

int pool_can(const struct pool *p, const char *const *req, size_t nr_req, uint64_t avoid)
{
	for (size_t i = 0; i < p->nr; i++)
		if (!p->hosts[i].down && !(i < 64 && (avoid >> i) & 1) &&
		    pool_host_has(&p->hosts[i], req, nr_req))
			return 1;
	return 0;
}
