/* console.c: the crash-signature classifier (see console.h).
 *
 * Owns: the partial line being assembled, a ring of the last CSCAN_CONTEXT_BEFORE cleaned lines,
 * the open incident, and at most CSCAN_MAX_REPORTS reports with their evidence. Nothing else is
 * allocated, so memory stays bounded whatever is fed, and each byte is looked at a fixed number
 * of times.
 *
 * An incident opens on a header line (BUG:, WARNING:, Oops, ...). While it is open, the lines that
 * belong to it (Oops:, RIP:, Call Trace:, the repeated report of the same stall or lockup) are
 * absorbed instead of opening new reports. It closes on "---[ end trace", on a header of another
 * incident, or after CSCAN_INCIDENT_QUIET lines with nothing that belongs to it.
 */
#include "console.h"

#include <stdlib.h>
#include <string.h>

/* Lines after the last line that belonged to an incident before it counts as over. */
#define CSCAN_INCIDENT_QUIET 128
#define CSCAN_PANIC_MSG_MAX 80
#define CSCAN_TITLE_FUNC_MAX 96
#define CSCAN_MAX_LP_MODULES 32
#define CSCAN_MODULE_MAX 64

/* Which function names a title: the better one replaces the one in the title, the first of
 * equals stays. */
enum func_rank {
	RANK_NONE,
	RANK_GENERIC,	/* a generic helper (delay, spin, lock, copy, trace machinery ...) */
	RANK_FRAME,	/* the first Call Trace frame that is not one */
	RANK_HEADER,	/* the header's "at FILE:LINE FUNC", not a generic helper */
	RANK_RIP,	/* the RIP's function, not a generic helper */
	RANK_MODULE,	/* a frame in one of the cell's livepatch modules */
};

enum title_style {
	TITLE_FIXED,	/* prefix only */
	TITLE_FUNC,	/* prefix + " in FUNC" when a FUNC is known */
};

struct incident {
	int open;
	enum crash_kind kind;
	long rep;			/* index into reports, -1 when dropped or cleared */
	uint64_t last_line;		/* last line that belonged to it */
	int func_rank;			/* how good the title's FUNC is: enum func_rank */
	int in_trace;			/* a "Call Trace:" of this incident is being read */
	int in_irq;			/* inside its <IRQ>/<NMI> part: frames of the reporter */
	enum title_style style;
	char prefix[160];
};

struct report_slot {
	struct crash_report r;
	size_t alloc_evidence;
	unsigned after_left;		/* evidence lines still to collect */
};

struct cscan {
	/* line assembly */
	char raw[CSCAN_MAX_LINE];
	size_t raw_len;
	int pending;			/* bytes seen since the last newline */

	char clean[CSCAN_MAX_LINE + 1];

	/* ring of cleaned lines before the current one */
	char ring[CSCAN_CONTEXT_BEFORE][CSCAN_MAX_LINE + 1];
	size_t ring_head;		/* next slot to write */
	size_t ring_len;

	uint64_t lines;
	int seen_banner;
	int expect_capture;		/* cscan_expect_capture() */
	int panic_line;			/* a "Kernel panic - not syncing" line, absorbed or not */
	int fatal;			/* a panic or a die() header (oops class), absorbed or not */
	uint64_t capture_line;		/* the capture kernel's banner, 1-based; 0: none */
	int in_capture;			/* the capture kernel's banner was seen: lines not scanned */
	struct incident inc;
	char lp_mods[CSCAN_MAX_LP_MODULES][CSCAN_MODULE_MAX]; /* cscan_livepatch_module() */
	size_t nr_lp_mods;
	int diagnostics;		/* cscan_diagnostics(): klpq is dumping the guest's state */
	uint64_t sysrq_line;		/* last line of a SysRq dump ("sysrq: ", task lines), 0 */

	struct report_slot reports[CSCAN_MAX_REPORTS];
	size_t nr_reports;
	uint64_t dropped;
	unsigned nr_collecting;
	uint32_t seen_kinds;		/* every kind opened, reports dropped or cleared included */
};

static const char *const kind_names[] = {
	[CRASH_BUG] = "BUG",
	[CRASH_WARNING] = "WARNING",
	[CRASH_OOPS] = "OOPS",
	[CRASH_GPF] = "GPF",
	[CRASH_INVALID_OPCODE] = "INVALID_OPCODE",
	[CRASH_DIVIDE_ERROR] = "DIVIDE_ERROR",
	[CRASH_STACK_SEGMENT] = "STACK_SEGMENT",
	[CRASH_DOUBLE_FAULT] = "DOUBLE_FAULT",
	[CRASH_KERNEL_BUG_AT] = "KERNEL_BUG_AT",
	[CRASH_PANIC] = "PANIC",
	[CRASH_RCU_STALL] = "RCU_STALL",
	[CRASH_SOFT_LOCKUP] = "SOFT_LOCKUP",
	[CRASH_HARD_LOCKUP] = "HARD_LOCKUP",
	[CRASH_HUNG_TASK] = "HUNG_TASK",
	[CRASH_UBSAN] = "UBSAN",
	[CRASH_KASAN] = "KASAN",
	[CRASH_CALL_TRACE] = "CALL_TRACE",
	[CRASH_REBOOT] = "REBOOT",
};

