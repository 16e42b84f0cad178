#!/usr/bin/env bash
# Installs the Debian packages Tessera needs that this machine lacks, and nothing else: present
# packages are never upgraded. `--test` adds what the test suite drives (PostgreSQL, Chromium,
# docker-compose to validate docker-compose.yml).
# Works as root (CI, containers) and as a normal user (through sudo, only when something is missing).
set -euo pipefail

missing=()
need() { # need <package> <test command...>
  local package=$1
  shift
  "$@" >/dev/null 2>&1 || missing+=("$package")
}
need softhsm2 command -v softhsm2-util
need build-essential command -v g++
need build-essential command -v make
need python3 command -v python3
if [ "${1:-}" = "--test" ]; then
  need postgresql compgen -G '/usr/lib/postgresql/*/bin/initdb'
  need chromium command -v chromium
  need docker-compose command -v docker-compose # validates docker-compose.yml (no engine needed)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: nothing to install"
  exit 0
fi
# Deduplicated, in order.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
echo "system packages: installing ${missing[*]}"

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "system packages: run as root or install sudo to install: ${missing[*]}" >&2; exit 1; }
  as_root=(sudo)
fi
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade "${missing[@]}" >/dev/null
