//! Logging: `tracing` to stderr, human format by default, JSON with `QUANTRAC_LOG_FORMAT=json`,
//! level from `RUST_LOG` (default `info`). Installed once, by `main`.
//!
//! The FTP client's trace of its control connection is never shown, whatever `RUST_LOG` says:
//! it would print the uplink's password (`PASS …`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rumqttd=off"));
    let filter = filter.add_directive(
        "suppaftp::async_ftp::tokio_ftp::control=debug"
            .parse()
            .expect("a valid directive"),
    );
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

/// What `f` logs (human format, no colours), for unit tests of what a failure says.
#[cfg(test)]
pub fn logged(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).expect("logs are UTF-8")
}
