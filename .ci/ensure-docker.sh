#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io and start dockerd when needed.
set -euo pipefail

engine_up() { docker info >/dev/null 2>&1 || curl -sf --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1; }

if engine_up; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
echo "ensure-docker: starting dockerd (log: /tmp/berth-dockerd.log)"
# A session of its own: the engine outlives the shell (and process group) that started it.
setsid nohup dockerd >/tmp/berth-dockerd.log 2>&1 </dev/null &
disown || true
for _ in $(seq 1 60); do
  if engine_up; then
    echo "ensure-docker: engine is up"
    exit 0
  fi
  sleep 1
done
echo "ensure-docker: dockerd did not answer within 60 s; its log ends with:" >&2
tail -n 30 /tmp/berth-dockerd.log >&2
exit 1
