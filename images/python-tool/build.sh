#!/usr/bin/env bash
# berth-test/python-<tool>:3.11 for poetry, pdm or pipenv: berth-test/python:3.11 with the tool in
# its own environment, installed from its PyPI wheels and those of its dependencies (all binary:
# pure-Python or manylinux). The wheels are downloaded on the host (PyPI is reachable from the
# host, not from containers); no registry pull. 10 to 20 s once the base image exists.
#   images/python-tool/build.sh TAG poetry|pdm|pipenv
set -euo pipefail
tag="$1"
tool="$2"
case "$tool" in
  poetry) wanted=("poetry==${POETRY_VERSION:-2.5.1}") ;;
  # pdm 2.29 asks for hishel>=1.4 but fails with hishel 2 (no SyncSqliteStorage): pinned.
  pdm) wanted=("pdm==${PDM_VERSION:-2.29.4}" "hishel[httpx2]==${HISHEL_VERSION:-1.4.0}") ;;
  pipenv) wanted=("pipenv==${PIPENV_VERSION:-2026.10.3}") ;;
  *) echo "python-tool: unknown tool $tool" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "$0")" && pwd)"
docker image inspect berth-test/python:3.11 >/dev/null 2>&1 || bash "$here/../python/build.sh" berth-test/python:3.11
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/wheels"
python3 -m pip download --quiet --only-binary=:all: \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --python-version 3.11 --implementation cp --abi cp311 \
  -d "$ctx/wheels" "${wanted[@]}"
cp "$here/Dockerfile" "$ctx/"
DOCKER_BUILDKIT=0 docker build -q --build-arg "TOOL=$tool" -t "$tag" "$ctx" >/dev/null
