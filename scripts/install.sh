#!/usr/bin/env bash
# Install pydockerd and start it on /var/run/docker.sock (or the -H given in $PYDOCKERD_ARGS).
# Fresh Debian 12 machine, as root.  Usage: bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "pydockerd needs root (namespaces, mounts, cgroups): run this as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Runtime needs of the engine: nothing beyond Python and the kernel today;
# libseccomp2 and iptables are used as soon as seccomp and port publishing land.
# tini: its static build is bind-mounted as /sbin/docker-init for `docker run --init`.
# git: `docker build` with a git repository as `remote` fetches it with the host's git.
apt-get install -y -qq --no-install-recommends libseccomp2 iptables ca-certificates tini git >/dev/null

python3 -m pip install --quiet .

LOG=${PYDOCKERD_LOG:-/var/log/pydockerd.log}
PIDFILE=/var/run/pydockerd.pid
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "pydockerd is already running (pid $(cat "$PIDFILE"))"
  exit 0
fi
# shellcheck disable=SC2086
nohup pydockerd ${PYDOCKERD_ARGS:-} >>"$LOG" 2>&1 &
for _ in $(seq 1 100); do
  if [ -S /var/run/docker.sock ] && docker version >/dev/null 2>&1; then
    echo "pydockerd is running (pid $(cat $PIDFILE)); log: $LOG"
    exit 0
  fi
  sleep 0.1
done
echo "pydockerd did not come up; see $LOG" >&2
tail -20 "$LOG" >&2
exit 1
