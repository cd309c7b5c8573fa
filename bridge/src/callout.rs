//! The NATS server's auth callout: a NATS user for one task, for the worker that holds it.
//!
//! Static permissions cannot name a task, so a worker's own user (`worker-<agent>`) may only
//! take and ack its agent's tasks. When this bridge answers the callout
//! (`OPENCLAW_NATS_CALLOUT_SEED`), it stamps each task message it publishes with a random
//! ticket ([`names::TASK_TICKET_HEADER`]); the consumer hands that message to one worker, which
//! then connects again as `task-<seq>` with the ticket as password. The server asks the bridge
//! ([`serve`]); the bridge reads the message at `seq`, checks the ticket against the one stored
//! there, decides which task that message runs as (the rule the worker uses,
//! [`task_for_message`]), and answers with a user JWT whose permissions name that task's
//! subjects and nothing else ([`Grant`]).
//!
//! **Architecture Invariant:** a per-task user may write only its task's events and record,
//! and read only those and the record of the task its message copies; the grant is decided
//! from the stored message, never from what the client claims beyond its sequence number.

use std::sync::Arc;

use base64::Engine as _;
use futures_util::StreamExt;
use nkeys::KeyPair;
use openclaw_common::config::ConfigError;
use openclaw_common::ids::TaskId;
use openclaw_common::names;
use openclaw_common::status::task_for_message;
use openclaw_common::store::{StoreError, Stores};
use openclaw_common::task::TaskSpec;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

/// The subject the server sends authorization requests to.
pub const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// The account the callout binds per-task users to: the server's global account, where every
/// user of the shipped configuration lives.
const ACCOUNT: &str = "$G";

/// The issuer key the server trusts for callout answers (`auth_callout { issuer: <public> }`).
#[derive(Clone)]
pub struct CalloutConfig {
    issuer: Arc<KeyPair>,
}

impl std::fmt::Debug for CalloutConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalloutConfig")
            .field("issuer", &self.issuer.public_key())
            .finish()
    }
}

impl CalloutConfig {
    /// The account seed (`SA…`) in file `path` (a file, like `NATS_NKEY_SEED`, so the seed is
    /// not in the environment).
    pub fn from_seed_file(var: &'static str, path: &str) -> Result<Self, ConfigError> {
        let invalid = |expected: String| ConfigError::Invalid {
            var,
            value: path.to_owned(),
            expected,
        };
        let seed = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("a readable file holding an account seed ({e})")))?;
        let issuer = KeyPair::from_seed(seed.trim())
            .map_err(|_| invalid("a file holding an NKey account seed (SA…)".into()))?;
        if !issuer.public_key().starts_with('A') {
            return Err(invalid(
                "an account seed (SA…), the key auth_callout's issuer names".into(),
            ));
        }
        Ok(Self {
            issuer: Arc::new(issuer),
        })
    }

    /// The public key (`A…`) to configure as the server's `auth_callout { issuer }`.
    pub fn issuer(&self) -> String {
        self.issuer.public_key()
    }
}

/// A fresh ticket for a task message: 32 random bytes, URL-safe base64.
pub fn new_ticket() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Why a connection is refused: said to the server (which logs it) and in the bridge's log.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Denied(String),
    #[error("cannot check the ticket now: {0}")]
    Store(#[from] StoreError),
}

/// What a per-task user may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The user's name (`task-<seq>`), and so its inbox owner.
    pub user: String,
    /// The task the message runs as (a replay's own id for a copy republished by hand).
    pub task: TaskId,
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

