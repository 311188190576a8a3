//! The inbox's file-system work, blocking (the driver runs it with `spawn_blocking`): listing
//! the folder, reading a file, moving a file out.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::watch::{is_upload_name, Listed};
use crate::pipeline::{Oversize, EXCERPT_BYTES};

/// Subfolders deeper than this are not looked into (departments use `station/yyyy/MM/dd`).
const MAX_DEPTH: usize = 6;

/// Every regular file under `dir` (subfolders included, up to [`MAX_DEPTH`]) that is not an
/// upload in progress or hidden, and not under one of `skip` (the done and rejected folders
/// when they are inside the inbox). Symbolic links are not followed. Only a failure to list
/// `dir` itself is an error; an unreadable subfolder is left out.
pub fn list(dir: &Path, skip: &[PathBuf]) -> io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    walk(dir, skip, 0, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, skip: &[PathBuf], depth: usize, out: &mut Vec<Listed>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if kind.is_dir() {
            if depth < MAX_DEPTH && !name.starts_with('.') && !skip.contains(&path) {
                // A subfolder that cannot be read now is read on a later scan.
                let _ = walk(&path, skip, depth + 1, out);
            }
        } else if kind.is_file() && !is_upload_name(&name) {
            let Ok(meta) = entry.metadata() else { continue };
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            out.push(Listed {
                path,
                size: meta.len(),
                mtime_ns,
            });
        }
    }
    Ok(())
}

/// The file's bytes, as an MQTT source keeps a payload: whole up to `limit`; above it only the
/// first [`EXCERPT_BYTES`], with the whole file's size and SHA-256 (read through, never held:
/// decode rejects it as too large, and the file itself is kept in the rejected folder).
pub fn read(path: &Path, limit: usize) -> io::Result<(Vec<u8>, Option<Oversize>)> {
    let mut file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    // Enough for the whole file within the limit, or for the excerpt of a larger one.
    let head = limit.max(EXCERPT_BYTES) as u64 + 1;
    (&mut file).take(head).read_to_end(&mut bytes)?;
    if bytes.len() <= limit {
        return Ok((bytes, None));
    }
    let mut sha = Sha256::new();
    sha.update(&bytes);
    let mut size = bytes.len();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        sha.update(&chunk[..n]);
        size += n;
    }
    bytes.truncate(EXCERPT_BYTES);
    let oversize = Oversize {
        bytes: size,
        sha256: sha.finalize().into(),
    };
    Ok((bytes, Some(oversize)))
}

/// Moves `from` to `to_dir/relative` (creating folders), never over an existing file: a name
/// already taken gets `.1`, `.2`, … appended. Across file systems the file is copied, synced
/// and then removed. Returns where it went.
pub fn move_out(from: &Path, to_dir: &Path, relative: &Path) -> io::Result<PathBuf> {
    let target = to_dir.join(relative);
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut to = target.clone();
    let mut n = 0u32;
    while to.exists() {
        n += 1;
        let mut name = target.clone().into_os_string();
        name.push(format!(".{n}"));
        to = PathBuf::from(name);
    }
    match fs::rename(from, &to) {
        Ok(()) => Ok(to),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            fs::copy(from, &to)?;
            fs::File::open(&to)?.sync_all()?;
            fs::remove_file(from)?;
            Ok(to)
        }
        Err(e) => Err(e),
    }
}

/// Whether the file at `l.path` still has the size and modification time it was listed with
/// (the content that was read and journaled). A missing file has not.
pub fn unchanged(l: &Listed) -> bool {
    let Ok(meta) = fs::metadata(&l.path) else {
        return false;
    };
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    meta.len() == l.size && mtime_ns == l.mtime_ns
}

/// `path` relative to `dir`, with `/` between components (the topic's form).
pub fn relative(dir: &Path, path: &Path) -> (PathBuf, String) {
    let rel = path.strip_prefix(dir).unwrap_or(path).to_path_buf();
    let text = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    (rel, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_skips_uploads_hidden_files_and_the_output_folders() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("K1/2026/11/29")).unwrap();
        fs::create_dir_all(d.join("done")).unwrap();
        fs::create_dir_all(d.join(".hidden")).unwrap();
        for f in [
            "a.txt",
            "b.txt.tmp",
            ".c.txt",
            "K1/2026/11/29/d.txt",
            "done/e.txt",
            ".hidden/f.txt",
        ] {
            fs::write(d.join(f), "x").unwrap();
        }
        let mut names: Vec<String> = list(d, &[d.join("done")])
            .unwrap()
            .into_iter()
            .map(|l| relative(d, &l.path).1)
            .collect();
        names.sort();
        assert_eq!(names, ["K1/2026/11/29/d.txt", "a.txt"]);
        assert!(list(&d.join("missing"), &[]).is_err());
    }

    #[test]
    fn a_move_keeps_the_relative_path_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("in/K1")).unwrap();
        fs::write(d.join("in/K1/a.txt"), "one").unwrap();
        let to = move_out(
            &d.join("in/K1/a.txt"),
            &d.join("done"),
            Path::new("K1/a.txt"),
        )
        .unwrap();
        assert_eq!(to, d.join("done/K1/a.txt"));
        fs::write(d.join("in/K1/a.txt"), "two").unwrap();
        let to = move_out(
            &d.join("in/K1/a.txt"),
            &d.join("done"),
            Path::new("K1/a.txt"),
        )
        .unwrap();
        assert_eq!(to, d.join("done/K1/a.txt.1"));
        assert_eq!(fs::read_to_string(d.join("done/K1/a.txt")).unwrap(), "one");
        assert_eq!(fs::read_to_string(&to).unwrap(), "two");
        assert!(!d.join("in/K1/a.txt").exists());
    }

    #[test]
    fn a_file_over_the_limit_is_kept_as_an_excerpt_with_its_size_and_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.txt");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&p, &content).unwrap();
        let (bytes, oversize) = read(&p, 1000).unwrap();
        assert_eq!(bytes, content[..EXCERPT_BYTES]);
        let oversize = oversize.unwrap();
        assert_eq!(oversize.bytes, 200_000);
        assert_eq!(oversize.sha256, <[u8; 32]>::from(Sha256::digest(&content)));
        let (bytes, oversize) = read(&p, 200_000).unwrap();
        assert_eq!((bytes.len(), oversize), (200_000, None));
    }
}
