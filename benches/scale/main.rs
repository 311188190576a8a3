//! Province scale (issue 10): `cargo bench --bench scale` prints each target of the issue
//! beside its measured value.
//!
//! The compliance stage — [`Engine`](quantrac::compliance::Engine), its gauges
//! ([`Events`](quantrac::compliance::events::Events) into the metrics table) and the status
//! board — runs in-process, driven exactly as `compliance::run` drives it, with wastewater
//! stations sending COD, TSS, pH, NH4, Temp and Flow once a minute and windows 1 h and 24 h.
//! Each part runs in a child process of its own (this binary again), so a resident-set figure
//! is that part's alone:
//! - `idle`: 10,000 configured stations, nothing heard: RSS, and RSS per station (and the heap
//!   in use, from a counting allocator: the resident set also holds what the allocator kept
//!   from temporary allocations, such as parsing the stations file);
//! - `day`: the same stations, then a whole day of one-minute messages backfilled (received at
//!   the end of the day, so every closed window is rewritten as late data), then an hour of
//!   live minutes with the clock ticking every second: RSS with full 1 h and 24 h windows,
//!   CPU per reading live, and `/metrics` (size and render time);
//! - `live`: 100 stations, the same day backfilled, then ten live hours: CPU per reading, to
//!   compare;
//! - `restart`: a day of readings fed to a new engine message by message, as the start-up
//!   rebuild after a crash does: its time and RSS (the engine only: reading and decoding the
//!   journal, which that start-up also does, is not in it); then the state a clean stop keeps
//!   (`compliance::state`), saved and written as the journal stage writes it;
//! - `restart-load`: a new process starting from that file, as the start-up after a clean stop
//!   does: the file read and checked, the engine loaded, the stage's first tick: its wall
//!   time and peak RSS (the restart target);
//! - `restart-crash`: the same, then the records of one `journal.state_interval_s` (10 minutes)
//!   replayed after the state, as a start after a crash just before the next keep does.
//!
//! CPU is thread CPU time (`/proc/thread-self/schedstat`), not wall time: the machine is
//! shared. The end-to-end figures (throughput against `mosquitto_sub`, journal bytes per
//! reading) are `cargo bench --bench pipeline`'s; they are listed as not measured here.
//!
//! `QUANTRAC_SCALE_STATIONS` (10,000) sets the size. Without `--bench` (under `cargo test`)
//! a small smoke run checks that every part works.

