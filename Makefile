# Jiuzhu: the two commands that matter are `make run` and `make test` (see README.md).
CACHE ?= $(HOME)/.cache/jiuzhu
BUF_VERSION ?= 1.75.0
BUF := $(CACHE)/buf-$(BUF_VERSION)/node_modules/.bin/buf
DENY_VERSION ?= 0.20.2
DENY := $(CACHE)/cargo-deny-$(DENY_VERSION)/bin/cargo-deny

.PHONY: run run-check run-reset test build fmt-check clippy buf-lint buf-breaking deny deny-advisories lint policy-check bench chaos broker descriptors fuzz

## The whole platform on this machine with the demo county (see README: Quick start).
run:
	bash deploy/dev/run.sh

## Forget everything make run kept (its databases, broker log, keys, demo): the next run starts afresh.
run-reset:
	for s in registry clues decisions payments followup console; do \
		psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS jiuzhu_$$s WITH (FORCE)"; \
	done
	rm -rf .jiuzhu

## The quick start, literally: make run comes up with the demo county, answers, and survives a restart.
run-check:
	bash deploy/dev/run-check.sh

## The whole test suite against real PostgreSQL and the real broker.
test:
	bash deploy/dev/test.sh

build:
	cargo build --workspace --bins

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(CACHE)/buf-$(BUF_VERSION) @bufbuild/buf@$(BUF_VERSION)

## The contracts against the last release (the commit proto/RELEASED names; another git ref with
## BREAKING_AGAINST=main): wire and JSON compatible, as docs/COMPATIBILITY.md promises.
buf-breaking: $(BUF)
	bash deploy/dev/buf-breaking.sh $(BUF)

$(DENY):
	CARGO_TARGET_DIR=$(CACHE)/deny-build cargo install cargo-deny@$(DENY_VERSION) --locked --root $(CACHE)/cargo-deny-$(DENY_VERSION)
	rm -rf $(CACHE)/deny-build

## Licences, sources and duplicate crates of the dependency graph (deny.toml; cargo-deny from
## crates.io, built once into the cache, about 6 minutes on 2 cores).
deny: $(DENY)
	$(DENY) check licenses bans sources

## Security advisories (RustSec's database is fetched from GitHub: run where GitHub is reachable).
deny-advisories: $(DENY)
	$(DENY) check advisories

## Lint the protobuf contracts (buf from the npm registry, cached outside the clone).
buf-lint: $(BUF)
	cd proto && $(BUF) lint

lint: fmt-check clippy buf-lint

## Check the policy directory as a whole, as the services will read it (exits 1 naming file and line).
policy-check:
	cargo run -q -p jiuzhu-cli --bin jiuzhu -- policy check policy/

## Every benchmark (pipeline, registry reads and import, clue intake, deadline scan,
## disbursements) at full size against local PostgreSQL and the broker; prints the figures.
## One alone: make bench BENCH=pipeline. `make test` runs them all at a small size.
BENCH ?=
bench:
	deploy/dev/postgres.sh
	deploy/dev/broker.sh start 19092
	JIUZHU_TEST_KAFKA_BROKERS=127.0.0.1:19092 \
	JIUZHU_TEST_DATABASE_URL=$${JIUZHU_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres} \
		cargo bench -p jiuzhu-tests $(if $(BENCH),--bench $(BENCH))

## Kill every part of the platform once under a load of 300 cases; checks money moved once and
## nothing was lost or stuck (about 10 minutes; uses the local PostgreSQL, which it restarts).
chaos:
	bash deploy/dev/chaos.sh

## Build (once) and start the local broker on 127.0.0.1:9092.
broker:
	deploy/dev/broker.sh start 9092

## Write the encoded descriptor set of every contract to docs/jiuzhu.binpb, and each AsyncAPI
## message's schema (a self-contained .proto text) into docs/asyncapi.json, published for
## integrators (tests fail while they differ from the contracts).
descriptors:
	cargo build -q -p jiuzhu-proto --features dynamic --bin jiuzhu-descriptors
	target/debug/jiuzhu-descriptors > docs/jiuzhu.binpb
	python3 deploy/dev/asyncapi-schemas.py target/debug/jiuzhu-descriptors
	@echo "wrote docs/jiuzhu.binpb and the schemas of docs/asyncapi.json"

FUZZ_SECONDS ?= 60

## Fuzz every parser of outside input for FUZZ_SECONDS each (nightly toolchain; see fuzz/README.md).
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for t in $$(cargo +nightly fuzz list); do \
		cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done
