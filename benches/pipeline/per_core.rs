//! Part 1, per core: decode alone, then decode + verdict, on one thread with no I/O.

use std::hint::black_box;
use std::time::{Duration, Instant};

use quantrac::compliance::{Catalogue, Engine};
use quantrac::config::Stations;

use crate::procfs::thread_cpu;
use crate::report::{fmt_rate, rate, target, Summary};
use crate::sizes::Sizes;
use crate::workload::{decoder, stations, Message, Workload};
use crate::{CORE_START_MS, PARK_STATIONS, TARGET_CORE, TZ};

/// One timed single-thread pass.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pass {
    pub(crate) readings: u64,
    pub(crate) messages: u64,
    pub(crate) wall: Duration,
    pub(crate) cpu: Duration,
    /// Window points emitted (verdict passes only).
    pub(crate) averages: u64,
    /// The engine's timer within the pass: calls and time spent.
    pub(crate) ticks: u64,
    pub(crate) tick_time: Duration,
    /// One timer call after the pass, with every window of the pass held.
    pub(crate) last_tick: Duration,
}

impl Pass {
    pub(crate) fn wall_rate(&self) -> f64 {
        rate(self.readings, self.wall)
    }

    /// Readings per second of this thread's own CPU time: the per-core figure, unaffected by
    /// other work on the machine.
    pub(crate) fn cpu_rate(&self) -> f64 {
        rate(
            self.readings,
            if self.cpu.is_zero() {
                self.wall
            } else {
                self.cpu
            },
        )
    }
}

pub(crate) struct Core {
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
    pub(crate) stations: u32,
    pub(crate) decode_all: Pass,
    pub(crate) decode_json: Pass,
    pub(crate) decode_tab: Pass,
    pub(crate) verdict: Pass,
}

pub(crate) fn per_core(sizes: &Sizes) -> anyhow::Result<Core> {
    let replicas = sizes.replicas();
    let work = Workload::generate(
        replicas,
        sizes.core_messages,
        CORE_START_MS,
        sizes.spacing_ms(),
    )?;
    let stations = stations(replicas, sizes.spacing_s)?;
    let best = |passes: Vec<Pass>| {
        passes
            .into_iter()
            .min_by_key(|p| p.cpu.max(Duration::from_nanos(1)))
            .unwrap_or_default()
    };

    let all: Vec<&Message> = work.messages.iter().collect();
    let json = work.json();
    let tab = work.tab();
    let run = |msgs: &[&Message]| -> anyhow::Result<Pass> {
        let mut passes = Vec::new();
        for _ in 0..sizes.passes {
            passes.push(decode_pass(msgs)?);
        }
        Ok(best(passes))
    };
    let decode_all = run(&all)?;
    let decode_json = run(&json)?;
    let decode_tab = run(&tab)?;
    let mut passes = Vec::new();
    for _ in 0..sizes.passes {
        passes.push(verdict_pass(&work.messages, &stations)?);
    }
    Ok(Core {
        messages: work.messages.len(),
        bytes: work.bytes(),
        stations: replicas * PARK_STATIONS,
        decode_all,
        decode_json,
        decode_tab,
        verdict: best(passes),
    })
}

pub(crate) fn decode_pass(msgs: &[&Message]) -> anyhow::Result<Pass> {
    let mut decoder = decoder()?;
    let mut readings = 0u64;
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    for m in msgs {
        let decoded = decoder.decode(&m.topic, &m.payload, m.ts_ms + 1000);
        readings += decoded.readings.len() as u64;
        black_box(decoded);
    }
    Ok(Pass {
        readings,
        messages: msgs.len() as u64,
        wall: t0.elapsed(),
        cpu: thread_cpu().saturating_sub(cpu0),
        ..Pass::default()
    })
}

/// Decode then judge every message, received one second after its time (live traffic). The
/// engine's timer (`tick`: closes windows, forgets those beyond the late-data horizon) runs
/// once per second of wall time, as the compliance stage runs it, and is timed on its own:
/// its cost grows with the windows held, not with the message rate.
pub(crate) fn verdict_pass(msgs: &[Message], stations: &Stations) -> anyhow::Result<Pass> {
    let mut decoder = decoder()?;
    let mut engine = Engine::new(stations.clone(), &Catalogue::builtin(), TZ);
    let mut readings = 0u64;
    let mut averages = 0u64;
    let mut ticks = 0u64;
    let mut tick_time = Duration::ZERO;
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let mut next_tick = t0 + Duration::from_secs(1);
    for m in msgs {
        let received = m.ts_ms + 1000;
        let decoded = decoder.decode(&m.topic, &m.payload, received);
        readings += decoded.readings.len() as u64;
        let (judged, points) = engine.judge(decoded.readings, received);
        averages += points.len() as u64;
        black_box(judged);
        if Instant::now() >= next_tick {
            let t = Instant::now();
            averages += engine.tick(received).len() as u64;
            tick_time += t.elapsed();
            ticks += 1;
            next_tick += Duration::from_secs(1);
        }
    }
    let wall = t0.elapsed();
    let cpu = thread_cpu().saturating_sub(cpu0);
    // One more tick with every window of the pass held: what the timer costs at this size.
    let t = Instant::now();
    averages += engine.tick(msgs.last().map_or(0, |m| m.ts_ms + 1000)).len() as u64;
    let last_tick = t.elapsed();
    Ok(Pass {
        readings,
        messages: msgs.len() as u64,
        wall,
        cpu,
        averages,
        ticks,
        tick_time,
        last_tick,
    })
}

impl Core {
    pub(crate) fn print(&self) {
        println!(
            "\n1. per core (one thread): {} messages from {} stations, {} readings, {:.0} bytes/message on average",
            self.messages,
            self.stations,
            self.verdict.readings,
            self.bytes as f64 / self.messages.max(1) as f64
        );
        let line = |name: &str, p: &Pass| {
            println!(
                "   {name:<28} {:>12} readings/s per core ({:>10} wall)  {:>6.2} µs/message",
                fmt_rate(p.cpu_rate()),
                fmt_rate(p.wall_rate()),
                if p.cpu.is_zero() { p.wall } else { p.cpu }.as_secs_f64() * 1e6
                    / p.messages.max(1) as f64,
            );
        };
        line("decode, all messages", &self.decode_all);
        line("decode, JSON only", &self.decode_json);
        line("decode, Circular 10 TAB only", &self.decode_tab);
        line("decode + verdict", &self.verdict);
        let v = &self.verdict;
        println!(
            "   verdict pass: {} window points emitted; timer (tick, once a second) {} calls, {:.1} ms in all; \
             one tick holding the whole pass's windows: {:.1} ms",
            v.averages,
            v.ticks,
            v.tick_time.as_secs_f64() * 1e3,
            v.last_tick.as_secs_f64() * 1e3
        );
        println!(
            "   target: decode + verdict ≥ {} readings/s per core",
            fmt_rate(TARGET_CORE)
        );
    }

    pub(crate) fn summarise(&self, s: &mut Summary) {
        s.row(
            "decode, readings/s per core",
            fmt_rate(self.decode_all.cpu_rate()),
            "",
        );
        s.row(
            "decode + verdict, readings/s per core",
            fmt_rate(self.verdict.cpu_rate()),
            &target(self.verdict.cpu_rate(), TARGET_CORE, "≥ 1,000,000"),
        );
    }
}
