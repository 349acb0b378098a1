# Trellis: `make run` builds and serves with a demo project; `make test` runs every test.
# Both install what they need (wasm target, wasm-bindgen CLI, binaryen's wasm-opt from npm, Chromium,
# Node packages, the contract test's Python virtualenv) when missing.

SHELL := /bin/bash
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
SITE := $(CARGO_TARGET_DIR)/site
VENV := .venv
WASM_BINDGEN_VERSION := $(shell sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' app/Cargo.toml)
# One stylesheet served, written in parts by concern; their order is the cascade's.
STYLES := style/base.css style/grid.css style/pages.css
PROFILE ?= release
BIN_DIR := $(CARGO_TARGET_DIR)/$(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
# wasm-opt from npm's binaryen, pinned in tools/package-lock.json (Debian's binaryen 108 emits a
# bundle that fails at run time).
WASM_OPT := tools/node_modules/.bin/wasm-opt

.PHONY: run test bench site server tools lint test-unit test-db test-contract test-notify test-ci test-e2e pg rpm-tools clean

run: site server
	mkdir -p data
	$(BIN_DIR)/trellis serve --demo --site-root $(SITE)

# --- tools: installed only when missing --------------------------------------------------------
tools: $(WASM_OPT)
	@rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@if ! wasm-bindgen --version 2>/dev/null | grep -q "$(WASM_BINDGEN_VERSION)"; then \
		echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (a few minutes, once)"; \
		cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); fi

$(WASM_OPT): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund
	touch $@

# --- build ---------------------------------------------------------------------------------------
# The island bundle: built with its own size-optimised profile, post-processed by wasm-bindgen,
# then shrunk by wasm-opt, which also drops the name section (about half the size, a third less gzip).
site: tools
	cargo build --target wasm32-unknown-unknown -p trellis-app --lib --no-default-features --features hydrate --profile wasm-release
	mkdir -p $(SITE)/pkg
	wasm-bindgen --target web --out-dir $(SITE)/pkg --out-name trellis $(CARGO_TARGET_DIR)/wasm32-unknown-unknown/wasm-release/trellis_app.wasm
	$(WASM_OPT) -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --strip-producers \
		-o $(SITE)/pkg/trellis_bg.wasm $(SITE)/pkg/trellis_bg.wasm
	@echo "island bundle: $$(wc -c < $(SITE)/pkg/trellis_bg.wasm) bytes, $$(gzip -9c $(SITE)/pkg/trellis_bg.wasm | wc -c) gzip"
	cat $(STYLES) > $(SITE)/pkg/trellis.css
	cp -r public/. $(SITE)/

server:
	cargo build --profile $(PROFILE) -p trellis-server

# --- tests ---------------------------------------------------------------------------------------
# One profile (dev) for every test, so CI builds the workspace once.
test: site pg lint rpm-tools
	cargo test --workspace --exclude trellis-bench
	$(MAKE) test-contract
	$(MAKE) test-notify
	$(MAKE) test-ci
	$(MAKE) test-e2e

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p trellis-app --lib --target wasm32-unknown-unknown --no-default-features --features hydrate -- -D warnings

pg:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; echo "PostgreSQL did not start"; exit 1

# The OpenAPI document against a running debug server: schemathesis, pinned, in its own virtualenv
# (Debian's python3 needs python3-venv to make one).
$(VENV)/bin/schemathesis: tests-contract/requirements.txt tests-notify/requirements.txt tests-ci/requirements.txt
	@python3 -c 'import ensurepip, venv' 2>/dev/null || (apt-get update && apt-get install -y python3-venv)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests-contract/requirements.txt -r tests-notify/requirements.txt -r tests-ci/requirements.txt
	touch $@

test-contract: $(VENV)/bin/schemathesis
	cargo build -p trellis-server
	tests-contract/run.sh $(CARGO_TARGET_DIR)/debug/trellis $(VENV)/bin/schemathesis

# The notification scenario: the real server against an SMTP server (aiosmtpd) and a webhook
# receiver that the tests start, feeds parsed by feedparser, on SQLite and PostgreSQL.
test-notify: $(VENV)/bin/schemathesis pg
	cargo build -p trellis-server
	tests-notify/run.sh $(CARGO_TARGET_DIR)/debug/trellis $(VENV)/bin/python

# Kernel discovery is tested against real repositories: kernel-devel RPMs built with rpmbuild and
# indexed with createrepo_c (zstd recompresses one repository's metadata).
rpm-tools:
	@command -v rpmbuild >/dev/null && command -v createrepo_c >/dev/null && command -v zstd >/dev/null \
		|| (apt-get update && apt-get install -y rpm createrepo-c zstd)

# The CI loop end to end: the real server and two real runners against a dnf repository of real
# kernel-devel RPMs (scripts/kernel-repo.sh) and a module's git repository, on SQLite and PostgreSQL.
test-ci: $(VENV)/bin/schemathesis pg rpm-tools
	cargo build -p trellis-server -p trellis-runner
	tests-ci/run.sh $(CARGO_TARGET_DIR)/debug $(VENV)/bin/python

e2e/node_modules: e2e/package.json e2e/package-lock.json
	cd e2e && npm ci --no-audit --no-fund
	touch e2e/node_modules

test-e2e: e2e/node_modules
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	cargo build -p trellis-server
	TRELLIS_BIN=$(CARGO_TARGET_DIR)/debug/trellis SITE_ROOT=$(SITE) node --test e2e/

# --- benchmark -----------------------------------------------------------------------------------
# SQLite, then PostgreSQL on a database of its own (created afresh each time).
BENCH_PG ?= postgres://postgres@127.0.0.1:5432/trellis_bench
bench: site pg
	cargo build --release -p trellis-server -p trellis-bench
	$(CARGO_TARGET_DIR)/release/trellis-bench --site-root $(SITE) --bin $(CARGO_TARGET_DIR)/release/trellis $(BENCH_ARGS)
	psql -q "$(dir $(BENCH_PG))test" -c "DROP DATABASE IF EXISTS $(notdir $(BENCH_PG)) WITH (FORCE)" -c "CREATE DATABASE $(notdir $(BENCH_PG))"
	$(CARGO_TARGET_DIR)/release/trellis-bench --site-root $(SITE) --bin $(CARGO_TARGET_DIR)/release/trellis --database-url $(BENCH_PG) $(BENCH_ARGS)

clean:
	rm -rf $(CARGO_TARGET_DIR) e2e/node_modules tools/node_modules $(VENV)