mod alloc;
mod engine;
mod procfs;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use engine::{day_of_windows, live_minutes, message, Stage, DAY0, MIN};
use quantrac::metrics::Metrics;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--part") {
        let part = args[i + 1].as_str();
        let n: usize = args[i + 2].parse().expect("a station count");
        run_part(part, n);
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    let n: usize = std::env::var("QUANTRAC_SCALE_STATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 10_000 } else { 50 });
    let small = if bench { 100 } else { 10 };
    println!("quantrac province-scale benchmark: {n} stations × 6 parameters, windows 1h + 24h");
    println!(
        "(compliance stage in-process; CPU = thread CPU time; each part in its own process)\n"
    );
    let base = child("base", 0);
    let idle = child("idle", n);
    let day = child("day", n);
    let live = child("live", small);
    let restart = child("restart", n);
    let reload = child("restart-load", n);
    let crash = child("restart-crash", n);
    std::fs::remove_dir_all(state_dir()).expect("the kept state's folder removed");
    let rss_base = base["rss_mb"];
    let per_station_kb = (idle["rss_mb"] - rss_base) * 1024.0 / n as f64;
    let per_station_heap_kb = (idle["heap_mb"] - base["heap_mb"]) * 1024.0 / n as f64;
    let cpu_small = live["cpu_us_per_reading"];
    let cpu_big = day["cpu_us_per_reading"];
    let rows: Vec<(String, String, String, Option<bool>)> = vec![
        row(
            format!("RSS after start, {n} stations"),
            "",
            format!("{:.0} MB", idle["rss_mb"]),
            None,
        ),
        row(
            "idle configured station".into(),
            "≤ 4 KB",
            format!("{per_station_kb:.2} KB resident ({per_station_heap_kb:.2} KB of heap in use)"),
            Some(per_station_kb <= 4.0),
        ),
        row(
            format!("RSS, {n} × 6 with a full day of 1-min data (1h + 24h windows)"),
            "≤ 400 MB",
            format!(
                "{:.0} MB once the stage gave freed memory back (in {:.0} ms), {:.0} MB before ({:.0} MB of heap in use; {:.1} M readings backfilled in {:.0} s CPU)",
                day["rss_day_released_mb"],
                day["release_ms"],
                day["rss_day_mb"],
                day["heap_day_mb"],
                day["readings"] / 1e6,
                day["backfill_cpu_s"]
            ),
            Some(day["rss_day_released_mb"] <= 400.0),
        ),
        row(
            format!("CPU per reading, {small} stations (live)"),
            "",
            format!("{cpu_small:.2} µs"),
            None,
        ),
        row(
            format!("CPU per reading, {n} stations (live, after the day)"),
            "≤ 1.3 × the small park",
            format!("{cpu_big:.2} µs = {:.2} ×", cpu_big / cpu_small),
            Some(cpu_big <= 1.3 * cpu_small),
        ),
        row(
            format!("/metrics at {n} stations"),
            "≤ 25 MB",
            format!("{:.1} MB, {:.0} series", day["metrics_mb"], day["series"]),
            Some(day["metrics_mb"] <= 25.0),
        ),
        row(
            "/metrics render".into(),
            "≤ 500 ms",
            format!(
                "{:.0} ms wall, {:.0} ms CPU",
                day["render_ms"], day["render_cpu_ms"]
            ),
            Some(day["render_ms"] <= 500.0),
        ),
        row(
            "series per station × parameter (max)".into(),
            "≤ 6",
            format!("{:.0}", day["max_per_param"]),
            Some(day["max_per_param"] <= 6.0),
        ),
        row(
            "series per station (max)".into(),
            "≤ 8",
            format!("{:.0}", day["max_per_station"]),
            Some(day["max_per_station"] <= 8.0),
        ),
        row(
            "restart after a clean stop: ready from the kept state".into(),
            "≤ 5 s, ≤ 400 MB",
            format!(
                "{:.2} s wall ({:.2} s CPU), peak {:.0} MB, {:.0} MB after; state {:.0} MB, kept at the stop in {:.2} s",
                reload["wall_s"],
                reload["cpu_s"],
                reload["peak_mb"],
                reload["rss_mb"],
                restart["state_mb"],
                restart["keep_s"]
            ),
            Some(reload["wall_s"] <= 5.0 && reload["peak_mb"] <= 400.0),
        ),
        row(
            format!("restart after a crash: the state kept while running, then {STATE_INTERVAL_MIN} minutes of records replayed"),
            "≤ 5 s, ≤ 400 MB",
            format!(
                "{:.2} s wall ({:.2} s CPU), peak {:.0} MB (engine only; reading and decoding those records come on top)",
                crash["wall_s"], crash["cpu_s"], crash["peak_mb"]
            ),
            Some(crash["wall_s"] <= 5.0 && crash["peak_mb"] <= 400.0),
        ),
        row(
            "restart with no kept state: engine rebuild from a day of readings".into(),
            "",
            format!(
                "{:.1} s CPU, peak {:.0} MB, {:.0} MB after (engine only; the journal read and decode come on top)",
                restart["cpu_s"], restart["peak_mb"], restart["rss_mb"]
            ),
            None,
        ),
        row(
            "throughput vs mosquitto_sub; journal bytes/reading".into(),
            "≥ 0.7 ×; stated",
            "not measured here: cargo bench --bench pipeline".into(),
            None,
        ),
    ];
    println!("| figure | target | measured | met |\n|---|---|---|---|");
    for (what, target, measured, met) in rows {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!("| {what} | {target} | {measured} | {met} |");
    }
}

