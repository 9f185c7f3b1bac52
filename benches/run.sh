#!/usr/bin/env bash
# One command for the whole benchmark harness: Docker and images, a release build, every
# measurement against its floor, and BENCHMARKS.md. Extra arguments go to the harness
# (for example `--rounds 9`, `--only fan-out`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
cargo build --release --quiet
cargo bench --quiet --bench harness -- --out BENCHMARKS.md "$@"
