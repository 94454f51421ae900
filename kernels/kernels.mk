# kernels: targets added to PREPARE/CHECKS/BENCHES/DEMOS (see the top-level Makefile).

.PHONY: kernels-cuda-wheels kernels-cxx kernels-ptx-check kernels-bench

# NVRTC (libnvrtc.so.12) and ptxas from PyPI, installed with `pip --target` under
# target/ (never system-wide): enough to compile and assemble the CUDA kernels on a
# machine without a GPU or nvcc.
KERNELS_CUDA_VERSION := 12.9.86
KERNELS_CUDA_WHEELS := $(CURDIR)/target/cuda-wheels
KERNELS_CUDA_STAMP := $(KERNELS_CUDA_WHEELS)/.installed-$(KERNELS_CUDA_VERSION)

kernels-cuda-wheels: $(KERNELS_CUDA_STAMP)

$(KERNELS_CUDA_STAMP):
	@python3 -m pip --version >/dev/null 2>&1 || { \
		echo "kernels: installing python3-pip (needed for the CUDA wheels)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip; }
	python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
		--upgrade --target $(KERNELS_CUDA_WHEELS) \
		nvidia-cuda-nvrtc-cu12==$(KERNELS_CUDA_VERSION) nvidia-cuda-nvcc-cu12==$(KERNELS_CUDA_VERSION)
	chmod +x $(KERNELS_CUDA_WHEELS)/nvidia/cuda_nvcc/bin/ptxas
	touch $@

# A C++20 compiler for tests/cuda_on_cpu.rs, which runs the CUDA sources on the CPU.
kernels-cxx:
	@command -v c++ >/dev/null 2>&1 || { \
		echo "kernels: installing g++ (runs the CUDA kernels' source on the CPU in tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++; }

# Every kernel through NVRTC and ptxas for sm_80 and sm_90; fails on a compile error,
# a fused/approximate instruction or a register spill. Never skips.
kernels-ptx-check: kernels-cuda-wheels
	CROWDTRAIN_CUDA_WHEELS=$(KERNELS_CUDA_WHEELS) cargo run -q -p crowdtrain-kernels --example ptx_check

# The GB/s table of the quantization kernels (release build; 64 MiB of f32).
kernels-bench:
	cargo run --release -p crowdtrain-kernels --example bench

PREPARE += kernels-cuda-wheels kernels-cxx
CHECKS += kernels-ptx-check
BENCHES += kernels-bench
