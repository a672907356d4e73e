/* fuzz_console.c: libFuzzer target for the console crash classifier (harness/console.c).
 *
 * The input is console output. It is fed to one scanner in chunks whose sizes come from a
 * rolling hash of the bytes fed so far; a few chunks (chosen by the same hash) go through
 * cscan_feed_line() instead, and rarely the reports are cleared mid-stream, as the runner does
 * per step. Invariants checked after every chunk and after cscan_finish():
 *   nr reports <= CSCAN_MAX_REPORTS, every title NUL-terminated and shorter than 160 chars,
 *   evidence count <= CSCAN_CONTEXT_BEFORE + 1 + CSCAN_CONTEXT_AFTER, each evidence line
 *   present, NUL-terminated within CSCAN_MAX_LINE chars and without a newline, hit line
 *   numbers within the lines counted and never decreasing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "fuzz_console: check failed at line %d: %s\n",      \
				__LINE__, #cond);                                          \
			abort();                                                           \
		}                                                                          \
	} while (0)

#define MAX_EVIDENCE (CSCAN_CONTEXT_BEFORE + 1 + CSCAN_CONTEXT_AFTER)

static const size_t chunk_sizes[8] = { 1, 2, 5, 13, 80, 512, 1500, 8192 };

static void check_reports(const struct cscan *c)
{
	size_t n = cscan_nr_reports(c), i, j;
	uint64_t lines = cscan_lines(c), prev = 0;

	CHECK(n <= CSCAN_MAX_REPORTS);
	CHECK(cscan_report(c, n) == NULL || n == 0);
	for (i = 0; i < n; i++) {
		const struct crash_report *r = cscan_report(c, i);

		CHECK(r != NULL);
		CHECK(memchr(r->title, '\0', sizeof(r->title)) != NULL);
		CHECK(strlen(r->title) < sizeof(r->title) && strlen(r->title) < 160);
		CHECK(strchr(r->title, '\n') == NULL);
		CHECK(strcmp(crash_kind_name(r->kind), "UNKNOWN") != 0);
		CHECK(r->line_no >= 1 && r->line_no <= lines);
		CHECK(r->line_no >= prev);
		prev = r->line_no;
		CHECK(r->nr_evidence <= MAX_EVIDENCE);
		CHECK(r->nr_evidence == 0 || r->evidence != NULL);
		for (j = 0; j < r->nr_evidence; j++) {
			const char *ev = r->evidence[j];

			CHECK(ev != NULL);
			CHECK(strnlen(ev, CSCAN_MAX_LINE + 1) <= CSCAN_MAX_LINE);
			CHECK(strchr(ev, '\n') == NULL);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cscan *c = cscan_new();
	uint32_t h = 2166136261u;
	size_t pos = 0;
	char line[8192 + 1];

	CHECK(c != NULL);
	while (pos < size) {
		size_t chunk = chunk_sizes[h & 7], i;
		unsigned mode = (h >> 3) & 31;

		if (chunk > size - pos)
			chunk = size - pos;
		for (i = 0; i < chunk && i < 16; i++)
			h = (h ^ data[pos + i]) * 16777619u;
		h ^= h >> 15;

		if (mode == 0) {
			/* A whole line, as kmsg records arrive (stops at a NUL like a C string). */
			memcpy(line, data + pos, chunk);
			line[chunk] = '\0';
			cscan_feed_line(c, line);
		} else {
			cscan_feed(c, (const char *)data + pos, chunk);
		}
		pos += chunk;
		check_reports(c);
		if (mode == 1 && (h & 0x300) == 0) {
			cscan_clear_reports(c);
			CHECK(cscan_nr_reports(c) == 0);
			CHECK(cscan_dropped_reports(c) == 0);
		}
	}
	cscan_finish(c);
	check_reports(c);
	cscan_finish(c); /* twice is harmless */
	check_reports(c);
	cscan_free(c);
	return 0;
}
