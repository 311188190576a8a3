#!/usr/bin/env bash
# The pipeline benchmark: per-core decode and verdict, then publishers → mosquitto → quantrac →
# InfluxDB 1.x on this machine. Prints figures, asserts no speed, exits non-zero when a part
# could not be measured. Needs mosquitto and influxd 1.x installed (not running: the benchmark
# starts its own on free loopback ports).
#
# Sizes (environment, defaults in benches/pipeline/sizes.rs):
#   QUANTRAC_BENCH_STATIONS=200        stations (whole copies of the 6-station demo park)
#   QUANTRAC_BENCH_CORE_MESSAGES=60000 per-core workload
#   QUANTRAC_BENCH_LIVE_MESSAGES=50000 published while quantrac runs
#   QUANTRAC_BENCH_MESSAGES=100000     queued backlog for each drain
#   QUANTRAC_BENCH_PUBLISHERS=4        concurrent MQTT publishers
#   QUANTRAC_BENCH_SPACING_S=300       time between two messages of one station
#   QUANTRAC_BENCH_TIMEOUT_S=120       longest wait for any phase
#   QUANTRAC_BENCH_E2E=0               no end-to-end part (2)
#   QUANTRAC_BENCH_PROVINCE=0          no province-scale part (3)
#   QUANTRAC_BENCH_PROVINCE_STATIONS=10000    generated wastewater stations of part 3
#   QUANTRAC_BENCH_VERSUS_MESSAGES=50000      one-reading messages, to mosquitto_sub and to quantrac
#   QUANTRAC_BENCH_PROVINCE_MESSAGES=50000    six-reading messages
#   QUANTRAC_BENCH_PROVINCE_PUBLISHERS=10     concurrent MQTT publishers of part 3
#   QUANTRAC_BENCH_KEEP=1              keep the temporary folder (logs, journals)
set -euo pipefail
cd "$(dirname "$0")/.."

for p in mosquitto mosquitto_sub influxd; do
  if ! command -v "$p" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$p" ] \
    && { [ "${QUANTRAC_BENCH_E2E:-1}" != 0 ] || [ "${QUANTRAC_BENCH_PROVINCE:-1}" != 0 ]; }; then
    echo "missing: $p (apt-get install mosquitto mosquitto-clients influxdb), or set QUANTRAC_BENCH_E2E=0 QUANTRAC_BENCH_PROVINCE=0" >&2
    exit 1
  fi
done
exec cargo bench --bench pipeline "$@"
