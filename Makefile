# proxy-wasm-sidecar. `make test` is what CI runs (via .ci/run); every target builds what it needs.
NODE ?= node
TSC := node_modules/.bin/tsc
TEST_CONCURRENCY ?= 2
# Per test and per test file (the runner applies it to a file as a whole too: the oracle's loads file runs every plugin).
TEST_TIMEOUT_MS ?= 300000

.PHONY: all install build plugins test fuzz soak bench conformance run example run-xds check clean

all: build plugins

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.package-lock.json

# The prebuilt Envoy proto registry (dist/src/xds/envoy-protos.bundle.json) is written from the compiled code.
build: install
	$(TSC) -p tsconfig.json
	$(NODE) scripts/build-proto-bundle.mjs

plugins: install
	$(NODE) scripts/build-plugins.mjs

# Every plugin is instrumented once (the watchdog rewrite, seconds for a Go module) into the disk cache, and the
# go-control-plane test server (test/xds-go) is built before the suite: a cold build takes minutes, longer
# than one test file may run.
test: build plugins
	$(NODE) scripts/warm-instrument-cache.mjs
	$(NODE) -e "require('./dist/test/gocp/go-control-plane.js').buildGoControlPlane().then((p) => console.log('go-control-plane test server: ' + p))"
	$(NODE) --test --test-concurrency=$(TEST_CONCURRENCY) --test-timeout=$(TEST_TIMEOUT_MS) dist/test/

# The fuzz targets alone (they also run in `make test`, bounded); `node scripts/fuzz.mjs --target <t> --time 600` runs one longer.
fuzz: build plugins
	$(NODE) --test --test-concurrency=1 --test-timeout=300000 dist/test/fuzz/

# 10 minutes of plugin Redis traffic with endpoint flips, control-plane restarts and Redis kills (MINUTES=3 for less).
MINUTES ?= 10
soak: build plugins
	$(NODE) dist/bench/soak/run.js --minutes $(MINUTES)

bench: build plugins
	$(NODE) --expose-gc dist/bench/run.js

# docs/conformance.md: the suite run with host-call recording, host function x plugin SDK (scripts/gen-conformance.mjs).
# TESTS=<dist/test files> runs a subset instead of the whole suite (written to build/conformance-subset.md).
conformance: build plugins
	$(NODE) scripts/gen-conformance.mjs --concurrency=$(TEST_CONCURRENCY) $(TESTS)

# The bundled example: the example plugin, a static bootstrap, redis-server on a free port, an upstream.
# Only the plugin it runs is built, so the example needs no Go toolchain.
EXAMPLE_PLUGINS := redis-gate

run example: build
	$(NODE) scripts/build-plugins.mjs $(EXAMPLE_PLUGINS)
	$(NODE) dist/src/example/run-example.js

# The same plugin with its Redis cluster from the test control plane over ADS; Enter moves the endpoints.
run-xds: build
	$(NODE) scripts/build-plugins.mjs $(EXAMPLE_PLUGINS)
	$(NODE) dist/src/example/run-xds-example.js

check: test

clean:
	rm -rf dist build
