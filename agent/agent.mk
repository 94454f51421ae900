# agent: targets added to PREPARE/CHECKS/BENCHES/DEMOS (see the top-level Makefile).
AGENT_FONT := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

.PHONY: agent-font agent-bench agent-bench-gpu agent-bench-torch agent-cuda-check agent-demo agent-py-safetensors

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
agent-bench: agent-bench-torch
	cargo run --release -q -p crowdtrain-agent -- bench

# The PyTorch reference, from PyPI, in a venv under target/ (the bench only, never
# `make test`). PyPI's Linux torch is the CUDA build: its libraries link the CUDA
# runtime, cuDNN, cuBLAS, NCCL, ... so those wheels are needed even on a CPU; triton
# and cuda-bindings are not (torch's GPU compiler and Python CUDA API), which keeps
# the venv at about 4.4 GB instead of 5.3. numpy only silences torch's warning.
AGENT_TORCH_VERSION := 2.15.0
AGENT_BENCH_VENV := $(CURDIR)/target/bench-venv
AGENT_TORCH_STAMP := $(AGENT_BENCH_VENV)/.installed-torch-$(AGENT_TORCH_VERSION)
AGENT_TORCH_DEPS := filelock typing-extensions sympy networkx jinja2 fsspec numpy \
	"cuda-toolkit[cublas,cudart,cufft,cufile,cupti,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.2.2" \
	nvidia-cudnn-cu13==9.26.0.51 nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7 \
	nvidia-nvshmem-cu13==3.7.2
AGENT_PIP := $(AGENT_BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-warn-script-location

$(AGENT_TORCH_STAMP):
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || { \
		echo "agent: installing python3-venv (the PyTorch reference of make bench)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	python3 -m venv $(AGENT_BENCH_VENV)
	$(AGENT_PIP) --no-deps torch==$(AGENT_TORCH_VERSION)
	@echo "agent: pip will say torch wants triton and cuda-bindings: left out on purpose (CPU only)"
	$(AGENT_PIP) $(AGENT_TORCH_DEPS)
	$(AGENT_BENCH_VENV)/bin/python -c 'import torch; torch.ones(1).sum()'
	touch $@

# candle vs PyTorch at the same shapes, 1 and 2 threads: tokens/s, ratio, peak RSS.
agent-bench-torch: $(AGENT_TORCH_STAMP)
	cargo build --release -q -p crowdtrain-agent --example throughput
	$(AGENT_BENCH_VENV)/bin/python agent/bench/compare.py \
		--throughput target/release/examples/throughput --corpus agent/data/kjv.txt.gz

# `cargo check --features cuda` (part of `make test`) on a machine without a GPU or
# system CUDA: candle's
# CUDA kernels are compiled to PTX by nvcc from PyPI's CUDA 13 wheels, installed with
# `pip --target` under target/ (never system-wide), into a separate target dir so the
# normal build stays warm. It checks, not links: the wheels have no libcuda stub.
# cudarc's CUDA version comes from the kernels crate's `cuda-12090` feature, so
# CUDARC_CUDA_VERSION must stay unset (both would select two API versions).
AGENT_CUDA13_VERSION := 13.5.37
AGENT_CUDA13 := $(CURDIR)/target/cuda13-wheels
AGENT_CUDA13_ROOT := $(AGENT_CUDA13)/nvidia/cu13
AGENT_CUDA13_STAMP := $(AGENT_CUDA13)/.installed-$(AGENT_CUDA13_VERSION)

$(AGENT_CUDA13_STAMP):
	@python3 -m pip --version >/dev/null 2>&1 || { \
		echo "agent: installing python3-pip (needed for the CUDA 13 wheels)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip; }
	python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
		--upgrade --target $(AGENT_CUDA13) \
		nvidia-cuda-nvcc==$(AGENT_CUDA13_VERSION) nvidia-nvvm==$(AGENT_CUDA13_VERSION) \
		nvidia-cuda-runtime==$(AGENT_CUDA13_VERSION) nvidia-cuda-crt==$(AGENT_CUDA13_VERSION) \
		nvidia-cuda-cccl==13.3.5.0.6 nvidia-cublas==13.10.0.20 nvidia-curand==10.4.5.25
	chmod +x $(AGENT_CUDA13_ROOT)/bin/* $(AGENT_CUDA13_ROOT)/nvvm/bin/*
	$(AGENT_CUDA13_ROOT)/bin/nvcc --version
	touch $@

agent-cuda-check: $(AGENT_CUDA13_STAMP) kernels-cxx
	env -u CUDARC_CUDA_VERSION CUDA_ROOT=$(AGENT_CUDA13_ROOT) CUDA_PATH=$(AGENT_CUDA13_ROOT) \
		CUDA_COMPUTE_CAP=90 PATH=$(AGENT_CUDA13_ROOT)/bin:$$PATH \
		cargo check -p crowdtrain-agent --features cuda --all-targets --target-dir target/cuda-check

# The GPU rows of `make bench` (agent/bench/gpu_rows.sh), on a host whose nvidia-smi
# lists a GPU; elsewhere it prints why it skips. The compression kernels' fraction of
# HBM bandwidth is `make kernels-bench`'s GPU table.
agent-bench-gpu:
	@if nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then \
		$(MAKE) --no-print-directory $(AGENT_CUDA13_STAMP) kernels-cxx && \
		agent/bench/gpu_rows.sh $(AGENT_CUDA13_ROOT); \
	else echo "agent: GPU rows skipped: no NVIDIA GPU on this host (nvidia-smi lists none)"; fi

# A short simulation (about two minutes on 2 cores): table, out/simulate/simulate.{csv,png}.
# The binary of `make test`'s workspace build (a no-op after it; `cargo run -p` would
# re-resolve the dependencies' features and recompile many of them).
agent-demo:
	cargo test -q --workspace --all-targets --no-run
	target/debug/crowdtrain simulate --workers 4 --rounds 4 --inner-steps 25 --out out/simulate

# One 1 GiB blob between two swarm nodes on loopback against a plain loopback TCP copy
# of the same bytes, measured in the same run (SWARM_BENCH_MIB=64 for a quick one).
SWARM_BENCH_MIB ?= 1024
.PHONY: agent-bench-swarm
agent-bench-swarm:
	SWARM_BENCH_MIB=$(SWARM_BENCH_MIB) cargo test -q --workspace --example swarm_bench -- --ignored --nocapture

PREPARE += agent-font agent-py-safetensors
CHECKS += agent-cuda-check
BENCHES += agent-bench agent-bench-gpu agent-bench-swarm
DEMOS += agent-demo
