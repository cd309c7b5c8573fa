//! A command's output published as it comes ([`EventKind::Output`]): chunks coalesced for a
//! quarter second or 4 KiB, secrets redacted, at most [`LIVE_OUTPUT_BYTES`] per command; the
//! hosts its network refused as [`EventKind::NetworkRefused`].

use std::future::Future;
use std::time::Duration;

use openclaw_common::event::{EventKind, LIVE_OUTPUT_BYTES};
use openclaw_common::store::{EventWriter, StoreError};

use crate::secrets::Secrets;
use crate::tools::{Live, LiveOutput};

const FLUSH_EVERY: Duration = Duration::from_millis(250);
const FLUSH_BYTES: usize = 4096;

/// Runs `work` (given the channel to send output to) while publishing what it sends as
/// `output` events of `call_id`.
pub(crate) async fn publishing<T, F: Future<Output = T>>(
    events: &mut EventWriter,
    secrets: &Secrets,
    call_id: &str,
    work: impl FnOnce(LiveOutput) -> F,
) -> Result<T, StoreError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Live>(64);
    let work = work(tx);
    tokio::pin!(work);
    let mut out = Relay {
        call_id,
        secrets,
        pending: Vec::new(),
        sent: 0,
    };
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            Some(live) = rx.recv() => {
                out.take(events, live).await?;
                if out.pending.len() >= FLUSH_BYTES {
                    out.flush(events).await?;
                }
            }
            _ = tick.tick() => out.flush(events).await?,
        }
    };
    while let Ok(live) = rx.try_recv() {
        out.take(events, live).await?;
    }
    out.flush(events).await?;
    Ok(result)
}

struct Relay<'a> {
    call_id: &'a str,
    secrets: &'a Secrets,
    pending: Vec<u8>,
    sent: usize,
}

impl Relay<'_> {
    /// Output waits for the next flush; a refused host is published at once (after the output
    /// before it).
    async fn take(&mut self, events: &mut EventWriter, live: Live) -> Result<(), StoreError> {
        match live {
            Live::Output(chunk) => self.pending.extend_from_slice(&chunk),
            Live::Refused(refusal) => {
                self.flush(events).await?;
                events
                    .publish(EventKind::NetworkRefused {
                        call_id: self.call_id.to_owned(),
                        target: refusal.target(),
                        reason: self.secrets.redact(&refusal.reason),
                    })
                    .await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self, events: &mut EventWriter) -> Result<(), StoreError> {
        if self.pending.is_empty() || self.sent >= LIVE_OUTPUT_BYTES {
            self.pending.clear();
            return Ok(());
        }
        let room = LIVE_OUTPUT_BYTES - self.sent;
        let mut text =
            String::from_utf8_lossy(&self.pending[..self.pending.len().min(room)]).into_owned();
        self.sent += self.pending.len().min(room);
        if self.sent >= LIVE_OUTPUT_BYTES {
            text.push_str("\n[live output stops here; the command's result keeps its end]\n");
        }
        self.pending.clear();
        events
            .publish(EventKind::Output {
                call_id: self.call_id.to_owned(),
                text: self.secrets.redact(&text),
            })
            .await?;
        Ok(())
    }
}
