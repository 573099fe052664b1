//! The query and bulk operations: `SCAN` (never `KEYS`) in batches, with the found keys
//! read or deleted in one pipelined round trip per page (one command per key on a
//! cluster, whose pipelines must stay in one slot).

use std::future::Future;

use futures_util::future::try_join_all;
use redis::RedisResult;

use super::{
    Inner, RedisStore,
    call::ScriptCall,
    cluster,
    connection::{Connection, Node},
    layout::{EXPIRY_FIELD, Keys},
    record::Hash,
};
use crate::{
    Error,
    id::StoreKey,
    store::{QueryStore, ScanPage},
};

/// How `expiries` deletes the keys it reads: signed by this writer when writes are signed.
#[derive(Clone, Copy)]
struct Deletion<'a> {
    signed_as: Option<&'a str>,
}

/// Keys asked of each `SCAN` by count, clear and delete_many.
const BATCH: usize = 500;

impl Inner {
    /// Keys of one `SCAN` page of this store on `node` (`None`: the one server), and the
    /// next cursor (0 when done).
    async fn scan_keys(
        connection: &mut Connection,
        node: Option<&Node>,
        keys: &Keys,
        cursor: u64,
        count: usize,
    ) -> RedisResult<(u64, Vec<(StoreKey, Vec<u8>)>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(keys.pattern())
            .arg("COUNT")
            .arg(count.max(1));
        let (next, names): (u64, Vec<Vec<u8>>) = connection.on_node(&cmd, node).await?;
        let found = names
            .into_iter()
            .filter_map(|name| keys.parse(&name).map(|key| (key, name)))
            .collect();
        Ok((next, found))
    }

