//! The KV buckets: task status records, chat sessions, the dispatch lease.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};

use crate::ids::TaskId;
use crate::lifecycle::Update;
use crate::session::{Session, SessionKey};
use crate::status::TaskStatus;

use super::*;

/// The status KV bucket.
#[derive(Clone)]
pub struct StatusStore {
    pub(super) kv: kv::Store,
    pub(super) reads: Reads,
}

impl StatusStore {
    /// Stores the record of a new task unless one exists already (idempotent).
    pub async fn ensure(&self, status: &TaskStatus) -> Result<(), StoreError> {
        let value: Bytes = serde_json::to_vec(status)
            .expect("statuses always serialize")
            .into();
        self.create(&status.id, value).await.map(|_| ())
    }

    pub async fn get(&self, id: &TaskId) -> Result<Option<TaskStatus>, StoreError> {
        Ok(self.entry(id).await?.map(|(s, _)| s))
    }

    /// Creates `id`'s record; `false` if it exists already.
    async fn create(&self, id: &TaskId, value: Bytes) -> Result<bool, StoreError> {
        retrying("create status", || async {
            match self.kv.create(id.to_string(), value.clone()).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(unavailable("create status")(&e)),
            }
        })
        .await
    }

    async fn entry(&self, id: &TaskId) -> Result<Option<(TaskStatus, u64)>, StoreError> {
        let key = id.to_string();
        match leader_entry(&self.kv, &key, "read status", self.reads).await? {
            Some((value, revision)) => {
                let status = serde_json::from_slice(&value).map_err(corrupt(key))?;
                Ok(Some((status, revision)))
            }
            None => Ok(None),
        }
    }

    /// Read-modify-write with compare-and-set on the revision, retried on conflict. `change`
    /// may run more than once; it sees the freshest record each time. `None` if no record.
    pub async fn update<T>(
        &self,
        id: &TaskId,
        mut change: impl FnMut(&mut TaskStatus) -> Update<T>,
    ) -> Result<Option<(TaskStatus, T)>, StoreError> {
        for _ in 0..MAX_SEQ_RACES {
            let Some((mut status, revision)) = self.entry(id).await? else {
                return Ok(None);
            };
            let out = match change(&mut status) {
                Update::Keep(out) => return Ok(Some((status, out))),
                Update::Write(out) => out,
            };
            status.updated_at = crate::now();
            let value: Bytes = serde_json::to_vec(&status)
                .expect("statuses always serialize")
                .into();
            // A retry after a lost answer finds the revision moved (by this very write) and
            // reads again: `change` then sees its own result and keeps it.
            let written = retrying("update status", || async {
                match self
                    .kv
                    .update(id.to_string(), value.clone(), revision)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
                    Err(e) => Err(unavailable("update status")(&e)),
                }
            })
            .await?;
            if written {
                return Ok(Some((status, out)));
            }
        }
        Err(StoreError::Contention(format!("status of {id}")))
    }

    /// [`StatusStore::update`] of a task that may have no record yet (nothing has been written
    /// about it since it was submitted): `base` is what its record would say, and `change`
    /// applies to it; the record is then created, compare-and-set like an update.
    pub async fn update_or_create<T>(
        &self,
        base: &TaskStatus,
        mut change: impl FnMut(&mut TaskStatus) -> Update<T>,
    ) -> Result<(TaskStatus, T), StoreError> {
        for _ in 0..MAX_SEQ_RACES {
            if let Some(updated) = self.update(&base.id, &mut change).await? {
                return Ok(updated);
            }
            let mut status = base.clone();
            let out = match change(&mut status) {
                Update::Keep(out) => return Ok((status, out)),
                Update::Write(out) => out,
            };
            status.updated_at = crate::now();
            let value: Bytes = serde_json::to_vec(&status)
                .expect("statuses always serialize")
                .into();
            // Not created: written meanwhile (by the task's worker, or by this very create
            // whose answer was lost): change that record instead.
            if self.create(&base.id, value).await? {
                return Ok((status, out));
            }
        }
        Err(StoreError::Contention(format!("status of {}", base.id)))
    }

    /// Every status record written from now on, as it is written (deletions skipped).
    pub async fn changes(
        &self,
    ) -> Result<impl Stream<Item = Result<TaskStatus, StoreError>> + use<>, StoreError> {
        let watch = self
            .kv
            .watch_all()
            .await
            .map_err(|e| unavailable("watch statuses")(&e))?;
        Ok(watch.filter_map(|entry| async move {
            match entry {
                Ok(e) if e.operation == kv::Operation::Put => Some(
                    serde_json::from_slice::<TaskStatus>(&e.value)
                        .map_err(corrupt(format!("status {}", e.key))),
                ),
                Ok(_) => None,
                Err(e) => Some(Err(unavailable("watch statuses")(&e))),
            }
        }))
    }

    /// The most recent tasks first (task ids are time-ordered UUID v7).
    /// The `limit` most recent tasks that `keep` accepts.
    pub async fn recent(
        &self,
        limit: usize,
        keep: impl Fn(&TaskStatus) -> bool,
    ) -> Result<Vec<TaskStatus>, StoreError> {
        let keys: Vec<String> = match self.kv.keys().await {
            Ok(keys) => keys
                .try_collect()
                .await
                .map_err(|e| unavailable("list statuses")(&e))?,
            Err(e) => return Err(unavailable("list statuses")(&e)),
        };
        let mut ids: Vec<TaskId> = keys.iter().filter_map(|k| TaskId::parse(k).ok()).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::with_capacity(limit.min(ids.len()));
        for id in ids {
            if out.len() >= limit {
                break;
            }
            if let Some(status) = self.get(&id).await?.filter(&keep) {
                out.push(status);
            }
        }
        Ok(out)
    }
}

