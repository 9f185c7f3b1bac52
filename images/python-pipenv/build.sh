#!/usr/bin/env bash
# berth-test/python-pipenv:3.11: berth-test/python:3.11 with pipenv, installed from its PyPI
# wheels and those of its dependencies (all binary: pure-Python or manylinux). The wheels are
# downloaded on the host (PyPI is reachable from the host, not from containers); no registry
# pull. Some 10 s once the base image exists.
set -euo pipefail
tag="${1:-berth-test/python-pipenv:3.11}"
version="${PIPENV_VERSION:-2026.10.3}"
here="$(cd "$(dirname "$0")" && pwd)"
docker image inspect berth-test/python:3.11 >/dev/null 2>&1 || bash "$here/../python/build.sh" berth-test/python:3.11
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/wheels"
python3 -m pip download --quiet --only-binary=:all: \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --python-version 3.11 --implementation cp --abi cp311 \
  -d "$ctx/wheels" "pipenv==$version"
cp "$here/Dockerfile" "$ctx/"
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null
