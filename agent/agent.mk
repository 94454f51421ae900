# agent: targets added to PREPARE/CHECKS/BENCHES/DEMOS (see the top-level Makefile).
AGENT_FONT := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

.PHONY: agent-font agent-bench agent-demo agent-py-safetensors

# The loss plot draws its text with DejaVu Sans read from disk (no fontconfig).
agent-font:
	@test -f $(AGENT_FONT) || (apt-get update -qq && apt-get install -y -qq fonts-dejavu-core)

# Python's safetensors (and numpy), installed with `pip --target` under target/: the
# independent reader of tests/checkpoint_vectors.rs.
AGENT_PY_SITE := $(CURDIR)/target/py-safetensors
AGENT_PY_STAMP := $(AGENT_PY_SITE)/.installed-0.8.0

agent-py-safetensors: $(AGENT_PY_STAMP)

$(AGENT_PY_STAMP):
	@python3 -m pip --version >/dev/null 2>&1 || { \
		echo "agent: installing python3-pip (needed for Python's safetensors)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip; }
	python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
		--upgrade --target $(AGENT_PY_SITE) safetensors==0.8.0 numpy
	touch $@

# Figures: loss gap and bytes sent vs the synchronous baseline, tokens per second.
agent-bench:
	cargo run --release -q -p crowdtrain-agent -- bench

# A short simulation (about two minutes on 2 cores): table, out/simulate/simulate.{csv,png}.
# Dev profile (dependencies optimised): it reuses the build of `make test`.
agent-demo:
	cargo run -q -p crowdtrain-agent -- simulate --workers 4 --rounds 4 --inner-steps 25 --out out/simulate

PREPARE += agent-font agent-py-safetensors
BENCHES += agent-bench
DEMOS += agent-demo
