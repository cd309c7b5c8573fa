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
