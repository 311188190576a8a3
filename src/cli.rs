//! One function per subcommand. No pipeline logic here: `run` calls [`crate::app`], `demo` and
//! `simulate` call [`crate::demo`], the others read the configuration and the journal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::journal::checkpoint::PublicKey;
use crate::journal::Anchor;

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
    /// Walk the journal's hash chain and check it against published anchors and signed
    /// checkpoints; exit 0 only when everything holds. Opens the journal read-only.
    Verify(VerifyArgs),
    /// Per station × parameter over a period: data capture, valid data, exceeding hours and
    /// days, against the limit in force; computed from the archive and the journal after
    /// verifying them (not from InfluxDB).
    Report(ReportArgs),
    /// One station's raw records over a period, with what a third party needs to check them
    /// against an anchor or the operator's public key (`quantrac verify --export DIR`).
    Export(ExportArgs),
    /// Make an Ed25519 key pair that signs journal checkpoints (`journal.signing_key_file`).
    Keygen {
        /// Where to write the private key (PKCS#8 PEM, mode 0600); the public key goes to
        /// FILE.pub. Existing files are never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Rejected payloads kept in the journal.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Points InfluxDB refused for good (kept in the journal with its answer).
    Refused {
        #[command(subcommand)]
        action: RefusedAction,
    },
    /// The Circular 10/2021 files sent to the provincial department (`[uplink]`).
    Uplink {
        #[command(subcommand)]
        action: UplinkAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum UplinkAction {
    /// Print the file the uplink makes for a station and period, from the journal (read-only):
    /// its path below the URL's folder, then its content.
    Preview {
        #[command(flatten)]
        config: ConfigArg,
        /// park/site/station, the station id, or its uplink_code.
        #[arg(long)]
        station: String,
        /// A time in the period (RFC 3339, or local `YYYY-MM-DDTHH:MM[:SS]` or
        /// `yyyyMMddHHmmss` in stations.timezone); default: the last period that ended.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RefusedAction {
    /// Show refused points: the record they came from, InfluxDB's answer, the line sent.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Most entries to show (newest).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The journal folder to verify (a copy, for instance); default: `journal.path`. With
    /// --journal and no --config, no configuration file is read.
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// A published chain hash, RECORD_ID:HASH, that the journal must contain (repeatable).
    #[arg(long = "anchor", value_name = "ID:HASH")]
    pub anchors: Vec<Anchor>,
    /// The operator's public key (PEM, or 64 hex digits): every checkpoint must carry a valid
    /// signature by it, and the newest must cover the chain (repeatable, after a key change).
    #[arg(long = "public-key", value_name = "FILE")]
    pub public_keys: Vec<PathBuf>,
    /// The retention period deleted records must have respected; default: the configured
    /// `journal.retention_days`.
    #[arg(long, value_name = "DAYS")]
    pub retention_days: Option<u32>,
    /// The archive of pruned records; default: `journal.archive_dir`, or `archive/` in the
    /// journal folder.
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Verify an export (`quantrac export`) instead of a journal: its records against each
    /// other, the anchors and, with --public-key, the operator's signatures.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["journal", "archive", "retention_days"])]
    pub export: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The station: its id, or park/site/station.
    #[arg(long, value_name = "STATION")]
    pub station: String,
    /// Records received from this local date (YYYY-MM-DD) or RFC 3339 time on.
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Up to this date or time, exclusive.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// A new (or empty) folder for the export.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Extend the export to this record at least (so an anchor published later falls in it).
    #[arg(long, value_name = "ID")]
    pub through: Option<u64>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Start of the period: a local date YYYY-MM-DD (midnight in `stations.timezone`) or an
    /// RFC 3339 time.
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// End of the period, exclusive (same forms as --from).
    #[arg(long, value_name = "DATE")]
    pub to: String,
    #[arg(long, value_name = "PARK")]
    pub park: Option<String>,
    #[arg(long, value_name = "SITE")]
    pub site: Option<String>,
    #[arg(long, value_name = "STATION")]
    pub station: Option<String>,
    /// csv, json or html (one self-contained page, printable on A4).
    #[arg(long, default_value = "csv", value_name = "FORMAT")]
    pub format: crate::report::Format,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum DeadLetterAction {
    /// Show rejected payloads: time, topic, reasons, the payload as received, and which record
    /// a replay became.
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
        Command::Verify(v) => verify(&v),
        Command::Report(r) => report(&r),
        Command::Export(e) => export(&e),
        Command::Keygen { out } => keygen(&out),
        Command::DeadLetters { action } => match action {
            DeadLetterAction::List { config, limit } => dead_letters_list(&config, limit),
            DeadLetterAction::Replay(c) => {
                let settings = load(&c)?;
                let n = crate::app::replay_dead_letters(&settings)?;
                println!("replayed {n} dead letters");
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Refused {
            action: RefusedAction::List { config, limit },
        } => refused_list(&config, limit),
        Command::Uplink {
            action:
                UplinkAction::Preview {
                    config,
                    station,
                    at,
                },
        } => uplink_preview(&config, &station, at.as_deref()),
    }
}

/// A time given on the command line: RFC 3339, or local time in `tz`.
fn parse_time(s: &str, tz: chrono_tz::Tz) -> anyhow::Result<i64> {
    use chrono::TimeZone;
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y%m%d%H%M%S",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
    .with_context(|| {
        format!("--at {s:?}: give RFC 3339, YYYY-MM-DDTHH:MM[:SS] or yyyyMMddHHmmss")
    })?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp_millis())
        .with_context(|| format!("--at {s:?} does not exist in {tz}"))
}

fn uplink_preview(c: &ConfigArg, station: &str, at: Option<&str>) -> anyhow::Result<ExitCode> {
    let settings = load(c)?;
    let at = at
        .map(|a| parse_time(a, settings.stations.timezone))
        .transpose()?;
    let (path, content) = crate::app::uplink_preview(&settings, station, at)?;
    match content {
        Some(content) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{path}")?;
            out.write_all(&content)?;
        }
        None => println!(
            "{path}: no reading of {station} in this period, so no file is sent (uplink.send_empty is off)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn check_config(c: &ConfigArg) -> anyhow::Result<ExitCode> {
    let settings = load(c)?;
    let stations = settings.load_stations()?;
    // As `run` builds it: with `[inbox]`, the stations' uplink codes must tell them apart.
    crate::app::decoder(&settings, &stations)?;
    // With `[uplink]`, the stations sent must have codes of their own.
    if let Some(up) = &settings.uplink {
        crate::uplink::Plan::new(up, &stations, settings.stations.timezone)
            .check()
            .map_err(anyhow::Error::msg)
            .context("[uplink]")?;
    }
    let now = chrono::Utc::now().timestamp();
    for (client, tls) in [
        ("mqtt", &settings.mqtt.tls),
        ("influx", &settings.influx.tls),
    ] {
        if let Some(warning) = tls.identity().and_then(|id| id.expiry_warning(now)) {
            eprintln!("warning: {client}.cert_file: {warning}");
        }
    }
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

fn verify(v: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &v.export {
        let mut keys = Vec::new();
        for path in &v.public_keys {
            keys.push(PublicKey::load(path)?);
        }
        let report = crate::journal::export::verify_export(dir, &v.anchors, &keys);
        println!("{report}");
        return Ok(if report.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    // A regulator verifying a copy has no configuration: --journal alone is enough.
    let settings = match (&v.journal, &v.config.config) {
        (Some(_), None) => crate::config::JournalSettings::default(),
        _ => load(&v.config)?.journal,
    };
    let archive_dir = match (&v.archive, &v.journal, &v.config.config) {
        (Some(a), _, _) => a.clone(),
        (None, Some(j), None) => j.join(crate::journal::archive::DEFAULT_DIR),
        (None, _, _) => crate::journal::archive::configured_dir(&settings),
    };
    let dir = v.journal.clone().unwrap_or(settings.path);
    let days = v.retention_days.unwrap_or(settings.retention_days);
    let mut opts = crate::journal::Options {
        anchors: v.anchors.clone(),
        public_keys: Vec::new(),
        retention: Duration::from_secs(u64::from(days) * 86_400),
        archive_dir: Some(archive_dir),
    };
    for path in &v.public_keys {
        opts.public_keys.push(PublicKey::load(path)?);
    }
    let report = crate::journal::verify_with(&dir, &opts)
        .with_context(|| format!("verifying the journal in {}", dir.display()))?;
    println!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn export(a: &ExportArgs) -> anyhow::Result<ExitCode> {
    let settings = load(&a.config)?;
    let tz = settings.stations.timezone;
    let journal = &settings.journal.path;
    let archive = crate::journal::archive::configured_dir(&settings.journal);
    checked(&settings)?;
    let period = crate::report::Period::parse(&a.from, &a.to, tz).map_err(anyhow::Error::msg)?;
    let req = crate::journal::export::Request {
        station: a.station.clone(),
        from_ms: period.from_ms,
        to_ms: period.to_ms,
        from: period.from,
        to: period.to,
        through: a.through,
    };
    let m = crate::journal::export::export(
        journal,
        &archive,
        &req,
        &a.out,
        settings.journal.signing_key.as_deref(),
        chrono::Utc::now().timestamp_millis(),
    )
    .with_context(|| format!("exporting into {}", a.out.display()))?;
    println!(
        "exported records {} to {} ({} records, {} of station {}) into {}; last record {} \
         hash {}{}",
        m.first_id,
        m.last_id,
        m.records,
        m.station_records,
        m.station,
        a.out.display(),
        m.last_id,
        m.last_hash,
        if m.signature.is_some() {
            ", manifest signed"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `verify` of the configured journal and archive, as `report` and `export` need it first.
fn checked(settings: &Settings) -> anyhow::Result<crate::journal::VerifyReport> {
    let journal = &settings.journal.path;
    let opts = crate::journal::Options {
        retention: Duration::from_secs(u64::from(settings.journal.retention_days) * 86_400),
        archive_dir: Some(crate::journal::archive::configured_dir(&settings.journal)),
        ..crate::journal::Options::default()
    };
    let checked = crate::journal::verify_with(journal, &opts)
        .with_context(|| format!("verifying the journal in {}", journal.display()))?;
    if !checked.ok() {
        anyhow::bail!(
            "the evidence does not verify, so nothing is made from it:\n{checked}\n\
             (run `quantrac verify` for the details)"
        );
    }
    Ok(checked)
}

fn report(a: &ReportArgs) -> anyhow::Result<ExitCode> {
    let settings = load(&a.config)?;
    let stations = settings.load_stations()?;
    let tz = settings.stations.timezone;
    let period = crate::report::Period::parse(&a.from, &a.to, tz).map_err(anyhow::Error::msg)?;
    let journal = &settings.journal.path;
    let archive = crate::journal::archive::configured_dir(&settings.journal);
    let checked = checked(&settings)?;
    let decoder = crate::app::decoder(&settings, &stations)?;
    let filter = crate::report::Filter {
        park: a.park.clone(),
        site: a.site.clone(),
        station: a.station.clone(),
    };
    let mut builder = crate::report::Builder::new(decoder, period.clone(), filter);
    // A reading may be stamped at most minutes after its receipt: records received more than
    // an hour before the period hold none of it.
    let since = period.from_ms.saturating_sub(3_600_000);
    crate::journal::archive::history::each_record_since(journal, &archive, since, |line| {
        builder.add(&line, &stations)
    })
    .context("reading the archive and the journal")?;
    let rows = builder.rows(&stations, &crate::compliance::Catalogue::builtin(), tz);
    let report = crate::report::Report {
        period,
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        verification: crate::report::Verification {
            intact: checked.ok(),
            summary: checked.to_string(),
            head_id: checked.head.0,
            head_hash: checked.head.1.clone(),
        },
        rows,
    };
    let text = crate::report::render(&report, a.format, tz);
    match &a.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "report of {} station × parameter rows written to {} (chain head record {})",
                report.rows.len(),
                path.display(),
                report.verification.head_id
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a new private key to `out` (only the owner may read it) and its public key to
/// `out.pub`, and prints the public key.
fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    use secrecy::ExposeSecret as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let (key, pem) = crate::config::SigningKey::generate().map_err(anyhow::Error::msg)?;
    let public = PublicKey(key.public_key());
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    let create = |path: &Path, mode: u32| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| {
                format!(
                    "creating {} (an existing file is never replaced)",
                    path.display()
                )
            })
    };
    let mut private = create(out, 0o600)?;
    let mut public_file = create(&pub_path, 0o644)?;
    private
        .write_all(pem.expose_secret().as_bytes())
        .and_then(|()| private.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    public_file
        .write_all(public.to_pem().as_bytes())
        .with_context(|| format!("writing {}", pub_path.display()))?;
    println!(
        "private key: {} (keep it secret; set journal.signing_key_file to it)",
        out.display()
    );
    println!(
        "public key: {} (give it to whoever verifies the journal)",
        pub_path.display()
    );
    println!("public key (hex): {public}");
    Ok(ExitCode::SUCCESS)
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
        let mut links = String::new();
        if let Some(original) = d.replay_of {
            links.push_str(&format!(" (replay of #{original})"));
        }
        match (d.replayed, d.replayed_as) {
            (true, Some(new)) => links.push_str(&format!(" (replayed as #{new})")),
            (true, None) => links.push_str(" (replayed)"),
            _ => {}
        }
        println!("#{} {} {}{links}", d.id, time, d.topic);
        for (reason, detail) in &d.reasons {
            println!("  {reason}: {detail}");
        }
        println!("  payload ({} bytes):", d.payload.len());
        for line in readable(&d.payload).lines() {
            println!("    {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn refused_list(c: &ConfigArg, limit: usize) -> anyhow::Result<ExitCode> {
    let settings = load(c)?;
    let dir = &settings.journal.path;
    let points = crate::journal::refused_points(dir, limit)
        .with_context(|| format!("reading refused points from {}", dir.display()))?;
    if points.is_empty() {
        println!("no points refused by InfluxDB");
    }
    for p in points {
        let time = chrono::DateTime::from_timestamp_millis(p.received_at_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| p.received_at_ms.to_string());
        println!(
            "point #{} of record #{} ({} received {time})",
            p.point_id, p.msg_id, p.topic
        );
        println!("  InfluxDB: {}", p.reason);
        println!("  line: {}", p.line);
    }
    Ok(ExitCode::SUCCESS)
}

/// A payload as a person reads it: UTF-8 text as it is (a JSON payload shows as JSON, quotes
/// and all), one line per line; tabs, carriage returns and other control characters escaped
/// (`\t`, `\r`, `\u{1b}`), so the Circular 10/2021 fields stay visible. Bytes that are not
/// UTF-8 show as `\xNN`, so nothing is hidden.
pub fn readable(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push('\n'),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn payloads_read_as_text_with_control_bytes_escaped() {
        let json = br#"{"ts":"2026-11-29T14:05:00+07:00","readings":[{"param":"COD"}]}"#;
        assert_eq!(readable(json), std::str::from_utf8(json).unwrap());
        assert_eq!(
            readable(b"COD\t48.2\tmg/L\t20261129140500\t00\r\npH\t7.1"),
            "COD\\t48.2\\tmg/L\\t20261129140500\\t00\\r\npH\\t7.1"
        );
        assert_eq!(readable(b"a\xff\x00b\\"), "a\\xff\\u{0}b\\\\");
        assert_eq!(readable("nhiệt độ".as_bytes()), "nhiệt độ");
    }
}
