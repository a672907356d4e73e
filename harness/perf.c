/* perf.c: workloads, metrics, samples and phases (see perf.h). */
#include <stdlib.h>
#include <string.h>

#include "perf.h"

static const struct perf_metric metrics[] = {
	{ "gaming.frame_p50", "gaming", "frame_us", STATS_P50, 0, "us", 0 },
	{ "gaming.frame_p99", "gaming", "frame_us", STATS_P99, 0, "us", 1 },
	{ "gaming.frame_p999", "gaming", "frame_us", STATS_P999, 0, "us", 0 },
	{ "gaming.frame_max", "gaming", "frame_us", STATS_MAX, 0, "us", 0 },
	{ "gaming.late_p99", "gaming", "late_us", STATS_P99, 0, "us", 0 },
	{ "gaming.missed", "gaming", "miss", STATS_MEAN, 0, "fraction of ticks", 0 },
	{ "gaming.rtt_p50", "gaming", "rtt_us", STATS_P50, 0, "us", 0 },
	{ "gaming.rtt_p99", "gaming", "rtt_us", STATS_P99, 0, "us", 0 },
	{ "streaming.throughput", "streaming", "throughput_kbps", STATS_MEAN, 1, "kbit/s", 0 },
	{ "streaming.latency_p50", "streaming", "seg_latency_us", STATS_P50, 0, "us", 0 },
	{ "streaming.latency_p99", "streaming", "seg_latency_us", STATS_P99, 0, "us", 1 },
	{ "streaming.stall_max", "streaming", "stall_us", STATS_MAX, 0, "us", 0 },
	{ "streaming.write_p50", "streaming", "write_ns", STATS_P50, 0, "ns", 0 },
	{ "mining.hps", "mining", "hps", STATS_MEAN, 1, "hashes/s", 1 },
	{ "mining.share_p99", "mining", "share_us", STATS_P99, 0, "us", 0 },
	{ "callbench.ns_per_call", "callbench", "ns_per_call", STATS_P50, 0, "ns", 1 },
	{ "callbench.ns_per_call_p99", "callbench", "ns_per_call", STATS_P99, 0, "ns", 0 },
};

static const char *const callbench_ops[] = { "read", "getppid", "udp", NULL };
static const char *const streaming_modes[] = { "paced", "saturate", NULL };

static const struct perf_option options[] = {
	{ "gaming", "tick_hz", 1, 1000, NULL },
	{ "gaming", "clients", 0, 64, NULL },
	{ "gaming", "physics_us", 0, 1000000, NULL },
	{ "streaming", "bitrate_kbps", 1, 10000000, NULL },
	{ "streaming", "segment_ms", 1, 10000, NULL },
	{ "streaming", "buffer_ms", 1, 600000, NULL },
	{ "streaming", "mode", 1, 0, streaming_modes },
	{ "streaming", "write_bytes", 1, 1048576, NULL },
	{ "mining", "threads", 1, 64, NULL },
	{ "mining", "share_bits", 1, 64, NULL },
	{ "callbench", "op", 1, 0, callbench_ops },
	{ "callbench", "path", 1, 0, NULL },
	{ "callbench", "batch", 1, 100000000, NULL },
};

static const char *const workload_names[] = { "gaming", "streaming", "mining", "callbench" };

const struct perf_metric *perf_metrics(size_t *n)
{
	*n = ARRAY_SIZE(metrics);
	return metrics;
}

const struct perf_metric *perf_metric_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(metrics); i++)
		if (!strcmp(metrics[i].name, name))
			return &metrics[i];
	return NULL;
}

int perf_workload_known(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(workload_names); i++)
		if (!strcmp(workload_names[i], name))
			return 1;
	return 0;
}

const char *perf_workload_names(void)
{
	return "gaming, streaming, mining, callbench";
}

const struct perf_option *perf_option_find(const char *workload, const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		if (!strcmp(options[i].workload, workload) && !strcmp(options[i].key, key))
			return &options[i];
	return NULL;
}

void perf_option_names(const char *workload, struct sb *out)
{
	int first = 1;

	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		if (!strcmp(options[i].workload, workload)) {
			sb_addf(out, "%s%s", first ? "" : ", ", options[i].key);
			first = 0;
		}
}

/* ---- samples ---------------------------------------------------------------------- */

void perf_samples_init(struct perf_samples *ps, const char *workload)
{
	memset(ps, 0, sizeof(*ps));
	ps->workload = xstrdup(workload);
	sb_init(&ps->partial);
}

void perf_samples_release(struct perf_samples *ps)
{
	for (size_t i = 0; i < ps->nr_series; i++) {
		free(ps->series[i].key);
		free(ps->series[i].t);
		free(ps->series[i].v);
	}
	free(ps->series);
	free(ps->workload);
	sb_release(&ps->partial);
	memset(ps, 0, sizeof(*ps));
}

