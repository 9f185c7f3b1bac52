#!/usr/bin/env bash
# berth-test/python-uv:3.11: berth-test/python:3.11 with uv, installed from its PyPI wheel (the
# binary ships inside it). The wheel is downloaded on the host (PyPI is reachable from the host,
# not from containers); no registry pull. A few seconds once the base image exists.
set -euo pipefail
tag="${1:-berth-test/python-uv:3.11}"
version="${UV_VERSION:-0.13.9}"
here="$(cd "$(dirname "$0")" && pwd)"
docker image inspect berth-test/python:3.11 >/dev/null 2>&1 || bash "$here/../python/build.sh" berth-test/python:3.11
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
  -d "$ctx" "uv==$version"
cp "$here/Dockerfile" "$ctx/"
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null
