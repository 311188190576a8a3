#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the servers the tests start (as root, when
# missing), then format and lint checks, then every test (unit, integration, deploy files).
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
need=()
have mosquitto || need+=(mosquitto)
have mosquitto_pub || need+=(mosquitto-clients)
have influxd || need+=(influxdb)
have influx || need+=(influxdb-client)
have victoria-metrics || need+=(victoria-metrics)
have promtool || need+=(prometheus)
have amtool || need+=(prometheus-alertmanager)
have openssl || need+=(openssl)
have vsftpd || need+=(vsftpd)
have python3 || need+=(python3)
# The archive test makes a virtualenv (DuckDB from PyPI) with python3's venv module.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
# The README's shell blocks (tests/it/readme.rs): curl, and `ip` for a network namespace's loopback.
have curl || need+=(curl)
have ip || need+=(iproute2)
# Headless Chromium loads the status page as a person's browser would (tests/it/status_page.rs),
# and the report's HTML page (tests/it/report.rs).
have chromium || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${need[*]} — run as root, or: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --workspace: quantrac and its test-support crate (testkit/).
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --lib --bins --tests --locked
