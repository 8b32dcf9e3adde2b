//! Writing the state file so that a crash at any moment leaves either the
//! old file or the new one, whole: the new text goes to a temporary file
//! beside it, which is synced, renamed over the old one, and the directory
//! synced so that the rename itself survives.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The temporary file beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replace `path` with `data`, durably. On error the old file is untouched
/// and the temporary one removed.
pub fn write(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let r = write_temp(&tmp, data).and_then(|()| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return r;
    }
    sync_dir(path)
}

fn write_temp(tmp: &Path, data: &[u8]) -> io::Result<()> {
    // A temporary file left by a crash is ours to replace; never follow a
    // link someone put there.
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)?;
    f.write_all(data)?;
    f.sync_all()
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Remove the state file (`ifnetd --stop --forget`); absent is fine.
pub fn forget(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => {
            let _ = std::fs::remove_file(temp_path(path));
            sync_dir(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        write(&p, b"one\n").unwrap();
        write(&p, b"two\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two\n");
        assert!(!temp_path(&p).exists());
        forget(&p).unwrap();
        assert!(!p.exists());
        forget(&p).unwrap();
    }

    #[test]
    fn failure_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        write(&p, b"old\n").unwrap();
        // The temporary file cannot be made where a directory stands.
        std::fs::create_dir(temp_path(&p)).unwrap();
        std::fs::write(temp_path(&p).join("x"), b"").unwrap();
        assert!(write(&p, b"new\n").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old\n");
    }
}
