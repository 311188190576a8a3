//! vsftpd, the FTP server a park runs for dataloggers that push Circular 10/2021 files, and
//! [`Ftp::upload`], a datalogger pushing one (Python's standard `ftplib`, as a script on the
//! logger would).
//!
//! The server runs on a free loopback port with a local user, [`FTP_USER`], whose FTP root is
//! the given inbox folder (`local_root`, chrooted), as the README sets it up. The user is a
//! real system account (vsftpd authenticates local users through PAM): it is created once, the
//! first time a test needs it, which takes root (the tests run as root to install their
//! servers anyway). vsftpd enters the account's home before its `local_root`, so the home is a
//! real, empty folder ([`FTP_HOME`]); each server's `local_root` makes its own inbox the
//! user's FTP root, so tests running side by side share the account, not a folder. Files are
//! written with umask 022, readable by quantrac.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::ports::{free_port, wait_port};
use crate::process::Proc;
use crate::programs::program;

/// The datalogger's FTP account.
pub const FTP_USER: &str = "quantrac-ftp";
/// Its password (a test account on loopback only).
pub const FTP_PASSWORD: &str = "datalogger-5min";
/// Its home folder: vsftpd changes into it at login, before the server's `local_root`.
pub const FTP_HOME: &str = "/var/lib/quantrac-ftp";

/// A running vsftpd; its files (configuration, log) in `<dir>/vsftpd`.
pub struct Ftp {
    pub port: u16,
    pub proc: Proc,
    /// Where uploads land (the FTP user's root).
    pub inbox: PathBuf,
    /// vsftpd's log: every command (`log_ftp_protocol`), so the order of uploads and renames.
    pub log: PathBuf,
}

/// How a datalogger delivers a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upload {
    /// `STOR name`: the file grows under its final name while it is sent.
    Plain,
    /// `STOR name.tmp`, then `RNFR`/`RNTO` to the final name once complete (the safe way).
    ThenRename,
}

const CLIENT: &str = r#"
import ftplib, sys
port, user, password, remote, local, mode = sys.argv[1:7]
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", int(port), timeout=20)
ftp.login(user, password)
folders = remote.split("/")[:-1]
for i in range(len(folders)):
    try:
        ftp.mkd("/".join(folders[: i + 1]))
    except ftplib.error_perm:
        pass  # exists
with open(local, "rb") as f:
    if mode == "rename":
        ftp.storbinary("STOR " + remote + ".tmp", f)
        ftp.rename(remote + ".tmp", remote)
    else:
        ftp.storbinary("STOR " + remote, f)
ftp.quit()
"#;

impl Ftp {
    /// Starts vsftpd serving `inbox` (created, given to [`FTP_USER`]) with its own files in
    /// `dir/vsftpd`.
    pub fn start(dir: &Path, inbox: &Path) -> Ftp {
        Ftp::start_with(dir, inbox, "")
    }

    /// [`Ftp::start`] requiring explicit TLS (`AUTH TLS`) on the control and data connections,
    /// with this certificate and key (PEM).
    pub fn start_tls(dir: &Path, inbox: &Path, cert: &Path, key: &Path) -> Ftp {
        Ftp::start_with(
            dir,
            inbox,
            &format!(
                "ssl_enable=YES\nrsa_cert_file={}\nrsa_private_key_file={}\n\
                 force_local_logins_ssl=YES\nforce_local_data_ssl=YES\n\
                 ssl_tlsv1=NO\nssl_sslv2=NO\nssl_sslv3=NO\n",
                cert.display(),
                key.display()
            ),
        )
    }

