//! The background task that deletes expired rows.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{sync::Notify, task::JoinHandle};

use crate::Error;

/// Rows one expiry statement deletes at most: short statements keep the locks they take
/// short (on SQLite, the whole database's write lock), so requests are never held up for
/// long behind a sweep.
pub(crate) const EXPIRY_BATCH: i64 = 1000;

/// The handle of a SQL store's expiry task, which deletes expired rows in the background
/// (see `spawn_expiry_task` on [`PostgresStore`](crate::PostgresStore),
/// [`SqliteStore`](crate::SqliteStore) or [`MySqlStore`](crate::MySqlStore)).
///
/// Expired rows are never returned whether or not they are deleted: the task only gives
/// their space back. Dropping the handle stops the task too; [`stop`](Self::stop) also
/// waits for it to end, and [`detach`](Self::detach) lets it run as long as the runtime.
#[must_use = "dropping the handle stops the expiry task"]
#[derive(Debug)]
pub struct ExpiryTask {
    stop: Arc<Notify>,
    task: Option<JoinHandle<()>>,
    detached: bool,
}

impl ExpiryTask {
    /// Starts a task that calls `sweep` every `every`, the first time after one interval.
    pub(crate) fn spawn<F, Fut>(backend: &'static str, every: Duration, mut sweep: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, Error>> + Send,
    {
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every.max(Duration::from_millis(1)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    () = stopped.notified() => return,
                    _ = ticker.tick() => {}
                }
                tokio::select! {
                    () = stopped.notified() => return,
                    swept = sweep() => match swept {
                        Ok(0) => {}
                        Ok(deleted) => tracing::debug!(store = backend, deleted, "deleted expired sessions"),
                        Err(error) => tracing::warn!(store = backend, %error, "could not delete expired sessions; trying again at the next interval"),
                    },
                }
            }
        });
        Self {
            stop,
            task: Some(task),
            detached: false,
        }
    }

    /// Stops the task (a sweep in progress is abandoned: what it deleted stays deleted)
    /// and waits until it has ended.
    pub async fn stop(mut self) {
        // A stored permit: the task sees it even if it is sweeping right now.
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            // The task ends as soon as it sees the signal; it cannot panic on its own.
            let _ = task.await;
        }
    }

    /// Lets the task run for as long as the runtime does, without a handle to keep.
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for ExpiryTask {
    fn drop(&mut self) {
        if !self.detached {
            self.stop.notify_one();
        }
    }
}
