//! A change handed to the writer thread, to be waited for by a thread or awaited by a task.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::StoreError;

/// A write on its way: resolves to its result once the batch that carries it committed (or
/// failed). Await it from async code — no thread waits for it — or [`Pending::wait`] from a
/// thread that may block.
#[must_use = "a write is only known to be durable once its Pending resolves"]
#[derive(Debug)]
pub struct Pending<T>(
    /// The writer's answer, or the error that kept the change from reaching it.
    pub(crate) Result<oneshot::Receiver<Result<T, StoreError>>, Option<StoreError>>,
);

impl<T> Pending<T> {
    /// A change that never reached the writer.
    pub(crate) fn failed(e: StoreError) -> Self {
        Self(Err(Some(e)))
    }

    /// Blocks until the change committed. Not from async code (it would block the runtime's
    /// thread): await the `Pending` there.
    pub fn wait(self) -> Result<T, StoreError> {
        match self.0 {
            Ok(answer) => answer.blocking_recv().unwrap_or_else(|_| Err(gone())),
            Err(e) => Err(e.unwrap_or_else(gone)),
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            Ok(answer) => Pin::new(answer)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(gone()))),
            Err(e) => Poll::Ready(Err(e.take().unwrap_or_else(gone))),
        }
    }
}

/// The writer thread dropped the change without an answer: it is gone.
fn gone() -> StoreError {
    crate::writer_gone()
}