impl Grant {
    /// The rights of the worker holding message `seq`, which runs as `task` and copies
    /// `original` (the same id unless it is a replay).
    fn for_task(seq: u64, task: TaskId, original: &TaskId) -> Self {
        let user = names::task_user(seq);
        let record = |id: &TaskId| {
            format!(
                "$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{id}",
                bucket = names::STATUS_BUCKET
            )
        };
        let events = names::event_subject(&task);
        let mut publish = vec![
            // Binding to the bucket reads its configuration; with a subject filter that lists
            // its keys (other tasks' ids, no contents): ARCHITECTURE.md, "NATS".
            format!("$JS.API.STREAM.INFO.KV_{}", names::STATUS_BUCKET),
            events.clone(),
            names::diff_subject(&task),
            format!("$KV.{}.{task}", names::STATUS_BUCKET),
            format!("$JS.API.DIRECT.GET.{}.{events}", names::EVENTS_STREAM),
            record(&task),
        ];
        if *original != task {
            publish.push(record(original));
        }
        Self {
            subscribe: vec![format!("{}.>", names::inbox_prefix(&user))],
            user,
            task,
            publish,
        }
    }
}

/// Decides whether `user` with password `ticket` gets a per-task user, and which.
pub async fn decide(stores: &Stores, user: &str, ticket: &str) -> Result<Grant, Refusal> {
    let denied = |why: &str| Refusal::Denied(format!("{user}: {why}"));
    let seq = names::task_user_seq(user)
        .ok_or_else(|| denied("not a task user (task-<stream sequence>)"))?;
    let msg = stores
        .tasks
        .message(seq)
        .await?
        .ok_or_else(|| denied("no task message at that sequence"))?;
    let stored = msg
        .headers
        .get(names::TASK_TICKET_HEADER)
        .ok_or_else(|| denied("the task message carries no ticket"))?;
    if !bool::from(stored.as_str().as_bytes().ct_eq(ticket.as_bytes())) {
        return Err(denied("wrong ticket"));
    }
    let spec: TaskSpec =
        serde_json::from_slice(&msg.payload).map_err(|_| denied("unreadable task message"))?;
    if msg.subject.as_str() != names::task_subject(&spec.agent, &spec.id)
        && msg.subject.as_str() != names::legacy_task_subject(&spec.agent)
    {
        return Err(denied("the message is not on its task's subject"));
    }
    // The worker decides which task it runs from the task's record, and may read only
    // records: so there is one before it connects (a task nothing was written about has
    // none; its first message says what it would hold).
    let known = stores.ensure_record(&spec.id).await?;
    let original = spec.id;
    let task = task_for_message(spec, known.as_ref(), seq, msg.time);
    Ok(Grant::for_task(seq, task.id, &original))
}

/// What the callout service needs of the bridge: its NATS connection, the stores once they are
/// set up, and the shutdown signal (not the whole HTTP state).
#[derive(Clone)]
pub struct CalloutContext {
    pub client: async_nats::Client,
    pub stores: std::sync::Arc<std::sync::OnceLock<Stores>>,
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// Answers the server's authorization requests until the bridge shuts down.
pub async fn serve(state: CalloutContext, callout: CalloutConfig) {
    let mut requests = loop {
        match state.client.subscribe(AUTH_SUBJECT).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to the auth callout; retrying");
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    () = state.shutdown.cancelled() => return,
                }
            }
        }
    };
    tracing::info!(issuer = %callout.issuer(), "answering the NATS auth callout for per-task users");
    loop {
        let request = tokio::select! {
            r = requests.next() => r,
            () = state.shutdown.cancelled() => return,
        };
        let Some(request) = request else { return };
        // One at a time would hold every worker's connect behind one slow store read.
        let (state, callout) = (state.clone(), callout.clone());
        tokio::spawn(async move { answer(&state, &callout, request).await });
    }
}

/// The parts of an authorization request the callout reads.
#[derive(Debug, Deserialize)]
struct AuthorizationRequest {
    user_nkey: String,
    server_id: ServerId,
    /// What the client sent in its CONNECT (`connect_opts`; the design record calls it
    /// `client_opts`).
    #[serde(default, alias = "client_opts")]
    connect_opts: ConnectOpts,
}

#[derive(Debug, Deserialize)]
struct ServerId {
    id: String,
}

