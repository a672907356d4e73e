# klpq: kernel livepatch qualification harness.
#   make          build build/klpq and the guest agent build/klpq-agent
#   make demo     install what is missing, build, run scenarios/smoke.yaml on a real kernel
#   make check    install what is missing, build, run every test (unit + real-boot)
#   make check-unit / make check-vm   the two halves of make check
#   make check-perf  A/A and slow-patch performance runs (5 each)   make bench  benchmarks
#   make check-sensitivity  small slowdowns of a TCP send path, and the A/A (5 runs each)
#   make check-faulty  the whole stability corpus (docs/corpus.md)
#   make check-faulty-libvirt  the same corpus on the libvirt backend (docs/pool.md)
#   make check-pool    two libvirt hosts in namespaces over qemu+ssh: the matrix on three
#                      backends and the host faults (docs/pool.md); CHECK_POOL=short: its short form
#   make bench-pool    the pool's throughput, two hosts against one (docs/scaling.md)
#   make check-faults  the kill matrix: 3 signals x 4 points, each resumed (docs/reliability.md);
#                      CHECK_FAULTS=short: 5 of them
#   make check-selftests  the kernel's own livepatch selftests through klpq, 6.1 and 6.12
#                      (docs/conformance.md)
#   make check-disk    disk-image guests with libguestfs: built and user images, post-mortem
#                      (docs/scenario.md)
#   make check-fresh   a fresh machine for real: purge the -dev packages, make demo in a clone
#   make fuzz     libFuzzer targets, FUZZ_SECONDS (60) each      make asan  everything under ASan+UBSan
#   make valgrind the smoke run under valgrind (no leaks)        make check-flood  256 MiB console flood
#   make install PREFIX=/usr/local DESTDIR=
#   V=1 shows the commands.

CC ?= gcc
PREFIX ?= /usr/local
BUILD := build
PKGS := yaml-0.1 json-c libarchive libcrypto libvirt libvirt-qemu libguestfs

ifneq ($(V),1)
Q := @
endif

WARN := -Wall -Wextra -Werror -Wformat=2 -Wno-format-nonliteral -Wshadow -Wstrict-prototypes
CFLAGS ?= -O2 -g

# The libraries' flags come from pkg-config when this make starts. The targets that install
# missing packages first (demo, check, ...: AFTER_DEPS below) run `deps` and then a second make,
# so on a fresh machine these are computed after the packages exist and `make -j` cannot race
# the install. A make that would compile without them stops at `pkgcheck`, naming what is missing.
pkg_missing = $(shell sh ci/pkg-missing.sh $(1))
PKG_MISSING := $(call pkg_missing,$(PKGS))
ifeq ($(PKG_MISSING),)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))
endif
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) -D_FORTIFY_SOURCE=2 -MD -MP -Iharness -Iworkloads \
	-DKLPQ_SRCDIR='"$(CURDIR)"' $(PKG_CFLAGS)
LIBS := $(PKG_LIBS) -lm -lpthread

