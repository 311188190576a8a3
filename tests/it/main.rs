//! Integration tests: real mosquitto, InfluxDB 1.x, victoria-metrics and the quantrac binary,
//! started by `quantrac-testkit` (the `testkit/` folder).

mod archive;
mod demo;
mod docs;
mod evidence;
mod export;
mod hostile;
mod inbox;
mod ingest;
mod layering;
mod lifecycle;
mod readme;
mod reliability;
mod report;
mod sink;
mod status_page;
mod tls;
mod uplink;
mod windows;

/// The quantrac binary cargo built for these tests.
const QUANTRAC: &str = env!("CARGO_BIN_EXE_quantrac");
