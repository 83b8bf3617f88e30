# exipc — build, test, bench, install (GNU make).
#
#   make            same as `make lib`
#   make lib        build/libexipc.a, build/libexipc.so, build/exipc.pc
#   make install    PREFIX=/usr/local (default) [DESTDIR=...]
#   make test       the whole suite (source checks, C, ASan+UBSan, TSan, cross-process
#                   stream, install + pkg-config host, go vet, go test, go test -race)
#   make bench      the benchmark suite (bench/): exipc beside references and peers [BENCH=regexp]
#   make fuzz       Go fuzz targets (FUZZTIME each) and libFuzzer harnesses (CFUZZTIME s each)
#   make torture    the long torture runs: corruption scribbler (TORTURE_TIME s), kill torture (TORTURE_KILLS)
#   make demo       the mail store example: C store (SQLite) + Go POP3 front end on 127.0.0.1:DEMO_PORT
#   make bench-pop3 POP3 RETR through the example, store over exipc vs over a Unix socket
#   make clean
#   make help       every target
#
# Parts of the suite: test-check test-c test-asan test-tsan test-stream test-stream-asan
# test-install test-go test-race test-hostile. V=1 shows every C test's full output.

SHELL := /bin/bash
.DEFAULT_GOAL := lib
.DELETE_ON_ERROR:
.SUFFIXES:

PREFIX  ?= /usr/local
DESTDIR ?=
VERSION   := 0.1.0
SOVERSION := 0
BUILD   := build
NPROC   := $(shell nproc 2>/dev/null || echo 2)
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)

# Flags. CFLAGS is the optimisation of the normal build; the sanitizer builds
# use their own. BASE_CFLAGS is always there.
CFLAGS      ?= -O2 -g
BASE_CFLAGS := -std=gnu11 -fPIC -fvisibility=hidden -D_GNU_SOURCE -Wall -Wextra -pthread -Inative
ASAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN_CFLAGS := -O1 -g -fsanitize=thread
LDLIBS      := -pthread

FLAGS_norm := $(BASE_CFLAGS) $(CFLAGS)
FLAGS_asan := $(BASE_CFLAGS) $(ASAN_CFLAGS)
FLAGS_tsan := $(BASE_CFLAGS) $(TSAN_CFLAGS)

export ASAN_OPTIONS  := detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS  := halt_on_error=1:second_deadlock_stack=1

