//! Quota ledgers: per owner (a principal and the user it acts for) and per team, the tasks in
//! flight with the budget each reserved, recent submits, and the spend settled per day and
//! month. One KV entry per ledger, changed only by compare-and-set on its revision, so
//! concurrent submits (on any bridge) cannot both take the last place.

use std::collections::BTreeMap;

use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Reads, StoreError, leader_entry, unavailable};

/// One owner's or team's quota state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaLedger {
    /// Tasks submitted and not yet seen ended, with the USD each reserved.
    #[serde(default)]
    pub in_flight: BTreeMap<String, Reserved>,
    /// Unix seconds of the submits of the last minute.
    #[serde(default)]
    pub submits: Vec<i64>,
    /// USD settled (ended tasks' reported cost) per UTC day (`2026-12-05`) and month
    /// (`2026-12`).
    #[serde(default)]
    pub spent: BTreeMap<String, f64>,
}

/// What a task in flight holds of a budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reserved {
    pub usd: f64,
    /// Unix seconds of the submit.
    pub since: i64,
}

/// The quotas bucket.
#[derive(Clone)]
pub struct QuotaStore {
    pub(super) kv: kv::Store,
}

impl QuotaStore {
    /// The ledger at `key` and its revision (`None`: no ledger yet).
    pub async fn read(&self, key: &str) -> Result<(QuotaLedger, Option<u64>), StoreError> {
        match leader_entry(&self.kv, key, "read quota", Reads::Leader).await? {
            None => Ok((QuotaLedger::default(), None)),
            Some((bytes, revision)) => {
                let ledger = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                    key: key.to_owned(),
                    reason: e.to_string(),
                })?;
                Ok((ledger, Some(revision)))
            }
        }
    }

    /// Writes `ledger` at `key` if nothing else wrote it since `revision` (`None`: if it still
    /// does not exist). `false`: another writer came first; read again.
    pub async fn write(
        &self,
        key: &str,
        ledger: &QuotaLedger,
        revision: Option<u64>,
    ) -> Result<bool, StoreError> {
        let value: Bytes = serde_json::to_vec(ledger)
            .map_err(|e| StoreError::Corrupt {
                key: key.to_owned(),
                reason: e.to_string(),
            })?
            .into();
        let written = match revision {
            None => self.kv.create(key, value).await.map(|_| ()).map_err(|e| {
                (e.kind() != kv::CreateErrorKind::AlreadyExists)
                    .then(|| unavailable("create quota")(&e))
            }),
            Some(revision) => self
                .kv
                .update(key, value, revision)
                .await
                .map(|_| ())
                .map_err(|e| {
                    (e.kind() != kv::UpdateErrorKind::WrongLastRevision)
                        .then(|| unavailable("update quota")(&e))
                }),
        };
        match written {
            Ok(()) => Ok(true),
            Err(None) => Ok(false),
            Err(Some(e)) => Err(e),
        }
    }
}

/// A task accepted over its owner's in-flight limit (`OPENCLAW_OVER_LIMIT=queue`), held here
/// instead of the tasks stream until its owner has room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedTask {
    pub spec: crate::task::TaskSpec,
    /// The message id its submit asked for (an `Idempotency-Key`, else its id).
    pub msg_id: String,
}

/// The parked tasks bucket.
#[derive(Clone)]
pub struct ParkedStore {
    pub(super) kv: kv::Store,
}

impl ParkedStore {
    pub async fn put(&self, task: &ParkedTask) -> Result<(), StoreError> {
        let value: Bytes = serde_json::to_vec(task)
            .map_err(|e| StoreError::Corrupt {
                key: task.spec.id.to_string(),
                reason: e.to_string(),
            })?
            .into();
        self.kv
            .put(task.spec.id.to_string(), value)
            .await
            .map_err(|e| unavailable("park a task")(&e))?;
        Ok(())
    }

    /// Every parked task, oldest first (task ids are time-ordered).
    pub async fn all(&self) -> Result<Vec<ParkedTask>, StoreError> {
        use futures_util::TryStreamExt;
        let keys: Vec<String> = match self.kv.keys().await {
            Ok(keys) => keys
                .try_collect()
                .await
                .map_err(|e| unavailable("list parked tasks")(&e))?,
            Err(e) => return Err(unavailable("list parked tasks")(&e)),
        };
        let mut out = Vec::new();
        for key in keys {
            if let Some((bytes, _)) =
                leader_entry(&self.kv, &key, "read parked task", Reads::Leader).await?
                && let Ok(task) = serde_json::from_slice::<ParkedTask>(&bytes)
            {
                out.push(task);
            }
        }
        out.sort_by_key(|t| t.spec.id);
        Ok(out)
    }

    pub async fn remove(&self, id: &crate::ids::TaskId) -> Result<(), StoreError> {
        self.kv
            .purge(id.to_string())
            .await
            .map_err(|e| unavailable("unpark a task")(&e))
    }
}
