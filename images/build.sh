#!/usr/bin/env bash
# Build the local images the tests and fixtures use, whichever are missing. Nothing is pulled
# from a registry: each image is made from Debian's packages and `docker import`.
#   images/build.sh [--force] [busybox|httpd|python|python-git|node|python-uv|python-poetry|
#                    python-pdm|python-pipenv ...]
# (python-git is the Python image with git and setuptools-scm: a checkout's `.git` in use.)
# (python-uv, python-poetry, python-pdm and python-pipenv are built on demand only: their recipes
# download wheels from PyPI on the host.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
force=0
wanted=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    *) wanted+=("$arg") ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=(busybox httpd python python-git node)

declare -A tags=(
  [busybox]=berth-test/busybox:latest
  [httpd]=berth-test/httpd:latest
  [python]=berth-test/python:3.11
  [python-git]=berth-test/python-git:3.11
  [node]=berth-test/node:18
  [python-uv]=berth-test/python-uv:3.11
  [python-poetry]=berth-test/python-poetry:3.11
  [python-pdm]=berth-test/python-pdm:3.11
  [python-pipenv]=berth-test/python-pipenv:3.11
)
for name in "${wanted[@]}"; do
  tag="${tags[$name]:?unknown image $name}"
  if [ "$force" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "images: $tag is present"
    continue
  fi
  start=$(date +%s)
  echo "images: building $tag"
  case "$name" in
    # One recipe for the Python tools that install into their own environment.
    python-poetry|python-pdm|python-pipenv) bash "$here/python-tool/build.sh" "$tag" "${name#python-}" ;;
    python-git) bash "$here/python/build.sh" "$tag" git,python3-setuptools-scm ;;
    *) bash "$here/$name/build.sh" "$tag" ;;
  esac
  echo "images: built $tag in $(( $(date +%s) - start ))s"
done
