#!/usr/bin/env bash
# berth-test/node:18: Debian bookworm (minbase) with Debian's nodejs (18) and bash, made with
# mmdebstrap and `docker import`: the job image of the JavaScript action tests (GitHub's runners
# have node; berth runs an action's `main` with the node of the job's container).
#   images/node/build.sh [TAG]
set -euo pipefail
tag="${1:-berth-test/node:18}"
if ! command -v mmdebstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mmdebstrap --quiet --variant=minbase \
  --include=nodejs,ca-certificates \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$work/rootfs.tar"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  "$work/rootfs.tar" "$tag" >/dev/null
