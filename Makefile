# lendgate — one task runner. `make help` lists the targets.
# The default target runs the whole loop: format, build, lint, test.

SHELL := /bin/bash
.DEFAULT_GOAL := all

PYTHON_BOOT ?= python3.11
VENV        := .venv
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip --disable-pip-version-check -q
TOOLS       := .tools
BUF_VERSION := 1.75.0
BUF         := $(TOOLS)/node_modules/.bin/buf
CARGO       := cargo
CARGO_DIR   := core_rs
RUST_SRC    := $(shell find core_rs -path core_rs/target -prune -o \( -name '*.rs' -o -name 'Cargo.*' \) -print)
PY_OWN      := python/lendgate servers tests bench scripts

.PHONY: all help setup build run test test-rust test-python lint fmt proto bench bench-quick bench-tools clean

all: fmt build lint test ## format, build, lint and test (the default)

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# --- set-up -----------------------------------------------------------------------

$(VENV)/.deps: pyproject.toml scripts/deps.py
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PY) scripts/deps.py dev train | xargs $(PIP) install
	@touch $@

$(VENV)/.built: $(VENV)/.deps $(RUST_SRC) pyproject.toml
	$(VENV)/bin/maturin develop --release -q
	@$(PY) -c 'import lendgate._core' || { echo "error: the Rust extension did not build"; exit 1; }
	@echo "$(CURDIR)" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/lendgate-servers.pth
	@touch $@

setup: $(VENV)/.built ## create .venv, install dependencies, build the Rust extension (release)

build: setup ## alias of setup

var:
	@mkdir -p var

# --- run --------------------------------------------------------------------------

run: setup var ## set up everything and start `lendgate serve` on 127.0.0.1:50051 (foreground)
	$(VENV)/bin/lendgate serve

# --- test -------------------------------------------------------------------------

test: setup test-rust test-python ## set up everything, then cargo test and pytest

test-rust:
	cd $(CARGO_DIR) && $(CARGO) test --workspace --quiet

# pytest runs against a throwaway PostgreSQL (installed from Debian's packages if missing),
# stopped on exit whatever the outcome; LENDGATE_REQUIRE_POSTGRES=1 makes its absence fail.
test-python: setup
	@set -euo pipefail; pg_env=$$(scripts/pg_test_cluster.sh start); \
	  trap 'scripts/pg_test_cluster.sh stop "$$(sed -n "s/^LENDGATE_TEST_PG_DIR=//p" <<<"$$pg_env")"' EXIT; \
	  export $$(grep '^LENDGATE_TEST_DATABASE_URL=' <<<"$$pg_env") LENDGATE_REQUIRE_POSTGRES=1; \
	  $(PY) -m pytest -q

# --- lint and format ----------------------------------------------------------------

$(BUF):
	@mkdir -p $(TOOLS)
	npm install --silent --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

lint: setup $(BUF) ## ruff, mypy, cargo fmt --check, clippy -D warnings, buf lint, generated-code drift
	$(VENV)/bin/ruff check $(PY_OWN)
	$(VENV)/bin/ruff format --check $(PY_OWN)
	$(VENV)/bin/mypy
	cd $(CARGO_DIR) && $(CARGO) fmt --all --check
	cd $(CARGO_DIR) && $(CARGO) clippy --workspace --all-targets --quiet -- -D warnings
	cd proto && ../$(BUF) lint
	$(PY) scripts/gen_protos.py --check

fmt: setup ## format Python and Rust in place
	$(VENV)/bin/ruff format $(PY_OWN)
	$(VENV)/bin/ruff check --fix --quiet $(PY_OWN) || true
	cd $(CARGO_DIR) && $(CARGO) fmt --all

proto: $(VENV)/.deps ## regenerate python/lendgate/v1 from proto/
	$(PY) scripts/gen_protos.py

# --- bench --------------------------------------------------------------------------

# Load figures depend on the machine and its load: every run prints the load average and
# the transport floor measured alongside (docs/BENCHMARKS.md). Results go to bench/out/.
BENCH_OUT   := bench/out
BENCH_SWEEP ?= 50,100,200,300,400,600,800,1000,1200,1600

GHZ_VERSION := v0.93.0

$(TOOLS)/bin/ghz: # the gRPC load tool of the cross-check, from the Go module proxy
	GOBIN=$(abspath $(TOOLS))/bin go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

# h2load (the cross-check's native HTTP/2 client) from Debian's packages, once.
bench-tools:
	@command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client; }
	@$(MAKE) --no-print-directory $(TOOLS)/bin/ghz

bench: setup ## the standard suite: seed target, sweeps + plot, cross-checks, micro benches
	@mkdir -p $(BENCH_OUT)
	$(PY) -m pytest bench/micro -q -p no:cacheprovider --benchmark-only \
	  --benchmark-json=$(BENCH_OUT)/micro.json
	$(PY) -m bench scoring --rate 100 --duration 60 --warmup 5 --target-p99-ms 200 \
	  --json $(BENCH_OUT)/scoring-seed.json
	$(PY) -m bench strategy --rate 100 --duration 60 --warmup 5 --target-p99-ms 200 \
	  --json $(BENCH_OUT)/strategy-seed.json
	$(PY) -m bench sweep scoring --rates $(BENCH_SWEEP) --duration 15 --slo-ms 10 \
	  --json $(BENCH_OUT)/scoring-sweep.json
	$(PY) -m bench sweep strategy --rates $(BENCH_SWEEP) --duration 15 --slo-ms 10 \
	  --json $(BENCH_OUT)/strategy-sweep.json
	$(PY) -m bench sweep echo --rates $(BENCH_SWEEP) --duration 15 --slo-ms 10 \
	  --json $(BENCH_OUT)/echo-sweep.json
	$(PY) -m bench.plot $(BENCH_OUT)/scoring-sweep.json $(BENCH_OUT)/strategy-sweep.json \
	  $(BENCH_OUT)/echo-sweep.json --out bench/latency-vs-rate.png
	$(PY) -m bench.stream_vs_unary --events 3000 --json $(BENCH_OUT)/stream-vs-unary.json
	-$(MAKE) --no-print-directory bench-tools
	-$(PY) -m bench.crosscheck --seconds 10
	$(PY) -m bench.rules_vs_zen
	$(PY) -m bench.list_import_bench
	$(PY) -m bench.strategy_vs_zen
	$(PY) -m bench.store_bench --backend sqlite --events 50000
	$(PY) -m bench.models_bench
	$(PY) -m bench.models_quality --json $(BENCH_OUT)/models-quality.json
	$(PY) -m bench.auction_bench
	cd $(CARGO_DIR) && $(CARGO) bench -p lendgate-core
	$(PY) -m bench.aggregates_bench

bench-quick: setup ## one-minute smoke run of the load harness (no figures to keep)
	@mkdir -p $(BENCH_OUT)
	$(PY) -m bench echo --rate 100 --duration 5 --warmup 1 --floor-seconds 2
	$(PY) -m bench strategy --rate 50 --duration 5 --warmup 1 --floor-seconds 0
	$(PY) -m bench scoring --rate 20 --duration 5 --warmup 1 --history 200 --floor-seconds 0 \
	  --json $(BENCH_OUT)/quick-scoring.json
	$(PY) -m bench.stream_vs_unary --events 300 --rounds 1 --history 200
	-$(PY) -m bench.crosscheck --seconds 3

clean: ## remove build outputs (keeps .venv and var/)
	rm -rf $(CARGO_DIR)/target $(VENV)/.built
