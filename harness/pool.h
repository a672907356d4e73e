/* pool.h: a pool of libvirt hosts that runs a plan's cells (docs/pool.md).
 *
 * A hosts file (`klpq run --hosts FILE`, or `hosts:` in the scenario) lists libvirt URIs, each
 * with a capacity (cells at once) and optional labels. The scheduler (scheduler.c) gives each
 * cell the up host, among those with every label the cell requires (vm.requires, and `kvm`
 * for vm.accel: kvm), with the most free capacity; -j still bounds the total.
 *
 * Hosts fail, and the rules are these. A host whose connection is refused ("connect") or lost
 * mid-cell ("lost") is taken out of the pool at once; one that fails to start a domain
 * ("start") is taken out the second time. The cell the fault ended is ERROR with host_fault
 * set, and it runs again on another host (such attempts do not use up --retries; a cell runs
 * again at most as many times as the pool has hosts). A host taken out is probed again every
 * health_s seconds with a health-check domain, and comes back when one starts. When every
 * host is out, the cells left are ERROR and the run ends with exit 2, its error naming each
 * host's reason.
 */
#ifndef KLPQ_POOL_H
#define KLPQ_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define POOL_MAX_HOSTS 64
#define POOL_MAX_LABELS 16
#define POOL_HEALTH_S 60 /* default health_s */

struct ynode;
struct yfile;

struct pool_host {
	char *name;             /* the URI's host part, or the entry's name */
	char *uri;
	unsigned capacity;      /* cells at once, 1..256; default 1 */
	char **labels;
	size_t nr_labels;
	int line;               /* in the hosts file, for messages */
	/* while a run goes on (scheduler.c) */
	unsigned running;
	unsigned started;       /* cells given to it in this run */
	unsigned start_faults;
	int down;
	char reason[512];       /* why it is down */
	uint64_t probe_at_ms;   /* when to probe a host that is down */
	pid_t probe_pid;        /* a health check running, or 0 */
	uint64_t probe_started_ms;
	int probe_fd;           /* its message pipe, or -1 */
};

struct pool {
	char *file;             /* where it was read from */
	struct pool_host *hosts;
	size_t nr;
	unsigned health_s;      /* between probes of a host that is down */
};

/* Reads a hosts file: either a list of hosts or a mapping with `hosts:` (that list) and
 * `health_s:`. Each host is a URI string or a mapping {uri, name, capacity, labels}. 0, or
 * -1 with e naming file, line and field. */
int pool_load(const char *path, struct pool *p, struct kerr *e);
/* The same for a parsed node (the scenario's `hosts:`). */
int pool_parse(struct yfile *f, const struct ynode *n, const char *field, struct pool *p);
void pool_release(struct pool *p);

/* 1 when uri names a host over the network (qemu+ssh://user@host/system), 0 for a local one
 * (qemu:///system, qemu:///embed?root=...). The host part (without user@ and :port) goes to
 * host when it is not NULL. */
int pool_uri_remote(const char *uri, char *host, size_t len);
/* Sum of the capacities of the hosts up. */
unsigned pool_capacity(const struct pool *p);
/* 1 when host h has every label in req. */
int pool_host_has(const struct pool_host *h, const char *const *req, size_t nr_req);
/* The up host with room and every label in req, the most free capacity first (then the one
 * given fewer cells, then the first): its index, or -1. avoid (a bit per host, may be 0):
 * hosts not to give it. */
int pool_pick(const struct pool *p, const char *const *req, size_t nr_req, uint64_t avoid);
/* 1 when some host up and not in avoid has every label in req, busy or not. */
int pool_can(const struct pool *p, const char *const *req, size_t nr_req, uint64_t avoid);
/* 1 when some host, up or down, has every label in req (else no host can ever run it). */
int pool_any_has(const struct pool *p, const char *const *req, size_t nr_req);
/* The host's fault (kind "connect", "lost" or "start"; msg one line): applies the rules
 * above; 1 when it took the host out. now_ms: when, for the next probe. */
int pool_fault(struct pool *p, size_t h, const char *kind, const char *msg, uint64_t now_ms);
/* Number of hosts up. */
size_t pool_up(const struct pool *p);
/* "h1: reason; h2: reason" for the hosts down (caller frees). */
char *pool_down_reasons(const struct pool *p);

#endif
