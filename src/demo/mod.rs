//! The demo: a simulated Hải Phòng park publishing to an embedded MQTT broker, so
//! `quantrac demo` shows the whole pipeline on one machine with no external service, and
//! `quantrac simulate` drives a real broker for load tests and on-site demonstrations.
//!
//! - [`park`]: the stations and their permits (`stations.toml` text) — six discharge points in
//!   Đình Vũ, Nam Đình Vũ, DEEP C and Tràng Duệ.
//! - [`sim`]: what they publish at a given time — daily patterns, noise, and one of each event
//!   the service must notice: an exceedance, a calibration, a device fault, a silent station,
//!   a stuck analyser, readings it must reject; [`ALERT_TIMELINE`] says which alert each fires
//!   and when.
//! - [`broker`]: rumqttd on 127.0.0.1: one port for MQTT 3.1.1 and v5, in front of one
//!   listener per version.
//! - [`publish`]: the simulator driven against a broker with rumqttc, QoS 1, PUBACKs counted.
//!
//! - [`run`]: `quantrac demo` and `quantrac simulate`, wired from these parts and [`crate::app`].
//!
//! Nothing in the pipeline depends on this module; `cli` calls it.

mod broker;
mod park;
mod publish;
mod run;
mod sim;

pub use broker::{start_broker, start_broker_listeners, BrokerAddrs, QUIET_BROKER_LOG};
pub use park::{stations_toml, stations_toml_for, stations_toml_replicated, ALERT_TIMELINE};
pub use publish::{publish, PublishOptions, PublishReport};
pub use run::{run, simulate, DemoArgs, SimulateArgs};
pub use sim::Simulator;

/// Errors of the demo's broker and publisher.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The chosen port is taken: pick another or 0.
    #[error("port {port} on 127.0.0.1 is already in use")]
    PortInUse {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// The operating system refused a socket or a thread.
    #[error("cannot start the embedded broker: {0}")]
    Bind(#[source] std::io::Error),
    /// The broker thread started but its listener never accepted a connection.
    #[error("the embedded broker is not listening on {0}")]
    BrokerNotListening(std::net::SocketAddr),
    /// The broker URL cannot be used.
    #[error("broker URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// Publisher options that cannot work.
    #[error("simulator options: {0}")]
    Options(String),
    /// The MQTT client stopped taking requests (its event loop ended).
    #[error("MQTT client: {0}")]
    Client(String),
}