const char *crash_kind_name(enum crash_kind k)
{
	if ((unsigned)k >= sizeof(kind_names) / sizeof(kind_names[0]) || !kind_names[k])
		return "UNKNOWN";
	return kind_names[k];
}

static void *xcalloc_or_die(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		abort();
	return p;
}

struct cscan *cscan_new(void)
{
	struct cscan *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->inc.rep = -1;
	return c;
}

static void free_report(struct report_slot *s)
{
	size_t i;

	for (i = 0; i < s->r.nr_evidence; i++)
		free(s->r.evidence[i]);
	free(s->r.evidence);
	memset(s, 0, sizeof(*s));
}

void cscan_clear_reports(struct cscan *c)
{
	size_t i;

	for (i = 0; i < c->nr_reports; i++)
		free_report(&c->reports[i]);
	c->nr_reports = 0;
	c->dropped = 0;
	c->nr_collecting = 0;
	/* An incident still under way stays open so its tail does not raise new reports. */
	c->inc.rep = -1;
}

void cscan_free(struct cscan *c)
{
	if (!c)
		return;
	cscan_clear_reports(c);
	free(c);
}

size_t cscan_nr_reports(const struct cscan *c)
{
	return c->nr_reports;
}

const struct crash_report *cscan_report(const struct cscan *c, size_t i)
{
	return i < c->nr_reports ? &c->reports[i].r : NULL;
}

uint64_t cscan_dropped_reports(const struct cscan *c)
{
	return c->dropped;
}

void cscan_expect_capture(struct cscan *c)
{
	c->expect_capture = 1;
}

int cscan_in_capture(const struct cscan *c)
{
	return c->in_capture;
}

int cscan_panicked(const struct cscan *c)
{
	return c->panic_line;
}

int cscan_fatal(const struct cscan *c)
{
	return c->fatal;
}

uint64_t cscan_capture_line(const struct cscan *c)
{
	return c->capture_line;
}

int cscan_seen(const struct cscan *c, enum crash_kind kind)
{
	return (c->seen_kinds >> kind) & 1u;
}

uint64_t cscan_lines(const struct cscan *c)
{
	return c->lines;
}

/* ---- small string helpers (bounded, no allocation) ---- */

static int is_word_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_';
}

static int is_digit(unsigned char ch)
{
	return ch >= '0' && ch <= '9';
}

static int is_hex(unsigned char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static int is_sym_char(unsigned char ch)
{
	return is_word_char(ch) || ch == '.' || ch == '$';
}

static int starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* strstr, but the match must not continue a word on its left ("DEBUG: " is not "BUG: "). */
static const char *find_word(const char *s, const char *needle)
{
	const char *p = s;

	while ((p = strstr(p, needle))) {
		if (p == s || !is_word_char((unsigned char)p[-1]))
			return p;
		p++;
	}
	return NULL;
}

/* Copies at most n bytes of src into dst[size], always terminated. */
static void copy_n(char *dst, size_t size, const char *src, size_t n)
{
	if (!size)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void rtrim(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '.' || s[n - 1] == ','))
		s[--n] = '\0';
}

/*
 * Reads "SYM+0x" at p into out. Returns 1 if found. Symbols can hold '.' ("foo.constprop.0").
 */
static int parse_sym_offset(const char *p, char *out, size_t size)
{
	const char *q = p;

	while (is_sym_char((unsigned char)*q))
		q++;
	if (q == p || !starts_with(q, "+0x"))
		return 0;
	copy_n(out, size, p, (size_t)(q - p));
	return 1;
}

/* "RIP: 0010:FUNC+0x..." or "RIP: FUNC+0x..." (also "EIP:", "pc :"). */
static int rip_func(const char *line, char *out, size_t size)
{
	const char *p = strstr(line, "RIP: ");

	if (!p)
		p = strstr(line, "EIP: ");
	if (!p)
		return 0;
	p += 5;
	if (is_hex((unsigned char)p[0]) && is_hex((unsigned char)p[1]) &&
	    is_hex((unsigned char)p[2]) && is_hex((unsigned char)p[3]) && p[4] == ':')
		p += 5;
	return parse_sym_offset(p, out, size);
}

