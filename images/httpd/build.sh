#!/usr/bin/env bash
# berth-test/httpd: busybox's httpd serving /www on port 80, with the port declared (EXPOSE) so
# that berth can wait for it when it runs as a service.
set -euo pipefail
tag="${1:-berth-test/httpd:latest}"
here="$(cd "$(dirname "$0")" && pwd)"
docker image inspect berth-test/busybox:latest >/dev/null 2>&1 || bash "$here/../busybox/build.sh" berth-test/busybox:latest
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null
