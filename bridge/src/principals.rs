//! Who is calling: API tokens with an identity, and the user a trusted front end acts for.
//!
//! A tokens file (`OPENCLAW_TOKENS_FILE`, TOML) names each principal and the SHA-256 of its
//! token — never the token — with a role and optional limits:
//!
//! ```toml
//! [[token]]
//! name = "alice"
//! role = "user"            # user | admin | service
//! team = "platform"
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! max_in_flight = 5
//! ```
//!
//! The single `OPENCLAW_GATEWAY_TOKEN` (the starter kit's contract) is one more principal,
//! `admin`. A presented token is hashed and compared with every entry in constant time; an
//! unknown one is 401 with nothing learned. The file is read again when it changes (no
//! restart); a file that no longer parses keeps the last good one in force, and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use openclaw_common::task::SubmittedBy;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Its own tasks only.
    User,
    /// Every task; the usage and audit records.
    Admin,
    /// A trusted front end (Open WebUI): acts for the user its forwarded headers name, and
    /// sees that user's tasks.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

/// A principal's limits (none: the deployment's defaults).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_in_flight: Option<u32>,
    pub max_submits_per_minute: Option<u32>,
    pub max_cost_usd_per_day: Option<f64>,
    pub max_cost_usd_per_month: Option<f64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        *self == Limits::default()
    }

    /// These limits, with `defaults` where these set none.
    pub fn or(&self, defaults: &Limits) -> Limits {
        Limits {
            max_in_flight: self.max_in_flight.or(defaults.max_in_flight),
            max_submits_per_minute: self
                .max_submits_per_minute
                .or(defaults.max_submits_per_minute),
            max_cost_usd_per_day: self.max_cost_usd_per_day.or(defaults.max_cost_usd_per_day),
            max_cost_usd_per_month: self
                .max_cost_usd_per_month
                .or(defaults.max_cost_usd_per_month),
        }
    }
}

/// A named holder of a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub team: Option<String>,
    pub limits: Limits,
}

/// The name of the gateway token's principal.
pub const GATEWAY_PRINCIPAL: &str = "admin";
/// The principal of a bridge without authentication.
pub const ANONYMOUS_PRINCIPAL: &str = "anonymous";

impl Principal {
    /// Whether the user a request names (forwarded headers, OpenAI's `user`) is taken as the
    /// user it acts for: a service's, and on a bridge without authentication (where nothing
    /// is a boundary) anyone's, as before principals.
    pub fn acts_for_users(&self) -> bool {
        self.role == Role::Service || self.name == ANONYMOUS_PRINCIPAL
    }
}

