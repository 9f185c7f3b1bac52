#!/usr/bin/env bash
# berth-test/python:3.11: Debian bookworm (minbase) with Python 3.11, pip, venv, setuptools,
# wheel and pytest from Debian's packages, made with mmdebstrap and `docker import`. pip is set up
# to install a project without network: no build isolation (setuptools comes from Debian) and no
# complaint about the system interpreter. About 40 s to build.
#   images/python/build.sh [TAG [EXTRA-PACKAGES]]   (EXTRA-PACKAGES: comma-separated, from Debian)
set -euo pipefail
tag="${1:-berth-test/python:3.11}"
extra="${2:+,$2}"
if ! command -v mmdebstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mmdebstrap --quiet --variant=minbase \
  --include=python3,python3-pip,python3-venv,python3-setuptools,python3-wheel,python3-pytest,ca-certificates$extra \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$work/rootfs.tar"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
  --change 'ENV PIP_NO_BUILD_ISOLATION=0' \
  --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
  --change 'ENV PIP_NO_INPUT=1' \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
  --change 'CMD ["bash"]' \
  "$work/rootfs.tar" "$tag" >/dev/null
