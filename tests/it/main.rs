//! Integration tests: real mosquitto, InfluxDB 1.x, victoria-metrics and the quantrac binary.

mod demo;
mod docs;
mod harness;
mod ingest;
mod layering;
mod lifecycle;
mod reliability;
mod sink;
mod tls;
mod windows;