/// The sessions KV bucket.
#[derive(Clone)]
pub struct SessionStore {
    pub(super) kv: kv::Store,
}

impl SessionStore {
    pub async fn get(&self, key: &SessionKey) -> Result<Option<Session>, StoreError> {
        let value = self
            .kv
            .get(key.as_str())
            .await
            .map_err(|e| unavailable("read session")(&e))?;
        value
            .map(|v| serde_json::from_slice(&v).map_err(corrupt(key.as_str())))
            .transpose()
    }

    pub async fn put(&self, key: &SessionKey, session: &Session) -> Result<(), StoreError> {
        let value: Bytes = serde_json::to_vec(session)
            .expect("sessions always serialize")
            .into();
        self.kv
            .put(key.as_str(), value)
            .await
            .map_err(|e| unavailable("write session")(&e))?;
        Ok(())
    }
}

/// Webhook deliveries in the deliveries bucket: which task each made.
#[derive(Clone)]
pub struct DeliveryStore {
    pub(super) kv: kv::Store,
}

impl DeliveryStore {
    /// Records that delivery `key` makes task `task`, unless it was recorded before: then the
    /// task it made first (whichever bridge recorded it).
    pub async fn claim(&self, key: &str, task: &TaskId) -> Result<Option<TaskId>, StoreError> {
        let value = Bytes::from(task.to_string());
        match self.kv.create(key, value).await {
            Ok(_) => Ok(None),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let Some((first, _)) =
                    leader_entry(&self.kv, key, "read delivery", Reads::Leader).await?
                else {
                    return Err(StoreError::Contention(key.to_owned()));
                };
                TaskId::parse(&String::from_utf8_lossy(&first))
                    .map(Some)
                    .map_err(|_| StoreError::Corrupt {
                        key: key.to_owned(),
                        reason: "not a task id".into(),
                    })
            }
            Err(e) => Err(unavailable("record delivery")(&e)),
        }
    }
}

/// Who holds a lease, until when.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Lease {
    holder: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: time::OffsetDateTime,
}

/// Leases in the leases bucket: one holder at a time per name, taken over once it expires.
/// Compare-and-set on the entry's revision decides every race.
#[derive(Clone)]
pub struct LeaseStore {
    pub(super) kv: kv::Store,
}

impl LeaseStore {
    /// Takes or renews lease `name` for `holder` for `ttl`. `false`: another holder has it.
    pub async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let lease = Lease {
            holder: holder.to_owned(),
            expires_at: crate::now() + ttl,
        };
        let value: Bytes = serde_json::to_vec(&lease)
            .expect("leases always serialize")
            .into();
        let Some((current, revision)) =
            leader_entry(&self.kv, name, "read lease", Reads::Leader).await?
        else {
            return Ok(self.kv.create(name, value).await.is_ok());
        };
        let held_by_other = serde_json::from_slice::<Lease>(&current)
            .is_ok_and(|l| l.holder != holder && l.expires_at > crate::now());
        if held_by_other {
            return Ok(false);
        }
        Ok(self.kv.update(name, value, revision).await.is_ok())
    }

    /// Gives lease `name` up if `holder` has it, so another instance can take over at once.
    pub async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        if let Some((current, _)) =
            leader_entry(&self.kv, name, "read lease", Reads::Leader).await?
        {
            let ours = serde_json::from_slice::<Lease>(&current).is_ok_and(|l| l.holder == holder);
            if ours {
                self.kv
                    .purge(name)
                    .await
                    .map_err(|e| unavailable("release lease")(&e))?;
            }
        }
        Ok(())
    }
}
