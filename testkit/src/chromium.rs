//! Headless Chromium (Debian `chromium`): a page as the browser renders it, and a screenshot
//! of it, for the checks of quantrac's HTML report.

use std::path::Path;
use std::process::Command;

use crate::programs::program;

/// Chromium, headless, with a throw-away profile in `dir` (so nothing outside it is touched),
/// no sandbox (tests run in containers without user namespaces) and no network access to
/// anything but loopback.
fn chromium(dir: &Path) -> Command {
    let bin = program("chromium", "chromium");
    let mut c = Command::new(bin);
    c.arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--hide-scrollbars")
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .arg("--proxy-server=127.0.0.1:9")
        .current_dir(dir);
    c
}

fn url(page: &Path) -> String {
    format!(
        "file://{}",
        page.canonicalize().expect("the page exists").display()
    )
}

/// The DOM of `page` after Chromium has parsed and laid it out (`--dump-dom`).
pub fn dump_dom(page: &Path) -> String {
    let dir = page.parent().expect("the page is in a folder");
    let out = chromium(dir)
        .arg("--dump-dom")
        .arg(url(page))
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PNG screenshot of `page` at `width` × `height` pixels, written to `png`.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) {
    let dir = page.parent().expect("the page is in a folder");
    let out = chromium(dir)
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(url(page))
        .output()
        .expect("running chromium");
    assert!(
        out.status.success() && png.is_file(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PDF of `page` as Chromium prints it (`--print-to-pdf`, A4 from the page's `@page`).
pub fn print_to_pdf(page: &Path, pdf: &Path) {
    let dir = page.parent().expect("the page is in a folder");
    let out = chromium(dir)
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg("--no-pdf-header-footer")
        .arg(url(page))
        .output()
        .expect("running chromium");
    assert!(
        out.status.success() && pdf.is_file(),
        "chromium --print-to-pdf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
