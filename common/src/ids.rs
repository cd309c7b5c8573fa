//! Newtypes that can only hold valid values: a value of these types has been parsed once, at
//! the edge, and every later use can rely on it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Why an identifier was refused. The message is meant for the client that sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub String);

/// Identifies a task. UUID v7: time-ordered, so sorting ids sorts tasks by submission time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(uuid::Uuid);

impl TaskId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// The id of the run that a copy of task `original`, republished by hand at stream
    /// sequence `seq` (at time `at`), starts. The same for every delivery of that copy, so a
    /// redelivery continues the run instead of starting another; still time-ordered (v7).
    pub fn for_republished(original: &TaskId, seq: u64, at: time::OffsetDateTime) -> Self {
        let hash = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{original}/{seq}").as_bytes(),
        );
        let mut rand = [0u8; 10];
        rand.copy_from_slice(&hash.as_bytes()[..10]);
        let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &rand).into_uuid())
    }

    /// The 16 bytes of the UUID (a task's trace id).
    pub fn to_bytes(&self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        uuid::Uuid::parse_str(raw)
            .map(Self)
            .map_err(|_| InvalidId(format!("{raw:?} is not a task id (a UUID)")))
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The name of an agent profile. It becomes part of NATS subjects and consumer names, so it is
/// restricted to lowercase letters, digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AgentName(String);

impl AgentName {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidId(format!(
                "{raw:?} is not an agent name (1-64 of a-z, 0-9, '-')"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A git branch name that `git check-ref-format --branch` would accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct BranchName(String);

impl BranchName {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let bad = |why: &str| {
            Err(InvalidId(format!(
                "{raw:?} is not a valid branch name: {why}"
            )))
        };
        if raw.is_empty() || raw.len() > 200 {
            return bad("it must be 1-200 characters");
        }
        if raw
            .bytes()
            .any(|b| b.is_ascii_control() || b" ~^:?*[\\".contains(&b) || b == 0x7f)
        {
            return bad("it contains a space, a control character or one of ~^:?*[\\");
        }
        if raw.contains("..") || raw.contains("//") || raw.contains("@{") || raw == "@" {
            return bad("it contains '..', '//' or '@{'");
        }
        if raw.starts_with('-') || raw.starts_with('/') || raw.ends_with('/') {
            return bad("it starts with '-' or '/', or ends with '/'");
        }
        if raw.ends_with('.') || raw.ends_with(".lock") {
            return bad("it ends with '.' or '.lock'");
        }
        if raw.split('/').any(|c| c.starts_with('.')) {
            return bad("a path component starts with '.'");
        }
        if raw == "HEAD" || raw.starts_with("refs/") {
            return bad("name the branch itself (main, not HEAD or refs/heads/main)");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The branch a task pushes to when the client names none.
    pub fn for_task(id: &TaskId) -> Self {
        Self(format!("openclaw/{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BranchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Records written by this system are trusted to hold valid values, but they are still
/// parsed on the way in: a record edited by hand with the nats CLI fails loudly here.
macro_rules! deserialize_via_parse {
    ($ty:ty, $parse:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}
deserialize_via_parse!(AgentName, AgentName::parse);
deserialize_via_parse!(BranchName, BranchName::parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_sort_by_creation() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert!(a.to_string() < b.to_string());
        assert_eq!(TaskId::parse(&a.to_string()), Ok(a));
        assert!(TaskId::parse("nope").is_err());
    }

    #[test]
    fn a_republished_copy_has_one_stable_id() {
        let original = TaskId::new();
        let at = crate::now();
        let a = TaskId::for_republished(&original, 7, at);
        assert_eq!(a, TaskId::for_republished(&original, 7, at));
        assert_ne!(a, TaskId::for_republished(&original, 8, at));
        assert_ne!(a, original);
        assert_eq!(a.0.get_version_num(), 7);
    }

    #[test]
    fn branch_names() {
        for ok in ["main", "openclaw/abc", "feature/x-1", "v1.2"] {
            assert!(BranchName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a..b",
            "a b",
            "a~",
            "x.lock",
            "a/",
            "/a",
            ".a",
            "a//b",
            "a@{1",
            "HEAD",
            "refs/heads/main",
        ] {
            assert!(BranchName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn agent_names() {
        assert!(AgentName::parse("doc-writer").is_ok());
        for bad in ["", "Doc", "a.b", "a*", "-a", "a>b"] {
            assert!(AgentName::parse(bad).is_err(), "{bad}");
        }
    }
}