/* The "FUNC" of "... at FILE:LINE FUNC+0x..." or "... at FUNC+0x...". */
static int at_func(const char *line, char *out, size_t size)
{
	const char *p = strstr(line, " at ");

	if (!p)
		return 0;
	p += 4;
	if (parse_sym_offset(p, out, size))
		return 1;
	p = strchr(p, ' ');
	return p ? parse_sym_offset(p + 1, out, size) : 0;
}

/* The "FUNC" of "... in FUNC+0x..." (KASAN, KFENCE). */
static int in_func(const char *line, char *out, size_t size)
{
	const char *p = strstr(line, " in ");

	return p ? parse_sym_offset(p + 4, out, size) : 0;
}

/* The module of a frame "SYM+0x1/0x2 [mod]" (p at SYM) into out; "" when it has none. */
static void frame_module(const char *p, char *out, size_t size)
{
	const char *q = strchr(p, ' ');
	size_t n = 0;

	out[0] = '\0';
	if (!q)
		return;
	while (*q == ' ')
		q++;
	if (*q++ != '[')
		return;
	while (q[n] && q[n] != ']' && q[n] != ' ')
		n++;
	if (q[n])
		copy_n(out, size, q, n);
}

/*
 * Generic helpers: functions a report's RIP or first frames often sit in without being what
 * went wrong (the patch spinning in a delay loop, the task asleep in schedule, the trace
 * machinery itself). A title names the first frame that is not one. Names match exactly or, for
 * the second list, by prefix (".cold" and ".constprop.0" copies included).
 */
static int generic_func(const char *f)
{
	static const char *const exact[] = {
		"__delay", "__const_udelay", "__udelay", "__ndelay", "udelay", "ndelay", "mdelay",
		"cpu_relax", "rep_nop", "down", "up", "schedule", "__schedule", "io_schedule",
		"msleep", "msleep_interruptible", "usleep_range_state", "die", "__die", "panic",
		"kthread", "ret_from_fork", "do_idle", "cpu_startup_entry", "start_kernel",
		"schedule_timeout", "schedule_hrtimeout_range", "default_idle", "strlen", "strnlen",
		"strcpy", "strncpy", "strscpy", "memcpy", "memmove", "memset", "memcmp",
	};
	static const char *const prefix[] = {
		"delay_", "native_", "_raw_", "raw_spin_", "__raw_", "do_raw_", "queued_",
		"__pv_queued_", "pv_queued_", "mutex_", "__mutex_", "down_", "__down", "up_read",
		"up_write", "rwsem_", "__rwsem_", "preempt_schedule", "__cond_resched",
		"_cond_resched", "schedule_", "io_schedule", "wait_for_completion", "__wait_for_",
		"do_wait_for_", "wait_woken", "do_nanosleep", "hrtimer_nanosleep", "usleep_range",
		"msleep", "__memcpy", "__memmove", "__memset", "memcpy_", "memset_", "memmove_",
		"copy_user", "_copy_to_user", "_copy_from_user", "copy_to_user", "copy_from_user",
		"__copy_", "rep_movs", "dump_stack", "show_stack", "show_trace", "show_regs",
		"__show_regs", "dump_backtrace", "arch_stack_walk", "stack_trace_", "unwind_",
		"__unwind_", "__warn", "warn_slowpath", "report_bug", "handle_bug", "exc_",
		"asm_exc_", "oops_", "do_trap", "do_error_trap", "nmi_", "default_do_nmi",
		"asm_sysvec_", "sysvec_", "__sysvec_", "irq_exit", "__irq_exit", "handle_irq",
		"do_softirq", "__do_softirq", "hrtimer_", "__hrtimer_", "tick_",
		"update_process_times", "watchdog", "lockup_", "rcu_", "__rcu_", "print_cpu_stall",
		"check_cpu_stall", "page_fault_oops", "kernelmode_fixup_or_oops", "__bad_area",
		"bad_area", "do_user_addr_fault", "do_kern_addr_fault", "fixup_exception",
		"entry_SYSCALL", "do_syscall_64", "ret_from_fork", "kthread", "secondary_startup",
		"x86_64_start", "panic_", "__schedule", "schedule.",
	};
	size_t i, n = strcspn(f, ".");

	for (i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strlen(exact[i]) == n && !strncmp(f, exact[i], n))
			return 1;
	for (i = 0; i < sizeof(prefix) / sizeof(prefix[0]); i++)
		if (starts_with(f, prefix[i]))
			return 1;
	return 0;
}

/* ---- line cleaning ---- */

/*
 * Makes raw[0..len) printable into out: drops NUL and CR, skips ANSI CSI sequences, turns other
 * control and non-ASCII bytes into '?', then strips "<N>", "P,S,T,F;" and "[  12.345678] " /
 * "[    T12]" prefixes.
 */
