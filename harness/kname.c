/* kname.c: parses "debian:<abi>-<flavor>" kernel names (see kname.h). */
#include <string.h>

#include "kname.h"

static const char debian_prefix[] = "debian:";

/* Longest first: the flavor is the longest known suffix, so "rt-amd64" wins over "amd64". */
static const char *const known_flavors[] = {
	"cloud-amd64", "cloud-arm64", "rt-amd64", "rt-arm64", "amd64", "arm64",
};

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Skips one run of digits at *p; 0 when there is none. */
static int skip_digits(const char **p)
{
	const char *s = *p;

	while (is_digit(**p))
		(*p)++;
	return *p > s;
}

/*
 * Checks that abi is N.N.N-N (6.1 style) or N.N.N+debN (6.12 style) and writes "N.N"
 * to series. 0 or -1.
 */
static int parse_abi(const char *abi, char *series, size_t series_len)
{
	const char *p = abi;
	const char *minor_end;

	if (!skip_digits(&p) || *p++ != '.' || !skip_digits(&p))
		return -1;
	minor_end = p;
	if (*p++ != '.' || !skip_digits(&p))
		return -1;
	if (*p == '-') {
		p++;
	} else if (!strncmp(p, "+deb", 4)) {
		p += 4;
	} else {
		return -1;
	}
	if (!skip_digits(&p) || *p)
		return -1;
	if ((size_t)(minor_end - abi) >= series_len)
		return -1;
	memcpy(series, abi, (size_t)(minor_end - abi));
	series[minor_end - abi] = '\0';
	return 0;
}

int kname_parse_debian(const char *text, struct kname *out, struct kerr *e)
{
	const char *rest;
	const char *flavor = NULL;
	size_t len, abi_len = 0, i;

	memset(out, 0, sizeof(*out));
	if (strncmp(text, debian_prefix, strlen(debian_prefix)))
		return kerr_set(e, "'%.80s' lacks the 'debian:' prefix (write debian:<abi>-<flavor>, "
				"e.g. debian:6.1.0-56-amd64)", text);
	rest = text + strlen(debian_prefix);
	len = strlen(rest);
	if (!len)
		return kerr_set(e, "'%s' names no kernel (write debian:<abi>-<flavor>, "
				"e.g. debian:6.1.0-56-amd64)", text);

	for (i = 0; i < ARRAY_SIZE(known_flavors); i++) {
		size_t fl = strlen(known_flavors[i]);

		if (len > fl + 1 && !strcmp(rest + len - fl, known_flavors[i]) &&
		    rest[len - fl - 1] == '-') {
			flavor = known_flavors[i];
			abi_len = len - fl - 1;
			break;
		}
	}
	if (!flavor)
		return kerr_set(e, "unknown flavor in '%.80s' (known: amd64, cloud-amd64, rt-amd64, "
				"arm64, cloud-arm64, rt-arm64)", text);
	if (abi_len >= sizeof(out->abi))
		return kerr_set(e, "malformed ABI in '%.80s': too long", text);
	memcpy(out->abi, rest, abi_len);
	out->abi[abi_len] = '\0';
	if (parse_abi(out->abi, out->series, sizeof(out->series))) {
		char abi[sizeof(out->abi)];

		memcpy(abi, out->abi, sizeof(abi));
		memset(out, 0, sizeof(*out));
		return kerr_set(e, "malformed ABI '%s' in '%.80s' (expected N.N.N-N like 6.1.0-56 "
				"or N.N.N+debN like 6.12.117+deb12)", abi, text);
	}
	/* abi < 64 and flavor < 32 always fit release[128]. */
	memcpy(out->flavor, flavor, strlen(flavor) + 1);
	memcpy(out->release, rest, len + 1);
	return 0;
}
