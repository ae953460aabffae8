# kcmdr — build and test. `make` builds bin/kcmdr; see README.md for the test targets.
CC      ?= gcc
PKGS    := libcurl openssl jansson yaml-0.1 libarchive zlib libmicrohttpd
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
CFLAGS  ?= -O2 -g
# CFLAGS (optimisation, sanitizers) may be set on the command line; these are always added:
ALL_CFLAGS = $(CFLAGS) -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -MMD -MP \
           -DKCMDR_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -pthread -lm
TEST_LDLIBS := $(shell pkg-config --libs cmocka)

# The checkout's path stays out of the objects (DWARF's comp_dir, __FILE__): the linker's build
# ID hashes the debug sections too, so without this the binary, and the image `make image` makes
# of it, differed between two checkouts of one commit in different directories.
ALL_CFLAGS += -ffile-prefix-map=$(CURDIR)=.

# BUILD selects an output tree, so sanitizer builds never mix with normal objects.
BUILD   ?= build
BIN     ?= bin/kcmdr
SRCS    := $(filter-out src/main.c,$(wildcard src/*.c))
OBJS    := $(SRCS:src/%.c=$(BUILD)/%.o) $(BUILD)/manifests.o
MANIFESTS := deploy/crds/managementbackups.k0rdent.mirantis.com.yaml deploy/crds/velero.io.yaml deploy/kcmdr.yaml
TSRCS   := $(wildcard test/unit/*.c)
TOBJS   := $(TSRCS:test/unit/%.c=$(BUILD)/test/%.o)
UNIT    := $(BUILD)/unit-tests
KUBE_E2E := $(BUILD)/kube-e2e
OBJSTORE_E2E := $(BUILD)/objstore-e2e
ENGINE_E2E := $(BUILD)/engine-e2e

.PHONY: all image install test test-unit test-e2e test-diff test-build asan asan-unit asan-diff asan-e2e asan-build valgrind fuzz fuzz-build bench bench-backup bench-restore clean demo deps chaos

all: $(BIN)

$(BIN): $(BUILD)/main.o $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# `make install [PREFIX=/usr/local] [DESTDIR=]`: the binary, kubectl-kcmdr (the kubectl plugin:
# `kubectl kcmdr ...`) and kubectl_complete-kcmdr (its completion in kubectl 1.26+) as links to
# it, and the bash, zsh and fish completion scripts it prints.
PREFIX  ?= /usr/local
install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/kcmdr
	ln -sf kcmdr $(DESTDIR)$(PREFIX)/bin/kubectl-kcmdr
	ln -sf kcmdr $(DESTDIR)$(PREFIX)/bin/kubectl_complete-kcmdr
	$(BIN) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/kcmdr
	ln -sf kcmdr $(DESTDIR)$(PREFIX)/share/bash-completion/completions/kubectl-kcmdr
	$(BIN) completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_kcmdr
	$(BIN) completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/kcmdr.fish

# the manifests `kcmdr install` prints, compiled in
$(BUILD)/manifests.c: $(MANIFESTS) scripts/embed
	@mkdir -p $(dir $@)
	scripts/embed manifest_crd_mb=deploy/crds/managementbackups.k0rdent.mirantis.com.yaml \
	  manifest_crd_velero=deploy/crds/velero.io.yaml manifest_controller=deploy/kcmdr.yaml > $@

$(BUILD)/manifests.o: $(BUILD)/manifests.c
	$(CC) $(CFLAGS) -ffile-prefix-map=$(CURDIR)=. -c -o $@ $<

$(BUILD)/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/test/%.o: test/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc -c -o $@ $<

$(UNIT): $(TOBJS) $(OBJS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(TEST_LDLIBS)

$(KUBE_E2E): test/e2e/kube_e2e.c $(OBJS)
	$(CC) $(ALL_CFLAGS) -Isrc $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

$(OBJSTORE_E2E): test/e2e/objstore_e2e.c $(OBJS)
	$(CC) $(ALL_CFLAGS) -Isrc $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

$(ENGINE_E2E): test/e2e/engine_e2e.c $(OBJS)
	$(CC) $(ALL_CFLAGS) -Isrc $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

$(BUILD)/bench-backup: bench/bench_backup.c bench/bench_common.c $(OBJS)
	$(CC) $(ALL_CFLAGS) -Isrc $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

$(BUILD)/bench-restore: bench/bench_restore.c bench/bench_common.c $(OBJS)
	$(CC) $(ALL_CFLAGS) -Isrc $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

$(BUILD)/bench-controller: bench/bench_controller.c $(OBJS)
	$(CC) $(ALL_CFLAGS) -Isrc $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

# Benchmarks print ratios against a baseline measured in the same run (see bench/).
bench: all $(BUILD)/bench-controller
	bench/controller

# The backup benchmark: N objects (default 10000; N=100000 for the big run), LIST vs backup.
N ?= 10000
bench-backup: all $(BUILD)/bench-backup
	bench/backup $(N)

# The restore benchmark: N objects (default 10000), the raw client creating them vs a restore.
bench-restore: all $(BUILD)/bench-restore
	bench/restore $(N)

deps:
	scripts/deps

# The container image (scripts/image): an OCI archive of bin/kcmdr FROM scratch, always from the
# normal build (the ASan targets' BIN is another binary; their e2e runs use this image too).
IMAGE     := build/kcmdr-image.oci.tar
IMAGE_BIN := bin/kcmdr
image: $(IMAGE)
$(IMAGE): $(IMAGE_BIN) scripts/image build/image-revision
	scripts/image --bin $(IMAGE_BIN) --out $@
# the commit is in the image (its time and labels): a new commit makes it out of date
build/image-revision: FORCE
	@mkdir -p $(dir $@)
	@echo '$(shell git rev-parse HEAD 2>/dev/null)' | cmp -s - $@ || echo '$(shell git rev-parse HEAD 2>/dev/null)' > $@
.PHONY: FORCE

test-unit: $(UNIT)
	KCMDR_TEST_DATA=$(CURDIR)/test/data $(UNIT)

test-e2e: $(BIN) $(KUBE_E2E) $(OBJSTORE_E2E) $(ENGINE_E2E) $(BUILD)/bench-backup $(IMAGE)
	KCMDR_IMAGE=$(CURDIR)/$(IMAGE) KCMDR_IMAGE_BIN=$(CURDIR)/$(IMAGE_BIN) KCMDR_BIN=$(CURDIR)/$(BIN) KUBE_E2E=$(CURDIR)/$(KUBE_E2E) OBJSTORE_E2E=$(CURDIR)/$(OBJSTORE_E2E) ENGINE_E2E=$(CURDIR)/$(ENGINE_E2E) BENCH_BACKUP=$(CURDIR)/$(BUILD)/bench-backup test/e2e/run

# Differential tests against the Go libraries the Go side uses (test/diff/t_*.sh).
test-diff: $(BIN) $(UNIT)
	BUILD=$(CURDIR)/$(BUILD) KCMDR_BIN=$(CURDIR)/$(BIN) UNIT=$(CURDIR)/$(UNIT) test/diff/run

test: test-unit test-diff test-e2e

# everything the tests run, built (scripts/test builds before it times the suites)
test-build: $(BIN) $(UNIT) $(KUBE_E2E) $(OBJSTORE_E2E) $(ENGINE_E2E) $(BUILD)/bench-backup $(IMAGE)

# All tests again, built with AddressSanitizer and UndefinedBehaviorSanitizer; asan-unit,
# asan-diff, asan-e2e and asan-build: one suite of them (scripts/test runs diff and e2e only here).
ASAN_MAKE = $(MAKE) BUILD=build/asan BIN=build/asan/kcmdr \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined"
asan: $(IMAGE)
	$(ASAN_MAKE) test
asan-unit:
	$(ASAN_MAKE) test-unit
asan-diff:
	$(ASAN_MAKE) test-diff
asan-e2e: $(IMAGE)
	$(ASAN_MAKE) test-e2e
asan-build: $(IMAGE)
	$(ASAN_MAKE) test-build

# Unit tests under valgrind: any leak or memory error fails.
valgrind: $(UNIT)
	KCMDR_TEST_DATA=$(CURDIR)/test/data valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
	  --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 $(UNIT)

# libFuzzer targets (clang-14): each runs FUZZ_SECONDS (default 60) from its seed corpus.
FUZZ_SECONDS ?= 60
FUZZERS := kubeconfig watch cron jsonscan sigv4 tarpath archive s3list awscreds backupmeta jsonpatch checksums \
  cryptstream cryptsig cryptkeys
fuzz:
	$(MAKE) BUILD=build/fuzz CC=clang-14 \
	  CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" fuzz-build
	@for f in $(FUZZERS); do \
	  mkdir -p build/fuzz/corpus-$$f && cp -n test/fuzz/corpus/$$f/* build/fuzz/corpus-$$f/ 2>/dev/null; \
	  echo "fuzz: $$f for $(FUZZ_SECONDS)s"; \
	  build/fuzz/fuzz-$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
	    build/fuzz/corpus-$$f test/fuzz/corpus/$$f 2>build/fuzz/fuzz-$$f.log || { tail -40 build/fuzz/fuzz-$$f.log; exit 1; }; \
	  tail -1 build/fuzz/fuzz-$$f.log; \
	done

fuzz-build: $(FUZZERS:%=$(BUILD)/fuzz-%)

$(BUILD)/fuzz-%: test/fuzz/fuzz_%.c $(OBJS)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -Isrc -o $@ $(filter %.c %.o,$^) $(LDLIBS)

demo: $(BIN)
	scripts/demo

# Fault injection (scripts/chaos): ROUNDS rounds of a backup or restore with one fault each, two
# controller replicas; CHAOS_SEED=N replays a run. CI (scripts/test) runs one round (CHAOS_ROUNDS); the issue-13 bar is 50 rounds, 0 violations.
ROUNDS ?= 50
chaos: $(BIN)
	KCMDR_BIN=$(CURDIR)/$(BIN) scripts/chaos $(ROUNDS)

clean:
	rm -rf build bin

-include $(OBJS:.o=.d) $(TOBJS:.o=.d) $(BUILD)/main.d $(KUBE_E2E).d $(OBJSTORE_E2E).d $(ENGINE_E2E).d $(BUILD)/bench-backup.d $(BUILD)/bench-restore.d
