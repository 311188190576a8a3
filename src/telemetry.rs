//! Logging: `tracing` to stderr, human format by default, JSON with `QUANTRAC_LOG_FORMAT=json`,
//! level from `RUST_LOG` (default `info`). Installed once, by `main`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rumqttd=off"));
    let json = std::env::var("QUANTRAC_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
