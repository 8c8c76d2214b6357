# hark: build, test and benchmark.
#
#   make            build build/hark
#   make run        install what is missing, build, run
#   make test       every test; ends with "N passed, N failed"
#   make test SAN=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      figures (never fails)

CC      ?= cc
SAN     ?= 0
PREFIX  ?= /usr/local

ifeq ($(SAN),1)
BUILD   := build/san
OPT     := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
else
BUILD   := build
OPT     := -O2 -g
LDSAN   :=
endif

# Under the sanitizers the vector kernels' loads are not checked: they are
# most of the engine's time, and checking each one makes a transcription
# about 20 times slower. Their stores stay checked, and test_kernels
# compares every kernel with the scalar one on buffers of exact size.
ifeq ($(SAN),1)
$(BUILD)/src/engine/kernels.o $(BUILD)/src/engine/attention.o $(BUILD)/src/engine/quant.o: \
    OPT := -O2 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
           --param asan-instrument-reads=0
endif

CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter -pthread $(OPT) -MMD -MP
CPPFLAGS += -Iinclude -Isrc/engine -Isrc/media -Isrc/store -Isrc/queue -Isrc/http -I/usr/include/postgresql
LDLIBS  += -lm -ldl -pthread
# The service's libraries (Debian packages; see tools/install-deps.sh).
SERVICE_LIBS := -lcurl -lmicrohttpd -lavformat -lavcodec -lswresample -lavutil -lsqlite3 -lpq -lcrypto -ljansson
LDFLAGS += $(LDSAN)

