//! The `quantrac` binary: parses the command line, installs logging, hands over to [`cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    quantrac::telemetry::init();
    let args = quantrac::cli::Args::parse();
    quantrac::cli::main(args)
}