    /// [`Ftp::start`] with more lines of `vsftpd.conf`.
    fn start_with(dir: &Path, inbox: &Path, conf_extra: &str) -> Ftp {
        let uid = ensure_user();
        let bin = program("vsftpd", "vsftpd");
        let data = dir.join("vsftpd");
        let empty = data.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o555)).unwrap();
        std::fs::create_dir_all(inbox).unwrap();
        std::os::unix::fs::chown(inbox, Some(uid), None).unwrap();
        // vsftpd enters the user's root with the user's rights: every folder above it must
        // let the user pass (temporary folders are 0700).
        for ancestor in inbox.ancestors().skip(1) {
            if ancestor == Path::new("/") {
                break;
            }
            let mode = std::fs::metadata(ancestor).unwrap().permissions().mode();
            if mode & 0o001 == 0 {
                std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(mode | 0o711))
                    .unwrap();
            }
        }
        let port = free_port();
        let passive: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let conf = data.join("vsftpd.conf");
        std::fs::write(
            &conf,
            format!(
                "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
                 background=NO\nanonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\n\
                 local_umask=022\nlocal_root={inbox}\nchroot_local_user=YES\n\
                 allow_writeable_chroot=YES\nsecure_chroot_dir={empty}\npam_service_name=vsftpd\n\
                 pasv_enable=YES\npasv_address=127.0.0.1\npasv_min_port={pmin}\npasv_max_port={pmax}\n\
                 connect_from_port_20=NO\nseccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n\
                 xferlog_enable=YES\nvsftpd_log_file={log}\nlog_ftp_protocol=YES\n{conf_extra}",
                inbox = inbox.display(),
                empty = empty.display(),
                pmin = passive.iter().min().unwrap(),
                pmax = passive.iter().max().unwrap(),
                log = data.join("vsftpd.log").display(),
            ),
        )
        .unwrap();
        let proc = Proc::spawn(
            "vsftpd",
            &[bin.display().to_string(), conf.display().to_string()],
            &[],
            dir,
        );
        wait_port(port, "vsftpd");
        Ftp {
            port,
            proc,
            inbox: inbox.to_path_buf(),
            log: data.join("vsftpd.log"),
        }
    }

    /// Stops the server (SIGKILL): the port refuses connections until [`Ftp::restart`].
    pub fn stop(&mut self) {
        self.proc.kill9();
    }

    /// Starts the server again, on the same port with the same configuration.
    pub fn restart(&mut self) {
        self.proc.restart();
        wait_port(self.port, "vsftpd");
    }

    /// The final names (`RNTO` commands vsftpd answered with 250), in the order they were
    /// renamed, as paths below the FTP root.
    pub fn renamed(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = Vec::new();
        let mut pending: Option<String> = None;
        for line in text.lines() {
            if let Some(i) = line.find("\"RNTO ") {
                let name = line[i + 6..].trim_end_matches('"').to_string();
                pending = Some(name);
            } else if line.contains("\"250 Rename successful.\"") {
                if let Some(name) = pending.take() {
                    out.push(name.trim_start_matches('/').to_string());
                }
            }
        }
        out
    }

    /// Uploads `content` as `remote` (a path in the inbox; folders are made as needed), as a
    /// datalogger does: logs in, sends, logs out. Panics with the client's output on failure.
    pub fn upload(&self, remote: &str, content: &[u8], how: Upload) {
        let local = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(local.path(), content).unwrap();
        let python = program("python3", "python3");
        let out = Command::new(python)
            .args(["-c", CLIENT])
            .arg(self.port.to_string())
            .args([FTP_USER, FTP_PASSWORD, remote])
            .arg(local.path())
            .arg(match how {
                Upload::Plain => "plain",
                Upload::ThenRename => "rename",
            })
            .output()
            .expect("running python3");
        assert!(
            out.status.success(),
            "FTP upload of {remote} failed: {}{}\nvsftpd: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.proc.tail(20)
        );
    }
}

/// The uid of [`FTP_USER`], created (with [`FTP_PASSWORD`] and a login shell, as PAM wants)
/// when missing.
fn ensure_user() -> u32 {
    static ONCE: Mutex<Option<u32>> = Mutex::new(None);
    let mut known = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(uid) = *known {
        return uid;
    }
    let uid = || -> Option<u32> {
        let out = Command::new("id").args(["-u", FTP_USER]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    std::fs::create_dir_all(FTP_HOME).expect("making the FTP user's home (as root)");
    std::fs::set_permissions(FTP_HOME, std::fs::Permissions::from_mode(0o755)).unwrap();
    if uid().is_none() {
        let useradd = program("useradd", "passwd");
        let made = Command::new(useradd)
            .args([
                "--system",
                "--no-create-home",
                "--home-dir",
                FTP_HOME,
                "--shell",
                "/bin/sh",
                FTP_USER,
            ])
            .status()
            .expect("running useradd");
        // Another test process may have made it meanwhile.
        assert!(
            made.success() || uid().is_some(),
            "cannot create the FTP test user {FTP_USER}: the vsftpd tests run as root"
        );
    }
    let home = Command::new("getent")
        .args(["passwd", FTP_USER])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split(':')
                .nth(5)
                .map(str::to_owned)
        })
        .ok()
        .flatten();
    if home.as_deref() != Some(FTP_HOME) {
        let usermod = program("usermod", "passwd");
        let moved = Command::new(usermod)
            .args(["--home", FTP_HOME, FTP_USER])
            .status()
            .expect("running usermod");
        assert!(moved.success(), "usermod --home {FTP_HOME} {FTP_USER}");
    }
    let chpasswd = program("chpasswd", "passwd");
    let mut child = Command::new(chpasswd)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("running chpasswd");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{FTP_USER}:{FTP_PASSWORD}").unwrap();
    }
    assert!(child.wait().unwrap().success(), "chpasswd {FTP_USER}");
    let id = uid().expect("the FTP user exists");
    *known = Some(id);
    id
}
