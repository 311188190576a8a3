//! Integration tests: real mosquitto, InfluxDB 1.x, victoria-metrics and the quantrac binary.

mod harness;
mod demo;
mod ingest;
mod reliability;
mod windows;
