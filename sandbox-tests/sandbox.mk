# sandbox-tests: the local chain (`crowdtrain-localnet`) and the scenarios run on it.
#   make sandbox-test                               scenarios on the in-process local chain
#   NEAR_SANDBOX_BIN_PATH=/path/neard make sandbox-test   the same scenarios on a real neard sandbox
#   make localnet                                   run the chain (with the factory) for the agent or by hand
# The chain tests compile their WAT contracts themselves; the crowdtrain tests load
# target/contracts/*.wasm, built by `make contracts` (contracts/contracts.mk, in PREPARE).

.PHONY: sandbox-test localnet

LOCALNET_PORT ?= 3030
LOCALNET_HOME ?= $(HOME)/.crowdtrain/localnet

sandbox-test: contracts
	cargo test -p crowdtrain-sandbox-tests --all-targets

# The chain with the factory on factory.test.near; the binaries of `make test`'s build
# (`cargo run -p` would re-resolve the dependencies' features and rebuild them).
localnet: contracts
	cargo test -q --workspace --all-targets --no-run
	target/debug/crowdtrain-localnet --port $(LOCALNET_PORT) --home $(LOCALNET_HOME) \
		--factory target/contracts/crowdtrain_factory.wasm

# The main demo: one run end to end on `crowdtrain-localnet`, every funder, provider,
# holder and the auditor a separate `crowdtrain` process (examples/round_demo/). It
# runs the example's test harness that `make test` built (`test = true`), after making
# sure the binaries it starts exist: selecting the workspace keeps the dependencies'
# features as in `make test`, so after it nothing is compiled (`cargo run -p` would
# re-resolve and rebuild). Its files (chain, agents' state, peers folder, loss plot)
# stay in out/demo. It goes first in `make demo`, before the agent's simulation.
.PHONY: round-demo
round-demo: contracts
	cargo test -q --workspace --all-targets --no-run
	CROWDTRAIN_DEMO_OUT=$(CURDIR)/out/demo cargo test -q --workspace --example round_demo -- --nocapture

DEMOS := round-demo $(DEMOS)
# The demo checks itself (every provider and the auditor reach the same checkpoint,
# the chain finalizes it, every holder is paid exactly); it is also a test target
# (`test = true` in Cargo.toml), so `make test` runs it.

# Gas tables of sandbox-tests/GAS.md: per method by holders, and one round with
# 10/100/1,000 providers (the 1,000 row takes minutes, so only here, not in `make test`).
.PHONY: sandbox-gas
sandbox-gas: contracts
	CROWDTRAIN_SCALE_FULL=1 cargo test --workspace --test crowdtrain -- gas scale --test-threads 1

BENCHES += sandbox-gas
