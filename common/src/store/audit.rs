//! The audit trail: one record per state-changing request (submit, cancel, replay, chat,
//! webhook, token reload) in its own stream, kept for its own time (`nats/audit.json`).

use async_nats::jetstream::{self, Context};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::StoreError;
use crate::names;

/// Who did what, when, from where, and how it ended. Never a token; a prompt never at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// `submit`, `cancel`, `replay`, `chat`, `webhook`, `token_reload`, …
    pub action: String,
    /// The principal (`unauthenticated` for a request no token named).
    pub principal: String,
    /// The user the principal acted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The request: method and path (no query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The task it concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The HTTP status answered (0 for what no request caused: a token reload).
    pub status: u16,
    /// The peer's address (the proxy's, behind one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// What else says what happened (a reload's outcome), never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The audit stream.
#[derive(Clone)]
pub struct AuditLog {
    js: Context,
}

impl AuditLog {
    pub(super) async fn bind(js: &Context) -> Result<Self, StoreError> {
        js.get_stream_no_info(names::AUDIT_STREAM)
            .await
            .map_err(|e| StoreError::Unavailable(format!("stream {}: {e}", names::AUDIT_STREAM)))?;
        Ok(Self { js: js.clone() })
    }

    /// Sends `record` to the stream on the connection (in order with everything sent before
    /// it) and returns the wait for its acknowledgement, which the caller may take off its
    /// own path.
    pub async fn send(
        &self,
        record: &AuditRecord,
    ) -> Result<jetstream::context::PublishAckFuture, StoreError> {
        let subject = format!("{}.{}", names::AUDIT_SUBJECT_PREFIX, record.action);
        let payload = serde_json::to_vec(record).map_err(|e| StoreError::Corrupt {
            key: "audit record".into(),
            reason: e.to_string(),
        })?;
        self.js
            .publish(subject, payload.into())
            .await
            .map_err(|e| StoreError::Unavailable(format!("audit: {e}")))
    }

    /// The newest records first, at most `limit` that `keep` keeps, looking at no more than
    /// `scan` records.
    pub async fn recent(
        &self,
        limit: usize,
        scan: usize,
        keep: impl Fn(&AuditRecord) -> bool,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut stream = self
            .js
            .get_stream(names::AUDIT_STREAM)
            .await
            .map_err(|e| StoreError::Unavailable(format!("audit stream: {e}")))?;
        let info = stream
            .info()
            .await
            .map_err(|e| StoreError::Unavailable(format!("audit stream info: {e}")))?;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let mut out = Vec::new();
        let mut seq = last;
        let mut looked = 0;
        while seq >= first.max(1) && out.len() < limit && looked < scan {
            looked += 1;
            match stream.direct_get(seq).await {
                Ok(msg) => {
                    if let Ok(record) = serde_json::from_slice::<AuditRecord>(&msg.payload)
                        && keep(&record)
                    {
                        out.push(record);
                    }
                }
                Err(e) if e.kind() == jetstream::stream::DirectGetErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Unavailable(format!("audit read: {e}"))),
            }
            seq -= 1;
        }
        Ok(out)
    }
}
