#!/bin/sh
# Runs once, right after the InfluxDB 2 container's first-start setup. Grafana's dashboards speak
# InfluxQL, which InfluxDB 2 answers only through a DBRP mapping (database/retention policy ->
# bucket). Map database "quantrac", retention policy "autogen", to the quantrac bucket.
set -e
influx v1 dbrp create \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db quantrac \
  --rp autogen \
  --default \
  --org "${DOCKER_INFLUXDB_INIT_ORG}"