#[derive(Debug, Default, Deserialize)]
struct ConnectOpts {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    pass: Option<String>,
}

async fn answer(state: &CalloutContext, callout: &CalloutConfig, request: async_nats::Message) {
    let Some(reply) = request.reply.clone() else {
        return;
    };
    let parsed = jwt::decode(&request.payload).and_then(|claims| {
        serde_json::from_value::<AuthorizationRequest>(claims["nats"].clone())
            .map_err(|e| jwt::JwtError(format!("not an authorization request: {e}")))
    });
    let request = match parsed {
        Ok(r) => r,
        Err(e) => {
            // Nothing to answer to: the server refuses the connection when its wait ends.
            tracing::warn!(error = %e, "unreadable auth callout request");
            return;
        }
    };
    let user = request.connect_opts.user.clone().unwrap_or_default();
    let outcome = match state.stores.get() {
        Some(stores) => {
            decide(
                stores,
                &user,
                request.connect_opts.pass.as_deref().unwrap_or_default(),
            )
            .await
        }
        None => Err(Refusal::Denied("the bridge is not ready".into())),
    };
    let response = match &outcome {
        Ok(grant) => {
            tracing::info!(%user, task_id = %grant.task, "per-task NATS user granted");
            let user_jwt = jwt::encode(&user_claims(callout, &request, grant), &callout.issuer);
            response_claims(callout, &request, Some(&user_jwt), None)
        }
        Err(refusal) => {
            tracing::warn!(%user, reason = %refusal, "per-task NATS user refused");
            response_claims(callout, &request, None, Some(&refusal.to_string()))
        }
    };
    let response = jwt::encode(&response, &callout.issuer);
    if let Err(e) = state.client.publish(reply, response.into()).await {
        tracing::warn!(error = %e, "cannot answer the auth callout");
    }
}

fn user_claims(
    callout: &CalloutConfig,
    request: &AuthorizationRequest,
    grant: &Grant,
) -> serde_json::Value {
    json!({
        "jti": uuid::Uuid::now_v7().simple().to_string(),
        "iat": openclaw_common::now().unix_timestamp(),
        "iss": callout.issuer(),
        "sub": request.user_nkey,
        "name": grant.user,
        "aud": ACCOUNT,
        "nats": {
            "pub": {"allow": grant.publish},
            "sub": {"allow": grant.subscribe},
            "subs": -1, "data": -1, "payload": -1,
            "type": "user",
            "version": 2,
        },
    })
}

fn response_claims(
    callout: &CalloutConfig,
    request: &AuthorizationRequest,
    user_jwt: Option<&str>,
    error: Option<&str>,
) -> serde_json::Value {
    let mut nats = json!({"type": "authorization_response", "version": 2});
    if let Some(user_jwt) = user_jwt {
        nats["jwt"] = json!(user_jwt);
    }
    if let Some(error) = error {
        nats["error"] = json!(error);
    }
    json!({
        "jti": uuid::Uuid::now_v7().simple().to_string(),
        "iat": openclaw_common::now().unix_timestamp(),
        "iss": callout.issuer(),
        "sub": request.user_nkey,
        "aud": request.server_id.id,
        "nats": nats,
    })
}

/// NATS JWTs: `header.claims.signature`, base64url without padding, signed with Ed25519 by
/// an NKey (`alg: ed25519-nkey`), as the server's `nats-io/jwt` decodes them.
mod jwt {
    use base64::Engine as _;
    use nkeys::KeyPair;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct JwtError(pub String);

    pub fn encode(claims: &serde_json::Value, key: &KeyPair) -> String {
        let header = B64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
        let body = B64.encode(claims.to_string());
        let signed = format!("{header}.{body}");
        // Signing with a key pair made from a seed cannot fail (only a public-only one can).
        let signature = key.sign(signed.as_bytes()).unwrap_or_default();
        format!("{signed}.{}", B64.encode(signature))
    }

