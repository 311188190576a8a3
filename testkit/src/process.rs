//! A child process whose output is kept for failure reports.
//!
//! Its stdout and stderr are read line by line into a ring of the last lines (printed when a
//! test panics while the process is alive, streamed live with `TEST_LOG=1`) and, when asked,
//! appended to a log file that outlives the process. Dropping a [`Proc`] kills it.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines of output kept in memory.
const KEPT_LINES: usize = 2000;

/// A child process whose output is kept (last lines) for failure reports.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: Arc<Mutex<VecDeque<String>>>,
    cmd: Vec<String>,
    envs: Vec<(String, String)>,
    env_remove: Vec<String>,
    cwd: PathBuf,
    log_file: Option<PathBuf>,
}

impl Proc {
    /// Starts `cmd[0]` with the arguments `cmd[1..]` and the extra environment `envs`, in `cwd`.
    pub fn spawn(name: &str, cmd: &[String], envs: &[(String, String)], cwd: &Path) -> Proc {
        Proc::build(name, cmd, envs, cwd).start_now()
    }

    /// A process not started yet: set a log file or environment to remove, then
    /// [`Proc::start_now`].
    pub fn build(name: &str, cmd: &[String], envs: &[(String, String)], cwd: &Path) -> Proc {
        Proc {
            name: name.into(),
            child: None,
            log: Arc::new(Mutex::new(VecDeque::new())),
            cmd: cmd.to_vec(),
            envs: envs.to_vec(),
            env_remove: Vec::new(),
            cwd: cwd.to_path_buf(),
            log_file: None,
        }
    }

    /// Also append every output line to `path` (across restarts).
    pub fn log_file(mut self, path: &Path) -> Proc {
        self.log_file = Some(path.to_path_buf());
        self
    }

    /// Start without the variable `key`, whatever the test's own environment holds.
    pub fn env_remove(mut self, key: &str) -> Proc {
        self.env_remove.push(key.to_owned());
        self
    }

    pub fn start_now(mut self) -> Proc {
        self.start();
        self
    }

    fn start(&mut self) {
        let mut c = Command::new(&self.cmd[0]);
        c.args(&self.cmd[1..])
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for k in &self.env_remove {
            c.env_remove(k);
        }
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.name));
        let live = std::env::var("TEST_LOG").is_ok();
        let file = self.log_file.as_ref().map(|path| {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("{}: log file {}: {e}", self.name, path.display()));
            Arc::new(Mutex::new(f))
        });
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = self.log.clone();
            let name = self.name.clone();
            let file: Option<Arc<Mutex<File>>> = file.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if live {
                        eprintln!("[{name}] {line}");
                    }
                    if let Some(f) = &file {
                        let _ = writeln!(f.lock().unwrap(), "{line}");
                    }
                    let mut l = log.lock().unwrap();
                    l.push_back(line);
                    if l.len() > KEPT_LINES {
                        l.pop_front();
                    }
                }
            });
        }
        self.child = Some(child);
    }

    /// Kills the process (if running) and starts it again with the same command.
    pub fn restart(&mut self) {
        self.kill9();
        self.start();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit status (at most `limit`; then SIGKILL and `None`).
    pub fn sigterm(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The exit status, once the process ended by itself; `None` while it runs (or after
    /// `kill9`/`sigterm` took it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Every kept line.
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last `n` kept lines.
    pub fn tail(&self, n: usize) -> String {
        let l = self.log.lock().unwrap();
        l.iter()
            .skip(l.len().saturating_sub(n))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first kept line containing `needle`, if any yet.
    pub fn find_log(&self, needle: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }

    /// Waits (blocking, at most `limit`) for a line containing `needle`; panics with the log
    /// tail otherwise.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.find_log(needle) {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} never logged {needle:?}; log tail:\n{}",
                    self.name,
                    self.tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- {} log tail ----\n{}", self.name, self.tail(60));
        }
        self.kill9();
    }
}