static void clean_line(const char *raw, size_t len, char *out)
{
	size_t i, o = 0;
	char *s;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)raw[i];

		if (ch == '\0' || ch == '\r')
			continue;
		if (ch == 0x1b && i + 1 < len && raw[i + 1] == '[') {
			i += 2;
			while (i < len && !((unsigned char)raw[i] >= 0x40 && (unsigned char)raw[i] <= 0x7e))
				i++;
			continue;
		}
		if (ch == '\t')
			out[o++] = ' ';
		else if (ch < 0x20 || ch >= 0x7f)
			out[o++] = '?';
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';

	s = out;
	for (;;) {
		char *p = s;

		if (*p == '<') {		/* syslog level "<4>" */
			p++;
			while (is_digit((unsigned char)*p) && p - s < 5)
				p++;
			if (p > s + 1 && *p == '>') {
				s = p + 1;
				continue;
			}
			p = s;
		}
		if (is_digit((unsigned char)*p)) {	/* /dev/kmsg "6,339,5140900,-;" */
			int commas = 0;

			while (*p && *p != ';' && *p != ' ' && p - s < 64) {
				if (*p == ',')
					commas++;
				else if (!is_digit((unsigned char)*p) && commas < 3)
					break;
				p++;
			}
			if (*p == ';' && commas >= 3) {
				s = p + 1;
				continue;
			}
			p = s;
		}
		if (*p == '[') {		/* "[   12.345678]" or caller id "[    T123]" */
			p++;
			while (*p == ' ')
				p++;
			if (is_digit((unsigned char)*p)) {
				while (is_digit((unsigned char)*p))
					p++;
				if (*p == '.' && is_digit((unsigned char)p[1])) {
					p++;
					while (is_digit((unsigned char)*p))
						p++;
				} else {
					p = s;
				}
			} else if ((*p == 'T' || *p == 'C') && is_digit((unsigned char)p[1])) {
				p++;
				while (is_digit((unsigned char)*p))
					p++;
			} else {
				p = s;
			}
			if (p != s && *p == ']') {
				p++;
				if (*p == ' ')
					p++;
				s = p;
				continue;
			}
		}
		break;
	}
	if (s != out)
		memmove(out, s, strlen(s) + 1);
}

/* ---- reports ---- */

static void add_evidence(struct report_slot *s, const char *line)
{
	char *copy;

	if (s->r.nr_evidence == s->alloc_evidence)
		return;
	copy = strdup(line);
	if (!copy)
		abort();
	s->r.evidence[s->r.nr_evidence++] = copy;
}

static const char *ring_line(const struct cscan *c, size_t age_from_oldest)
{
	size_t start = (c->ring_head + CSCAN_CONTEXT_BEFORE - c->ring_len) % CSCAN_CONTEXT_BEFORE;

	return c->ring[(start + age_from_oldest) % CSCAN_CONTEXT_BEFORE];
}

static void set_title(struct cscan *c, const char *func)
{
	struct crash_report *r;

	if (c->inc.rep < 0)
		return;
	r = &c->reports[c->inc.rep].r;
	if (c->inc.style == TITLE_FUNC && func && *func) {
		size_t n = strlen(c->inc.prefix);
		size_t room = sizeof(r->title) - 1;

		copy_n(r->title, sizeof(r->title), c->inc.prefix, n);
		if (n + 4 < room) {
			memcpy(r->title + n, " in ", 4);
			copy_n(r->title + n + 4, sizeof(r->title) - n - 4, func, strlen(func));
		}
	} else {
		copy_n(r->title, sizeof(r->title), c->inc.prefix, strlen(c->inc.prefix));
	}
}

static int is_lp_module(const struct cscan *c, const char *mod)
{
	for (size_t i = 0; i < c->nr_lp_mods; i++)
		if (!strcmp(c->lp_mods[i], mod))
			return 1;
	return 0;
}

/* A function the open incident's title could name (enum func_rank): rank_plain is its rank
 * when it is neither generic nor in a livepatch module. */
static void consider_func(struct cscan *c, const char *func, const char *mod, int rank_plain)
{
	int rank;

	if (!c->inc.open || c->inc.style != TITLE_FUNC || !func || !*func)
		return;
	if (mod && *mod && is_lp_module(c, mod))
		rank = RANK_MODULE;
	else if (generic_func(func))
		rank = RANK_GENERIC;
	else
		rank = rank_plain;
	if (rank <= c->inc.func_rank)
		return;
	c->inc.func_rank = rank;
	set_title(c, func);
}

/*
 * Opens a new incident on the current line (c->clean, number c->lines) and, room permitting,
 * a report with the ring as leading evidence.
 */
