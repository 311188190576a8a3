//! Giving freed memory back to the operating system.
//!
//! Start-up replays up to two days of the journal into the compliance engine, and a backlog
//! drain after an outage judges hundreds of thousands of messages in minutes. Both allocate
//! and free far more than the engine finally keeps. glibc's allocator keeps freed memory
//! inside its heap for reuse and returns only what sits at the very top, so after such a burst
//! the resident set stays hundreds of megabytes above what is in use (measured by
//! `cargo bench --bench scale`: 411 MB resident for 277 MB in use after a province's day).
//! [`release`] asks it to return every whole free page; the compliance stage calls it after
//! the rebuild and then at most once every [`PERIOD`], so a burst's leftover is given back
//! within that time; on a province's heap (10,000 stations after a day) the call takes about
//! 11 ms. Elsewhere (musl, other systems) it does nothing.

use std::time::Duration;

/// How often the compliance stage gives freed memory back.
pub const PERIOD: Duration = Duration::from_secs(600);

/// Returns the allocator's free pages to the operating system, where it can (glibc).
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and only reorganises glibc's own free lists; it
    // is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
