# The two commands of the README:
#   make run    bootstrap, release build, run the default experiment, print where results went
#   make test   bootstrap, rustfmt check, clippy and rustdoc (warnings are errors), the whole test suite
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# What `make run` runs: BehaveGPT next-behaviour table on the simulator (smoke preset: seconds).
# Override on the command line: make run EXPERIMENT=datasets ARGS="--preset cpu"
EXPERIMENT ?= behavegpt
ARGS ?= --preset smoke
# The test suite builds the MPI and NCCL data-parallel code and runs the two-rank MPI tests when
# Open MPI is present (the bootstrap installs it; NCCL tests skip without CUDA). Expanded after
# the bootstrap ran; `make test FEATURES=` builds without.
FEATURES ?= $(shell scripts/bootstrap-mpi.sh --features)

.PHONY: run test bootstrap fmt lint bench

bootstrap:
	@./scripts/bootstrap.sh

run: bootstrap
	cargo build --release -p experiments
	./target/release/experiments $(EXPERIMENT) $(ARGS)

test: bootstrap
	@[ -n "$(FEATURES)" ] || echo "SKIPPED: MPI/NCCL data parallelism (no Open MPI: scripts/bootstrap-mpi.sh)"
	cargo fmt --all --check
	cargo clippy --workspace --all-targets $(FEATURES) -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps $(FEATURES)
	cargo test --workspace $(FEATURES)

fmt:
	cargo fmt --all

bench: bootstrap
	cargo bench -p behavior-benches
