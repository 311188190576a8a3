//! Loopback ports for the servers a test starts.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A port nobody listens on right now, never the same twice in one process.
///
/// Ports come from a counter below Linux's ephemeral range (32768+), so a port handed to one
/// server cannot be given by the OS to another test's `bind(0)` or outgoing connection in the
/// moment before that server binds it.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 200) as u16 * 50,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits (at most 20 s) until something accepts connections on `127.0.0.1:port`; panics
/// naming `what` otherwise.
pub fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            panic!("{what} did not listen on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
