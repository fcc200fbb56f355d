//! Files a node reads and writes: secrets (mode 0600, refused when group- or world-readable)
//! and public files (written atomically). Every error names the path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// A file operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The operating system refused an operation (missing file, no permission, disk full…).
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A secret file that others can read: the operator must fix its mode.
    #[error(
        "{path} holds a secret but is readable by group or others (mode {mode:04o}); \
         run `chmod 600 {path}` and make sure it is owned by the node's user"
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file larger than anything valid of its kind.
    #[error("{path} is {got} bytes, over the limit of {max} for this kind of file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
        /// Its size.
        got: u64,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FileError + 'a {
    move |source| FileError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Permission bits a secret file may have at most.
pub const SECRET_MODE: u32 = 0o600;

/// Creates `path` with mode 0600 and writes `data` to it, durably. Refuses to overwrite an
/// existing file: a secret is never replaced by accident.
pub fn write_secret(path: &Path, data: &[u8]) -> Result<(), FileError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_MODE)
        .open(path)
        .map_err(io_err("create", path))?;
    f.write_all(data).map_err(io_err("write", path))?;
    f.sync_all().map_err(io_err("sync", path))?;
    sync_parent(path)
}

/// Reads a secret file after checking that neither group nor others can read or write it.
pub fn read_secret(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let f = File::open(path).map_err(io_err("open", path))?;
    let meta = f.metadata().map_err(io_err("inspect", path))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(FileError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    read_limited(f, path, meta.len(), max).map(Zeroizing::new)
}

/// Reads a secret text file (see [`read_secret`]).
pub fn read_secret_text(path: &Path, max: u64) -> Result<Zeroizing<String>, FileError> {
    let bytes = read_secret(path, max)?;
    std::str::from_utf8(&bytes)
        .map(|s| Zeroizing::new(s.to_owned()))
        .map_err(|_| FileError::Io {
            op: "read",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
        })
}

/// Reads a public file of at most `max` bytes.
pub fn read_public(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    let f = File::open(path).map_err(io_err("open", path))?;
    let len = f.metadata().map_err(io_err("inspect", path))?.len();
    read_limited(f, path, len, max)
}

fn read_limited(f: File, path: &Path, len: u64, max: u64) -> Result<Vec<u8>, FileError> {
    if len > max {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            max,
            got: len,
        });
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // `take` guards against a file that grows while we read it.
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(io_err("read", path))?;
    if buf.len() as u64 > max {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            max,
            got: buf.len() as u64,
        });
    }
    Ok(buf)
}

/// Replaces `path` with `data` atomically (temporary file, fsync, rename, fsync directory), so
/// a crash leaves either the old or the new file, never half of one.
pub fn write_public(path: &Path, data: &[u8]) -> Result<(), FileError> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    f.write_all(data).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("sync", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
    sync_parent(path)
}

/// Creates a directory (and its parents) with mode 0700.
pub fn create_private_dir(path: &Path) -> Result<(), FileError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err("create directory", path))
}

fn sync_parent(path: &Path) -> Result<(), FileError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_0600_and_refused_when_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write_secret(&p, b"s3cret").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(&*read_secret(&p, 100).unwrap(), b"s3cret");
        assert!(matches!(
            write_secret(&p, b"other"),
            Err(FileError::Io { op: "create", .. })
        ));

        for mode in [0o640, 0o604, 0o660, 0o644] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let err = read_secret(&p, 100).unwrap_err();
            assert!(matches!(err, FileError::InsecurePermissions { mode: m, .. } if m == mode));
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn size_limits_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_public(&p, &[0; 10]).unwrap();
        assert!(matches!(
            read_public(&p, 9),
            Err(FileError::TooLarge {
                max: 9,
                got: 10,
                ..
            })
        ));
        assert_eq!(read_public(&p, 10).unwrap().len(), 10);
    }
}
