# agent: targets added to PREPARE/CHECKS/BENCHES/DEMOS (see the top-level Makefile).
AGENT_FONT := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

.PHONY: agent-font agent-bench agent-demo

# The loss plot draws its text with DejaVu Sans read from disk (no fontconfig).
agent-font:
	@test -f $(AGENT_FONT) || (apt-get update -qq && apt-get install -y -qq fonts-dejavu-core)

# Figures: loss gap and bytes sent vs the synchronous baseline, tokens per second.
agent-bench:
	cargo run --release -q -p crowdtrain-agent -- bench

# A short simulation (about two minutes on 2 cores): table, out/simulate/simulate.{csv,png}.
# Dev profile (dependencies optimised): it reuses the build of `make test`.
agent-demo:
	cargo run -q -p crowdtrain-agent -- simulate --workers 4 --rounds 4 --inner-steps 25 --out out/simulate

PREPARE += agent-font
BENCHES += agent-bench
DEMOS += agent-demo
