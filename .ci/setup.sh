#!/usr/bin/env bash
# Prepare a machine for berth's tests and fixtures: a running Docker engine and the local
# images the fixtures use (nothing can be pulled from a registry here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/ensure-docker.sh
bash images/build.sh