static void open_incident(struct cscan *c, enum crash_kind kind, enum title_style style,
			  const char *prefix, const char *header_func)
{
	struct report_slot *s;
	size_t i;

	memset(&c->inc, 0, sizeof(c->inc));
	c->inc.open = 1;
	c->inc.kind = kind;
	c->inc.rep = -1;
	c->inc.last_line = c->lines;
	c->inc.style = style;
	copy_n(c->inc.prefix, sizeof(c->inc.prefix), prefix, strlen(prefix));
	c->seen_kinds |= 1u << kind;

	if (c->nr_reports == CSCAN_MAX_REPORTS) {
		c->dropped++;
		return;
	}
	s = &c->reports[c->nr_reports];
	memset(s, 0, sizeof(*s));
	s->alloc_evidence = CSCAN_CONTEXT_BEFORE + 1 + CSCAN_CONTEXT_AFTER;
	s->r.evidence = xcalloc_or_die(s->alloc_evidence, sizeof(char *));
	s->r.kind = kind;
	s->r.line_no = c->lines;
	for (i = 0; i < c->ring_len; i++)
		add_evidence(s, ring_line(c, i));
	add_evidence(s, c->clean);
	s->after_left = CSCAN_CONTEXT_AFTER;
	c->nr_collecting++;
	c->inc.rep = (long)c->nr_reports++;
	set_title(c, NULL);
	if (header_func && *header_func) {
		const char *at = strstr(c->clean, header_func);
		char mod[CSCAN_MODULE_MAX];

		mod[0] = '\0';
		if (at)
			frame_module(at, mod, sizeof(mod));
		consider_func(c, header_func, mod, RANK_HEADER);
	}
}

static void close_incident(struct cscan *c)
{
	c->inc.open = 0;
}

/* ---- classification ---- */

/* "BUG: MESSAGE..." -> "BUG: MESSAGE" cut at the first ':', " at ", " - ", ',', "+0x". */
static void generic_bug_prefix(const char *msg, char *out, size_t size)
{
	static const char *const stops[] = { ":", " at ", " - ", ",", "+0x", " in process" };
	size_t n = strlen(msg), i;

	for (i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
		const char *p = strstr(msg, stops[i]);

		if (p && (size_t)(p - msg) < n)
			n = (size_t)(p - msg);
	}
	if (n > CSCAN_TITLE_FUNC_MAX)
		n = CSCAN_TITLE_FUNC_MAX;
	copy_n(out, size, "BUG: ", 5);
	copy_n(out + 5, size - 5, msg, n);
	rtrim(out);
}

/* "BUG: KASAN: slab-out-of-bounds in foo+0x12/0x34" -> "KASAN: slab-out-of-bounds in foo". */
static void sanitizer_title(const char *msg, char *out, size_t size)
{
	const char *p = strstr(msg, "+0x");
	size_t n = p ? (size_t)(p - msg) : strlen(msg);

	if (n > 120)
		n = 120;
	copy_n(out, size, msg, n);
	rtrim(out);
}

static int rcu_stall_line(const char *s)
{
	if (!strstr(s, "rcu"))
		return 0;
	return strstr(s, "detected stall") || strstr(s, "self-detected stall") ||
	       strstr(s, "detected expedited stall");
}

