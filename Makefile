# crowdtrain — the two commands a new user needs are `make demo` and `make test`.
# Each part of the repo owns a fragment (`<folder>/*.mk`) that adds to these lists:
#   PREPARE  targets that install or build what the tests need (apt, pip, wasm)
#   CHECKS   checks run after `cargo test` (PTX assembly, ...)
#   BENCHES  benchmark targets for `make bench`
#   DEMOS    what `make demo` runs, in order
SHELL := /bin/bash
.DEFAULT_GOAL := help
export CARGO_TERM_COLOR ?= never

PREPARE :=
CHECKS :=
BENCHES :=
DEMOS :=

include contracts/contracts.mk
include kernels/kernels.mk
include agent/agent.mk
include sandbox-tests/sandbox.mk
include web/web.mk

.PHONY: help test demo bench fmt lint

help:
	@echo "make demo    run the crowdtrain demo (see README.md)"
	@echo "make test    build everything and run every test"
	@echo "make bench   benchmarks, printed as tables"
	@echo "make lint    cargo fmt --check and clippy -D warnings"

test: $(PREPARE)
	cargo test --workspace --all-targets
	@$(if $(strip $(CHECKS)),$(MAKE) --no-print-directory $(CHECKS))

demo: $(PREPARE) $(DEMOS)

bench: $(PREPARE) $(BENCHES)

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
