# Jiuzhu: the two commands that matter are `make run` and `make test` (see README.md).
CACHE ?= $(HOME)/.cache/jiuzhu
BUF_VERSION ?= 1.75.0
BUF := $(CACHE)/buf-$(BUF_VERSION)/node_modules/.bin/buf

.PHONY: run test build fmt-check clippy buf-lint lint bench broker descriptors fuzz

## Start PostgreSQL (if down), the local broker and the five services.
run:
	bash deploy/dev/run.sh

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

## Lint the protobuf contracts (buf from the npm registry, cached outside the clone).
buf-lint: $(BUF)
	cd proto && $(BUF) lint

lint: fmt-check clippy buf-lint

## Event pipeline benchmark against local PostgreSQL and the broker; prints its figures.
bench:
	deploy/dev/postgres.sh
	deploy/dev/broker.sh start 19092
	JIUZHU_TEST_KAFKA_BROKERS=127.0.0.1:19092 cargo bench -p jiuzhu-tests --bench pipeline

## Build (once) and start the local broker on 127.0.0.1:9092.
broker:
	deploy/dev/broker.sh start 9092

## Write the encoded descriptor set of every contract to target/jiuzhu.binpb for integrators.
descriptors:
	cargo run -q -p jiuzhu-proto --bin jiuzhu-descriptors > target/jiuzhu.binpb
	@echo "wrote target/jiuzhu.binpb"

FUZZ_SECONDS ?= 60

## Fuzz every parser of outside input for FUZZ_SECONDS each (nightly toolchain; see fuzz/README.md).
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for t in $$(cargo +nightly fuzz list); do \
		cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done