ENGINE_SRC := $(wildcard src/engine/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
SERVICE_SRC := $(wildcard src/media/*.c src/store/*.c src/queue/*.c src/http/*.c)
# The web page (web/*) is compiled in as a generated C file.
UI_FILES    := $(sort $(wildcard web/*))
UI_OBJ      := $(BUILD)/gen/ui_assets.o
SERVICE_OBJ := $(SERVICE_SRC:%.c=$(BUILD)/%.o) $(UI_OBJ)
CLI_SRC    := $(wildcard src/cli/*.c)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB        := $(BUILD)/libhark.a
SERVICE_LIB := $(BUILD)/libhark-service.a
BIN        := $(BUILD)/hark

TEST_HARNESS := $(BUILD)/tests/harness.o
UNIT_SRC  := $(wildcard tests/unit/*.c)
REF_SRC   := $(wildcard tests/ref/*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit_%)
REF_BIN   := $(REF_SRC:tests/ref/%.c=$(BUILD)/tests/ref_%)
FUZZ_SRC  := $(filter-out tests/fuzz/replay.c,$(wildcard tests/fuzz/*.c))
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/%)
TOOL_SRC  := $(wildcard tools/*.c)
TOOL_BIN  := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)
TEST_LIBS := -ljansson -lz
# The load generator of tests/api/test_load.sh and make bench.
LOAD_BIN  := $(BUILD)/tests/load
SEARCH_BENCH_BIN := $(BUILD)/tests/search_bench

.PHONY: all run test bench deps clean fuzz
all: $(BIN) $(TOOL_BIN)

# run, test and bench install what is missing before anything compiles,
# also under make -j.
ifneq ($(filter run test bench,$(MAKECMDGOALS)),)
DEPS_FIRST := | deps
endif

$(BUILD)/%.o: %.c $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/gen/ui_assets.c: $(UI_FILES) $(BUILD)/tools/embed
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $@ $(UI_FILES)

$(UI_OBJ): $(BUILD)/gen/ui_assets.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

$(SERVICE_LIB): $(SERVICE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(SERVICE_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(SERVICE_LIB) $(LIB) $(SERVICE_LIBS) $(LDLIBS)

$(BUILD)/tests/harness.o: tests/harness.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) -c $< -o $@

$(BUILD)/tests/unit_%: tests/unit/%.c $(TEST_HARNESS) $(SERVICE_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(LDFLAGS) -o $@ $< $(UNIT_EXTRA) $(TEST_HARNESS) $(SERVICE_LIB) $(LIB) $(TEST_LIBS) $(SERVICE_LIBS) $(LDLIBS)

# The out-of-memory test fails the engine's allocations on purpose.
$(BUILD)/tests/unit_test_nomem: UNIT_EXTRA := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=strdup

# The download test also links the command's downloader (src/cli/download.c).
$(BUILD)/tests/unit_test_download: UNIT_EXTRA := $(BUILD)/src/cli/download.o
$(BUILD)/tests/unit_test_download: $(BUILD)/src/cli/download.o

# The search index's benchmark (tests/bench/search.sh runs it).
$(SEARCH_BENCH_BIN): tests/bench/search.c $(SERVICE_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(SERVICE_LIB) $(LIB) $(SERVICE_LIBS) $(LDLIBS)

$(LOAD_BIN): tests/bench/load.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< -lcurl -ljansson $(LDLIBS)

$(BUILD)/tests/ref_%: tests/ref/%.c $(TEST_HARNESS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(LDFLAGS) -o $@ $< $(TEST_HARNESS) $(LIB) $(TEST_LIBS) $(LDLIBS)

# Fuzz targets: built here with a replay driver that runs every input in
# tests/fuzz/corpus/<target>/ (the seeds and every crasher ever found), linked
# as the unit tests are; `make fuzz` builds them with clang's libFuzzer for
# new fuzzing runs. FUZZ_SERVICE are the targets of the service's code.
FUZZ_SERVICE := job_options media multipart range router
$(BUILD)/tests/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(TEST_HARNESS) $(SERVICE_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(TEST_HARNESS) $(SERVICE_LIB) $(LIB) $(SERVICE_LIBS) $(LDLIBS)

# `make fuzz` compiles what the targets test with the fuzzer's
# instrumentation: the engine's parsers (build/fuzz/engine.a) for the
# engine's targets, the service's sources (build/fuzz/service.a) for the
# service's. Both take the rest of the engine, untested here, from the
# ordinary build: its numeric kernels are not parsers, and clang takes
# tens of minutes to instrument their unrolled vector code.
FUZZ_ENGINE := src/engine/model.c src/engine/tokenizer.c src/engine/wav.c src/engine/errors.c src/engine/lang.c \
               src/engine/vad.c
FUZZ_BASE   := -std=c11 -D_GNU_SOURCE -g -O1
FUZZ_SAN    := address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := $(FUZZ_BASE) -fsanitize=fuzzer,$(FUZZ_SAN)
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_BASE) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) $(CPPFLAGS) -MMD -MP -c $< -o $@
build/fuzz/engine.a: $(FUZZ_ENGINE:%.c=build/fuzz/obj/%.o)
	@rm -f $@
	ar rcs $@ $^
build/fuzz/service.a: $(SERVICE_SRC:%.c=build/fuzz/obj/%.o)
	@rm -f $@
	ar rcs $@ $^
$(FUZZ_SERVICE:%=build/fuzz/fuzz_%): build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/service.a $(LIB) $(UI_OBJ)
	clang $(FUZZ_CFLAGS) $(CPPFLAGS) -o $@ $< build/fuzz/service.a $(LIB) $(UI_OBJ) $(SERVICE_LIBS) -lm -ldl -pthread
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/engine.a $(LIB)
	clang $(FUZZ_CFLAGS) $(CPPFLAGS) -o $@ $< build/fuzz/engine.a $(LIB) -lm -ldl -pthread
fuzz: $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

$(BUILD)/tools/%: tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

deps:
	@tools/install-deps.sh

# Serves on 127.0.0.1:8080 with ./data and ./models (override with HARK_*
# variables, e.g. `make run HARK_PORT=9000`, or ARGS="--workers 2"); when
# ./models has no Whisper model it first downloads MODEL from Hugging Face,
# and the Silero VAD model (speech detection) when it has none.
MODEL ?= base.en
run: deps $(BIN)
	@mkdir -p models
	@ls models/*.bin 2>/dev/null | grep -qv '/ggml-silero-' || $(BIN) models download --models models $(MODEL) || \
	  echo "hark: serving without a model; put ggml model files into ./models"
	@ls models/ggml-silero-*.bin >/dev/null 2>&1 || $(BIN) models download --models models silero-v6.2.0 || \
	  echo "hark: serving without speech detection; see hark models download silero-v6.2.0"
	$(BIN) serve $(ARGS)

test: deps $(BIN) $(TOOL_BIN) $(UNIT_BIN) $(REF_BIN) $(FUZZ_BIN) $(LOAD_BIN) $(SEARCH_BENCH_BIN)
	@HARK_BIN=$(BIN) HARK_BUILD=$(BUILD) tests/run.sh $(UNIT_BIN) $(FUZZ_BIN) $(REF_BIN) $(wildcard tests/cli/test_*.sh) $(wildcard tests/store/test_*.sh) $(wildcard tests/api/test_*.sh) $(wildcard tests/ui/test_*.sh)

bench: deps $(BIN) $(TOOL_BIN) $(LOAD_BIN) $(SEARCH_BENCH_BIN)
	@HARK_BIN=$(BIN) HARK_BUILD=$(BUILD) HARK_SERVICE_LIBS="$(SERVICE_LIBS)" tests/bench/run.sh

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
