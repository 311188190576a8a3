//! Headless Chromium (Debian `chromium`): a page's DOM after its scripts ran, and screenshots,
//! as a person's browser would show them.
//!
//! Each run gets a new empty profile and the flags that keep Chromium from reaching out
//! (background networking, component updates, sync), so it only talks to the page's server.
//! It runs without its sandbox, as it must under root (the test command runs as root on CI).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::programs::program;

/// How long one Chromium run may take before it is killed and the test fails.
const LIMIT: Duration = Duration::from_secs(90);

/// The Chromium binary; a test fails naming the package when it is missing.
pub struct Chromium {
    bin: PathBuf,
}

impl Chromium {
    pub fn find() -> Chromium {
        Chromium {
            bin: program("chromium", "chromium"),
        }
    }

    /// The serialised DOM of `url` once loaded (what `document.documentElement.outerHTML`
    /// gives: text is escaped as the browser holds it).
    pub fn dump_dom(&self, url: &str) -> String {
        let out = self.run(&["--dump-dom".into(), url.into()]);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// [`Chromium::dump_dom`] after the page's timers ran for `ms` of virtual time (network
    /// fetches the page makes meanwhile complete in real time): what a page that updates
    /// itself shows a while after it was opened.
    pub fn dump_dom_after(&self, url: &str, ms: u64) -> String {
        let out = self.run(&[
            format!("--virtual-time-budget={ms}"),
            "--dump-dom".into(),
            url.into(),
        ]);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A PNG screenshot of `url` at `width` × `height` CSS pixels, written to `path`.
    pub fn screenshot(&self, url: &str, path: &Path, width: u32, height: u32) {
        let _ = std::fs::remove_file(path);
        self.run(&[
            format!("--screenshot={}", path.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".into(),
            url.into(),
        ]);
        assert!(
            path.exists(),
            "chromium wrote no screenshot to {}",
            path.display()
        );
    }

    /// `url` printed to a PDF at `path`, as the browser's print dialog would (the page's
    /// `@page` rules decide the paper), without header and footer.
    pub fn print_to_pdf(&self, url: &str, path: &Path) {
        let _ = std::fs::remove_file(path);
        self.run(&[
            format!("--print-to-pdf={}", path.display()),
            "--no-pdf-header-footer".into(),
            url.into(),
        ]);
        assert!(path.exists(), "chromium wrote no PDF to {}", path.display());
    }

    fn run(&self, args: &[String]) -> Vec<u8> {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(&self.bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        // Read both pipes on threads so a chatty stderr cannot block the child.
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
            v
        });
        let err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
            v
        });
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium {args:?} did not finish within {LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = out.join().unwrap();
        let err = err.join().unwrap();
        assert!(
            status.success(),
            "chromium {args:?} failed ({status}):\n{}",
            String::from_utf8_lossy(&err)
        );
        out
    }
}

/// Width and height of a PNG, from its header.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&png[16..20]), be(&png[20..24])))
}

/// Panics unless the PNG at `path` is a `width` × `height` picture with content: its
/// compressed size is several times that of a blank page's screenshot of the same size (a
/// single-colour picture compresses to almost nothing).
pub fn assert_not_blank(chromium: &Chromium, path: &Path, width: u32, height: u32) {
    let png = std::fs::read(path).unwrap();
    assert_eq!(
        png_size(&png),
        Some((width, height)),
        "{} is not a {width}×{height} PNG",
        path.display()
    );
    let blank = path.with_extension("blank.png");
    chromium.screenshot("about:blank", &blank, width, height);
    let blank_len = std::fs::read(&blank).unwrap().len();
    assert!(
        png.len() > 8 * blank_len && png.len() > 20_000,
        "{} looks blank: {} bytes, a blank page {} bytes",
        path.display(),
        png.len(),
        blank_len
    );
}