LIB_SRC := $(filter-out harness/klpq.c,$(wildcard harness/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/unit/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

WL_SRC := $(wildcard workloads/*.c)

all: $(BUILD)/klpq $(BUILD)/klpq-agent $(BUILD)/klpq-workload

# Stops a build that would compile without the libraries, naming each missing one and its
# package (pkg-config's own silence would otherwise become hundreds of undefined references).
pkgcheck:
	@if [ -n "$(PKG_MISSING)" ]; then \
		echo "Makefile: pkg-config cannot find $(foreach p,$(PKG_MISSING),$(firstword $(subst :, ,$(p))) (Debian package $(lastword $(subst :, ,$(p))))); run 'make deps' (or ci/install-deps.sh) first, or 'make demo' / 'make check', which do" >&2; \
		exit 1; fi

checkcheck:
	@if [ -n "$(call pkg_missing,check)" ]; then \
		echo "Makefile: pkg-config cannot find check (Debian package check): run 'make deps' first" >&2; \
		exit 1; fi

$(BUILD)/%.o: %.c | pkgcheck
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libklpq.a: $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/klpq: $(BUILD)/harness/klpq.o $(BUILD)/libklpq.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS) $(LDFLAGS)

# The guest agent is PID 1 in a busybox initramfs: static, with the same protocol codec.
AGENT_SRC := $(wildcard images/agent/*.c)
AGENT_SHARED := harness/proto.c harness/util.c
$(BUILD)/klpq-agent: $(AGENT_SRC) images/agent/agent.h $(AGENT_SHARED) harness/proto.h harness/util.h | pkgcheck
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  STATIC  $@")
	$(Q)$(CC) -std=gnu11 $(WARN) -O2 -static -Iharness -o $@ $(AGENT_SRC) \
		$(AGENT_SHARED) -ljson-c

# The guest's load generators (docs/workloads.md): static, libcrypto's SHA-256 included.
$(BUILD)/klpq-workload: $(WL_SRC) $(wildcard workloads/*.h) | pkgcheck
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  STATIC  $@")
	$(Q)rm -f $@; $(CC) -std=gnu11 $(WARN) -O2 -static -pthread -Iworkloads -o $@ $(WL_SRC) \
		-lcrypto -lm > $@.log 2>&1; grep -v -e "statically linked applications" \
		-e "libcrypto.a(.*): in function" $@.log || true; test -x $@

# Test-only agent that can abuse its own channel on request (tests/vm: hostile-channel).
$(BUILD)/klpq-agent-faults: $(AGENT_SRC) images/agent/agent.h $(AGENT_SHARED) harness/proto.h harness/util.h | pkgcheck
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  STATIC  $@")
	$(Q)$(CC) -std=gnu11 $(WARN) -O2 -static -DKLPQ_AGENT_FAULTS -Iharness -o $@ \
		$(AGENT_SRC) $(AGENT_SHARED) -ljson-c

$(BUILD)/check-unit: $(TEST_OBJ) $(BUILD)/workloads/wlmath.o $(BUILD)/libklpq.a | checkcheck
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS) $(shell pkg-config --libs check 2>/dev/null) $(LDFLAGS)

deps:
	$(Q)bash ci/install-deps.sh

deps-dev:
	$(Q)bash ci/install-deps.sh --dev

deps-pool:
	$(Q)bash ci/install-deps.sh
	$(Q)bash ci/install-deps.sh --pool

# These install what is missing first, then do their work in a second make (TARGET-run), whose
# pkg-config flags are computed once the packages are there.
AFTER_DEPS := demo check check-unit check-vm check-faulty check-faulty-libvirt check-faults \
	      check-selftests check-perf check-sensitivity check-flood bench check-disk
AFTER_DEPS_DEV := fuzz asan valgrind
$(AFTER_DEPS): deps
	$(Q)$(MAKE) --no-print-directory $@-run
$(AFTER_DEPS_DEV): deps-dev
	$(Q)$(MAKE) --no-print-directory $@-run
check-pool bench-pool: deps-pool
	$(Q)$(MAKE) --no-print-directory $@-run

# The pool test (tests/pool/check.sh, docs/pool.md): about 5 minutes; CHECK_POOL=short about 2.
check-pool-run: all
	$(Q)bash tests/pool/check.sh $(or $(CHECK_POOL),full)

fuzz-run:
	$(Q)bash tests/fuzz/run.sh

# Unit and real-boot tests with klpq built under AddressSanitizer and UBSan (the guest agent is
# static and stays as it is). UB aborts; LeakSanitizer reports leaks at exit.
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
asan-run:
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan CC=clang CFLAGS="-O1 -g $(SAN)" \
		LDFLAGS="$(SAN)" all build-asan/check-unit build-asan/klpq-agent-faults
	$(Q)KLPQ_AGENT=build-asan/klpq-agent CK_DEFAULT_TIMEOUT=120 build-asan/check-unit
	$(Q)# ASan's quarantine holds up to 256 MB of freed memory by design: the memory bound
	$(Q)# (64 MiB) is asserted by make check on the real build, not here.
	$(Q)KLPQ=build-asan/klpq KLPQ_TEST_MAX_RSS_KB=1048576 bash tests/vm/run.sh

valgrind-run: all
	$(Q)valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=99 --trace-children=no $(BUILD)/klpq run -o build/valgrind-results scenarios/smoke.yaml

check-flood-run: all
	$(Q)bash tests/vm/run.sh hostile-flood-big

check-unit-run: all $(BUILD)/check-unit
	$(Q)CK_DEFAULT_TIMEOUT=60 $(BUILD)/check-unit
	$(Q)$(MAKE) --no-print-directory check-workloads

# Each guest workload's own self-test, run on the host (a few seconds each).
check-workloads: $(BUILD)/klpq-workload
	$(Q)for w in gaming streaming mining callbench; do $(BUILD)/klpq-workload $$w --self-test \
		|| exit 1; done

check-vm-run: all $(BUILD)/klpq-agent-faults
	$(Q)bash tests/vm/run.sh
	$(Q)bash tests/vm/faulty.sh --check

check-run: all $(BUILD)/check-unit $(BUILD)/klpq-agent-faults
	$(Q)CK_DEFAULT_TIMEOUT=60 $(BUILD)/check-unit
	$(Q)$(MAKE) --no-print-directory check-workloads
	$(Q)bash tests/vm/run.sh
	$(Q)bash tests/vm/faulty.sh --check

demo-run: all
	$(BUILD)/klpq run scenarios/smoke.yaml

# A fresh machine, for real (tests/fresh.sh): purges pkg-config and the library development
# packages, clones this repository into a new folder, runs `make demo` there once, and installs
# the packages again. Needs root and Debian's archive. KLPQ_FRESH_REV=<commit> tries another commit.
check-fresh:
	$(Q)bash tests/fresh.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/klpq \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/klpq
	install -m 0755 $(BUILD)/klpq $(DESTDIR)$(PREFIX)/bin/klpq
	install -m 0755 $(BUILD)/klpq-agent $(DESTDIR)$(PREFIX)/lib/klpq/klpq-agent
	install -m 0755 $(BUILD)/klpq-workload $(DESTDIR)$(PREFIX)/lib/klpq/klpq-workload
	install -m 0644 docs/klpq.1 $(DESTDIR)$(PREFIX)/share/man/man1/klpq.1
	rm -rf $(DESTDIR)$(PREFIX)/share/klpq/scenarios
	cp -R scenarios $(DESTDIR)$(PREFIX)/share/klpq/scenarios
	chmod -R u=rwX,go=rX $(DESTDIR)$(PREFIX)/share/klpq/scenarios

clean:
	rm -rf build build-asan

# The kill matrix (docs/reliability.md): SIGINT, SIGTERM and SIGKILL at boot, mid-step, during
# rollback and after a finished cell, each followed by --resume; about 10 minutes.
# CHECK_FAULTS=short: 5 of the 12 (every signal and every point once, SIGKILL at three;
# .ci/run), about 4 minutes.
check-faults-run: all
	$(Q)bash tests/faults/kill-matrix.sh $(or $(CHECK_FAULTS),full)

# The kernel's livepatch selftests of linux-source-6.1 and -6.12, each behaviour a klpq patch set
# on the suite's Debian kernel (docs/conformance.md).
check-selftests-run: all
	$(Q)bash tests/selftests/run.sh

# The whole stability corpus on a real kernel (docs/corpus.md), about 8 minutes.
check-faulty-run: all
	$(Q)bash tests/vm/faulty.sh

# The same corpus with every scenario on the libvirt backend (embedded driver; docs/pool.md).
check-faulty-libvirt-run: all
	$(Q)KLPQ_TEST_BACKEND=libvirt bash tests/vm/faulty.sh

# Performance claims (issue 3), about 10 minutes: the A/A run (no perf FAIL in 5 of 5) and the
# slow patch (caught in 5 of 5). Figures: docs/statistics.md.
check-perf-run: all
	$(Q)bash tests/bench/perf-repeat.sh aa 5
	$(Q)bash tests/bench/perf-repeat.sh slow 5

# The smallest slowdowns caught at the default perf settings (docs/statistics.md,
# "Sensitivity"), 5 runs each: the saturating stream's A/A and 50 us on tcp_sendmsg (both
# claims must hold), then 5 us on tcp_sendmsg, measured and not claimed (caught 1 of 5 under
# TCG); about 25 minutes. The syscall path (perf-repeat.sh ppid5) is for KVM hosts: under TCG
# the guest wedges.
check-sensitivity-run: all
	$(Q)bash tests/bench/perf-repeat.sh sat-aa 5
	$(Q)bash tests/bench/perf-repeat.sh tcp50 5
	-$(Q)bash tests/bench/perf-repeat.sh tcp5 5

# Disk-image guests (tests/vm/disk.sh, docs/scenario.md "guest"): the built Debian image (its
# first build included), a user's image made by the test with libguestfs, a refused one, a
# crashing patch's post-mortem, two cells on one base, a panic with kdump (its own image), the
# libvirt backend; about 17 minutes (a first build adds 4, the kdump image's 3).
# CHECK_DISK=short: without the refused images and libvirt (.ci/run).
check-disk-run: all $(BUILD)/klpq-mkimage
	$(Q)KLPQ_MKIMAGE=$(BUILD)/klpq-mkimage bash tests/vm/disk.sh $(CHECK_DISK)

# tests/vm/disk.sh's "user's own image", made with libguestfs.
$(BUILD)/klpq-mkimage: tests/vm/mkimage.c | pkgcheck
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) -std=gnu11 $(WARN) $(CFLAGS) -o $@ $< $(shell pkg-config --cflags --libs libguestfs)

# The pool's throughput with two hosts against one (docs/scaling.md), about 6 minutes.
bench-pool-run: all
	$(Q)bash tests/bench/pool-throughput.sh

# Benchmarks (figures in docs/): matrix throughput -j1 vs -j2, a 10,000-cell plan, harness
# overhead against a bare boot.
bench-run: all
	$(Q)bash tests/bench/plan-10k.sh
	$(Q)bash tests/bench/matrix-throughput.sh
	$(Q)bash tests/bench/overhead.sh
	$(Q)bash tests/bench/libvirt-overhead.sh

.PHONY: all pkgcheck checkcheck deps deps-dev install clean check-workloads check-fresh \
	check-selftests-run deps-pool check-pool check-pool-run bench-pool bench-pool-run \
	$(AFTER_DEPS) $(AFTER_DEPS_DEV) $(AFTER_DEPS:%=%-run) $(AFTER_DEPS_DEV:%=%-run)

# Header dependencies written by -MD.
-include $(wildcard $(BUILD)/harness/*.d $(BUILD)/tests/unit/*.d $(BUILD)/workloads/*.d)
