#!/usr/bin/env bash
# One command for the whole benchmark harness: Docker and images, a release build, every
# measurement against its floor, and BENCHMARKS.md. Extra arguments go to the harness
# (for example `--rounds 9`, `--only fan-out`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
cargo build --release --quiet
# Row 7 needs uv's image and the local package index, which the Python tests build (the index
# from wheels downloaded on the host); a test that finds them present only runs.
bash images/build.sh python-uv
cargo nextest run --test cli -E 'test(/^python::/) & test(changed)' >/dev/null
# gitlab-ci-local (row 2) copies artifacts in a helper container with bash and rsync; its own
# helper image would come from Docker Hub. The harness installs gitlab-ci-local from npm.
docker image inspect berth-test/gcl-util:latest >/dev/null 2>&1 ||
  bash images/python/build.sh berth-test/gcl-util:latest rsync
cargo bench --quiet --bench harness -- --out BENCHMARKS.md "$@"
