# contracts: build the run and factory contracts to wasm (see shared TOOLCHAIN.md,
# "Contracts to wasm"). Debian's rustc 1.96 builds std for wasm32 from its source
# package; the wasm profile (top-level Cargo.toml) keeps the bytes small, and
# --remap-path-prefix keeps them identical on every machine.
#   make contracts   -> target/contracts/crowdtrain_{run,factory}.wasm (+ size, sha256)

CONTRACTS_OUT := target/contracts
CONTRACTS_WASM_DIR := target/wasm/wasm32-unknown-unknown/wasm
CONTRACTS_APT := rustc-web cargo-web rust-web-src lld
CONTRACTS_CARGO_HOME := $(or $(CARGO_HOME),$(HOME)/.cargo)
# Panic messages embed source paths: map the checkout and the cargo home to
# fixed names so the same source gives the same bytes anywhere.
CONTRACTS_RUSTFLAGS := --cfg near -C link-arg=-s -C linker=wasm-ld \
	--remap-path-prefix=$(CURDIR)=/crowdtrain \
	--remap-path-prefix=$(CONTRACTS_CARGO_HOME)=/cargo
CONTRACTS_BUILD := env -u CARGO_TARGET_DIR -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS \
	RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="$(CONTRACTS_RUSTFLAGS)" \
	SOURCE_DATE_EPOCH=0 CROWDTRAIN_RUN_WASM=$(CURDIR)/$(CONTRACTS_OUT)/crowdtrain_run.wasm \
	/usr/bin/cargo build --profile wasm --target wasm32-unknown-unknown \
	-Zbuild-std=std,panic_abort --target-dir target/wasm

.PHONY: contracts contracts-toolchain
PREPARE += contracts

# Installs Debian's wasm-capable compiler when any of its packages is missing.
contracts-toolchain:
	@dpkg -s $(CONTRACTS_APT) >/dev/null 2>&1 || { \
		echo "installing $(CONTRACTS_APT)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $(CONTRACTS_APT); }

# The run first: the factory embeds its bytes (contracts/factory/build.rs).
contracts: contracts-toolchain
	@mkdir -p $(CONTRACTS_OUT)
	$(CONTRACTS_BUILD) -p crowdtrain-run
	@cp $(CONTRACTS_WASM_DIR)/crowdtrain_run.wasm $(CONTRACTS_OUT)/crowdtrain_run.wasm
	@# A wasm export named `round` clashes with libm's `round` (see the script).
	@python3 contracts/rename_export.py $(CONTRACTS_OUT)/crowdtrain_run.wasm round_view round
	$(CONTRACTS_BUILD) -p crowdtrain-factory
	@cp $(CONTRACTS_WASM_DIR)/crowdtrain_factory.wasm $(CONTRACTS_OUT)/crowdtrain_factory.wasm
	@for f in $(CONTRACTS_OUT)/crowdtrain_run.wasm $(CONTRACTS_OUT)/crowdtrain_factory.wasm; do \
		printf '%-40s %8d bytes  sha256 %s\n' $$f $$(stat -c %s $$f) $$(sha256sum $$f | cut -d' ' -f1); \
	done
