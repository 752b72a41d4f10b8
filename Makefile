# The two commands the README promises, and their helpers. Everything builds out of tree:
#   build/       release-ish build (RelWithDebInfo): build/parleyd, build/parley
#   build-asan/  the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   build-fuzz/  libFuzzer targets (clang), run briefly as tests
JOBS ?= $(shell nproc)
LISTEN ?= 127.0.0.1:8080
DATA ?= var
CTEST_FLAGS ?= --output-on-failure --timeout 900

.PHONY: all deps build build-asan build-fuzz run test test-release test-asan test-fuzz bench bench-quick clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j $(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPARLEY_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)

build-fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DPARLEY_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

# Build and start the server on its SQLite default, data in ./var. Ctrl-C stops it cleanly.
run: build
	@mkdir -p $(DATA)
	exec build/parleyd --listen $(LISTEN) --data $(DATA)

test-release: build
	cd build && ctest $(CTEST_FLAGS) -j $(JOBS)

test-asan: build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest $(CTEST_FLAGS) -j $(JOBS)

test-fuzz: build-fuzz
	cd build-fuzz && ctest $(CTEST_FLAGS) -j $(JOBS)

# Every test: unit + integration on the release build, the same under sanitizers, then
# the fuzz targets briefly.
test: test-release test-asan test-fuzz
	@echo "make test: all suites passed"

# Benchmarks (bench/RESULTS.md): parleyd vs Mosquitto QoS 1 vs a bare relay, and the crypto
# core. Installs Mosquitto, builds -O2 into build-bench/, starts and stops every server
# itself, writes bench/results/latest.json. bench-quick: < 60 s; bench: < 15 min.
bench:
	@scripts/deps.sh --bench
	@scripts/bench.sh full

bench-quick:
	@scripts/deps.sh --bench
	@scripts/bench.sh quick

clean:
	rm -rf build build-asan build-fuzz
