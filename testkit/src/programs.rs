//! Programs the tests need. A missing one fails the test and names the Debian package that
//! provides it: never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where `name` is installed: the sbin and bin folders Debian uses, then `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Some(p);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Path of a required program, or a panic naming its Debian package.
pub fn program(name: &str, package: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| {
        panic!("`{name}` not found: install the Debian package `{package}` (the README's test command does)")
    })
}

/// Runs a required program to completion in `dir`: its exit status and output.
pub fn run(name: &str, package: &str, args: &[&str], dir: &Path) -> Output {
    let bin = program(name, package);
    Command::new(&bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}