const struct perf_series *perf_series_find(const struct perf_samples *ps, const char *key)
{
	for (size_t i = 0; i < ps->nr_series; i++)
		if (!strcmp(ps->series[i].key, key))
			return &ps->series[i];
	return NULL;
}

static struct perf_series *series_get(struct perf_samples *ps, const char *key, size_t len)
{
	struct perf_series *s;

	for (size_t i = 0; i < ps->nr_series; i++)
		if (strlen(ps->series[i].key) == len && !memcmp(ps->series[i].key, key, len))
			return &ps->series[i];
	if (ps->nr_series >= 64)
		return NULL; /* a workload has a handful of keys: more is garbage */
	ps->series = xrealloc(ps->series, (ps->nr_series + 1) * sizeof(*ps->series));
	s = &ps->series[ps->nr_series++];
	memset(s, 0, sizeof(*s));
	s->key = xstrndup(key, len);
	return s;
}

static void series_push(struct perf_series *s, uint64_t t, double v)
{
	if (s->n == PERF_MAX_SAMPLES) {
		/* keep every other sample: the bound holds, the distribution stays fair */
		size_t k = 0;
		for (size_t i = 0; i < s->n; i += 2, k++) {
			s->t[k] = s->t[i];
			s->v[k] = s->v[i];
		}
		s->n = k;
	}
	if (s->n == s->alloc) {
		s->alloc = s->alloc ? s->alloc * 2 : 256;
		s->t = xrealloc(s->t, s->alloc * sizeof(*s->t));
		s->v = xrealloc(s->v, s->alloc * sizeof(*s->v));
	}
	s->t[s->n] = t;
	s->v[s->n] = v;
	s->n++;
}

static int key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* "<t_ns> key=value [key=value ...]"; a line starting with '#' is a header or comment. */
static void parse_line(struct perf_samples *ps, char *line)
{
	char *p = line, *end;
	unsigned long long t;
	int any = 0;

	if (*p == '#') {
		ps->header_seen = 1;
		return;
	}
	if (!*p)
		return;
	t = strtoull(p, &end, 10);
	if (end == p || *end != ' ') {
		ps->bad_lines++;
		return;
	}
	p = end;
	while (*p == ' ') {
		char *key = ++p, *eq;
		double v;
		struct perf_series *s;

		while (key_char(*p))
			p++;
		eq = p;
		if (eq == key || *eq != '=') {
			ps->bad_lines++;
			return;
		}
		v = strtod(eq + 1, &end);
		if (end == eq + 1 || (*end != ' ' && *end != '\0') || v != v) {
			ps->bad_lines++;
			return;
		}
		p = end;
		s = series_get(ps, key, (size_t)(eq - key));
		if (s)
			series_push(s, (uint64_t)t, v);
		any = 1;
	}
	if (*p || !any)
		ps->bad_lines++;
}

void perf_samples_feed(struct perf_samples *ps, const char *data, size_t len)
{
	ps->offset += len;
	sb_add(&ps->partial, data, len);
	for (;;) {
		char *nl = memchr(ps->partial.buf, '\n', ps->partial.len);
		size_t used;

		if (!nl)
			break;
		*nl = '\0';
		parse_line(ps, ps->partial.buf);
		used = (size_t)(nl + 1 - ps->partial.buf);
		memmove(ps->partial.buf, nl + 1, ps->partial.len - used);
		ps->partial.len -= used;
		ps->partial.buf[ps->partial.len] = '\0';
	}
	if (ps->partial.len > 4096) { /* no sample line is that long */
		ps->bad_lines++;
		sb_reset(&ps->partial);
	}
}

/* ---- phases ------------------------------------------------------------------------ */

void perf_phase_add(struct perf_phases *ph, enum perf_phase_kind kind, const char *label,
		    uint64_t start_ns, uint64_t end_ns)
{
	struct perf_phase *p;

	ph->p = xrealloc(ph->p, (ph->n + 1) * sizeof(*ph->p));
	p = &ph->p[ph->n++];
	p->kind = kind;
	p->label = xstrdup(label);
	p->start_ns = start_ns;
	p->end_ns = end_ns;
}

void perf_phases_release(struct perf_phases *ph)
{
	for (size_t i = 0; i < ph->n; i++)
		free(ph->p[i].label);
	free(ph->p);
	memset(ph, 0, sizeof(*ph));
}

double *perf_values_in(const struct perf_series *s, uint64_t start_ns, uint64_t end_ns,
		       size_t *n)
{
	double *v = NULL;
	size_t k = 0;

	*n = 0;
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->t[i] >= start_ns && s->t[i] < end_ns)
			k++;
	if (!k)
		return NULL;
	v = xcalloc(k, sizeof(*v));
	for (size_t i = 0; i < s->n; i++)
		if (s->t[i] >= start_ns && s->t[i] < end_ns)
			v[(*n)++] = s->v[i];
	return v;
}
