//! A small tmpfs mounted for one test, to fill a real filesystem to `ENOSPC`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a fixed size, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

/// Whether this process runs as root (effective uid 0), from `/proc/self/status`.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes`. `None` when not root (mounting needs it; CI runs as root);
    /// panics if root cannot mount.
    pub fn mount(bytes: u64) -> Option<Self> {
        if !is_root() {
            return None;
        }
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs failed: {status}");
        Some(Self { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left with a file (written until `ENOSPC`); returns its path.
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        // Bounded: the tmpfs is small; stop at the first error (ENOSPC), then fill byte-wise.
        for _ in 0..100_000 {
            if f.write_all(&block).is_err() {
                break;
            }
        }
        for _ in 0..block.len() {
            if f.write_all(&[0]).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a node process that still holds a file open must not keep the mount busy.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
