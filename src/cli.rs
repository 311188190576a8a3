//! One function per subcommand. No pipeline logic here: `run` calls [`crate::app`], `demo` and
//! `simulate` call [`crate::demo`], the others read the configuration and the journal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Settings;

const DEFAULT_CONFIG: &str = "config/quantrac.toml";

#[derive(Parser, Debug)]
#[command(
    name = "quantrac",
    version,
    about = "Environmental telemetry from MQTT to InfluxDB, checked against permit limits, with a tamper-evident journal."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArg {
    /// Configuration file (TOML). Environment variables QUANTRAC__SECTION__KEY override it.
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service.
    Run(ConfigArg),
    /// Validate the configuration and print the effective limit of every station × parameter.
    CheckConfig(ConfigArg),
    /// Everything on one machine: embedded MQTT broker, simulated Hải Phòng park, real pipeline.
    Demo(crate::demo::DemoArgs),
    /// Publish the simulated park to a real MQTT broker.
    Simulate(crate::demo::SimulateArgs),
    /// Walk the journal's hash chain; exit 0 only when the whole chain holds.
    Verify(ConfigArg),
    /// Rejected payloads kept in the journal.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeadLetterAction {
    /// Show rejected payloads: time, topic, reason, raw bytes as received.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Most entries to show (newest first).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Run dead letters through the pipeline again (after a configuration fix).
    Replay(ConfigArg),
}

pub fn main(args: Args) -> ExitCode {
    // One TLS implementation (ring) for MQTT and InfluxDB alike, chosen before any connection:
    // with none installed, rustls refuses to guess when several are compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn load(arg: &ConfigArg) -> anyhow::Result<Settings> {
    let (path, given) = match &arg.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    Ok(Settings::load(&path, given, None)?)
}

fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Run(c) => {
            let settings = load(&c)?;
            runtime()?.block_on(crate::app::run_until_signal(settings))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig(c) => check_config(&c),
        Command::Demo(d) => {
            runtime()?.block_on(crate::demo::run(d))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(s) => {
            runtime()?.block_on(crate::demo::simulate(s))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(c) => verify(&c),
        Command::DeadLetters { action } => match action {
            DeadLetterAction::List { config, limit } => dead_letters_list(&config, limit),
            DeadLetterAction::Replay(c) => {
                let settings = load(&c)?;
                let n = crate::app::replay_dead_letters(&settings)?;
                println!("replayed {n} dead letters");
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

fn check_config(c: &ConfigArg) -> anyhow::Result<ExitCode> {
    let settings = load(c)?;
    let stations = settings.load_stations()?;
    // As `run` builds it: with `[inbox]`, the stations' uplink codes must tell them apart.
    crate::app::decoder(&settings, &stations)?;
    print!(
        "{}",
        crate::compliance::limit_table(
            stations,
            &crate::compliance::Catalogue::builtin(),
            settings.stations.timezone
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(c: &ConfigArg) -> anyhow::Result<ExitCode> {
    let settings = load(c)?;
    let report = crate::journal::verify(&settings.journal.path).with_context(|| {
        format!(
            "verifying the journal in {}",
            settings.journal.path.display()
        )
    })?;
    println!("{report}");
    Ok(if report.problem.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn dead_letters_list(c: &ConfigArg, limit: usize) -> anyhow::Result<ExitCode> {
    let settings = load(c)?;
    let letters =
        crate::journal::dead_letters(&settings.journal.path, limit).with_context(|| {
            format!(
                "reading dead letters from {}",
                settings.journal.path.display()
            )
        })?;
    if letters.is_empty() {
        println!("no dead letters");
    }
    for d in letters {
        let time = chrono::DateTime::from_timestamp_millis(d.received_at_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| d.received_at_ms.to_string());
        println!(
            "#{} {} {}{}",
            d.id,
            time,
            d.topic,
            if d.replayed { " (replayed)" } else { "" }
        );
        for (reason, detail) in &d.reasons {
            println!("  {reason}: {detail}");
        }
        println!("  raw: {}", escape_bytes(&d.payload));
    }
    Ok(ExitCode::SUCCESS)
}

/// Raw bytes as received: printable ASCII as is, everything else escaped, so nothing is hidden.
fn escape_bytes(b: &[u8]) -> String {
    b.iter()
        .flat_map(|c| std::ascii::escape_default(*c))
        .map(char::from)
        .collect()
}
