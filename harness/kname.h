/* kname.h: parses kernel names as written in scenarios.
 *
 *   debian:<abi>-<flavor>   e.g. debian:6.1.0-56-amd64, debian:6.12.117+deb12-cloud-amd64,
 *                           debian:6.1.0-56-rt-amd64
 *   local: paths            given as a YAML mapping (vmlinuz, modules, build); see scenario.h
 *
 * The flavor is the longest known flavor suffix (rt-amd64, cloud-amd64, amd64, rt-arm64,
 * cloud-arm64, arm64) preceded by '-'. The ABI must look like N.N.N-N (6.1 style) or
 * N.N.N+debN (6.12 style), digits only in the numeric parts.
 */
#ifndef KLPQ_KNAME_H
#define KLPQ_KNAME_H

#include "util.h"

struct kname {
	char abi[64];      /* 6.1.0-56 | 6.12.117+deb12 */
	char flavor[32];   /* amd64 | cloud-amd64 | rt-amd64 ... */
	char release[128]; /* abi-flavor: uname -r of that kernel, e.g. 6.1.0-56-amd64 */
	char series[16];   /* 6.1 | 6.12 */
};

/* Parses "debian:..." (the "debian:" prefix is required). 0, or -1 with a message naming
 * what is wrong (missing prefix, unknown flavor, malformed ABI). */
int kname_parse_debian(const char *text, struct kname *out, struct kerr *e);

#endif
