//! What differs on a Redis Cluster: a regenerate moves the session between two slots in
//! three steps, and a scan visits every primary in turn, its cursor carrying the primary's
//! index (see [`RedisStore`](super::RedisStore#redis-cluster)).

use super::{
    Inner,
    call::ScriptCall,
    connection::Node,
    layout::MOVED_FROM_FIELD,
    record::{Hash, Whole},
};
use crate::{
    Error,
    id::StoreKey,
    store::{Record, Rename, Revision},
};

/// Attempts of a cluster regenerate whose source keeps changing under it.
const MOVE_ATTEMPTS: usize = 4;
/// A cluster scan cursor: the primary's index above these bits, its `SCAN` cursor below.
const NODE_SHIFT: u32 = 48;

/// Where a scan cursor points: the index of the node to scan and that node's own cursor.
pub(super) fn split_cursor(cursor: u64, cluster: bool) -> (usize, u64) {
    if cluster {
        ((cursor >> NODE_SHIFT) as usize, cursor & ((1 << NODE_SHIFT) - 1))
    } else {
        (0, cursor)
    }
}

/// The cursor that follows a page of node `index` (of `nodes`) whose own `SCAN` answered
/// `next`; `None` when the scan is complete.
///
/// # Errors
///
/// When a node's cursor is too large to carry the node's index.
pub(super) fn next_cursor(next: u64, index: usize, nodes: usize, cluster: bool) -> Result<Option<u64>, Error> {
    Ok(match (next, cluster) {
        (0, false) => None,
        (next, false) => Some(next),
        (0, true) => (index + 1 < nodes).then(|| ((index + 1) as u64) << NODE_SHIFT),
        (next, true) if next >> NODE_SHIFT == 0 => Some(((index as u64) << NODE_SHIFT) | next),
        (next, true) => {
            return Err(Error::Store(
                format!("a Redis SCAN cursor ({next}) too large to carry a cluster node index").into(),
            ));
        }
    })
}

impl Inner {
    /// Removes `key`'s old name from the index of `record` after a move, best effort: a
    /// member left behind has no session and goes when listed.
    async fn forget_member(&self, key: &StoreKey, record: &Record) {
        if let Some(index) = record.meta.index {
            self.remove_members(&index, &[self.keys.key(key)]).await;
        }
    }

    /// The nodes to scan: `[None]` for one server, every primary of a cluster.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the cluster does not have every slot served yet (e.g.
    /// mid-failover); not a failure for the breaker, as the node answered.
    pub(super) async fn scan_nodes(&self) -> Result<Vec<Option<Node>>, Error> {
        if !self.backend.is_cluster() {
            return Ok(vec![None]);
        }
        let (nodes, complete) = self
            .call(true, |mut connection| async move { connection.primaries().await })
            .await?;
        if !complete {
            return Err(Error::Unavailable(
                "the Redis Cluster does not have every slot served by a live primary yet".into(),
            ));
        }
        Ok(nodes)
    }

