# exipc — build, test, bench, install (GNU make).
#
# `make help` lists every target with what it does (from the `## ` note on
# each target's line). `make` builds the libraries; `make test` runs the whole
# suite; V=1 shows every C test's full output.

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

# The product (build/obj: libexipc.a, libexipc.so, the bench peer) has no
# test hooks; every test build compiles the core with EXIPC_TESTING (kill
# points, layout views, shared mappings: exipc_testhook.h).
TEST_DEFS  := -DEXIPC_TESTING
FLAGS_norm := $(BASE_CFLAGS) $(CFLAGS)
FLAGS_test := $(BASE_CFLAGS) $(CFLAGS) $(TEST_DEFS)
FLAGS_asan := $(BASE_CFLAGS) $(ASAN_CFLAGS) $(TEST_DEFS)
FLAGS_tsan := $(BASE_CFLAGS) $(TSAN_CFLAGS) $(TEST_DEFS)

export ASAN_OPTIONS  := detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS  := halt_on_error=1:second_deadlock_stack=1

# Sources. New native/test/test_*.c files are picked up by themselves.
# The core: native/*.c, as cgo sees it.
LIB_SRCS    := $(wildcard native/*.c)
TEST_SRCS   := $(wildcard native/test/test_*.c)
# Cross-process drivers that exec the peer: run in the stream steps.
XPROC_TESTS ?= $(wildcard native/test/test_*xproc*.c)
UNIT_TESTS  := $(filter-out $(XPROC_TESTS),$(TEST_SRCS))
# Threaded tests that also run under TSan.
TSAN_TESTS  ?= $(wildcard native/test/test_*thread*.c)

# Build directories: build/obj (product), build/tobj (normal tests), build/asan, build/tsan.
OBJ_norm := $(patsubst native/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
OBJ_test := $(patsubst native/%.c,$(BUILD)/tobj/%.o,$(LIB_SRCS))
OBJ_asan := $(patsubst native/%.c,$(BUILD)/asan/obj/%.o,$(LIB_SRCS))
OBJ_tsan := $(patsubst native/%.c,$(BUILD)/tsan/obj/%.o,$(LIB_SRCS))
BIN_norm  = $(patsubst native/test/%.c,$(BUILD)/test/%,$(1))
BIN_asan  = $(patsubst native/test/%.c,$(BUILD)/asan/bin/%,$(1))
BIN_tsan  = $(patsubst native/test/%.c,$(BUILD)/tsan/bin/%,$(1))

PEER      := $(BUILD)/peer
PEER_ASAN := $(BUILD)/asan/bin/peer

.PHONY: all lib install uninstall test bench clean help FORCE \
        test-check test-c test-asan test-tsan test-stream test-stream-asan test-install test-go test-race \
        check-exports build-tests bench-wake bench-list bench-render

all: lib ## same as make lib

help: ## this list: every target of the Makefile, with what it does
	@awk '/^[a-zA-Z][a-zA-Z0-9_.-]*:([^=]|$$)/ { t = $$0; sub(/:.*/, "", t); d = ""; \
	    if (index($$0, "## ")) { d = $$0; sub(/.*## /, "", d) } \
	    if (t != "FORCE" && !seen[t]++) printf "  make %-18s %s\n", t, (d != "" ? d : "(undocumented)") }' $(MAKEFILE_LIST)

# ---- flag stamps: objects rebuild when their flags change -----------------
# $(call stamp,FILE,CONTENT)
define stamp
$(1): FORCE
	@mkdir -p $$(@D); echo '$(2)' | cmp -s - $$@ 2>/dev/null || echo '$(2)' > $$@
endef
$(eval $(call stamp,$(BUILD)/obj/.flags,$(CC) $(FLAGS_norm)))
$(eval $(call stamp,$(BUILD)/tobj/.flags,$(CC) $(FLAGS_test)))
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
$(BUILD)/obj/%.o: native/%.c $(BUILD)/obj/.flags
	@mkdir -p $(@D)
	$(CC) $(FLAGS_norm) -MMD -MP -c -o $@ $<
$(eval $(call mode_rules,$(BUILD)/tobj,$(BUILD)/test,$$(FLAGS_test),$$(OBJ_test)))
$(eval $(call mode_rules,$(BUILD)/asan/obj,$(BUILD)/asan/bin,$$(FLAGS_asan),$$(OBJ_asan)))
$(eval $(call mode_rules,$(BUILD)/tsan/obj,$(BUILD)/tsan/bin,$$(FLAGS_tsan),$$(OBJ_tsan)))
# Objects reached only through pattern rules would count as intermediate and be deleted.
.SECONDARY: $(OBJ_norm) $(OBJ_test) $(OBJ_asan) $(OBJ_tsan)

# The stream peer, where the Go tests expect it (EXIPC_C_PEER=build/peer).
$(PEER): $(BUILD)/test/peer
	cp $< $@

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/tobj/*.d $(BUILD)/asan/obj/*.d $(BUILD)/tsan/obj/*.d)
-include $(wildcard $(BUILD)/test/*.d $(BUILD)/asan/bin/*.d $(BUILD)/tsan/bin/*.d)

# ---- the library ------------------------------------------------------------
lib: $(BUILD)/libexipc.a $(BUILD)/libexipc.so $(BUILD)/exipc.pc ## build/libexipc.a, build/libexipc.so, build/exipc.pc

# One relocatable object whose hidden symbols are made local: a static host
# sees only the exipc_* functions marked EXIPC_API, as the shared library
# exports them, so its own now_ns() or heap_init() cannot clash with ours.
$(BUILD)/libexipc.a: $(OBJ_norm)
	@rm -f $@ $(BUILD)/exipc_all.o
	$(LD) -r -o $(BUILD)/exipc_all.o $^
	objcopy --localize-hidden $(BUILD)/exipc_all.o
	ar rcs $@ $(BUILD)/exipc_all.o

# Only the exipc_* functions marked EXIPC_API are exported (-fvisibility=hidden),
# and native/exipc.map says so to the linker too (version EXIPC_0, local: *).
$(BUILD)/libexipc.so: $(OBJ_norm) native/exipc.map
	$(CC) -shared -Wl,-soname,libexipc.so.$(SOVERSION) -Wl,--version-script=native/exipc.map \
	    -Wl,-z,defs -Wl,-z,relro,-z,now -o $@ $(OBJ_norm) $(LDLIBS)
	@ln -sf libexipc.so $(BUILD)/libexipc.so.$(SOVERSION)

$(BUILD)/exipc.pc: native/exipc.pc.in $(BUILD)/.prefix
	sed -e 's|@PREFIX@|$(abspath $(PREFIX))|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# In both libraries every global symbol is exipc_*, and the global symbols are
# exactly the EXIPC_API functions of exipc.h.
check-exports: $(BUILD)/libexipc.so $(BUILD)/libexipc.a ## both libraries export exactly the EXIPC_API functions of exipc.h, all exipc_*
	@grep -oE 'EXIPC_API[^(]*\<exipc_[a-z_0-9]+\(' native/exipc.h | grep -oE 'exipc_[a-z_0-9]+' | sort -u > $(BUILD)/api.txt; \
	nm -D --defined-only $(BUILD)/libexipc.so | awk '$$2 != "A" {print $$3}' | sed 's/@.*//' | sort -u > $(BUILD)/exports.so.txt; \
	nm -g --defined-only $(BUILD)/libexipc.a | awk 'NF == 3 {print $$3}' | sort -u > $(BUILD)/exports.a.txt; \
	fail=0; for lib in so a; do f=$(BUILD)/exports.$$lib.txt; \
	    bad=$$(grep -v '^exipc_' $$f); \
	    missing=$$(comm -13 $$f $(BUILD)/api.txt); \
	    extra=$$(comm -23 $$f $(BUILD)/api.txt | grep '^exipc_'); \
	    echo "exports: libexipc.$$lib: $$(wc -l < $$f) global symbols, $$(wc -l < $(BUILD)/api.txt) functions in exipc.h"; \
	    if [ -n "$$bad" ]; then echo "exports: libexipc.$$lib: not exipc_*:" $$bad; fail=1; fi; \
	    if [ -n "$$missing" ]; then echo "exports: libexipc.$$lib: in exipc.h but not global:" $$missing; fail=1; fi; \
	    if [ -n "$$extra" ]; then echo "exports: libexipc.$$lib: global but not in exipc.h:" $$extra; fail=1; fi; \
	done; exit $$fail

# ---- install ------------------------------------------------------------------
INSTDIR = $(DESTDIR)$(abspath $(PREFIX))

install: lib ## headers, libraries, pkg-config file, and bin/exipc, bin/exipc-bridge into PREFIX (default /usr/local) [DESTDIR=...]
	install -d $(INSTDIR)/include $(INSTDIR)/lib/pkgconfig
	install -m 644 native/exipc.h $(INSTDIR)/include/exipc.h
	install -m 644 $(BUILD)/libexipc.a $(INSTDIR)/lib/libexipc.a
	install -m 755 $(BUILD)/libexipc.so $(INSTDIR)/lib/libexipc.so.$(VERSION)
	ln -sf libexipc.so.$(VERSION) $(INSTDIR)/lib/libexipc.so.$(SOVERSION)
	ln -sf libexipc.so.$(SOVERSION) $(INSTDIR)/lib/libexipc.so
	install -m 644 $(BUILD)/exipc.pc $(INSTDIR)/lib/pkgconfig/exipc.pc

uninstall: ## remove what install put in PREFIX
	rm -f $(INSTDIR)/include/exipc.h $(INSTDIR)/lib/libexipc.a $(INSTDIR)/lib/libexipc.so \
	      $(INSTDIR)/lib/libexipc.so.$(SOVERSION) $(INSTDIR)/lib/libexipc.so.$(VERSION) \
	      $(INSTDIR)/lib/pkgconfig/exipc.pc

# ---- tests --------------------------------------------------------------------
RUN := native/test/run_tests.sh
# Steps of `make test`, in order.
TEST_STEPS := test-check test-c test-asan test-tsan test-stream test-stream-asan test-install test-go test-race \
              test-hostile test-conn

build-tests: $(call BIN_norm,$(UNIT_TESTS) $(XPROC_TESTS)) $(PEER) ## build every C test program and the stream peer, run nothing

# (0) source checks: every native/test/check_*.sh (e.g. ordering labels in pairs)
CHECK_SCRIPTS := $(wildcard native/test/check_*.sh)
test-check: ## source checks: ordering labels, file layers, error texts, and that each checker can fail
	@$(RUN) check $(CHECK_SCRIPTS)

# (a) every C test program, normal build (-O2)
test-c: $(call BIN_norm,$(UNIT_TESTS)) ## every C test program, normal build (-O2, with test hooks)
	@$(RUN) c $^

# (b) the same under ASan + UBSan (-O1)
test-asan: $(call BIN_asan,$(UNIT_TESTS)) ## every C test program under ASan + UBSan
	@$(RUN) asan $^

# (c) the threaded tests under TSan
test-tsan: $(call BIN_tsan,$(TSAN_TESTS)) ## the threaded C tests under TSan
	@if [ -z "$^" ]; then echo "tsan: no threaded test (name one native/test/test_*thread*.c or set TSAN_TESTS)"; fi
	@$(RUN) tsan $^

# (d) the C<->C cross-process stream, normal and under ASan
test-stream: $(call BIN_norm,$(XPROC_TESTS)) $(PEER) ## the C<->C cross-process stream (1,001,000 checked messages)
	@TEST_TIMEOUT=330 EXIPC_C_PEER=$(abspath $(PEER)) $(RUN) stream $(call BIN_norm,$(XPROC_TESTS))

test-stream-asan: $(call BIN_asan,$(XPROC_TESTS)) $(PEER_ASAN) ## the same under ASan + UBSan
	@TEST_TIMEOUT=330 EXIPC_C_PEER=$(abspath $(PEER_ASAN)) $(RUN) stream-asan $(call BIN_asan,$(XPROC_TESTS))

# (e) the library as a C host sees it: exports, install, pkg-config (shared and static)
HOSTCHK := $(BUILD)/hostcheck
test-install: ## install into build/prefix, build the C host with pkg-config (shared, static), run it; the installed exipc-bridge runs
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
	@if command -v $(GO) >/dev/null 2>&1; then \
	    test -x $(BUILD)/prefix/bin/exipc-bridge || { echo "install: no bin/exipc-bridge"; exit 1; }; \
	    $(BUILD)/prefix/bin/exipc-bridge -h 2>&1 | grep -q '^usage: exipc-bridge' \
	        || { echo "install: bin/exipc-bridge -h does not print its usage"; exit 1; }; \
	    echo "installed: $(BUILD)/prefix/bin/exipc-bridge"; \
	fi
	@fail=0; \
	native/test/host_example_run.sh $(HOSTCHK)/host_shared host-shared || fail=1; \
	native/test/host_example_run.sh $(HOSTCHK)/host_static host-static || fail=1; \
	exit $$fail

# (f) go vet and go test, reusing the C peer
# The Go tests build the core with its test hooks (build tag exipc_testing,
# which defines EXIPC_TESTING for cgo); go vet checks both variants.
GO_TEST_FLAGS ?= -timeout 10m
GO_TAGS       := -tags exipc_testing

test-go: $(PEER) ## go vet (product and test builds) and go test
	@set -ex; $(GO) vet ./...; $(GO) vet $(GO_TAGS) ./...; \
	EXIPC_C_PEER=$(abspath $(PEER)) $(GO) test $(GO_TAGS) -count=1 $(GO_TEST_FLAGS) ./...

# (g) the race detector, short mode
test-race: $(PEER) ## go test -race -short
	@set -ex; EXIPC_C_PEER=$(abspath $(PEER)) $(GO) test $(GO_TAGS) -race -count=1 -short $(GO_TEST_FLAGS) ./...

# (h) the modules of their own beside the library (they need x/net or gRPC):
# package conn under golang.org/x/net/nettest, in one process and across two
# (conn/conntest); the gRPC example's two-process calls (examples/grpc).
CONN_MODULES ?= $(wildcard conn/conntest examples/grpc)
.PHONY: test-conn
test-conn: ## net.Conn conformance (nettest, in one process and across two) and the gRPC example, also under -race
	@set -e; for m in $(CONN_MODULES); do \
	    echo "== $$m"; (cd $$m && set -x && $(GO) vet ./... && $(GO) test -count=1 $(GO_TEST_FLAGS) ./... \
	        && $(GO) test -race -count=1 -short $(GO_TEST_FLAGS) ./...); \
	done

# Every step, in order; keeps going after a failure and exits non-zero if any failed.
test: ## the whole suite, every test-* step in order (the README's test command)
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

# ---- hostile peers: corruption torture and fuzzing (docs/safety.md, "Safety") -----------
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
# make torture: the long torture runs, one after another: the scribbler for
# TORTURE_TIME seconds, then the kill torture (TORTURE_KILLS kills).
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
FUZZ_CFLAGS       := $(BASE_CFLAGS) $(TEST_DEFS) -O1 -g -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
                     -fno-sanitize-recover=all
# Names of the files fuzzing and torture make in /dev/shm: PREFIX-PID-N.
HOSTILE_SHM       := fz lf torture

.PHONY: test-hostile fuzz fuzz-go fuzz-c fuzz-clang torture torture-scribble clean-hostile-shm

$(BUILD)/asan/fuzz/fuzz_%_replay: native/fuzz/fuzz_%.c native/fuzz/driver.c $(OBJ_asan) $(BUILD)/asan/obj/.flags
	@mkdir -p $(@D)
	$(CC) $(FLAGS_asan) -MMD -MP -MF $@.d -o $@ $< native/fuzz/driver.c $(OBJ_asan) $(LDLIBS)
-include $(wildcard $(BUILD)/asan/fuzz/*.d)

test-hostile: $(TORTURE_BIN) $(TORTURE_BIN_ASAN) $(FUZZ_REPLAY) ## corruption scribbler (TORTURE_TEST_TIME s) and fuzz corpus replays
	@EXIPC_TORTURE_SECONDS=$(TORTURE_TEST_TIME) EXIPC_FUZZ_CORPUS=native/fuzz/corpus \
	    EXIPC_FUZZ_RUNS=$(FUZZ_REPLAY_RUNS) TEST_TIMEOUT=$$(( $(TORTURE_TEST_TIME) + 120 )) \
	    $(RUN) hostile $(TORTURE_BIN) $(TORTURE_BIN_ASAN) $(FUZZ_REPLAY)

fuzz: fuzz-go fuzz-c ## Go fuzz targets (FUZZTIME each), then libFuzzer harnesses (CFUZZTIME s each)

fuzz-go: ## Go fuzz targets only
	@fail=0; for t in $(GO_FUZZ_TARGETS); do \
	    echo "== go fuzz $$t ($(FUZZTIME))"; \
	    $(GO) test $(GO_TAGS) -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) . || fail=1; \
	done; $(MAKE) --no-print-directory clean-hostile-shm; exit $$fail

# libFuzzer comes with clang; install it from Debian's packages when root.
fuzz-clang: ## check for (and, as root, install) clang-14 with libFuzzer
	@ok() { echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' | \
	        $(CLANG_FUZZ) -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; }; \
	if ok; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "fuzz: installing clang-14 and libclang-rt-14-dev (libFuzzer)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null; \
	fi; \
	ok || { echo "fuzz: SKIPPED the libFuzzer harnesses: $(CLANG_FUZZ) with -fsanitize=fuzzer is not available (apt-get install clang-14 libclang-rt-14-dev, as root)"; exit 2; }

fuzz-c: ## libFuzzer harnesses only
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

torture: torture-scribble torture-kill torture-kill-go ## the long torture runs: scribbler (TORTURE_TIME s), C kill torture (TORTURE_KILLS), Go kill torture (TORTURE_GO_KILLS)

torture-scribble: $(TORTURE_BIN) ## the corruption scribbler for TORTURE_TIME seconds
	@$(TORTURE_BIN) -t $(TORTURE_TIME); rc=$$?; $(MAKE) --no-print-directory clean-hostile-shm; exit $$rc

# ---- crash cleanup: the kill torture and the detection benchmark (docs/safety.md, "Crash cleanup")
# `make test` runs native/test/test_kill_torture with 200 kills (in test-c and
# test-asan); torture-kill runs TORTURE_KILLS of them. bench-detect measures
# how soon a blocked receiver learns of its peer's SIGKILL (DETECT_SAMPLES).
TORTURE_KILLS  ?= 10000
DETECT_SAMPLES ?= 200
.PHONY: torture-kill bench-detect

torture-kill: $(call BIN_norm,native/test/test_kill_torture.c) ## the kill torture, TORTURE_KILLS random SIGKILLs
	@EXIPC_TORTURE_KILLS=$(TORTURE_KILLS) EXIPC_TORTURE_TIMEOUT=$$(( $(TORTURE_KILLS) / 10 + 300 )) $<

# The Go kill torture: random SIGKILLs of Go and C clients and servers under
# a Go process (TestKillTorture; make test runs 40 of them).
TORTURE_GO_KILLS ?= 1000
.PHONY: torture-kill-go
torture-kill-go: $(PEER) ## TestKillTorture with TORTURE_GO_KILLS kills of Go and C clients and servers
	@EXIPC_KILL_ROUNDS=$(TORTURE_GO_KILLS) EXIPC_C_PEER=$(abspath $(PEER)) $(GO) test $(GO_TAGS) -count=1 -timeout 60m \
	    -run '^TestKillTorture$$' -v . | grep -E 'kills:|^(ok|FAIL|---)'

bench-detect: $(BUILD)/test/bench_detect ## how soon a blocked receiver learns of its peer's SIGKILL (DETECT_SAMPLES)
	@$< $(DETECT_SAMPLES)

# Files a killed fuzzer or torture left in /dev/shm: only ours (by prefix),
# only of processes that are gone.
clean-hostile-shm: ## remove /dev/shm files that killed fuzzers or tortures left (their pid is gone)
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

bench: $(BENCH_DIR)/cbench $(BENCH_DIR)/heapmix $(BENCH_DIR)/exipcbench $(BENCH_DIR)/bridgebench $(BRIDGE_BIN) ## the benchmark suite beside references and peers [BENCH=regexp] [BENCH_FLAGS=...]
	@$(BENCH_DIR)/exipcbench -cpeer $(BENCH_DIR)/cbench -mailstore $(MAIL_DIR) -out $(BENCH_OUT) $(if $(BENCH),-filter '$(value BENCH)') $(BENCH_FLAGS)
	@$(BENCH_DIR)/bridgebench -bridge $(BRIDGE_BIN) -out $(BENCH_OUT) $(if $(BENCH),-filter '$(value BENCH)') $(BRIDGE_BENCH_FLAGS)
	@# latest.md is generated from latest.json by one renderer, bridge rows and goals included.
	@$(BENCH_DIR)/exipcbench -render $(BENCH_OUT)/latest.json

bench-render: $(BENCH_DIR)/exipcbench ## rewrite bench/results/latest.md from latest.json
	@$(BENCH_DIR)/exipcbench -render bench/results/latest.json

bench-list: $(BENCH_DIR)/exipcbench ## list the benchmark workloads [BENCH=regexp]
	@$(BENCH_DIR)/exipcbench -list $(if $(BENCH),-filter '$(value BENCH)')

$(BENCH_DIR)/cbench: bench/c/cbench.c $(OBJ_norm) $(BUILD)/obj/.flags
	@mkdir -p $(@D)
	$(CC) $(FLAGS_norm) -MMD -MP -MF $@.d -o $@ $< $(OBJ_norm) $(LDLIBS)
-include $(wildcard $(BENCH_DIR)/*.d)

# The C receivers of the detect/exipc-c cells (native/test/bench_detect.c).
bench: $(BENCH_DIR)/bench_detect
$(BENCH_DIR)/bench_detect: native/test/bench_detect.c $(OBJ_test) $(BUILD)/tobj/.flags
	@mkdir -p $(@D)
	$(CC) $(FLAGS_test) -o $@ $< $(OBJ_test) $(LDLIBS)

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
bench-wake: $(BUILD)/test/bench_wake ## wake-up of a parked receiver against a plain futex wake
	@$(BUILD)/test/bench_wake

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
demo: $(MAIL_DIR)/store $(MAIL_DIR)/pop3d ## the mail store (C, SQLite) and its POP3 front end on 127.0.0.1:DEMO_PORT
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

# make bench runs the POP3 cells too (pop3/*: pop3bench, one run per repetition).
bench: $(MAIL_DIR)/store $(MAIL_DIR)/pop3d $(MAIL_DIR)/pop3bench

bench-pop3: $(MAIL_DIR)/store $(MAIL_DIR)/pop3d $(MAIL_DIR)/pop3bench ## POP3 RETR through the example: store over exipc vs over a Unix socket
	@$(MAIL_DIR)/pop3bench -store $(MAIL_DIR)/store -pop3d $(MAIL_DIR)/pop3d $(POP3_BENCH_FLAGS)

clean: ## remove build/
# ---- the bridge (bridge/: its own module; exipc-bridge over NATS, docs/bridge.md) ----
# `make` builds build/exipc-bridge when Go is there; `make test` runs its tests
# (a real nats-server, two domains, C and Go peers, POP3 across the bridge);
# `make bench` adds its rows (bridge-rpc, bridge-stream) to the report.
BRIDGE_BIN         := $(BUILD)/exipc-bridge
BRIDGE_BENCH_FLAGS ?=
TEST_STEPS += test-bridge
.PHONY: bridge test-bridge
ifneq ($(shell command -v $(GO) 2>/dev/null),)
lib: $(BRIDGE_BIN)
endif
bridge: $(BRIDGE_BIN) ## build/exipc-bridge: services across hosts over NATS (also part of make; docs/bridge.md)

$(BRIDGE_BIN): FORCE
	@mkdir -p $(@D)
	cd bridge && $(GO) build -buildvcs=false -o $(abspath $@) .

$(BENCH_DIR)/bridgebench: FORCE
	@mkdir -p $(@D)
	cd bridge && $(GO) build -buildvcs=false -o $(abspath $@) ./bridgebench

# make install puts build/exipc-bridge in PREFIX/bin beside exipc (when Go is
# there: the bridge is a Go program of its own module, bridge/).
.PHONY: install-bridge uninstall-bridge
ifneq ($(shell command -v $(GO) 2>/dev/null),)
install: install-bridge
endif
uninstall: uninstall-bridge
install-bridge: $(BRIDGE_BIN) ## install build/exipc-bridge into PREFIX/bin (part of install)
	install -d $(INSTDIR)/bin
	install -m 755 $(BRIDGE_BIN) $(INSTDIR)/bin/exipc-bridge

uninstall-bridge: ## remove PREFIX/bin/exipc-bridge
	rm -f $(INSTDIR)/bin/exipc-bridge

test-bridge: ## the bridge's tests: a real nats-server, two domains, C and Go peers, POP3 across it
	@set -ex; cd bridge; test -z "$$(gofmt -l .)"; $(GO) vet ./...; $(GO) test -count=1 $(GO_TEST_FLAGS) ./...

clean:
	rm -rf $(BUILD)

FORCE:

# ---- the exipc command (cmd/exipc): built by `make`, installed in PREFIX/bin ------
# Its tests (real C and Go hosts, a killed host, scribbled and garbage files,
# another user's domain, `top` under tmux) are Go tests of the module, run by
# test-go and test-race; test-cli adds the metrics check with Prometheus's
# parsers (cmd/exipc/metricstest, a module of its own) against build/exipc.
CLI := $(BUILD)/exipc
.PHONY: cli install-cli uninstall-cli test-cli
lib: $(CLI)
cli: $(CLI) ## build/exipc, the operator's command line (also part of make)

$(CLI): FORCE
	@mkdir -p $(@D)
	$(GO) build -buildvcs=false -o $@ ./cmd/exipc

install: install-cli
install-cli: $(CLI) ## install build/exipc into PREFIX/bin (part of install)
	install -d $(INSTDIR)/bin
	install -m 755 $(CLI) $(INSTDIR)/bin/exipc

uninstall: uninstall-cli
uninstall-cli: ## remove PREFIX/bin/exipc
	rm -f $(INSTDIR)/bin/exipc

TEST_STEPS += test-cli
test-cli: $(CLI) ## exipc metrics read by Prometheus's parsers (cmd/exipc/metricstest)
	@set -ex; cd cmd/exipc/metricstest && EXIPC_CLI=$(abspath $(CLI)) $(GO) test -mod=mod -count=1 $(GO_TEST_FLAGS) .