    /// Visits every `SCAN` page of this store (on every primary of a cluster) with `page`,
    /// one retried call per page; returns the sum of what the pages return.
    async fn for_each_page<F, Fut>(&self, page: F) -> Result<usize, Error>
    where
        F: Fn(Connection, Vec<(StoreKey, Vec<u8>)>) -> Fut,
        Fut: Future<Output = RedisResult<usize>>,
    {
        let mut total = 0;
        for node in self.scan_nodes().await? {
            let mut cursor = 0;
            loop {
                let (next, keys) = self
                    .call(true, |mut connection| {
                        let (node, keys) = (node.as_ref(), &self.keys);
                        async move { Self::scan_keys(&mut connection, node, keys, cursor, BATCH).await }
                    })
                    .await?;
                if !keys.is_empty() {
                    total += self.call(true, |connection| page(connection, keys.clone())).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(total)
    }

    /// The hashes of `found` keys: one pipeline on one server, concurrent single-key reads
    /// on a cluster (a pipeline there must stay in one slot).
    async fn read_hashes(
        connection: &mut Connection,
        found: Vec<(StoreKey, Vec<u8>)>,
    ) -> RedisResult<Vec<(StoreKey, Hash)>> {
        let hashes: Vec<Hash> = match connection {
            Connection::Standalone(_) => {
                let mut pipe = redis::pipe();
                for (_, name) in &found {
                    pipe.cmd("HGETALL").arg(name);
                }
                pipe.query_async(connection).await?
            }
            Connection::Cluster(_) => {
                try_join_all(found.iter().map(|(_, name)| {
                    let mut connection = connection.clone();
                    async move { redis::cmd("HGETALL").arg(name).query_async(&mut connection).await }
                }))
                .await?
            }
        };
        Ok(found.into_iter().map(|(key, _)| key).zip(hashes).collect())
    }

    /// The expiry (`x`) of each of `keys` (digest and key name, as a scan yields them), and,
    /// with `delete`, deletes them in the same round trip, each signed after its deletion
    /// when writes are signed (so a message that announces the deletion names the writer,
    /// or a later one does). On a cluster, one pipeline per key, as keys live in different slots.
    async fn expiries(
        &self,
        connection: &mut Connection,
        keys: &[(StoreKey, Vec<u8>)],
        delete: Option<Deletion<'_>>,
    ) -> RedisResult<Vec<Option<u64>>> {
        let per_key = |pipe: &mut redis::Pipeline, (key, name): &(StoreKey, Vec<u8>)| {
            pipe.cmd("HGET").arg(name).arg(EXPIRY_FIELD);
            if let Some(deletion) = delete {
                pipe.cmd("DEL").arg(name).ignore();
                if let Some(writer) = deletion.signed_as {
                    let signature = self.keys.signature(key, writer);
                    // A pipeline is not atomic: should the DEL below be lost, the key expires.
                    pipe.cmd("SET").arg(&signature).arg("").arg("PX").arg(1000).ignore();
                    pipe.cmd("DEL").arg(&signature).ignore();
                }
            }
        };
        match connection {
            Connection::Standalone(_) => {
                let mut pipe = redis::pipe();
                for key in keys {
                    per_key(&mut pipe, key);
                }
                pipe.query_async(connection).await
            }
            Connection::Cluster(_) => {
                let expiries = try_join_all(keys.iter().map(|key| {
                    let mut connection = connection.clone();
                    let mut pipe = redis::pipe();
                    per_key(&mut pipe, key);
                    async move { pipe.query_async::<(Option<u64>,)>(&mut connection).await }
                }))
                .await?;
                Ok(expiries.into_iter().map(|(expiry,)| expiry).collect())
            }
        }
    }
}

impl QueryStore for RedisStore {
    async fn scan(&self, cursor: u64, batch: usize) -> Result<ScanPage, Error> {
        let inner = &self.inner;
        inner
            .observe("scan", None, || async move {
                let nodes = inner.scan_nodes().await?;
                let cluster = inner.backend.is_cluster();
                let (index, node_cursor) = cluster::split_cursor(cursor, cluster);
                let Some(node) = nodes.get(index) else {
                    return Ok(ScanPage::default());
                };
                let (next, hashes) = inner
                    .call(true, |mut connection| {
                        let (node, keys) = (node.as_ref(), &inner.keys);
                        async move {
                            let (next, found) =
                                Inner::scan_keys(&mut connection, node, keys, node_cursor, batch).await?;
                            if found.is_empty() {
                                return Ok((next, Vec::new()));
                            }
                            Ok((next, Inner::read_hashes(&mut connection, found).await?))
                        }
                    })
                    .await?;
                let now = inner.clock.now_ms();
                let records = hashes
                    .into_iter()
                    .filter_map(|(key, hash)| Some((key, inner.decode(&key, hash, now)?.0)))
                    .collect();
                let next = cluster::next_cursor(next, index, nodes.len(), cluster)?;
                Ok(ScanPage { records, next })
            })
            .await
    }

    async fn count(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        inner
            .observe("count", None, || async move {
                let now = inner.clock.now_ms();
                inner
                    .for_each_page(|mut connection, keys| async move {
                        let expiries = inner.expiries(&mut connection, &keys, None).await?;
                        Ok(expiries.into_iter().flatten().filter(|&x| x > now).count())
                    })
                    .await
            })
            .await
    }

    async fn delete_many(&self, keys: &[StoreKey]) -> Result<usize, Error> {
        let inner = &self.inner;
        inner
            .observe("delete_many", None, || async move {
                let mut deleted = 0;
                for chunk in keys.chunks(BATCH) {
                    let count = if inner.backend.is_cluster() {
                        // Each key is its own slot: one script per key, concurrently.
                        try_join_all(chunk.iter().map(|key| inner.delete_one(key, &self.writer)))
                            .await?
                            .into_iter()
                            .filter(|&deleted| deleted)
                            .count()
                    } else {
                        // One script for the chunk: one round trip.
                        let names: Vec<String> = chunk
                            .iter()
                            .map(|key| inner.keys.key(key))
                            .chain(chunk.iter().filter_map(|key| self.signature(key)))
                            .collect();
                        let mut call = ScriptCall::new(&inner.scripts.delete, &names);
                        call.arg(chunk.len()).arg(inner.index_mode());
                        inner.run_script::<usize>(true, &call).await?
                    };
                    deleted += count;
                }
                Ok(deleted)
            })
            .await
    }

    async fn clear(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        inner
            .observe("clear", None, || async move {
                let now = inner.clock.now_ms();
                inner
                    .for_each_page(|mut connection, keys| async move {
                        // Read each expiry and delete in the same round trip, so only live
                        // sessions are counted.
                        let writer = Deletion {
                            signed_as: inner.signed.then_some(&*self.writer),
                        };
                        let expiries = inner.expiries(&mut connection, &keys, Some(writer)).await?;
                        Ok(expiries.into_iter().flatten().filter(|&x| x > now).count())
                    })
                    .await
            })
            .await
    }
}
