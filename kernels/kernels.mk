# kernels: targets added to PREPARE/CHECKS/BENCHES/DEMOS (see the top-level Makefile).

.PHONY: kernels-bench

# The GB/s table of the quantization kernels (release build; 64 MiB of f32).
kernels-bench:
	cargo run --release -p crowdtrain-kernels --example bench

BENCHES += kernels-bench