fn row(
    what: String,
    target: &str,
    measured: String,
    met: Option<bool>,
) -> (String, String, String, Option<bool>) {
    (what, target.to_owned(), measured, met)
}

/// `journal.state_interval_s`'s default, in minutes: the most a start after a crash replays.
const STATE_INTERVAL_MIN: i64 = 10;

/// Where the `restart` part leaves the kept state for `restart-load` and `restart-crash`.
const STATE_DIR: &str = "QUANTRAC_SCALE_STATE_DIR";

fn state_dir() -> std::path::PathBuf {
    std::env::var_os(STATE_DIR)
        .map(Into::into)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("quantrac-scale-{}", std::process::id()))
        })
}

/// Runs one part in a child process; its `key=value` lines.
fn child(part: &str, n: usize) -> BTreeMap<String, f64> {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let out = Command::new(exe)
        .args(["--part", part, &n.to_string()])
        .env(STATE_DIR, state_dir())
        .output()
        .expect("the benchmark runs itself");
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        panic!(
            "part {part} failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn run_part(part: &str, n: usize) {
    match part {
        "base" => {
            // The process with the stage's code loaded and nothing built.
            let _m = Metrics::new();
            quantrac::memory::release();
            println!("rss_mb={}", procfs::self_rss_mb());
            println!("heap_mb={}", alloc::live() as f64 / 1048576.0);
        }
        "idle" => {
            let mut stage = Stage::new(n, Metrics::new());
            // As the stage does when it starts (see `quantrac::memory`).
            quantrac::memory::release();
            stage.tick(DAY0);
            stage.tick(DAY0 + 1000);
            println!("rss_mb={}", procfs::self_rss_mb());
            println!("heap_mb={}", alloc::live() as f64 / 1048576.0);
        }
        "day" => {
            let (mut stage, f) = day_of_windows(n);
            println!("rss_day_mb={}", procfs::self_rss_mb());
            println!("heap_day_mb={}", alloc::live() as f64 / 1048576.0);
            // What the stage's periodic release gives back (at most ten minutes later).
            let t = Instant::now();
            quantrac::memory::release();
            println!("release_ms={}", t.elapsed().as_secs_f64() * 1000.0);
            println!("rss_day_released_mb={}", procfs::self_rss_mb());
            println!("readings={}", f.readings);
            println!("backfill_cpu_s={}", f.backfill_cpu_s);
            let end = DAY0 + 24 * 60 * MIN;
            let (readings, cpu) = live_minutes(&mut stage, end, 60);
            println!("cpu_us_per_reading={}", cpu * 1e6 / readings as f64);
            let (cpu0, t) = (procfs::thread_cpu(), Instant::now());
            let text = stage.metrics.render();
            println!("render_ms={}", t.elapsed().as_secs_f64() * 1000.0);
            println!("render_cpu_ms={}", (procfs::thread_cpu() - cpu0) * 1000.0);
            println!("metrics_mb={}", text.len() as f64 / 1e6);
            let series: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("quantrac_") && l.contains("station=\""))
                .collect();
            println!("series={}", series.len());
            let mut per_param: BTreeMap<(&str, &str), usize> = BTreeMap::new();
            let mut per_station: BTreeMap<&str, usize> = BTreeMap::new();
            for l in &series {
                let station = label(l, "station");
                match l.contains("param=\"") {
                    true => *per_param.entry((station, label(l, "param"))).or_default() += 1,
                    false => *per_station.entry(station).or_default() += 1,
                }
            }
            println!(
                "max_per_param={}",
                per_param.values().max().copied().unwrap_or(0)
            );
            println!(
                "max_per_station={}",
                per_station.values().max().copied().unwrap_or(0)
            );
        }
        "live" => {
            // The same state as the big park's: a day of windows, then live hours.
            let (mut stage, _) = day_of_windows(n);
            let end = DAY0 + 24 * 60 * MIN;
            let (readings, cpu) = live_minutes(&mut stage, end, 600);
            println!("cpu_us_per_reading={}", cpu * 1e6 / readings as f64);
        }
        "restart" => {
            let mut stage = Stage::new(n, Metrics::new());
            let now = DAY0 + 24 * 60 * MIN;
            let cpu0 = procfs::thread_cpu();
            for minute in 0..24 * 60 {
                let ts = DAY0 + minute * MIN;
                for i in 0..n {
                    let key = stage.keys[i].clone();
                    stage
                        .engine
                        .restore_part(message(&key, ts, minute as u64 * 7 + i as u64), now);
                }
            }
            stage.engine.restore_done(now);
            // As the stage does when it starts (see `quantrac::memory`).
            quantrac::memory::release();
            stage.tick(now);
            println!("cpu_s={}", procfs::thread_cpu() - cpu0);
            println!("rss_mb={}", procfs::self_rss_mb());
            println!("peak_mb={}", procfs::self_peak_rss_mb());
            // The clean stop: the stage saves its state, the journal stage writes it.
            let started = Instant::now();
            let state = quantrac::pipeline::EngineState {
                fingerprint: stage.engine.fingerprint(),
                bytes: stage.engine.save_state(),
            };
            let dir = state_dir();
            std::fs::create_dir_all(&dir).expect("a folder for the state");
            quantrac::journal::engine_state::write(&dir, 1, [0; 32], now, &state)
                .expect("the state written");
            println!("keep_s={}", started.elapsed().as_secs_f64());
            println!("state_mb={}", state.bytes.len() as f64 / 1048576.0);
        }
        "restart-load" | "restart-crash" => {
            let started = Instant::now();
            let cpu0 = procfs::thread_cpu();
            let mut now = DAY0 + 24 * 60 * MIN;
            let dir = state_dir();
            let saved = quantrac::journal::engine_state::read(&dir)
                .expect("the kept state reads")
                .expect("the restart part kept a state");
            let mut stage = Stage::new(n, Metrics::new());
            assert_eq!(saved.state.fingerprint, stage.engine.fingerprint());
            stage
                .engine
                .load_state(&saved.state.bytes, now)
                .expect("the state loads");
            drop(saved);
            if part == "restart-crash" {
                // A crash just before the next keep: the records of a whole state interval
                // (`journal.state_interval_s`, 10 minutes) are replayed after the state.
                for minute in 0..STATE_INTERVAL_MIN {
                    let ts = now + minute * MIN;
                    for i in 0..n {
                        let key = stage.keys[i].clone();
                        let m = message(&key, ts, minute as u64 * 11 + i as u64);
                        stage.engine.restore_part(m, ts + MIN);
                    }
                }
                now += STATE_INTERVAL_MIN * MIN;
            }
            stage.engine.restore_done(now);
            quantrac::memory::release();
            stage.tick(now);
            println!("wall_s={}", started.elapsed().as_secs_f64());
            println!("cpu_s={}", procfs::thread_cpu() - cpu0);
            println!("rss_mb={}", procfs::self_rss_mb());
            println!("peak_mb={}", procfs::self_peak_rss_mb());
        }
        "breakdown" | "idle-breakdown" => {
            // Live heap bytes of each part of the stage (a counting allocator), after the day
            // or idle.
            let stage = if part == "breakdown" {
                day_of_windows(n).0
            } else {
                let mut stage = Stage::new(n, Metrics::new());
                stage.tick(DAY0);
                stage
            };
            let Stage {
                engine,
                events,
                board,
                metrics,
                keys,
                ..
            } = stage;
            let mut last = alloc::live();
            let mut step = |what: &str| {
                let now = alloc::live();
                println!(
                    "{what}_kb_per_station={}",
                    (last - now) as f64 / 1024.0 / n as f64
                );
                last = now;
            };
            drop(board);
            step("board");
            drop(events);
            drop(metrics);
            step("metrics");
            drop(engine);
            step("engine");
            drop(keys);
            step("keys");
        }
        other => panic!("no part {other}"),
    }
}

fn label<'a>(line: &'a str, name: &str) -> &'a str {
    let pat = format!("{name}=\"");
    line.split_once(&pat)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("", |(v, _)| v)
}
