//! CPU time and memory from `/proc`.

use std::collections::BTreeMap;
use std::time::Duration;

/// Clock ticks per second in `/proc/*/stat` (100 on every Linux this runs on).
const CLK_TCK: f64 = 100.0;

/// CPU time of the calling thread (`/proc/thread-self/schedstat`, nanoseconds on the CPU).
pub(crate) fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// User + system CPU seconds of a whole process, its finished threads included.
pub(crate) fn process_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / CLK_TCK
}

/// Busy CPU seconds of the whole machine since boot (`/proc/stat`: all but idle and iowait).
pub(crate) fn machine_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    line.split_whitespace()
        .skip(1)
        .enumerate()
        .filter(|(i, _)| !matches!(i, 3 | 4))
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        // user, nice, system, irq, softirq, steal (guest time is already in user and nice)
        .take(6)
        .sum::<f64>()
        / CLK_TCK
}

/// CPU seconds of each live thread of `pid`, summed by thread name.
pub(crate) fn thread_cpu_by_name(pid: u32) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        *out.entry(name.trim().to_owned()).or_insert(0.0) += ns / 1e9;
    }
    out
}

/// `VmHWM` of a process: its peak resident set, kB.
pub(crate) fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
