//! Memory and CPU time from `/proc`: CPU time, not wall time, because the machine is shared.

/// Resident set of this process, MB.
pub(crate) fn self_rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// The largest resident set this process has had, MB.
pub(crate) fn self_peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    kb as f64 / 1024.0
}

/// CPU time of the calling thread, seconds (`/proc/thread-self/schedstat`, nanoseconds).
pub(crate) fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}
