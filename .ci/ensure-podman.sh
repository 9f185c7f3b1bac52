#!/usr/bin/env bash
# Make sure Podman's Docker-compatible API answers on its own socket, next to Docker's, with the
# test images in Podman's store: install Debian's podman, start `podman system service`, and build
# the images from the same recipes in images/ (the docker CLI follows DOCKER_HOST to Podman).
#   DOCKER_HOST=unix:///run/berth-podman.sock cargo nextest run ...
# Settings that matter on this machine (no systemd, cgroup v1, root):
# - cgroupfs and the file events backend (Podman's defaults without systemd; set explicitly);
# - storage: overlay (the default) works on ext4 here;
# - default_ulimits: as root Podman raises nofile to 1048576 and nproc to 4194304 in every
#   container, which this machine refuses ("error setting rlimit type 7: operation not
#   permitted"); containers get the service's own hard limits instead (podman lowers its own
#   nproc limit to 32768 at start, hence the cap).
set -euo pipefail
sock=/run/berth-podman.sock
conf=/etc/containers/berth-podman.conf
here="$(cd "$(dirname "$0")/.." && pwd)"

api_up() { curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; }

if ! command -v podman >/dev/null 2>&1; then
  echo "ensure-podman: installing Debian's podman"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq podman >/dev/null
fi
if ! api_up; then
  mkdir -p /etc/containers
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
  cat >"$conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  rm -f "$sock"
  echo "ensure-podman: starting podman system service on $sock (log: /tmp/berth-podman.log)"
  # From /: conmon works in the service's directory, which must outlive whoever started it.
  (cd / && CONTAINERS_CONF="$conf" exec setsid nohup podman system service --time=0 "unix://$sock" \
    >/tmp/berth-podman.log 2>&1 </dev/null) &
  disown || true
  for _ in $(seq 1 30); do
    api_up && break
    sleep 1
  done
  if ! api_up; then
    echo "ensure-podman: the Podman API did not answer within 30 s; its log ends with:" >&2
    tail -n 30 /tmp/berth-podman.log >&2
    exit 1
  fi
fi
DOCKER_HOST="unix://$sock" bash "$here/images/build.sh" busybox httpd
