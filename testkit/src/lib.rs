//! Test support for quantrac: the real servers its tests, deployment checks and benchmark run
//! against, the quantrac process itself, and the fixtures they share. One place, so a broker
//! configured for the tests is the broker the benchmark measures, and the stations a unit test
//! judges are the stations the integration tests publish to.
//!
//! - [`certs`] — [`Pki`]: a private CA with server, client and expired certificates (openssl).
//! - [`chromium`] — [`Chromium`]: headless Chromium's DOM of a page, its screenshots and a printed PDF.
//! - [`ports`] — [`free_port`], [`wait_port`]: loopback ports for servers started here.
//! - [`programs`] — [`program`], [`run`]: a required program, or a failure naming its Debian
//!   package (a skipped check would let a broken file ship unnoticed).
//! - [`process`] — [`Proc`]: a child process whose output is kept (and shown on failure),
//!   killed on drop, with `sigterm`, `kill9` and `restart` for shutdown and crash tests.
//! - [`wait`] — [`eventually`]: polls against a deadline, never `sleep` then assert.
//! - [`mosquitto`] — [`Broker`]: mosquitto with persistence, as the README configures it.
//! - [`influx`] — [`Influx1`]: InfluxDB 1.x (`influxd`) with the v1 write and query API.
//! - [`victoria`] — [`Victoria`]: victoria-metrics, a real server for the v2 write API.
//! - [`vsftpd`] — [`Ftp`]: vsftpd with a local user whose FTP root is an inbox folder, and
//!   [`Ftp::upload`], a datalogger pushing a Circular 10/2021 file with Python's `ftplib`.
//! - [`runner`] — [`Quantrac`]: the real binary (its path is passed in: only an integration
//!   test or a benchmark knows `env!("CARGO_BIN_EXE_quantrac")`), and [`Stack`], the usual
//!   broker + InfluxDB + quantrac.
//! - [`publisher`] — [`Publisher`]: a QoS 1 MQTT client that counts PUBACKs.
//! - [`metrics`] — [`parse_metric`]: one sample out of a Prometheus scrape.
//! - [`fixtures`] — the contract's example stations ([`fixtures::CONTRACT_STATIONS`], which the
//!   quantrac crate's unit tests use too, and [`STATIONS`] built from it) and payloads.
//!
//! Every server runs on loopback in a folder the caller owns, so a test can kill and restart
//! any part; `TEST_LOG=1` streams every process's output live.

pub mod certs;
pub mod chromium;
pub mod fixtures;
pub mod influx;
pub mod metrics;
pub mod mosquitto;
pub mod ports;
pub mod process;
pub mod programs;
pub mod publisher;
pub mod runner;
pub mod victoria;
pub mod vsftpd;
pub mod wait;

pub use certs::Pki;
pub use chromium::Chromium;
pub use fixtures::{json_message, STATIONS};
pub use influx::{Https, Influx1};
pub use metrics::parse_metric;
pub use mosquitto::{Broker, BrokerOpts};
pub use ports::{free_port, wait_port};
pub use process::Proc;
pub use programs::{program, run};
pub use publisher::Publisher;
pub use runner::{announced_http, Quantrac, Stack};
pub use victoria::Victoria;
pub use vsftpd::{Ftp, Upload};
pub use wait::eventually;