    /// Regenerate on a cluster: copy to the target's slot, then delete the unchanged source
    /// (see [`RedisStore`](super::RedisStore#redis-cluster)); with [`Rename::Renamed`], the
    /// revision the session is stored as under `to`.
    pub(super) async fn move_between_slots(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        update: &Record,
        writer: &str,
    ) -> Result<(Rename, Revision), Error> {
        let (source, target) = (self.keys.key(from), self.keys.key(to));
        let changes = self.stored_fields(&update.meta, &update.fields)?;
        // Indexed under its new key before it exists there: a listing never misses it.
        self.add_to_index(to, &update.meta).await?;
        for attempt in 0..MOVE_ATTEMPTS {
            let (now, ttl) = self.now_and_ttl(&update.meta);
            let freeze = attempt + 1 == MOVE_ATTEMPTS;
            let mut read = ScriptCall::new(&self.scripts.move_read, [&source, &self.keys.signature(from, writer)]);
            read.arg(now).arg(u8::from(freeze));
            // A freezing read writes: not retried.
            let copied: Option<Vec<Vec<u8>>> = self.run_script(!freeze, &read).await?;
            let read = copied.and_then(|mut values| {
                let digest = (!values.is_empty()).then(|| values.remove(0))?;
                let (_, base) = self.decode(from, Hash::from_pairs(values)?, now)?;
                Some((digest, base))
            });
            let Some((digest, base)) = read else {
                if attempt > 0 {
                    self.delete_one(to, writer).await?;
                }
                return Ok((Rename::SourceMissing, Revision::none()));
            };
            let whole = Whole::parse(base.as_bytes()).ok_or_else(super::not_whole)?;
            let moved = self.merged_write(to, &whole, &update.meta, &changes)?;

            let keys = [&target, &self.keys.signature(to, writer)];
            let mut write = ScriptCall::with_room(&self.scripts.move_write, keys, moved.arg_bytes() + source.len());
            write
                .arg(now)
                .arg(ttl)
                .arg(u8::from(attempt > 0))
                .arg(&moved)
                // The copy names its source: a "delete all" that deletes both while the
                // move runs reports the session once.
                .arg(MOVED_FROM_FIELD)
                .arg(&source);
            let written: i64 = self.run_script(false, &write).await?;
            if written == 0 {
                return Ok((Rename::TargetExists, Revision::none()));
            }

            // The copy exists: from here on a crash leaves both keys, never neither.
            // Retried: it leaves a marker naming the target, so a retry of a delete that ran
            // but whose answer was lost finds the move done rather than a source gone.
            let mut delete = ScriptCall::new(
                &self.scripts.move_delete,
                [
                    &source,
                    &self.keys.signature(from, writer),
                    &self.keys.moved_marker(from),
                ],
            );
            delete
                .arg(self.clock.now_ms())
                .arg(digest)
                .arg(u8::from(freeze))
                .arg(&target);
            let deleted: i64 = self.run_script(true, &delete).await?;
            match deleted {
                1 => {
                    self.forget_member(from, update).await;
                    return Ok((Rename::Renamed, moved.revision));
                }
                -1 => {
                    // Deleted (e.g. logged out) meanwhile: that delete wins.
                    self.delete_one(to, writer).await?;
                    return Ok((Rename::SourceMissing, Revision::none()));
                }
                _ => tracing::debug!(attempt, "session changed during a cluster regenerate; copying again"),
            }
        }
        // Not reached in practice: the last attempt froze the source, so it could not change.
        self.delete_one(to, writer).await?;
        Err(Error::Store(
            format!("the session kept changing during {MOVE_ATTEMPTS} attempts to regenerate its ID").into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use session_test_support::RedisServer;

    use super::*;
    use crate::{SessionId, SessionMeta, store::FieldRecord};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retried_last_step_of_a_move_finds_the_move_done() {
        let server = RedisServer::start();
        let store = crate::RedisStore::builder(server.url())
            .prefix("move:")
            .build()
            .await
            .unwrap();
        let inner = &store.inner;
        let (from, to) = (
            SessionId::generate().unwrap().store_key(),
            SessionId::generate().unwrap().store_key(),
        );
        let mut fields = FieldRecord::new();
        fields.push(1, b"data");
        let record = Record {
            meta: SessionMeta::new(inner.clock.now_ms(), 60_000, 600_000),
            fields,
        };
        assert!(
            crate::store::SessionStore::create(&store, &from, &record)
                .await
                .unwrap()
        );
        let (moved, revision) = inner.move_between_slots(&from, &to, &record, "w").await.unwrap();
        assert_eq!(moved, Rename::Renamed);
        assert!(!revision.is_none(), "the target's revision, for the next save");

        // The last step again, as a retry after a lost answer would run it.
        let delete_again = |target: String| {
            let mut delete = ScriptCall::new(
                &inner.scripts.move_delete,
                &[
                    inner.keys.key(&from),
                    inner.keys.signature(&from, "w"),
                    inner.keys.moved_marker(&from),
                ],
            );
            delete.arg(inner.clock.now_ms()).arg("digest").arg(0).arg(target);
            async move { inner.run_script::<i64>(true, &delete).await.unwrap() }
        };
        assert_eq!(delete_again(inner.keys.key(&to)).await, 1, "the move is done");
        let other = SessionId::generate().unwrap().store_key();
        assert_eq!(
            delete_again(inner.keys.key(&other)).await,
            -1,
            "for another target the source is simply gone"
        );
    }

    #[test]
    fn cluster_cursors_carry_the_node_index() {
        assert_eq!(split_cursor(42, false), (0, 42));
        assert_eq!(next_cursor(0, 0, 1, false).unwrap(), None);
        assert_eq!(next_cursor(7, 0, 1, false).unwrap(), Some(7));
        let next = next_cursor(7, 2, 3, true).unwrap().unwrap();
        assert_eq!(split_cursor(next, true), (2, 7));
        let next = next_cursor(0, 1, 3, true).unwrap().unwrap();
        assert_eq!(split_cursor(next, true), (2, 0), "a finished node moves on to the next");
        assert_eq!(next_cursor(0, 2, 3, true).unwrap(), None, "the last node ends the scan");
        assert!(next_cursor(1 << NODE_SHIFT, 0, 3, true).is_err());
    }
}