static int lockdep_warning(const char *msg)
{
	static const char *const phrases[] = {
		"possible circular locking", "possible recursive locking", "suspicious RCU usage",
		"inconsistent lock state", "bad unlock balance", "held lock freed",
		"lock held when returning", "possible irq lock inversion", "HARDIRQ-safe",
		"SOFTIRQ-safe", "nested lock was not taken", "Nested lock was not taken",
		"lock held at task exit", "bad contention detected", "lockdep",
	};
	size_t i;

	for (i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
		if (starts_with(msg, phrases[i]))
			return 1;
	return 0;
}

static int absorbs(const struct incident *inc, enum crash_kind kind, const char *prefix)
{
	if (!inc->open)
		return 0;
	switch (kind) {
	case CRASH_OOPS:
	case CRASH_CALL_TRACE:
		return 1;
	case CRASH_INVALID_OPCODE:
		return inc->kind == CRASH_KERNEL_BUG_AT;
	case CRASH_RCU_STALL:
	case CRASH_SOFT_LOCKUP:
	case CRASH_HARD_LOCKUP:
		return inc->kind == kind;
	case CRASH_HUNG_TASK:
		return inc->kind == kind && !strcmp(inc->prefix, prefix);
	default:
		return 0;
	}
}

/* A crash after which the kernel may kexec into a loaded capture kernel: a panic, and a die()
 * (an oops) when kernel.panic_on_oops is set, as kdump-tools sets it: x86's oops_end() then
 * calls crash_kexec() before panic("Fatal exception") could print its line. */
static int kexecs(enum crash_kind kind)
{
	switch (kind) {
	case CRASH_PANIC:
	case CRASH_OOPS: /* "Oops: 0002 [#1]" after "BUG: kernel NULL pointer dereference" */
	case CRASH_GPF:
	case CRASH_INVALID_OPCODE:
	case CRASH_DIVIDE_ERROR:
	case CRASH_STACK_SEGMENT:
	case CRASH_DOUBLE_FAULT:
	case CRASH_KERNEL_BUG_AT:
		return 1;
	default:
		return 0;
	}
}

/*
 * Works out whether line s is a header and of what. Returns 1 and fills kind/style/prefix/func
 * if so.
 */
static int classify(struct cscan *c, const char *s, enum crash_kind *kind,
		    enum title_style *style, char *prefix, size_t psize, char *func, size_t fsize)
{
	const char *p;

	*style = TITLE_FUNC;
	func[0] = '\0';

	if (starts_with(s, "Linux version ") && is_digit((unsigned char)s[14])) {
		if (!c->seen_banner) {
			c->seen_banner = 1;
			return 0;
		}
		if (c->expect_capture && c->fatal) {
			c->in_capture = 1;
			c->capture_line = c->lines;
			return 0;
		}
		*kind = CRASH_REBOOT;
		*style = TITLE_FIXED;
		copy_n(prefix, psize, "unexpected reboot", 17);
		return 1;
	}
	if ((p = strstr(s, "Kernel panic - not syncing")) && !strstr(s, "---[ end ")) {
		const char *msg = p + strlen("Kernel panic - not syncing");
		size_t n;

		if (*msg == ':')
			msg++;
		while (*msg == ' ')
			msg++;
		n = strlen(msg);
		if (n > CSCAN_PANIC_MSG_MAX)
			n = CSCAN_PANIC_MSG_MAX;
		*kind = CRASH_PANIC;
		*style = TITLE_FIXED;
		copy_n(prefix, psize, "Kernel panic: ", 14);
		copy_n(prefix + 14, psize - 14, msg, n);
		rtrim(prefix);
		return 1;
	}
	/* arm64 and friends: "Internal error: Oops - BUG: 00000000f2000800 [#1] SMP" */
	if (strstr(s, "Internal error: Oops")) {
		*kind = CRASH_OOPS;
		copy_n(prefix, psize, "Oops", 4);
		return 1;
	}
	if ((p = find_word(s, "BUG: "))) {
		const char *msg = p + 5;

		if (starts_with(msg, "soft lockup")) {
			*kind = CRASH_SOFT_LOCKUP;
			copy_n(prefix, psize, "soft lockup", 11);
		} else if (starts_with(msg, "KASAN:") || starts_with(msg, "KFENCE:") ||
			   starts_with(msg, "KCSAN:") || starts_with(msg, "KMSAN:")) {
			*kind = CRASH_KASAN;
			*style = TITLE_FIXED;
			sanitizer_title(msg, prefix, psize);
			in_func(msg, func, fsize);
		} else if (strstr(msg, "NULL pointer dereference")) {
			*kind = CRASH_BUG;
			copy_n(prefix, psize, "BUG: NULL pointer dereference", 29);
		} else if (starts_with(msg, "unable to handle")) {
			*kind = CRASH_BUG;
			copy_n(prefix, psize, "BUG: unable to handle page fault", 32);
		} else {
			*kind = CRASH_BUG;
			generic_bug_prefix(msg, prefix, psize);
		}
		return 1;
	}
	if ((p = find_word(s, "WARNING: "))) {
		const char *msg = p + 9;

		if (starts_with(msg, "CPU: ") || starts_with(msg, "at ")) {
			*kind = CRASH_WARNING;
			copy_n(prefix, psize, "WARNING", 7);
			at_func(msg, func, fsize);
			return 1;
		}
		/* lockdep and friends: "WARNING: possible circular locking dependency detected" */
		if (p == s && lockdep_warning(msg)) {
			*kind = CRASH_WARNING;
			*style = TITLE_FIXED;
			sanitizer_title(p, prefix, psize);
			return 1;
		}
		return 0;
	}
	if ((p = find_word(s, "kernel BUG at "))) {
		*kind = CRASH_KERNEL_BUG_AT;
		*style = TITLE_FIXED;
		sanitizer_title(p, prefix, psize);
		rtrim(prefix);
		if (prefix[0] && prefix[strlen(prefix) - 1] == '!')
			prefix[strlen(prefix) - 1] = '\0';
		return 1;
	}
	/* "traps: cat[9] general protection fault ip:..." is a user-space crash, not ours */
	if ((p = find_word(s, "general protection fault")) && !strstr(s, "traps: ") &&
	    !starts_with(p + 24, " ip:")) {
		*kind = CRASH_GPF;
		copy_n(prefix, psize, "general protection fault", 24);
		return 1;
	}
	if (find_word(s, "invalid opcode: ")) {
		*kind = CRASH_INVALID_OPCODE;
		copy_n(prefix, psize, "invalid opcode", 14);
		return 1;
	}
	if (find_word(s, "divide error: ")) {
		*kind = CRASH_DIVIDE_ERROR;
		copy_n(prefix, psize, "divide error", 12);
		return 1;
	}
	if (find_word(s, "stack segment: ")) {
		*kind = CRASH_STACK_SEGMENT;
		copy_n(prefix, psize, "stack segment", 13);
		return 1;
	}
	if (find_word(s, "PANIC: double fault")) {
		*kind = CRASH_DOUBLE_FAULT;
		copy_n(prefix, psize, "double fault", 12);
		return 1;
	}
	if ((p = find_word(s, "Oops")) && (p[4] == ':' || starts_with(p + 4, " - "))) {
		*kind = CRASH_OOPS;
		copy_n(prefix, psize, "Oops", 4);
		return 1;
	}
	if (strstr(s, "hard LOCKUP")) {
		*kind = CRASH_HARD_LOCKUP;
		copy_n(prefix, psize, "hard LOCKUP", 11);
		return 1;
	}
	if (rcu_stall_line(s)) {
		*kind = CRASH_RCU_STALL;
		copy_n(prefix, psize, "RCU stall", 9);
		return 1;
	}
	if ((p = find_word(s, "INFO: task ")) && (strstr(p, " blocked for more than "))) {
		const char *comm = p + 11;
		const char *end = strstr(comm, " blocked for more than ");
		const char *colon = end;

		/* COMM:PID; COMM itself may hold ':' ("kworker/0:1:12") */
		while (colon > comm && colon[-1] != ':')
			colon--;
		if (colon > comm)
			end = colon - 1;
		if ((size_t)(end - comm) > 32)
			end = comm + 32;
		*kind = CRASH_HUNG_TASK;
		copy_n(prefix, psize, "hung task ", 10);
		copy_n(prefix + 10, psize - 10, comm, (size_t)(end - comm));
		return 1;
	}
	if ((p = find_word(s, "UBSAN: "))) {
		const char *q;
		size_t n;

		*kind = CRASH_UBSAN;
		*style = TITLE_FIXED;
		/* "UBSAN: KIND in FILE:LINE:COL": drop the line and column */
		q = strstr(p, " in ");
		q = q ? strchr(q + 4, ':') : NULL;
		n = q ? (size_t)(q - p) : strlen(p);
		if (n > 140)
			n = 140;
		copy_n(prefix, psize, p, n);
		rtrim(prefix);
		return 1;
	}
	if (find_word(s, "Call Trace")) {
		*kind = CRASH_CALL_TRACE;
		*style = TITLE_FIXED;
		copy_n(prefix, psize, "Call Trace without a crash header", 33);
		return 1;
	}
	return 0;
}

/* A line of an open incident's Call Trace: a frame may name the title (consider_func). Frames
 * marked '?' are guesses of the unwinder and never count; frames inside <IRQ>/<NMI> (the
 * interrupt that reported the problem: the timer of a stall or a lockup, the NMI of a
 * backtrace) count only when they are in a livepatch module. */
static void trace_line(struct cscan *c, const char *s)
{
	char func[CSCAN_TITLE_FUNC_MAX + 1], mod[CSCAN_MODULE_MAX];

	while (*s == ' ')
		s++;
	if (starts_with(s, "<IRQ>") || starts_with(s, "<NMI>") || starts_with(s, "<SOFTIRQ>")) {
		c->inc.in_irq = 1;
		return;
	}
	if (starts_with(s, "</IRQ>") || starts_with(s, "</NMI>") || starts_with(s, "</SOFTIRQ>")) {
		c->inc.in_irq = 0;
		return;
	}
	if (starts_with(s, "</TASK>")) {
		c->inc.in_trace = 0;
		return;
	}
	if (starts_with(s, "? ") || !parse_sym_offset(s, func, sizeof(func)))
		return;
	c->inc.last_line = c->lines;
	frame_module(s, mod, sizeof(mod));
	if (c->inc.in_irq && !(mod[0] && is_lp_module(c, mod)))
		return;
	consider_func(c, func, mod, RANK_FRAME);
}

/* SysRq output (klpq's hang dump: every task's stack, every CPU's backtrace) is the state of
 * the guest, not a failure: while it lasts, a Call Trace outside a report is not reported. */
static int dumping(struct cscan *c, const char *s)
{
	if (c->diagnostics)
		return 1;
	if (!c->sysrq_line || c->lines - c->sysrq_line > CSCAN_INCIDENT_QUIET)
		return 0;
	if (starts_with(s, "task:") || starts_with(s, "NMI backtrace") || find_word(s, "Call Trace"))
		c->sysrq_line = c->lines;
	return 1;
}

static void classify_line(struct cscan *c)
{
	const char *s = c->clean;
	enum crash_kind kind;
	enum title_style style;
	char prefix[160], func[CSCAN_TITLE_FUNC_MAX + 1], rfunc[CSCAN_TITLE_FUNC_MAX + 1];
	char mod[CSCAN_MODULE_MAX];

	if (c->inc.open && c->lines - c->inc.last_line > CSCAN_INCIDENT_QUIET)
		close_incident(c);
	if (starts_with(s, "sysrq: ")) {
		close_incident(c); /* the dump's stacks are not this incident's */
		c->sysrq_line = c->lines;
		return;
	}

	if (classify(c, s, &kind, &style, prefix, sizeof(prefix), func, sizeof(func))) {
		if (kind == CRASH_PANIC)
			c->panic_line = 1;
		if (kexecs(kind))
			c->fatal = 1;
		if (absorbs(&c->inc, kind, prefix)) {
			c->inc.last_line = c->lines;
			if (kind == CRASH_CALL_TRACE) {
				c->inc.in_trace = 1;
				c->inc.in_irq = 0;
			}
		} else if (kind == CRASH_CALL_TRACE && dumping(c, s)) {
			close_incident(c);
		} else {
			close_incident(c);
			open_incident(c, kind, style, prefix, func);
			if (kind == CRASH_REBOOT)
				close_incident(c);
		}
	} else if (c->inc.open && (strstr(s, "RIP: ") || strstr(s, "EIP: "))) {
		c->inc.last_line = c->lines;
		if (rip_func(s, rfunc, sizeof(rfunc))) {
			const char *at = strstr(s, rfunc);

			mod[0] = '\0';
			if (at)
				frame_module(at, mod, sizeof(mod));
			consider_func(c, rfunc, mod, RANK_RIP);
		}
	} else if (c->inc.open && strstr(s, "---[ end trace")) {
		close_incident(c);
	} else if (c->in_capture) {
		close_incident(c); /* the panic's incident ends where the capture boot begins */
	} else if (c->inc.open && c->inc.in_trace) {
		trace_line(c, s);
	} else {
		dumping(c, s);
	}
}

static void collect_after(struct cscan *c)
{
	size_t i;

	if (!c->nr_collecting)
		return;
	for (i = 0; i < c->nr_reports; i++) {
		struct report_slot *s = &c->reports[i];

		if (!s->after_left || s->r.line_no == c->lines)
			continue;
		add_evidence(s, c->clean);
		if (!--s->after_left)
			c->nr_collecting--;
	}
}

static void ring_push(struct cscan *c)
{
	memcpy(c->ring[c->ring_head], c->clean, strlen(c->clean) + 1);
	c->ring_head = (c->ring_head + 1) % CSCAN_CONTEXT_BEFORE;
	if (c->ring_len < CSCAN_CONTEXT_BEFORE)
		c->ring_len++;
}

static void end_line(struct cscan *c)
{
	c->lines++;
	clean_line(c->raw, c->raw_len, c->clean);
	c->raw_len = 0;
	c->pending = 0;
	if (c->in_capture)
		return;
	classify_line(c);
	if (c->in_capture) {
		/* evidence still being collected would be the capture boot's lines */
		for (size_t i = 0; i < c->nr_reports; i++)
			c->reports[i].after_left = 0;
		c->nr_collecting = 0;
		return;
	}
	collect_after(c);
	ring_push(c);
}

void cscan_feed(struct cscan *c, const char *buf, size_t len)
{
	while (len) {
		const char *nl = memchr(buf, '\n', len);
		size_t seg = nl ? (size_t)(nl - buf) : len;
		size_t room = CSCAN_MAX_LINE - c->raw_len;
		size_t take = seg < room ? seg : room;

		memcpy(c->raw + c->raw_len, buf, take);
		c->raw_len += take;
		if (seg)
			c->pending = 1;
		if (!nl)
			return;
		end_line(c);
		buf += seg + 1;
		len -= seg + 1;
	}
}

void cscan_feed_line(struct cscan *c, const char *line)
{
	size_t len = strlen(line);

	if (c->pending)
		end_line(c);
	cscan_feed(c, line, len);
	if (!len || line[len - 1] != '\n')
		end_line(c);
}

void cscan_livepatch_module(struct cscan *c, const char *name)
{
	if (c->nr_lp_mods == CSCAN_MAX_LP_MODULES || strlen(name) >= CSCAN_MODULE_MAX ||
	    is_lp_module(c, name))
		return;
	copy_n(c->lp_mods[c->nr_lp_mods++], CSCAN_MODULE_MAX, name, strlen(name));
}

void cscan_diagnostics(struct cscan *c)
{
	close_incident(c);
	c->diagnostics = 1;
}

void cscan_finish(struct cscan *c)
{
	if (c->pending)
		end_line(c);
	close_incident(c);
}
