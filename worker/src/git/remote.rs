//! How the worker's git talks to a remote: credentials offered only to the hosts they are
//! bound to, at most a few times, and ssh host keys checked against `GIT_SSH_KNOWN_HOSTS`.

use std::cell::Cell;

use git2::{Cred, CredentialType, RemoteCallbacks};

use crate::config::GitConfig;

/// Host keys from a known_hosts file: plain host names (`host`, `[host]:port`, comma
/// separated) with their key. Hashed names and `@cert-authority`/`@revoked` lines are not
/// understood and are left out (such a host is then not trusted).
#[derive(Debug, Default)]
pub struct KnownHosts(Vec<(Vec<String>, Vec<u8>)>);

impl KnownHosts {
    pub fn parse(text: &str) -> Self {
        use base64::Engine as _;
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('@'))
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let hosts = fields.next()?;
                let _kind = fields.next()?;
                let key = base64::engine::general_purpose::STANDARD
                    .decode(fields.next()?)
                    .ok()?;
                let hosts: Vec<String> = hosts
                    .split(',')
                    .filter(|h| !h.starts_with('|'))
                    .map(|h| {
                        let h = h
                            .strip_prefix('[')
                            .and_then(|rest| rest.split(']').next())
                            .unwrap_or(h);
                        h.to_ascii_lowercase()
                    })
                    .collect();
                Some((hosts, key))
            })
            .collect();
        Self(entries)
    }

    /// Whether `key` (the server's raw public key) is listed for `host`.
    pub fn trusts(&self, host: &str, key: &[u8]) -> bool {
        let host = host.to_ascii_lowercase();
        self.0
            .iter()
            .any(|(hosts, k)| k == key && hosts.contains(&host))
    }
}

/// Callbacks answering credential requests from `config`, at most a few times (libgit2 asks
/// again after every refusal, forever), and checking ssh host keys against
/// `GIT_SSH_KNOWN_HOSTS` when it is set.
pub(super) fn callbacks(config: &GitConfig) -> RemoteCallbacks<'_> {
    let mut cb = RemoteCallbacks::new();
    if let Some(path) = &config.ssh_known_hosts {
        let known = std::fs::read_to_string(path).map(|t| KnownHosts::parse(&t));
        let path = path.display().to_string();
        cb.certificate_check(move |cert, host| {
            let Some(key) = cert.as_hostkey().and_then(|k| k.hostkey()) else {
                // Not ssh (TLS): libgit2's own verification decides.
                return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
            };
            match &known {
                Ok(known) if known.trusts(host, key) => {
                    Ok(git2::CertificateCheckStatus::CertificateOk)
                }
                Ok(_) => Err(git2::Error::new(
                    git2::ErrorCode::Certificate,
                    git2::ErrorClass::Ssh,
                    format!("the ssh host key of {host} is not in GIT_SSH_KNOWN_HOSTS ({path})"),
                )),
                Err(e) => Err(git2::Error::new(
                    git2::ErrorCode::Certificate,
                    git2::ErrorClass::Ssh,
                    format!("cannot read GIT_SSH_KNOWN_HOSTS ({path}): {e}"),
                )),
            }
        });
    }
    let tries = Cell::new(0u32);
    cb.credentials(move |url, username_from_url, allowed| {
        tries.set(tries.get() + 1);
        // libgit2 passes the URL it is talking to now, after any redirect: credentials go only
        // to the hosts they belong to, whatever URL the task named.
        let bound = openclaw_common::egress::Remote::of_url(url)
            .is_some_and(|remote| config.credential_hosts.allows(&remote));
        if !bound {
            return Err(git2::Error::new(
                git2::ErrorCode::Auth,
                git2::ErrorClass::Net,
                "authentication required, and this worker's git credentials belong to other hosts",
            ));
        }
        if tries.get() > 3 {
            return Err(git2::Error::new(
                git2::ErrorCode::Auth,
                git2::ErrorClass::Net,
                "authentication failed: credentials were refused",
            ));
        }
        if let Some(token) = config
            .token
            .as_ref()
            .filter(|_| allowed.contains(CredentialType::USER_PASS_PLAINTEXT))
        {
            let user = config.username.as_deref().unwrap_or("x-access-token");
            return Cred::userpass_plaintext(user, token.expose());
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = username_from_url.or(config.username.as_deref()).unwrap_or("git");
            let passphrase = config.ssh_passphrase.as_ref().map(|p| p.expose());
            if let Some(key) = &config.ssh_key {
                return Cred::ssh_key_from_memory(user, None, key.expose(), passphrase);
            }
            if let Some(path) = &config.ssh_key_path {
                return Cred::ssh_key(user, None, path, passphrase);
            }
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(username_from_url.unwrap_or("git"));
        }
        Err(git2::Error::new(
            git2::ErrorCode::Auth,
            git2::ErrorClass::Net,
            "authentication required but no credentials are configured (GIT_TOKEN or GIT_SSH_KEY_PATH)",
        ))
    });
    cb
}
