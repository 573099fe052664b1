//! The session index on Redis: listing and ending every session of one user.
//!
//! An index is a sorted set `{prefix}idx:{<digest>}` of session key names, scored by each
//! session's absolute deadline (after which it is dead whatever happens), whose TTL outlasts
//! every member's. An indexed session's hash also holds its index value in the field `i`.
//!
//! - One server: the write scripts keep the index in the same script as the session
//!   (`INDEX` in `scripts.rs`), and "delete all" is one script, so the index is exact and
//!   the race rule holds trivially.
//! - Redis Cluster: the index lives in its own slot. A session is added to its index
//!   *before* the write that makes it indexed, and removed *after* the write that ends or
//!   moves it, so a listing never misses a live session. A member without a live session (a
//!   crash between the steps, a session deleted or expired, a write still on its way) is
//!   skipped by listings, deleted by "delete all" only if it holds a session of this index,
//!   and leaves the set at its absolute deadline, when it is dead whatever happened.
//!   "Delete all" deletes member by member, each only if it still names this index, and
//!   reads the members again until a pass deletes nothing and finds the same members as
//!   the one before: a session regenerated meanwhile was added under its new key before its
//!   old key could go, so a later pass finds it (or the move itself, finding its source
//!   deleted, deletes its copy).

use futures_util::future::try_join_all;

use super::{Inner, RedisStore, call::ScriptCall};
use crate::{
    Error,
    id::StoreKey,
    index::IndexKey,
    store::{IndexStore, Record},
};

/// Passes of a cluster "delete all" before it gives up on sessions that keep moving.
const DELETE_PASSES: usize = 8;

impl Inner {
    /// The key names in `index`, after dropping those past their absolute deadline.
    async fn members(&self, index: &IndexKey) -> Result<Vec<String>, Error> {
        let mut call = ScriptCall::new(&self.scripts.index_members, &[self.keys.index(index)]);
        call.arg(self.clock.now_ms());
        self.run_script(true, &call).await
    }

    /// The hashes of `names`, concurrently (pipelined on one connection; each in its own
    /// slot on a cluster).
    async fn hashes(&self, names: &[String]) -> Result<Vec<super::record::Hash>, Error> {
        try_join_all(names.iter().map(|name| {
            self.call(true, move |mut connection| async move {
                redis::cmd("HGETALL").arg(name).query_async(&mut connection).await
            })
        }))
        .await
    }

    /// Removes `names` from `index`, best effort: a member left behind is only skipped again.
    pub(super) async fn remove_members(&self, index: &IndexKey, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let index = self.keys.index(index);
        let removed = self
            .call(true, |mut connection| {
                let index = &index;
                async move {
                    redis::cmd("ZREM")
                        .arg(index)
                        .arg(names)
                        .query_async::<i64>(&mut connection)
                        .await
                }
            })
            .await;
        if let Err(error) = removed {
            tracing::debug!(%error, "could not remove stale members of a session index");
        }
    }
}

impl IndexStore for RedisStore {
    async fn list_by_index(&self, index: &IndexKey) -> Result<Vec<(StoreKey, Record)>, Error> {
        let inner = &self.inner;
        inner
            .observe("list_by_index", None, || async move {
                let names = inner.members(index).await?;
                let hashes = inner.hashes(&names).await?;
                let now = inner.clock.now_ms();
                let cluster = inner.backend.is_cluster();
                let mut live = Vec::with_capacity(names.len());
                let mut stale = Vec::new();
                for (name, hash) in names.into_iter().zip(hashes) {
                    let absent = hash.is_empty();
                    let record = inner
                        .keys
                        .parse(name.as_bytes())
                        .and_then(|key| inner.decode(&key, hash, now).map(|(record, _)| (key, record)));
                    match record {
                        Some((key, record)) if record.meta.index.as_ref() == Some(index) => live.push((key, record)),
                        // On one server the index changes with the session in one script,
                        // so a member without its session is stale for sure; on a cluster
                        // it may be a create on its way, which added it first.
                        Some(_) => stale.push(name),
                        None if absent && cluster => {}
                        None => stale.push(name),
                    }
                }
                inner.remove_members(index, &stale).await;
                Ok(live)
            })
            .await
    }

    async fn delete_by_index(&self, index: &IndexKey, keep: Option<&StoreKey>) -> Result<Vec<StoreKey>, Error> {
        let inner = &self.inner;
        let keep = keep.map(|key| inner.keys.key(key));
        inner
            .observe("delete_by_index", None, || async move {
                let hex = index.to_hex();
                if !inner.backend.is_cluster() {
                    let mut call = ScriptCall::new(&inner.scripts.delete_indexed, &[inner.keys.index(index)]);
                    call.arg(inner.clock.now_ms())
                        .arg(&hex)
                        .arg(keep.as_deref().unwrap_or(""))
                        .arg(if inner.signed { &*self.writer } else { "" });
                    let deleted: Vec<String> = inner.run_script(false, &call).await?;
                    return Ok(deleted
                        .iter()
                        .filter_map(|name| inner.keys.parse(name.as_bytes()))
                        .collect());
                }
                // Each live session deleted, with the key it was moved from if it is a copy
                // a cluster move made.
                let mut live: Vec<(String, String)> = Vec::new();
                let mut previous: Option<Vec<String>> = None;
                for _ in 0..DELETE_PASSES {
                    let mut names: Vec<String> = inner
                        .members(index)
                        .await?
                        .into_iter()
                        .filter(|name| Some(name) != keep.as_ref())
                        .collect();
                    names.sort_unstable();
                    let now = inner.clock.now_ms();
                    let outcomes = try_join_all(names.iter().map(|name| {
                        let key = inner.keys.parse(name.as_bytes());
                        let signature = key
                            .filter(|_| inner.signed)
                            .map(|key| inner.keys.signature(&key, &self.writer));
                        let mut call = ScriptCall::new(
                            &inner.scripts.delete_if_indexed,
                            [Some(name), signature.as_ref()].into_iter().flatten(),
                        );
                        call.arg(now).arg(&hex);
                        async move { inner.run_script::<(i64, String)>(true, &call).await }
                    }))
                    .await?;
                    let mut gone = Vec::new();
                    for (name, (outcome, moved_from)) in names.iter().zip(outcomes) {
                        if outcome >= 0 {
                            gone.push(name.clone());
                        }
                        if outcome == 1 {
                            live.push((name.clone(), moved_from));
                        }
                    }
                    // Members that hold no session of this index stay: one may be a write
                    // on its way, which added itself first.
                    inner.remove_members(index, &gone).await;
                    if gone.is_empty() && previous.as_ref() == Some(&names) {
                        return Ok(once_per_session(&inner.keys, &live));
                    }
                    previous = Some(names);
                }
                Err(Error::Store(
                    format!("sessions kept joining the index during {DELETE_PASSES} passes of deleting them").into(),
                ))
            })
            .await
    }
}

/// The keys of the sessions `live` lists, each session once: a copy whose source was
/// deleted too is the same session mid-move, reported under its source (the move then
/// fails, so the source is the key its owner last had).
fn once_per_session(keys: &super::layout::Keys, live: &[(String, String)]) -> Vec<StoreKey> {
    let names: std::collections::HashSet<&str> = live.iter().map(|(name, _)| name.as_str()).collect();
    live.iter()
        .filter(|(_, moved_from)| !names.contains(moved_from.as_str()))
        .filter_map(|(name, _)| keys.parse(name.as_bytes()))
        .collect()
}
