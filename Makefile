# vow's front door. `make run` tours the lesson; `make test` runs every test.
# Both install missing Debian packages first, then configure and build with CMake.

BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

# In CI every warning is an error.
ifeq ($(CI),true)
CMAKE_ARGS += -DVOW_WERROR=ON
endif

.PHONY: all run test deps configure build clean bench

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/vow-tour --svg $(BUILD)/timeline.svg

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) build-*

# Benchmarks (never part of `make test`): a Release build of its own in
# build-bench, wrk for the HTTP server workload (bench/deps.sh), then the
# suite: vow against Node.js and raw libuv, interleaved; table on stdout and
# in bench/results/. BENCH_ROUNDS=n sets the rounds (default 5);
# BENCH_ARGS="--quick" or "--only microtask,timers" narrow it. See BENCHMARKS.md.
bench: deps
	@sh bench/deps.sh build-bench
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DVOW_BUILD_TESTS=OFF \
	  -DVOW_BUILD_EXAMPLES=OFF -DVOW_BUILD_TOOLS=OFF $(CMAKE_ARGS)
	cmake --build build-bench -j $(JOBS) --target bench_suite
	build-bench/bench/bench_suite $(BENCH_ARGS)
