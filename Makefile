# exipc — build, test, bench, install (GNU make).
#
#   make            same as `make lib`
#   make lib        build/libexipc.a, build/libexipc.so, build/exipc.pc
#   make install    PREFIX=/usr/local (default) [DESTDIR=...]
#   make test       the whole suite (source checks, C, ASan+UBSan, TSan, cross-process
#                   stream, install + pkg-config host, go vet, go test, go test -race)
#   make bench      build and run native/test/bench_pingpong
#   make clean
#   make help       every target
#
# Parts of the suite: test-check test-c test-asan test-tsan test-stream test-stream-asan
# test-install test-go test-race. V=1 shows every C test's full output.

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
        check-exports build-tests

all: lib

help:
	@sed -n '3,14s/^# \{0,1\}//p' Makefile

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
TEST_STEPS := test-check test-c test-asan test-tsan test-stream test-stream-asan test-install test-go test-race

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

# ---- bench ------------------------------------------------------------------------
BENCH_FLAGS ?=
bench: $(BUILD)/bench_pingpong
	@$(BUILD)/bench_pingpong $(BENCH_FLAGS)

$(BUILD)/bench_pingpong: $(BUILD)/test/bench_pingpong
	cp $< $@

# The README's C host, built against the tree (test-install builds it against an install).
$(BUILD)/host_example: $(BUILD)/test/host_example
	cp $< $@

clean:
	rm -rf $(BUILD)

FORCE:
