# contracts: targets added to PREPARE/CHECKS/BENCHES/DEMOS (see the top-level Makefile).