    /// The claims of `token`, after checking it is signed by the key its `iss` names.
    pub fn decode(token: &[u8]) -> Result<serde_json::Value, JwtError> {
        let token = std::str::from_utf8(token).map_err(|_| JwtError("a JWT is text".into()))?;
        let mut parts = token.trim().split('.');
        let (Some(header), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError("a JWT has three parts".into()));
        };
        let part = |p: &str| {
            B64.decode(p)
                .map_err(|e| JwtError(format!("JWT part is not base64url: {e}")))
        };
        let claims: serde_json::Value = serde_json::from_slice(&part(body)?)
            .map_err(|e| JwtError(format!("JWT claims are not JSON: {e}")))?;
        let issuer = claims["iss"]
            .as_str()
            .and_then(|iss| KeyPair::from_public_key(iss).ok())
            .ok_or_else(|| JwtError("JWT issuer is not a public NKey".into()))?;
        issuer
            .verify(format!("{header}.{body}").as_bytes(), &part(signature)?)
            .map_err(|_| JwtError("JWT signature does not match its issuer".into()))?;
        Ok(claims)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_signed_jwt_decodes_and_any_change_to_it_is_refused() {
            let key = KeyPair::new_account();
            let claims = serde_json::json!({"iss": key.public_key(), "sub": "U", "n": 1});
            let token = encode(&claims, &key);
            assert_eq!(decode(token.as_bytes()).unwrap(), claims);

            let (head, rest) = token.split_once('.').unwrap();
            let (_, signature) = rest.split_once('.').unwrap();
            let forged_body = B64.encode(
                serde_json::json!({"iss": key.public_key(), "sub": "U", "n": 2}).to_string(),
            );
            let forged = format!("{head}.{forged_body}.{signature}");
            assert!(decode(forged.as_bytes()).is_err());
            // Signed by another key that claims to be the first.
            let other = KeyPair::new_account();
            assert!(decode(encode(&claims, &other).as_bytes()).is_err());
            assert!(decode(b"a.b").is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_names_its_task_and_the_record_of_the_task_it_copies_and_nothing_wider() {
        let original = TaskId::new();
        let replay = TaskId::new();
        let grant = Grant::for_task(7, replay, &original);
        assert_eq!(grant.user, "task-7");
        assert_eq!(grant.subscribe, ["_INBOX_task-7.>"]);
        for subject in &grant.publish {
            assert!(
                !subject.contains('*') && !subject.contains('>'),
                "a wildcard in {subject}"
            );
            assert!(
                subject.ends_with(&replay.to_string())
                    || *subject == format!("openclaw.events.{replay}.diff")
                    || subject.ends_with(&format!("$KV.openclaw_tasks.{original}"))
                    || subject == "$JS.API.STREAM.INFO.KV_openclaw_tasks",
                "{subject}"
            );
        }
        // Only the record of the original is readable, not writable.
        assert!(
            !grant
                .publish
                .contains(&format!("$KV.openclaw_tasks.{original}"))
        );
        assert!(
            grant
                .publish
                .contains(&format!("$KV.openclaw_tasks.{replay}"))
        );
        assert!(grant.publish.contains(&format!("openclaw.events.{replay}")));
    }

    #[test]
    fn the_issuer_must_be_an_account_seed() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let account = KeyPair::new_account();
        let good = write("a.nk", &format!("{}\n", account.seed().unwrap()));
        let config = CalloutConfig::from_seed_file("V", &good).unwrap();
        assert_eq!(config.issuer(), account.public_key());
        assert!(!format!("{config:?}").contains(&account.seed().unwrap()));
        let user = write("u.nk", &KeyPair::new_user().seed().unwrap());
        for path in [
            user,
            write("x.nk", "not a seed"),
            "/nonexistent/seed".into(),
        ] {
            let err = CalloutConfig::from_seed_file("V", &path).unwrap_err();
            assert!(err.to_string().contains('V'), "{err}");
        }
    }
}
