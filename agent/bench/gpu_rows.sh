#!/usr/bin/env bash
# The GPU rows of `make bench` (agent/agent.mk runs this only where nvidia-smi lists a
# GPU): training tokens/s of `small` and `gpt2`, batch 8, on cuda:0 through candle's
# CUDA backend. Built with the CUDA 13 wheels under target/ (nvcc for candle's kernels,
# cuBLAS/cuRAND/NVRTC to link against) unless a system nvcc is on PATH; the driver's
# libcuda comes from the host. It has not yet run on a GPU: none was lent here.
set -euo pipefail
root=$1 # the wheels' nvidia/cu13 folder
link=target/cuda13-link
if ! command -v nvcc >/dev/null; then
	# cudarc links -lcuda -lcublas ...: the wheels ship only versioned names.
	mkdir -p "$link"
	for lib in "$root"/lib/lib{cublas,cublasLt,curand,nvrtc}.so.*; do
		base=$(basename "$lib")
		ln -sf "$lib" "$link/${base%%.so.*}.so"
	done
	libcuda=$(ldconfig -p | awk '/libcuda\.so\.1 / { print $NF; exit }')
	if [ -z "$libcuda" ]; then
		echo "agent: GPU rows: nvidia-smi sees a GPU but ldconfig finds no libcuda.so.1 (the NVIDIA driver's library)" >&2
		exit 1
	fi
	ln -sf "$libcuda" "$link/libcuda.so"
	export CUDA_ROOT=$root CUDA_PATH=$root PATH=$root/bin:$PATH
	export LIBRARY_PATH=$PWD/$link${LIBRARY_PATH:+:$LIBRARY_PATH}
	export LD_LIBRARY_PATH=$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
unset CUDARC_CUDA_VERSION # the kernels crate selects cudarc's CUDA API version
cargo build --release -q -p crowdtrain-agent --features cuda --example throughput \
	--target-dir target/cuda-release
echo "| GPU shape | layers × width, context | tokens/s | loss first → last |"
echo "|---|---|---:|---|"
for shape in "small 4 8 256 128 20" "gpt2 12 12 768 1024 10"; do
	set -- $shape
	out=$(target/cuda-release/release/examples/throughput --device cuda:0 \
		--layers "$2" --heads "$3" --width "$4" --context "$5" --steps "$6" | tail -1)
	python3 -c 'import json, sys
name, out, shape = sys.argv[1:]
r = json.loads(out)
print("| %s | %s | %s | %.3f → %.3f |" % (name, shape, format(r["tokens_per_s"], ",.0f"), r["first_loss"], r["last_loss"]))' \
		"$1" "$out" "$2 × $4, $5"
done
