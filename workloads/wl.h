/* wl.h: klpq-workload, the guest's load generators (docs/workloads.md).
 *
 * One static multi-call program: `klpq-workload gaming|streaming|mining|callbench [options]`.
 * Each runs until SIGTERM / SIGINT or --duration-s, and writes version 1 of the sample
 * format to stdout: a header line "# klpq-workload 1 NAME key=value ...", then lines
 * "<t_ns> key=value [key=value ...]" stamped with CLOCK_MONOTONIC. Whole lines only reach
 * the file (one write per batch of lines), at least every 100 ms. `--self-test` runs the
 * workload for two seconds into memory and checks what it wrote.
 */
#ifndef KLPQ_WL_H
#define KLPQ_WL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "wlmath.h"

extern volatile sig_atomic_t wl_stop;

/* ---- output --------------------------------------------------------------------------- */
/* Thread-safe: every line goes into one buffer under a mutex. */
void wl_out_init(int fd);
void wl_header(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wl_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void wl_flush(void);
void wl_maybe_flush(void);        /* flushes when 100 ms have passed since the last one */

/* ---- helpers -------------------------------------------------------------------------- */
uint64_t wl_now(void);            /* CLOCK_MONOTONIC ns */
int wl_lo_up(void);               /* brings the loopback interface up; 0 or -1 */
void wl_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
int wl_tcp_listen(unsigned short *port);   /* 127.0.0.1, an ephemeral port */
int wl_tcp_connect(unsigned short port);
int wl_write_all(int fd, const void *buf, size_t len);
int wl_read_all(int fd, void *buf, size_t len);  /* 0, or -1 (EOF or error) */

/* ---- options -------------------------------------------------------------------------- */
struct wl_opt {
	const char *name;                 /* "--tick-hz" */
	long *ival;                       /* integer option, or */
	const char **sval;                /* string option */
	long min, max;
};
/* Parses argv (after the workload name) against opts plus --duration-s and --self-test.
 * Exits 2 with a message on a bad option. */
void wl_parse(int argc, char **argv, const char *name, const struct wl_opt *opts, size_t n,
	      long *duration_s, int *self_test);

/* ---- the workloads ---------------------------------------------------------------------- */
int wl_gaming(int argc, char **argv);
int wl_streaming(int argc, char **argv);
int wl_mining(int argc, char **argv);
int wl_callbench(int argc, char **argv);

/* Runs fn(argv with --duration-s 2) with stdout into a temporary file and returns the text
 * it wrote (malloc'd), for the self-tests. */
char *wl_capture(int (*fn)(int, char **), const char *name, const char *const *args);
/* Self-test helpers: count the samples of key in text; min/max of its values. */
size_t wl_count(const char *text, const char *key, double *min, double *max);

#endif