# Sources. New native/test/test_*.c files are picked up by themselves.
# The core: native/*.c, as cgo sees it (a file marked //go:build ignore is not part of it).
LIB_SRCS    := $(filter-out $(shell grep -l '^//go:build ignore' native/*.c 2>/dev/null),$(wildcard native/*.c))
TEST_SRCS   := $(wildcard native/test/test_*.c)
# Cross-process drivers that exec the peer: run in the stream steps.
XPROC_TESTS ?= $(wildcard native/test/test_*xproc*.c)
UNIT_TESTS  := $(filter-out $(XPROC_TESTS),$(TEST_SRCS))
# Threaded tests that also run under TSan.
TSAN_TESTS  ?= $(wildcard native/test/test_*thread*.c)

# Build directories: build/ (normal), build/asan, build/tsan.
OBJ_norm := $(patsubst native/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
OBJ_asan := $(patsubst native/%.c,$(BUILD)/asan/obj/%.o,$(LIB_SRCS))
OBJ_tsan := $(patsubst native/%.c,$(BUILD)/tsan/obj/%.o,$(LIB_SRCS))
BIN_norm  = $(patsubst native/test/%.c,$(BUILD)/test/%,$(1))
BIN_asan  = $(patsubst native/test/%.c,$(BUILD)/asan/bin/%,$(1))
BIN_tsan  = $(patsubst native/test/%.c,$(BUILD)/tsan/bin/%,$(1))

PEER      := $(BUILD)/peer
PEER_ASAN := $(BUILD)/asan/bin/peer

.PHONY: all lib install uninstall test bench clean help FORCE \
        test-check test-c test-asan test-tsan test-stream test-stream-asan test-install test-go test-race \
        check-exports build-tests bench-wake bench-list

all: lib

help:
	@sed -n '3,18s/^# \{0,1\}//p' Makefile

# ---- flag stamps: objects rebuild when their flags change -----------------
# $(call stamp,FILE,CONTENT)
define stamp
$(1): FORCE
	@mkdir -p $$(@D); echo '$(2)' | cmp -s - $$@ 2>/dev/null || echo '$(2)' > $$@
endef
$(eval $(call stamp,$(BUILD)/obj/.flags,$(CC) $(FLAGS_norm)))
$(eval $(call stamp,$(BUILD)/asan/obj/.flags,$(CC) $(FLAGS_asan)))
$(eval $(call stamp,$(BUILD)/tsan/obj/.flags,$(CC) $(FLAGS_tsan)))
$(eval $(call stamp,$(BUILD)/.prefix,$(abspath $(PREFIX)) $(VERSION)))

# ---- objects and programs, one rule set per build mode --------------------
# $(call mode_rules,OBJDIR,BINDIR,FLAGS,OBJS)
define mode_rules
$(1)/%.o: native/%.c $(1)/.flags
	@mkdir -p $$(@D)
	$$(CC) $(3) -MMD -MP -c -o $$@ $$<
$(2)/%: native/test/%.c $(4)
	@mkdir -p $$(@D)
	$$(CC) $(3) -MMD -MP -MF $$@.d -o $$@ $$< $(4) $$(LDLIBS)
endef
$(eval $(call mode_rules,$(BUILD)/obj,$(BUILD)/test,$$(FLAGS_norm),$$(OBJ_norm)))
$(eval $(call mode_rules,$(BUILD)/asan/obj,$(BUILD)/asan/bin,$$(FLAGS_asan),$$(OBJ_asan)))
$(eval $(call mode_rules,$(BUILD)/tsan/obj,$(BUILD)/tsan/bin,$$(FLAGS_tsan),$$(OBJ_tsan)))
# Objects reached only through pattern rules would count as intermediate and be deleted.
.SECONDARY: $(OBJ_norm) $(OBJ_asan) $(OBJ_tsan)

# The stream peer, where the Go tests expect it (EXIPC_C_PEER=build/peer).
$(PEER): $(BUILD)/test/peer
	cp $< $@

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/asan/obj/*.d $(BUILD)/tsan/obj/*.d)
-include $(wildcard $(BUILD)/test/*.d $(BUILD)/asan/bin/*.d $(BUILD)/tsan/bin/*.d)

# ---- the library ------------------------------------------------------------
lib: $(BUILD)/libexipc.a $(BUILD)/libexipc.so $(BUILD)/exipc.pc

$(BUILD)/libexipc.a: $(OBJ_norm)
	@rm -f $@
	ar rcs $@ $^

# Only the exipc_* functions marked EXIPC_API are exported (-fvisibility=hidden).
$(BUILD)/libexipc.so: $(OBJ_norm)
	$(CC) -shared -Wl,-soname,libexipc.so.$(SOVERSION) -Wl,-z,defs -Wl,-z,relro,-z,now -o $@ $^ $(LDLIBS)
	@ln -sf libexipc.so $(BUILD)/libexipc.so.$(SOVERSION)

$(BUILD)/exipc.pc: native/exipc.pc.in $(BUILD)/.prefix
	sed -e 's|@PREFIX@|$(abspath $(PREFIX))|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# Every exported symbol is exipc_*, and every EXIPC_API function of exipc.h is exported.
check-exports: $(BUILD)/libexipc.so
	@nm -D --defined-only $< | awk '{print $$3}' | sort > $(BUILD)/exports.txt; \
	grep -oE 'EXIPC_API[^(]*\<exipc_[a-z_]+\(' native/exipc.h | grep -oE 'exipc_[a-z_]+' | sort -u > $(BUILD)/api.txt; \
	bad=$$(grep -v '^exipc_' $(BUILD)/exports.txt); \
	missing=$$(comm -13 $(BUILD)/exports.txt $(BUILD)/api.txt); \
	extra=$$(comm -23 $(BUILD)/exports.txt $(BUILD)/api.txt); \
	echo "exports: $$(wc -l < $(BUILD)/exports.txt) symbols exported, $$(wc -l < $(BUILD)/api.txt) functions in exipc.h"; \
	if [ -n "$$bad" ]; then echo "exports: not exipc_*: $$bad"; fi; \
	if [ -n "$$missing" ]; then echo "exports: in exipc.h but not exported: $$missing"; fi; \
	if [ -n "$$extra" ]; then echo "exports: exported but not in exipc.h: $$extra"; fi; \
	[ -z "$$bad$$missing$$extra" ]

# ---- install ------------------------------------------------------------------
INSTDIR = $(DESTDIR)$(abspath $(PREFIX))

install: lib
	install -d $(INSTDIR)/include $(INSTDIR)/lib/pkgconfig
	install -m 644 native/exipc.h $(INSTDIR)/include/exipc.h
	install -m 644 $(BUILD)/libexipc.a $(INSTDIR)/lib/libexipc.a
	install -m 755 $(BUILD)/libexipc.so $(INSTDIR)/lib/libexipc.so.$(VERSION)
	ln -sf libexipc.so.$(VERSION) $(INSTDIR)/lib/libexipc.so.$(SOVERSION)
	ln -sf libexipc.so.$(SOVERSION) $(INSTDIR)/lib/libexipc.so
	install -m 644 $(BUILD)/exipc.pc $(INSTDIR)/lib/pkgconfig/exipc.pc

uninstall:
	rm -f $(INSTDIR)/include/exipc.h $(INSTDIR)/lib/libexipc.a $(INSTDIR)/lib/libexipc.so \
	      $(INSTDIR)/lib/libexipc.so.$(SOVERSION) $(INSTDIR)/lib/libexipc.so.$(VERSION) \
	      $(INSTDIR)/lib/pkgconfig/exipc.pc

# ---- tests --------------------------------------------------------------------
RUN := native/test/run_tests.sh
# Steps of `make test`, in order.
TEST_STEPS := test-check test-c test-asan test-tsan test-stream test-stream-asan test-install test-go test-race \
              test-hostile

build-tests: $(call BIN_norm,$(UNIT_TESTS) $(XPROC_TESTS)) $(PEER)

# (0) source checks: every native/test/check_*.sh (e.g. ordering labels in pairs)
CHECK_SCRIPTS := $(wildcard native/test/check_*.sh)
test-check:
	@$(RUN) check $(CHECK_SCRIPTS)

# (a) every C test program, normal build (-O2)
test-c: $(call BIN_norm,$(UNIT_TESTS))
	@$(RUN) c $^

# (b) the same under ASan + UBSan (-O1)
test-asan: $(call BIN_asan,$(UNIT_TESTS))
	@$(RUN) asan $^

# (c) the threaded tests under TSan
test-tsan: $(call BIN_tsan,$(TSAN_TESTS))
	@if [ -z "$^" ]; then echo "tsan: no threaded test (name one native/test/test_*thread*.c or set TSAN_TESTS)"; fi
	@$(RUN) tsan $^

# (d) the C<->C cross-process stream, normal and under ASan
test-stream: $(call BIN_norm,$(XPROC_TESTS)) $(PEER)
	@TEST_TIMEOUT=330 EXIPC_C_PEER=$(abspath $(PEER)) $(RUN) stream $(call BIN_norm,$(XPROC_TESTS))

test-stream-asan: $(call BIN_asan,$(XPROC_TESTS)) $(PEER_ASAN)
	@TEST_TIMEOUT=330 EXIPC_C_PEER=$(abspath $(PEER_ASAN)) $(RUN) stream-asan $(call BIN_asan,$(XPROC_TESTS))

# (e) the library as a C host sees it: exports, install, pkg-config (shared and static)
HOSTCHK := $(BUILD)/hostcheck
test-install:
	@$(MAKE) --no-print-directory lib
	@$(MAKE) --no-print-directory check-exports
	@rm -rf $(BUILD)/prefix $(HOSTCHK) && mkdir -p $(HOSTCHK)
	@$(MAKE) --no-print-directory install PREFIX=$(BUILD)/prefix DESTDIR= >/dev/null
	@set -e; export PKG_CONFIG_PATH=$(abspath $(BUILD)/prefix)/lib/pkgconfig; \
	echo "pkg-config --cflags --libs exipc: $$(pkg-config --cflags --libs exipc)"; \
	echo "pkg-config --static --libs exipc: $$(pkg-config --static --libs exipc)"; \
	libdir=$$(pkg-config --variable=libdir exipc); \
	set -x; \
	$(CC) -std=c11 -Wall -Wextra -Werror -o $(HOSTCHK)/host_shared native/test/host_example.c \
	    $$(pkg-config --cflags --libs exipc) -Wl,-rpath,$$libdir; \
	$(CC) -std=c11 -Wall -Wextra -Werror -o $(HOSTCHK)/host_static native/test/host_example.c \
	    $$(pkg-config --static --cflags --libs exipc | sed 's/-lexipc\>/-l:libexipc.a/'); \
	{ set +x; } 2>/dev/null; \
	ldd $(HOSTCHK)/host_shared | grep -q 'libexipc\.so\.$(SOVERSION) => .*$(BUILD)/prefix/lib' \
	    || { echo "host_shared does not load the installed libexipc.so.$(SOVERSION)"; exit 1; }; \
	if ldd $(HOSTCHK)/host_static | grep -q libexipc; then echo "host_static loads libexipc.so"; exit 1; fi
	@fail=0; \
	native/test/host_example_run.sh $(HOSTCHK)/host_shared host-shared || fail=1; \
	native/test/host_example_run.sh $(HOSTCHK)/host_static host-static || fail=1; \
	exit $$fail

# (f) go vet and go test, reusing the C peer
GO_FILES = $(shell find . -name '*.go' -not -path './build/*' -not -path './.git/*' 2>/dev/null | head -1)
GO_TEST_FLAGS ?= -timeout 10m

test-go: $(PEER)
	@if [ -z "$(GO_FILES)" ]; then echo "go: no Go code yet, skipped"; exit 0; fi; \
	set -ex; $(GO) vet ./...; \
	EXIPC_C_PEER=$(abspath $(PEER)) $(GO) test -count=1 $(GO_TEST_FLAGS) ./...

# (g) the race detector, short mode
test-race: $(PEER)
	@if [ -z "$(GO_FILES)" ]; then echo "go: no Go code yet, skipped"; exit 0; fi; \
	set -ex; EXIPC_C_PEER=$(abspath $(PEER)) $(GO) test -race -count=1 -short $(GO_TEST_FLAGS) ./...

# Every step, in order; keeps going after a failure and exits non-zero if any failed.
test:
	@jobs=-j$(NPROC); case " $$MAKEFLAGS" in *" -j"*|*" j"*) jobs= ;; esac; \
	shm_before=$$(ls /dev/shm 2>/dev/null | grep '^exipc\.' | sort); \
	pass=0 fail=0 failed= summary=; t_all=$$(date +%s); \
	for step in $(TEST_STEPS); do \
	    echo; echo "======== $$step ========"; t0=$$(date +%s); \
	    if $(MAKE) --no-print-directory $$jobs $$step; then s=PASS; pass=$$((pass+1)); \
	    else s=FAIL; fail=$$((fail+1)); failed="$$failed $$step"; fi; \
	    summary="$$summary$$(printf '%-4s %-18s %5ss' $$s $$step $$(( $$(date +%s) - t0 )))\n"; \
	done; \
	shm_after=$$(ls /dev/shm 2>/dev/null | grep '^exipc\.' | sort); \
	leaked=$$(comm -13 <(echo "$$shm_before") <(echo "$$shm_after") | grep . || true); \
	echo; echo "======== summary ($$(( $$(date +%s) - t_all ))s) ========"; printf "$$summary"; \
	if [ -n "$$leaked" ]; then echo "warning: new files in /dev/shm during the run (left by a test, or by another process):"; echo "$$leaked" | sed 's/^/  /'; fi; \
	if [ $$fail -gt 0 ]; then echo "failed steps:$$failed"; fi; \
	echo "test: $$pass passed, $$fail failed"; \
	[ $$fail -eq 0 ]

# ---- hostile peers: corruption torture and fuzzing (README, "Safety") -----------
# test-hostile, a step of `make test`: native/test/torture_scribble (a process
# scribbles on every region of a live domain while two victims run the whole
# API) for TORTURE_TEST_TIME seconds, normal and under ASan+UBSan; then every
# libFuzzer harness native/fuzz/fuzz_NAME.c, built with gcc and ASan+UBSan
# around native/fuzz/driver.c, replayed over native/fuzz/corpus/NAME (seeds and
# past findings) and FUZZ_REPLAY_RUNS random inputs. (The Go fuzz targets,
# fuzz_test.go, run over their seeds in test-go and test-race.)
#
# make fuzz: each Go fuzz target for FUZZTIME, then each libFuzzer harness
# (clang-14 -fsanitize=fuzzer,address,undefined) for CFUZZTIME seconds, with
# its corpus in build/fuzz/corpus/NAME and findings in build/fuzz/artifacts.
# Go findings land in testdata/fuzz/FuzzNAME and C ones belong in
# native/fuzz/corpus/NAME once fixed: both are replayed by `make test`.
#
# make torture: the long torture runs, one after another, TORTURE_TIME seconds
# each. A new torture program adds itself with `torture: torture-NAME`.
TORTURE_TEST_TIME ?= 20
TORTURE_TIME      ?= 600
FUZZTIME          ?= 60s
CFUZZTIME         ?= 60
FUZZ_REPLAY_RUNS  ?= 300
CLANG_FUZZ        ?= clang-14
GO_FUZZ_TARGETS   := FuzzHandle FuzzAttach FuzzRing FuzzHeap FuzzTables
FUZZ_HARNESSES    := $(patsubst native/fuzz/fuzz_%.c,%,$(wildcard native/fuzz/fuzz_*.c))
FUZZ_REPLAY       := $(patsubst %,$(BUILD)/asan/fuzz/fuzz_%_replay,$(FUZZ_HARNESSES))
TORTURE_BIN       := $(BUILD)/test/torture_scribble
TORTURE_BIN_ASAN  := $(BUILD)/asan/bin/torture_scribble
FUZZ_CFLAGS       := $(BASE_CFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
                     -fno-sanitize-recover=all
# Names of the files fuzzing and torture make in /dev/shm: PREFIX-PID-N.
HOSTILE_SHM       := fz lf torture

.PHONY: test-hostile fuzz fuzz-go fuzz-c fuzz-clang torture torture-scribble clean-hostile-shm

$(BUILD)/asan/fuzz/fuzz_%_replay: native/fuzz/fuzz_%.c native/fuzz/driver.c $(OBJ_asan) $(BUILD)/asan/obj/.flags
	@mkdir -p $(@D)
	$(CC) $(FLAGS_asan) -MMD -MP -MF $@.d -o $@ $< native/fuzz/driver.c $(OBJ_asan) $(LDLIBS)
-include $(wildcard $(BUILD)/asan/fuzz/*.d)

test-hostile: $(TORTURE_BIN) $(TORTURE_BIN_ASAN) $(FUZZ_REPLAY)
	@EXIPC_TORTURE_SECONDS=$(TORTURE_TEST_TIME) EXIPC_FUZZ_CORPUS=native/fuzz/corpus \
	    EXIPC_FUZZ_RUNS=$(FUZZ_REPLAY_RUNS) TEST_TIMEOUT=$$(( $(TORTURE_TEST_TIME) + 120 )) \
	    $(RUN) hostile $(TORTURE_BIN) $(TORTURE_BIN_ASAN) $(FUZZ_REPLAY)

fuzz: fuzz-go fuzz-c

fuzz-go:
	@fail=0; for t in $(GO_FUZZ_TARGETS); do \
	    echo "== go fuzz $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) . || fail=1; \
	done; $(MAKE) --no-print-directory clean-hostile-shm; exit $$fail

# libFuzzer comes with clang; install it from Debian's packages when root.
fuzz-clang:
	@ok() { echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' | \
	        $(CLANG_FUZZ) -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; }; \
	if ok; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "fuzz: installing clang-14 and libclang-rt-14-dev (libFuzzer)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null; \
	fi; \
	ok || { echo "fuzz: SKIPPED the libFuzzer harnesses: $(CLANG_FUZZ) with -fsanitize=fuzzer is not available (apt-get install clang-14 libclang-rt-14-dev, as root)"; exit 2; }

fuzz-c:
	@if ! $(MAKE) --no-print-directory fuzz-clang; then exit 0; fi; \
	mkdir -p $(BUILD)/fuzz/artifacts; fail=0; \
	for h in $(FUZZ_HARNESSES); do \
	    echo "== libFuzzer fuzz_$$h ($(CFUZZTIME) s)"; \
	    $(CLANG_FUZZ) $(FUZZ_CFLAGS) -o $(BUILD)/fuzz/fuzz_$$h native/fuzz/fuzz_$$h.c $(LIB_SRCS) $(LDLIBS) || { fail=1; continue; }; \
	    mkdir -p $(BUILD)/fuzz/corpus/$$h native/fuzz/corpus/$$h; \
	    $(BUILD)/fuzz/fuzz_$$h -max_total_time=$(CFUZZTIME) -timeout=30 -print_final_stats=1 \
	        -artifact_prefix=$(BUILD)/fuzz/artifacts/$$h- $(BUILD)/fuzz/corpus/$$h native/fuzz/corpus/$$h \
	        > $(BUILD)/fuzz/fuzz_$$h.log 2>&1 || { fail=1; tail -40 $(BUILD)/fuzz/fuzz_$$h.log; }; \
	    grep -E '^stat::number_of_executed_units|^Done' $(BUILD)/fuzz/fuzz_$$h.log; \
	done; $(MAKE) --no-print-directory clean-hostile-shm; exit $$fail

torture: torture-scribble

torture-scribble: $(TORTURE_BIN)
	@$(TORTURE_BIN) -t $(TORTURE_TIME); rc=$$?; $(MAKE) --no-print-directory clean-hostile-shm; exit $$rc

# ---- crash cleanup: the kill torture and the detection benchmark (README, "Crash cleanup")
# `make test` runs native/test/test_kill_torture with 200 kills (in test-c and
# test-asan); torture-kill runs TORTURE_KILLS of them. bench-detect measures
# how soon a blocked receiver learns of its peer's SIGKILL (DETECT_SAMPLES).
TORTURE_KILLS  ?= 10000
DETECT_SAMPLES ?= 200
.PHONY: torture-kill bench-detect
torture: torture-kill

torture-kill: $(call BIN_norm,native/test/test_kill_torture.c)
	@EXIPC_TORTURE_KILLS=$(TORTURE_KILLS) EXIPC_TORTURE_TIMEOUT=$$(( $(TORTURE_KILLS) / 10 + 300 )) $<

bench-detect: $(BUILD)/test/bench_detect
	@$< $(DETECT_SAMPLES)

# Files a killed fuzzer or torture left in /dev/shm: only ours (by prefix),
# only of processes that are gone.
clean-hostile-shm:
	@for p in $(HOSTILE_SHM); do for f in /dev/shm/exipc.$$p-*; do \
	    [ -e "$$f" ] || continue; pid=$${f#/dev/shm/exipc.$$p-}; pid=$${pid%%-*}; \
	    case $$pid in ''|*[!0-9]*) continue ;; esac; \
	    kill -0 "$$pid" 2>/dev/null || { echo "removing $$f (pid $$pid is gone)"; rm -f "$$f"; }; \
	done; done

# ---- bench ------------------------------------------------------------------------
# `make bench` builds the C peer (bench/c/cbench.c, against the core's objects)
# and the Go driver (bench/, a module of its own: the library's go.mod gains
# nothing), then runs every workload, prints the table and writes
# bench/results/latest.json and the plots. BENCH=regexp runs the workloads
# whose names match (the references they are compared with run too) and
# writes to build/bench/results instead. BENCH_FLAGS go to the driver:
# -reps N, -scale F, -pin-go, -timeout D (`make bench-list` lists the names).
BENCH       ?=
BENCH_FLAGS ?=
BENCH_DIR   := $(BUILD)/bench
BENCH_OUT    = $(if $(BENCH),$(BENCH_DIR)/results,bench/results)

bench: $(BENCH_DIR)/cbench $(BENCH_DIR)/heapmix $(BENCH_DIR)/exipcbench
	@$(BENCH_DIR)/exipcbench -cpeer $(BENCH_DIR)/cbench -out $(BENCH_OUT) $(if $(BENCH),-filter '$(value BENCH)') $(BENCH_FLAGS)

bench-list: $(BENCH_DIR)/exipcbench
	@$(BENCH_DIR)/exipcbench -list $(if $(BENCH),-filter '$(value BENCH)')

$(BENCH_DIR)/cbench: bench/c/cbench.c $(OBJ_norm) $(BUILD)/obj/.flags
	@mkdir -p $(@D)
	$(CC) $(FLAGS_norm) -MMD -MP -MF $@.d -o $@ $< $(OBJ_norm) $(LDLIBS)
-include $(wildcard $(BENCH_DIR)/*.d)

# The heap under a random size mix, beside glibc malloc (bench/c/heapmix.c).
$(BENCH_DIR)/heapmix: bench/c/heapmix.c $(OBJ_norm) $(BUILD)/obj/.flags
	@mkdir -p $(@D)
	$(CC) $(FLAGS_norm) -MMD -MP -MF $@.d -o $@ $< $(OBJ_norm) $(LDLIBS)

# go build knows what is stale (the library's C and Go included): always ask it.
# -mod=mod: a dependency the library gains reaches bench/go.sum by itself.
$(BENCH_DIR)/exipcbench: FORCE
	@mkdir -p $(@D)
	cd bench && $(GO) build -buildvcs=false -mod=mod -o $(abspath $@) .

# Wake-up of a parked receiver (exipc_recv PARK, exipc_poll) against a plain
# futex wake, in one run.
bench-wake: $(BUILD)/test/bench_wake
	@$(BUILD)/test/bench_wake

# The README's C host, built against the tree (test-install builds it against an install).
$(BUILD)/host_example: $(BUILD)/test/host_example
	cp $< $@

# ---- the mail store example (examples/mailstore): make demo, make bench-pop3 ----
# The store is a C host of the library (libexipc.a, SQLite); pop3d and
# pop3bench are Go programs of the module. Its tests run in test-go
# (examples/mailstore/pop3d/e2e_test.go builds the store itself).
MAIL_DIR    := $(BUILD)/mailstore
DEMO_PORT   ?= 1110
DEMO_DOMAIN ?= mailstore-demo
POP3_BENCH_FLAGS ?=

$(MAIL_DIR)/store: examples/mailstore/store.c $(BUILD)/libexipc.a native/exipc.h
	@test -e /usr/include/sqlite3.h || { echo "sqlite3.h missing: apt-get install libsqlite3-dev"; exit 1; }
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -O2 -Inative -o $@ $< $(BUILD)/libexipc.a -lsqlite3 $(LDLIBS)

$(MAIL_DIR)/pop3d $(MAIL_DIR)/pop3bench: FORCE
	@mkdir -p $(@D)
	$(GO) build -buildvcs=false -o $@ ./examples/mailstore/$(@F)

.PHONY: demo bench-pop3
demo: $(MAIL_DIR)/store $(MAIL_DIR)/pop3d
	@set -e; db=$(MAIL_DIR)/demo.db; rm -f $$db $$db-wal $$db-shm; \
	$(MAIL_DIR)/store seed $$db; \
	$(MAIL_DIR)/store serve $$db $(DEMO_DOMAIN) & st=$$!; \
	$(MAIL_DIR)/pop3d -addr 127.0.0.1:$(DEMO_PORT) -domain $(DEMO_DOMAIN) & pd=$$!; \
	trap 'kill $$pd $$st 2>/dev/null; wait $$pd $$st 2>/dev/null; rm -f /dev/shm/exipc.$(DEMO_DOMAIN); echo; echo "demo: stopped"' EXIT; \
	trap 'exit 0' INT TERM; \
	sleep 0.5; \
	echo; \
	echo "demo: POP3 on 127.0.0.1:$(DEMO_PORT), store on exipc domain $(DEMO_DOMAIN). Try:"; \
	echo "  curl -s pop3://127.0.0.1:$(DEMO_PORT)/ -u alice:wonderland        # LIST"; \
	echo "  curl -s pop3://127.0.0.1:$(DEMO_PORT)/1 -u alice:wonderland       # RETR 1"; \
	echo "  python3 -c 'import poplib; p=poplib.POP3(\"127.0.0.1\", $(DEMO_PORT)); p.user(\"bob\"); p.pass_(\"builder\"); print(p.stat()); print(b\"\\n\".join(p.retr(1)[1]).decode()); p.quit()'"; \
	echo "  python3 examples/mailstore/pop3check.py 127.0.0.1 $(DEMO_PORT) $$db alice:wonderland bob:builder carol:secret"; \
	echo "Ctrl-C stops both."; \
	wait $$pd

bench-pop3: $(MAIL_DIR)/store $(MAIL_DIR)/pop3d $(MAIL_DIR)/pop3bench
	@$(MAIL_DIR)/pop3bench -store $(MAIL_DIR)/store -pop3d $(MAIL_DIR)/pop3d $(POP3_BENCH_FLAGS)

clean:
	rm -rf $(BUILD)

FORCE:
