//! A simulated disk for redb, with a page cache that a power cut can lose, and a capacity.
//!
//! Writes land in the cache; `sync_data` makes them durable. [`Disk::power_cut`] returns what a
//! disk could hold after power is lost at that moment: everything synced, plus any subset of
//! the unsynced 4 KiB pieces (the kernel may have written some back on its own), chosen by a
//! seeded generator — harsher than losing all unsynced writes, which is what LazyFS does.
//! A capacity makes writes and growth past it fail with `ENOSPC`, as a full filesystem does.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use super::Lcg;

const PIECE: usize = 4096;

#[derive(Debug, Default)]
struct State {
    durable: Vec<u8>,
    cached: Vec<u8>,
    /// Changes since the last sync, in order.
    unsynced: Vec<Change>,
    capacity: Option<usize>,
}

#[derive(Debug, Clone)]
enum Change {
    Write(usize, Vec<u8>),
    SetLen(usize),
}

fn apply(image: &mut Vec<u8>, change: &Change) {
    match change {
        Change::Write(offset, data) => {
            let end = offset + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[*offset..end].copy_from_slice(data);
        }
        Change::SetLen(len) => image.resize(*len, 0),
    }
}

/// The disk; clones share it.
#[derive(Debug, Clone, Default)]
pub(super) struct Disk(Arc<Mutex<State>>);

impl Disk {
    /// A disk holding `image`, all of it durable.
    pub(super) fn from_image(image: Vec<u8>) -> Self {
        Self(Arc::new(Mutex::new(State {
            durable: image.clone(),
            cached: image,
            ..State::default()
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Limits the disk to `bytes` (`None`: no limit).
    pub(super) fn set_capacity(&self, bytes: Option<usize>) {
        self.state().capacity = bytes;
    }

    /// What survives a power cut now.
    pub(super) fn power_cut(&self, rng: &mut Lcg) -> Vec<u8> {
        let state = self.state();
        let mut image = state.durable.clone();
        for change in &state.unsynced {
            match change {
                Change::Write(offset, data) => {
                    for (i, piece) in data.chunks(PIECE).enumerate() {
                        if rng.next().is_multiple_of(2) {
                            apply(
                                &mut image,
                                &Change::Write(offset + i * PIECE, piece.to_vec()),
                            );
                        }
                    }
                }
                Change::SetLen(_) => {
                    if rng.next().is_multiple_of(2) {
                        apply(&mut image, change);
                    }
                }
            }
        }
        image
    }

    /// The file's length now.
    pub(super) fn backend_len(&self) -> usize {
        self.state().cached.len()
    }

    /// A redb backend on this disk.
    pub(super) fn backend(&self) -> Backend {
        Backend(self.clone())
    }
}

/// redb's view of a [`Disk`].
#[derive(Debug)]
pub(super) struct Backend(Disk);

fn full() -> io::Error {
    io::Error::from(io::ErrorKind::StorageFull)
}

impl redb::StorageBackend for Backend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.0.state().cached.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let state = self.0.state();
        let offset = offset as usize;
        let source = state
            .cached
            .get(offset..offset + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut state = self.0.state();
        let len = len as usize;
        if state.capacity.is_some_and(|c| len > c) {
            return Err(full());
        }
        let change = Change::SetLen(len);
        apply(&mut state.cached, &change);
        state.unsynced.push(change);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut state = self.0.state();
        let unsynced = std::mem::take(&mut state.unsynced);
        for change in &unsynced {
            apply(&mut state.durable, change);
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut state = self.0.state();
        let offset = offset as usize;
        if state.capacity.is_some_and(|c| offset + data.len() > c) {
            return Err(full());
        }
        let change = Change::Write(offset, data.to_vec());
        apply(&mut state.cached, &change);
        state.unsynced.push(change);
        Ok(())
    }
}
