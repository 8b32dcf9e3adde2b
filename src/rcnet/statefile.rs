//! Writing the state file so that a crash at any moment leaves either the
//! old file or the new one, whole: the new text goes to a temporary file
//! beside it, which is synced, renamed over the old one, and the directory
//! synced so that the rename itself survives. [`StateFile`] also
//! reserves the room for the next write before a change is made.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    let r = create_temp(&tmp).and_then(|f| finish(f, &tmp, path, data));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return r;
    }
    sync_dir(path)
}

/// A new, empty temporary file. One left by a crash is ours to replace;
/// never follow a link someone put there.
fn create_temp(tmp: &Path) -> io::Result<File> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)
}

/// Fill the temporary file with `data` (it may hold more, reserved),
/// sync it and rename it over `path`.
fn finish(f: File, tmp: &Path, path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(data, 0)?;
    f.set_len(data.len() as u64)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Room a change may add to the state, at the most: a line of the
/// longest linkstr (1,024 bytes, up to 4 in quotes each) and more.
pub const RESERVE: u64 = 8 << 10;

/// The state file of a daemon, written after each change. Before a change
/// [`StateFile::reserve`] makes sure the disk has room for the state it
/// may make (a temporary file is allocated, of the current size and
/// [`RESERVE`] more), so that a full disk fails the change before it is
/// made rather than after.
pub struct StateFile {
    path: PathBuf,
    inner: Mutex<Written>,
}

#[derive(Default)]
struct Written {
    /// What the file holds.
    last: Option<Vec<u8>>,
    /// The temporary file, allocated for the next write.
    spare: Option<File>,
}

impl StateFile {
    pub fn new(path: &Path) -> StateFile {
        StateFile {
            path: path.to_path_buf(),
            inner: Mutex::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make room for the next write. Where the file system cannot
    /// allocate ahead, nothing is reserved and the write may still fail.
    pub fn reserve(&self) -> io::Result<()> {
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if w.spare.is_some() {
            return Ok(());
        }
        let tmp = temp_path(&self.path);
        let f = create_temp(&tmp)?;
        let want = w.last.as_ref().map_or(0, Vec::len) as u64 + RESERVE;
        if let Err(e) = allocate(&f, want) {
            drop(f);
            let _ = std::fs::remove_file(&tmp);
            if !matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) {
                return Err(e);
            }
            return Ok(());
        }
        w.spare = Some(f);
        Ok(())
    }

    /// Replace the file with `data`, durably, unless it holds that
    /// already. On error the old file stays.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if w.last.as_deref() == Some(data) {
            return Ok(());
        }
        let tmp = temp_path(&self.path);
        let r = match w.spare.take() {
            Some(f) => Ok(f),
            None => create_temp(&tmp),
        }
        .and_then(|f| finish(f, &tmp, &self.path, data));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return r;
        }
        // Renamed: the file holds it, even if the directory cannot be
        // synced (then the error is still the request's).
        w.last = Some(data.to_vec());
        sync_dir(&self.path)
    }
}

/// fallocate(2) `len` bytes of `f`.
fn allocate(f: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on a descriptor we own; no memory is passed.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len as libc::off_t) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
    fn reserved_then_written() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        let sf = StateFile::new(&p);
        sf.reserve().unwrap();
        let tmp = temp_path(&p);
        use std::os::unix::fs::MetadataExt;
        // Allocated, not only sized (where the file system can).
        assert!(std::fs::metadata(&tmp).unwrap().blocks() * 512 >= RESERVE);
        sf.write(b"one\n").unwrap();
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&p).unwrap(), b"one\n");
        // The same again writes nothing; the spare stays for the next.
        sf.reserve().unwrap();
        sf.write(b"one\n").unwrap();
        assert!(tmp.exists());
        sf.write(b"two, longer\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two, longer\n");
        assert!(!tmp.exists());
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