/// The principal of a bridge without authentication (loopback, or opted in): everything is
/// allowed, as before principals.
fn anonymous() -> Arc<Principal> {
    Arc::new(Principal {
        name: ANONYMOUS_PRINCIPAL.into(),
        role: Role::Admin,
        team: None,
        limits: Limits::default(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
    /// Limits of a team as a whole (`[[team]] name = "…"`, then the same limit keys).
    #[serde(default)]
    team: Vec<TeamEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamEntry {
    name: String,
    #[serde(flatten)]
    limits: Limits,
}

/// What a tokens file says: its principals and its teams' limits.
#[derive(Default)]
struct FileContents {
    tokens: Vec<Known>,
    teams: std::collections::BTreeMap<String, Limits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    #[serde(default)]
    team: Option<String>,
    sha256: String,
    #[serde(flatten)]
    limits: Limits,
}

/// A token's digest and whose it is.
struct Known {
    digest: [u8; 32],
    principal: Arc<Principal>,
}

fn sha256(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Parses a tokens file's text; the error names the entry at fault.
fn parse(text: &str, path: &str) -> Result<FileContents, TokensError> {
    let invalid = |message: String| TokensError::Invalid {
        path: path.to_owned(),
        message,
    };
    let file: TokensFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let mut teams = std::collections::BTreeMap::new();
    for team in file.team {
        if team.name.trim().is_empty() || teams.insert(team.name.clone(), team.limits).is_some() {
            return Err(invalid(format!(
                "team {:?}: a team needs a name, once",
                team.name
            )));
        }
    }
    let mut known: Vec<Known> = Vec::new();
    for (n, entry) in file.token.into_iter().enumerate() {
        let at = format!("token {} ({:?})", n + 1, entry.name);
        let name_ok = !entry.name.is_empty()
            && entry.name.len() <= 64
            && entry
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
        // The names the bridge gives itself are not anyone else's.
        let reserved = entry.name == ANONYMOUS_PRINCIPAL
            || entry.name == GATEWAY_PRINCIPAL
            || entry.name.ends_with("-webhook");
        if !name_ok || reserved {
            return Err(invalid(format!(
                "{at}: name must be 1-64 letters, digits, '-', '_', '.' or '@' (and not \"{ANONYMOUS_PRINCIPAL}\", \"{GATEWAY_PRINCIPAL}\" or *-webhook, which the bridge uses)"
            )));
        }
        let hex = entry.sha256.trim();
        let digest = decode_hex(hex).ok_or_else(|| {
            invalid(format!(
                "{at}: sha256 must be the lowercase hex SHA-256 of the token (64 characters), never the token itself"
            ))
        })?;
        if known.iter().any(|k| k.principal.name == entry.name) {
            return Err(invalid(format!("{at}: the name is used twice")));
        }
        if known.iter().any(|k| k.digest == digest) {
            return Err(invalid(format!("{at}: the same token as another entry")));
        }
        known.push(Known {
            digest,
            principal: Arc::new(Principal {
                name: entry.name,
                role: entry.role,
                team: entry.team.filter(|t| !t.is_empty()),
                limits: entry.limits,
            }),
        });
    }
    Ok(FileContents {
        tokens: known,
        teams,
    })
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The file's identity as last read: a change of either means read it again.
type Stamp = (Option<SystemTime>, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

/// The principals of this bridge.
pub struct Principals {
    /// The gateway token's digest (`OPENCLAW_GATEWAY_TOKEN`).
    gateway: Option<[u8; 32]>,
    file: Option<PathBuf>,
    known: RwLock<(Arc<FileContents>, Option<Stamp>)>,
}

/// What a reload did, for the log and the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub enum Reloaded {
    Unchanged,
    /// Read again: how many principals the file names now.
    Loaded(usize),
    /// Kept the last good file: why the new one was refused.
    Refused(String),
}

impl Principals {
    /// The gateway token alone (or nothing: no authentication).
    pub fn gateway(token: Option<&str>) -> Self {
        Self {
            gateway: token.map(sha256),
            file: None,
            known: RwLock::new((Arc::new(FileContents::default()), None)),
        }
    }

    /// The gateway token and the tokens file at `path`, read now (a broken file refuses the
    /// start: better than a bridge nobody can use).
    pub fn with_file(token: Option<&str>, path: &Path) -> Result<Self, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let known = parse(&text, &path.display().to_string())?;
        Ok(Self {
            gateway: token.map(sha256),
            file: Some(path.to_path_buf()),
            known: RwLock::new((Arc::new(known), stamp(path))),
        })
    }

    /// Whether requests must present a token.
    pub fn required(&self) -> bool {
        self.gateway.is_some() || self.file.is_some()
    }

    /// The principal whose token `presented` is. Every entry is compared, whatever matched.
    pub fn authenticate(&self, presented: &str) -> Option<Arc<Principal>> {
        if !self.required() {
            return Some(anonymous());
        }
        let digest = sha256(presented);
        let mut found: Option<Arc<Principal>> = None;
        if let Some(gateway) = &self.gateway
            && bool::from(digest.ct_eq(gateway))
        {
            found = Some(Arc::new(Principal {
                name: GATEWAY_PRINCIPAL.into(),
                role: Role::Admin,
                team: None,
                limits: Limits::default(),
            }));
        }
        let known = self.known.read().map(|k| k.0.clone()).unwrap_or_default();
        for entry in known.tokens.iter() {
            if bool::from(digest.ct_eq(&entry.digest)) {
                found = Some(entry.principal.clone());
            }
        }
        found
    }

    /// The limits of `by`'s owner ledger (its principal's, over `defaults`) and of its team's
    /// (the file's `[[team]]`, when the principal has a team that has limits).
    pub fn limits_for(
        &self,
        by: &SubmittedBy,
        defaults: &Limits,
    ) -> (Limits, Option<(String, Limits)>) {
        let known = self.known.read().map(|k| k.0.clone()).unwrap_or_default();
        let principal = known
            .tokens
            .iter()
            .find(|k| k.principal.name == by.principal)
            .map(|k| k.principal.clone());
        let own = principal
            .as_ref()
            .map_or_else(|| defaults.clone(), |p| p.limits.or(defaults));
        let team = by
            .team
            .as_ref()
            .and_then(|t| known.teams.get(t).map(|l| (t.clone(), l.clone())));
        (own, team)
    }

    /// Reads the tokens file again if it changed since it was last read.
    pub fn reload(&self) -> Reloaded {
        let Some(path) = &self.file else {
            return Reloaded::Unchanged;
        };
        let now = stamp(path);
        let last = self.known.read().ok().and_then(|k| k.1);
        if now == last {
            return Reloaded::Unchanged;
        }
        let parsed = std::fs::read_to_string(path)
            .map_err(|source| TokensError::Read {
                path: path.display().to_string(),
                source,
            })
            .and_then(|text| parse(&text, &path.display().to_string()));
        let Ok(mut known) = self.known.write() else {
            return Reloaded::Unchanged;
        };
        match parsed {
            Ok(contents) => {
                let n = contents.tokens.len();
                *known = (Arc::new(contents), now);
                Reloaded::Loaded(n)
            }
            Err(e) => {
                // Not read again until it changes: one message per broken version.
                known.1 = now;
                Reloaded::Refused(e.to_string())
            }
        }
    }

    /// Reads the file again whenever it changes (a mounted Secret is updated in place), until
    /// `shutdown`; `on_reload` hears of each reload (the audit trail).
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
        on_reload: impl Fn(&Reloaded) + Send + 'static,
    ) {
        if self.file.is_none() {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let outcome = self.reload();
            match &outcome {
                Reloaded::Unchanged => continue,
                Reloaded::Loaded(n) => tracing::info!(principals = n, "tokens file reloaded"),
                Reloaded::Refused(why) => {
                    tracing::warn!(%why, "tokens file refused; the last good one stays in force")
                }
            }
            on_reload(&outcome);
        }
    }
}

/// A user a service principal acts for (Open WebUI's forwarded user headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActingUser {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// Open WebUI's forwarded user headers (`ENABLE_FORWARD_USER_INFO_HEADERS`).
const USER_ID_HEADER: &str = "x-openwebui-user-id";
const USER_EMAIL_HEADER: &str = "x-openwebui-user-email";
const USER_NAME_HEADER: &str = "x-openwebui-user-name";

/// A header's value when it is short printable text.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 200 && !v.chars().any(char::is_control))
        .map(str::to_owned)
}

/// Who a request comes from: its principal, and the user it acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub user: Option<ActingUser>,
}

impl Caller {
    /// The caller of a request from `principal` with `headers`: the forwarded user counts only
    /// from a service principal; anyone else's such headers are ignored.
    pub fn of(principal: Arc<Principal>, headers: &HeaderMap) -> Self {
        let user = principal
            .acts_for_users()
            .then(|| header_text(headers, USER_ID_HEADER))
            .flatten()
            .map(|id| ActingUser {
                id,
                email: header_text(headers, USER_EMAIL_HEADER),
                name: header_text(headers, USER_NAME_HEADER),
            });
        Self { principal, user }
    }

    /// A caller acting for `user` when it may (a service principal without forwarded headers
    /// naming one; the OpenAI `user` field).
    pub fn acting_for(mut self, user: Option<&str>) -> Self {
        if self.principal.acts_for_users()
            && self.user.is_none()
            && let Some(id) = user
                .map(str::trim)
                .filter(|u| !u.is_empty() && u.len() <= 200)
        {
            self.user = Some(ActingUser {
                id: id.to_owned(),
                email: None,
                name: None,
            });
        }
        self
    }

    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }

    /// What a task it submits records.
    pub fn submitted_by(&self) -> SubmittedBy {
        SubmittedBy {
            principal: self.principal.name.clone(),
            user: self.user.as_ref().map(|u| u.id.clone()),
            team: self.principal.team.clone(),
        }
    }

    /// Whether this caller may see (read, stream, cancel, replay) a task `by` submitted:
    /// admins every task; anyone else their own (the same principal acting for the same user).
    pub fn may_see(&self, by: Option<&SubmittedBy>) -> bool {
        self.is_admin() || by.is_some_and(|by| by.same_owner(&self.submitted_by()))
    }

    /// The name conversations of the chat doors are kept under, so one user's session is
    /// never another's: the principal and user; none for the gateway token and a bridge
    /// without authentication, whose conversations are keyed as before principals.
    pub fn conversation_owner(&self) -> Option<String> {
        let by = self.submitted_by();
        if by.principal == GATEWAY_PRINCIPAL || by.principal == ANONYMOUS_PRINCIPAL {
            return None;
        }
        Some(match by.user {
            Some(user) => format!("{}/{user}", by.principal),
            None => by.principal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(token: &str) -> String {
        sha256(token).iter().map(|b| format!("{b:02x}")).collect()
    }

    fn file(entries: &[(&str, &str, &str)]) -> String {
        entries
            .iter()
            .map(|(name, role, token)| {
                format!(
                    "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
                    hex(token)
                )
            })
            .collect()
    }

    #[test]
    fn tokens_name_their_principal_and_unknown_ones_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(
            &path,
            file(&[("alice", "user", "tok-a"), ("webui", "service", "tok-w")]),
        )
        .unwrap();
        let p = Principals::with_file(Some("gateway-tok"), &path).unwrap();
        assert_eq!(p.authenticate("tok-a").unwrap().name, "alice");
        assert_eq!(p.authenticate("tok-w").unwrap().role, Role::Service);
        let admin = p.authenticate("gateway-tok").unwrap();
        assert_eq!((admin.name.as_str(), admin.role), ("admin", Role::Admin));
        assert!(p.authenticate("tok-b").is_none());
        assert!(p.authenticate("").is_none());
        assert!(
            p.authenticate(&hex("tok-a")).is_none(),
            "the digest is not a token"
        );
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, file(&[("alice", "user", "tok-a")])).unwrap();
        let p = Principals::with_file(None, &path).unwrap();
        assert_eq!(p.reload(), Reloaded::Unchanged);
        std::fs::write(
            &path,
            file(&[("alice", "user", "tok-a"), ("bob", "user", "tok-bob")]),
        )
        .unwrap();
        assert_eq!(p.reload(), Reloaded::Loaded(2));
        assert_eq!(p.authenticate("tok-bob").unwrap().name, "bob");
        std::fs::write(
            &path,
            "[[token]]\nname = \"carol\"\nrole = \"user\"\nsha256 = \"tok-c\"\n",
        )
        .unwrap();
        let Reloaded::Refused(why) = p.reload() else {
            panic!("a token in clear is refused");
        };
        assert!(why.contains("never the token itself"), "{why}");
        assert!(
            !why.contains("tok-c"),
            "the refusal does not echo the value: {why}"
        );
        assert_eq!(
            p.authenticate("tok-bob").unwrap().name,
            "bob",
            "last good file"
        );
    }

    #[test]
    fn entries_are_checked_by_name() {
        for (text, why) in [
            (
                "[[token]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"\"\n",
                "unknown variant",
            ),
            (
                &file(&[("a", "user", "x"), ("a", "admin", "y")]) as &str,
                "used twice",
            ),
            (
                &file(&[("a", "user", "x"), ("b", "admin", "x")]),
                "same token",
            ),
            (&file(&[("a b", "user", "x")]), "name must be"),
            (&file(&[("admin", "user", "x")]), "which the bridge uses"),
            (
                &file(&[("github-webhook", "admin", "x")]),
                "which the bridge uses",
            ),
            (
                "[[token]]\nname = \"a\"\nrole = \"user\"\nsha256 = \"AB\"\n",
                "lowercase hex",
            ),
            (
                &format!("{}max_in_fligth = 3\n", file(&[("a", "user", "x")])),
                "unknown field",
            ),
        ] {
            let err = parse(text, "tokens.toml").err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains(why)),
                "{text}: {err:?}"
            );
        }
        let limits = parse(
            &format!(
                "{}team = \"t\"\nmax_in_flight = 5\nmax_submits_per_minute = 10\nmax_cost_usd_per_day = 2.5\n",
                file(&[("a", "user", "x")])
            ),
            "t",
        )
        .unwrap();
        let a = &limits.tokens[0].principal;
        assert_eq!(a.team.as_deref(), Some("t"));
        assert_eq!(
            a.limits,
            Limits {
                max_in_flight: Some(5),
                max_submits_per_minute: Some(10),
                max_cost_usd_per_day: Some(2.5),
                max_cost_usd_per_month: None,
            }
        );
    }

    #[test]
    fn forwarded_users_count_only_from_a_service() {
        let mut headers = HeaderMap::new();
        headers.insert(USER_ID_HEADER, "u-42".parse().unwrap());
        headers.insert(USER_EMAIL_HEADER, "u@example.com".parse().unwrap());
        let principal = |role| {
            Arc::new(Principal {
                name: "p".into(),
                role,
                team: None,
                limits: Limits::default(),
            })
        };
        let service = Caller::of(principal(Role::Service), &headers);
        assert_eq!(service.submitted_by().user.as_deref(), Some("u-42"));
        assert_eq!(
            service.user.as_ref().unwrap().email.as_deref(),
            Some("u@example.com")
        );
        for role in [Role::User, Role::Admin] {
            let caller = Caller::of(principal(role), &headers).acting_for(Some("u-9"));
            assert_eq!(caller.submitted_by().user, None, "{role:?}");
        }
        let by_field =
            Caller::of(principal(Role::Service), &HeaderMap::new()).acting_for(Some("u-7"));
        assert_eq!(by_field.submitted_by().user.as_deref(), Some("u-7"));
        // The forwarded header wins over the request's `user` field.
        assert_eq!(
            service
                .clone()
                .acting_for(Some("u-7"))
                .submitted_by()
                .user
                .as_deref(),
            Some("u-42")
        );
        // Each sees their own.
        let mine = service.submitted_by();
        let other = SubmittedBy {
            user: Some("u-43".into()),
            ..mine.clone()
        };
        assert!(service.may_see(Some(&mine)));
        assert!(!service.may_see(Some(&other)));
        assert!(!service.may_see(None));
        let admin = Caller::of(principal(Role::Admin), &HeaderMap::new());
        assert!(admin.may_see(Some(&other)) && admin.may_see(None));
    }
}
