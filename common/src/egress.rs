//! Where the worker may connect, and to whom it may offer credentials.
//!
//! A repository URL comes from a client (or from a chat message), so it is untrusted input that
//! reaches a network connection. Two policies apply to it:
//! - [`RepoPolicy`] decides whether the worker may connect at all: no
//!   `git://`, no loopback, link-local (cloud metadata), private or unspecified addresses unless
//!   the deployment allows them, and optionally only listed hosts. Checked on the URL at intake
//!   and again on the resolved addresses in the worker, just before it connects.
//! - [`HostList`] as `OPENCLAW_GIT_CREDENTIAL_HOSTS` decides to which remotes the worker's git
//!   credentials are offered, checked in libgit2's credentials callback on the URL it is
//!   actually talking to (after redirects).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::ids::InvalidId;

/// The one text a client sees for a remote that was refused by policy or could not be reached,
/// whatever the reason: a different text per cause would make the task API a port scanner of
/// the worker's network. The cause goes to the worker's log.
pub const UNREACHABLE: &str =
    "the repository cannot be reached from here, or its address is not allowed by this deployment";

/// The host (and port) a remote URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Lowercase host name or IP literal, without IPv6 brackets or a trailing dot.
    pub host: String,
    /// The port connected to (the scheme's default when the URL names none).
    pub port: u16,
}

impl Remote {
    /// The remote of a git URL: `scheme://[user@]host[:port]/path` or scp-like
    /// `user@host:path`. `None` for `file://` and anything without a host.
    pub fn of_url(raw: &str) -> Option<Self> {
        if let Some((scheme, rest)) = raw.split_once("://") {
            // `https:///r.git` would parse as host `r.git`: the authority must be present.
            if rest.starts_with('/') || rest.is_empty() {
                return None;
            }
            let url = url::Url::parse(raw).ok()?;
            let host = match url.host()? {
                url::Host::Domain(d) => d.to_owned(),
                url::Host::Ipv4(ip) => ip.to_string(),
                url::Host::Ipv6(ip) => ip.to_string(),
            };
            let port = url.port().unwrap_or(match scheme {
                "https" => 443,
                "http" => 80,
                "ssh" | "git+ssh" | "ssh+git" => 22,
                "git" => 9418,
                _ => 0,
            });
            return Self::new(&host, port);
        }
        let (userhost, _path) = raw.split_once(':')?;
        let host = userhost.rsplit_once('@').map_or(userhost, |(_, h)| h);
        Self::new(host, 22)
    }

    /// A remote of `host` (lowercased, without IPv6 brackets or a trailing dot) and `port`;
    /// `None` for an empty host.
    pub fn new(host: &str, port: u16) -> Option<Self> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        (!host.is_empty()).then_some(Self { host, port })
    }

    /// The host as an IP address, when it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// Why this remote is internal by its name alone (no DNS): an internal IP literal,
    /// `localhost`, or a purely numeric name that resolvers read as an address
    /// (`2130706433`, `0x7f.1`).
    pub fn internal_by_name(&self) -> Option<String> {
        if let Some(ip) = self.ip() {
            return is_internal(ip).then(|| format!("{ip} is an internal address"));
        }
        let h = self.host.as_str();
        if h == "localhost" || h.ends_with(".localhost") {
            return Some(format!("{h} is the local machine"));
        }
        let numeric = h.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_hexdigit() || b == b'x')
        }) && h.bytes().any(|b| b.is_ascii_digit())
            && h.split('.')
                .next_back()
                .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit() || b == b'x'));
        numeric.then(|| format!("{h} is an address in numeric form; write it as a host name"))
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Which repository URLs this deployment accepts: one policy, read by the bridge at intake
/// and by the worker before it connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoPolicy {
    /// `file://` URLs: only for the local run and tests, never on a shared cluster, where they
    /// would let a client read the bridge's or worker's filesystem.
    pub allow_file: bool,
    /// Plain `http://` (no TLS): for test git servers and in-cluster mirrors.
    pub allow_http: bool,
    /// Loopback, link-local, private and unspecified addresses (`OPENCLAW_ALLOW_PRIVATE_REPOS`):
    /// for the local demo, the tests and in-cluster mirrors. Off, a client cannot point the
    /// worker at the cloud metadata service or at the cluster's own services.
    pub allow_private: bool,
    /// When set (`OPENCLAW_REPO_HOSTS`), only these hosts.
    pub hosts: Option<HostList>,
}

impl RepoPolicy {
    /// Everything allowed: for reading records this system wrote, and for tests.
    pub fn open() -> Self {
        Self {
            allow_file: true,
            allow_http: true,
            allow_private: true,
            hosts: None,
        }
    }

    pub fn from_env(
        env: &crate::config::EnvReader<'_>,
    ) -> Result<Self, crate::config::ConfigError> {
        let hosts =
            match env.string("OPENCLAW_REPO_HOSTS") {
                None => None,
                Some(raw) => Some(HostList::parse(&raw).map_err(|e| {
                    crate::config::ConfigError::Invalid {
                        var: "OPENCLAW_REPO_HOSTS",
                        value: raw.clone(),
                        expected: format!("comma-separated host or host:port entries ({e})"),
                    }
                })?),
            };
        Ok(Self {
            allow_file: env.bool("OPENCLAW_ALLOW_FILE_REPOS", false)?,
            allow_http: env.bool("OPENCLAW_ALLOW_HTTP_REPOS", false)?,
            allow_private: env.bool("OPENCLAW_ALLOW_PRIVATE_REPOS", false)?,
            hosts,
        })
    }

    /// The checks that need no network: a host is present, is not internal by its name, and
    /// is listed when a list is set. `url` has passed the scheme checks.
    pub(crate) fn admit(&self, url: RepoUrl) -> Result<RepoUrl, InvalidId> {
        let remote = url
            .remote()
            .ok_or_else(|| InvalidId("repo URL has no host".into()))?;
        if let Some(hosts) = &self.hosts
            && !hosts.allows(&remote)
        {
            return Err(InvalidId(format!(
                "repo host {} is not one this deployment allows (OPENCLAW_REPO_HOSTS={hosts})",
                remote.host
            )));
        }
        if !self.allow_private
            && let Some(why) = remote.internal_by_name()
        {
            return Err(InvalidId(format!(
                "repo host is not allowed: {why} (set OPENCLAW_ALLOW_PRIVATE_REPOS=true to allow)"
            )));
        }
        Ok(url)
    }

    /// The check just before connecting, of a URL [`RepoUrl::parse`](RepoUrl::parse)
    /// admitted under this policy (scheme, host list, internal names): every address the host
    /// resolves to now must be allowed. `Err` holds the cause, for the log; clients are told
    /// [`UNREACHABLE`] only.
    ///
    /// What this cannot stop: libgit2 resolves the name again when it connects, so a DNS
    /// server that answers differently the second time (rebinding) still wins. In a cluster the
    /// worker's NetworkPolicy closes that gap (deploy/base/worker-networkpolicy.yaml).
    pub async fn check_resolved(&self, url: &RepoUrl) -> Result<(), String> {
        // file:// has no host: parse admitted it only where file repos are allowed.
        let Some(remote) = url.remote() else {
            return Ok(());
        };
        if self.allow_private {
            return Ok(());
        }
        let addrs = tokio::net::lookup_host((remote.host.as_str(), remote.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", remote.host))?;
        let mut any = false;
        for addr in addrs {
            any = true;
            if is_internal(addr.ip()) {
                return Err(format!(
                    "{} resolves to an internal address ({})",
                    remote.host,
                    addr.ip()
                ));
            }
        }
        if any {
            Ok(())
        } else {
            Err(format!("{} resolves to no address", remote.host))
        }
    }
}

/// Whether `ip` is an address a worker must not reach on a client's say-so: loopback,
/// unspecified, link-local (169.254.0.0/16 holds the cloud metadata service; fe80::/10),
/// private (10/8, 172.16/12, 192.168/16, fc00::/7 — which holds AWS's fd00:ec2::254),
/// carrier-grade NAT (100.64/10), broadcast, benchmarking and reserved ranges, and IPv4
/// addresses embedded in IPv6 (mapped, compatible, NAT64) that are any of those.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) and IPv4-compatible (::a.b.c.d) carry an IPv4 address.
            let embedded = Ipv4Addr::new(
                (seg[6] >> 8) as u8,
                seg[6] as u8,
                (seg[7] >> 8) as u8,
                seg[7] as u8,
            );
            if (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4])
                || (seg[0..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified())
            {
                return internal_v4(embedded);
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local, fd00:ec2::254 among them
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || o[0] >= 240 // reserved and multicast above
        || (o[0] & 0xf0) == 224 // multicast
}

/// A list of `host[:port]` entries (`OPENCLAW_GIT_CREDENTIAL_HOSTS`, `OPENCLAW_REPO_HOSTS`,
/// and the hosts a sandboxed command may reach). An entry without a port matches the host on
/// any port; with one, only that port. Only lists parsed by [`HostList::parse_patterns`] hold
/// `*.example.com` entries (any name below `example.com`, not itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostList(Vec<(String, Option<u16>)>);

impl HostList {
    /// Parses a comma-separated list; the error names the entry at fault.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::parse_entries(raw.split(','), false)
    }

    /// Parses entries that may be `*.domain` patterns (the network of sandboxed commands):
    /// credentials and repositories are only ever offered to hosts named in full.
    pub fn parse_patterns<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        Self::parse_entries(entries, true)
    }

    fn parse_entries<'a>(
        entries: impl IntoIterator<Item = &'a str>,
        wildcards: bool,
    ) -> Result<Self, String> {
        let mut out = Vec::new();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || {
                if wildcards {
                    format!("{entry:?} is not host, host:port, or *.domain[:port]")
                } else {
                    format!("{entry:?} is not host or host:port")
                }
            };
            let (host, port) = match entry.rsplit_once(':') {
                // A bare IPv6 address has colons but no port.
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                    (h, Some(p.parse::<u16>().map_err(|_| bad())?))
                }
                _ => (entry, None),
            };
            let (star, name) = match host.strip_prefix("*.") {
                Some(name) if wildcards => ("*.", name),
                _ => ("", host),
            };
            // A pattern names a domain (`*.com` would be most of the internet, `*.1` no name).
            let domain_ok = star.is_empty()
                || (name.contains('.') && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
            if name.contains(['/', '@', ' ', '*']) || !domain_ok {
                return Err(bad());
            }
            let remote = Remote::new(name, port.unwrap_or(0)).ok_or_else(bad)?;
            out.push((format!("{star}{}", remote.host), port));
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each entry as written: `host`, `host:port`, `*.domain`.
    pub fn entries(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(h, p)| match p {
                Some(p) => format!("{h}:{p}"),
                None => h.clone(),
            })
            .collect()
    }

    pub fn allows(&self, remote: &Remote) -> bool {
        self.0.iter().any(|(host, port)| {
            let host_matches = match host.strip_prefix('*') {
                Some(suffix) => remote.host.ends_with(suffix),
                None => *host == remote.host,
            };
            host_matches && port.is_none_or(|p| p == remote.port)
        })
    }

    /// The entries of `other` this list covers (an entry of `other` is covered when every
    /// host and port it matches, this list matches too), and those it does not.
    pub fn split_covered(&self, other: &HostList) -> (HostList, HostList) {
        let (covered, not): (Vec<_>, Vec<_>) = other.0.iter().cloned().partition(|(host, port)| {
            self.0.iter().any(|(mine, my_port)| {
                let host_covered = match (mine.strip_prefix('*'), host.strip_prefix('*')) {
                    (Some(suffix), Some(theirs)) => theirs.ends_with(suffix),
                    (Some(suffix), None) => host.ends_with(suffix),
                    (None, Some(_)) => false,
                    (None, None) => mine == host,
                };
                host_covered && (my_port.is_none() || my_port == port)
            })
        });
        (HostList(covered), HostList(not))
    }

    /// This list with `port` on the entries that name none.
    pub fn with_default_port(&self, port: u16) -> HostList {
        HostList(
            self.0
                .iter()
                .map(|(host, p)| (host.clone(), Some(p.unwrap_or(port))))
                .collect(),
        )
    }

    /// Both lists' entries.
    pub fn union(&self, other: &HostList) -> HostList {
        let mut all = self.0.clone();
        all.extend(other.0.iter().filter(|e| !self.0.contains(e)).cloned());
        HostList(all)
    }
}

impl fmt::Display for HostList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entries().join(","))
    }
}

/// A git remote URL: `https://`, `ssh://`, scp-like `user@host:path`, and where the
/// [`RepoPolicy`] allows, `http://` and `file://`. Never carries credentials: those come from
/// the worker's secret, so they cannot leak through task records, events or logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RepoUrl(String);

impl RepoUrl {
    pub fn parse(raw: &str, policy: &RepoPolicy) -> Result<Self, InvalidId> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 2048 || raw.chars().any(char::is_control) {
            return Err(InvalidId(
                "repo must be a git URL of at most 2048 characters".into(),
            ));
        }
        // scp-like syntax: user@host:path (no scheme).
        if !raw.contains("://") {
            let scp_like = raw.split_once(':').and_then(|(userhost, path)| {
                let (user, host) = userhost.split_once('@')?;
                Some(
                    !user.is_empty()
                        && !host.is_empty()
                        && !path.is_empty()
                        && !user.contains(['/', ' '])
                        && !host.contains(['/', ' ']),
                )
            });
            if scp_like != Some(true) {
                return Err(InvalidId(format!(
                    "{raw:?} is not a git URL (https://…, ssh://… or user@host:path)"
                )));
            }
            return policy.admit(Self(raw.to_owned()));
        }
        let url =
            url::Url::parse(raw).map_err(|e| InvalidId(format!("repo is not a valid URL: {e}")))?;
        match url.scheme() {
            "https" | "ssh" => {}
            "http" if policy.allow_http => {}
            "file" if policy.allow_file => return Ok(Self(raw.to_owned())),
            "http" => {
                return Err(InvalidId(
                    "plain http:// repos are not allowed here (set OPENCLAW_ALLOW_HTTP_REPOS=true to allow)".into(),
                ));
            }
            "file" => {
                return Err(InvalidId(
                    "file:// repos are not allowed here (set OPENCLAW_ALLOW_FILE_REPOS=true to allow)".into(),
                ));
            }
            "git" => {
                return Err(InvalidId(
                    "git:// repos are not allowed: the git protocol has no authentication and no encryption; use https or ssh".into(),
                ));
            }
            other => {
                return Err(InvalidId(format!(
                    "repo scheme {other:?} is not supported (use https or ssh)"
                )));
            }
        }
        if url.password().is_some() || (url.scheme() != "ssh" && !url.username().is_empty()) {
            return Err(InvalidId(
                "repo URL must not carry credentials; the worker's git secret provides them".into(),
            ));
        }
        policy.admit(Self(raw.to_owned()))
    }

    /// The host and port this URL connects to; `None` for `file://`.
    pub fn remote(&self) -> Option<crate::egress::Remote> {
        crate::egress::Remote::of_url(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_file(&self) -> bool {
        self.0.starts_with("file://")
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Records written by this system are trusted to hold valid values, but they are parsed on the
// way in; the worker checks a stored URL against its own policy again before connecting.
impl<'de> serde::Deserialize<'de> for RepoUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <String as serde::Deserialize>::deserialize(d)?;
        RepoUrl::parse(&raw, &RepoPolicy::open()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> RepoPolicy {
        RepoPolicy::default()
    }

    #[test]
    fn repo_urls() {
        for ok in [
            "https://github.com/o/r.git",
            "ssh://git@github.com/o/r.git",
            "git@github.com:o/r.git",
        ] {
            assert!(RepoUrl::parse(ok, &strict()).is_ok(), "{ok}");
        }
        for bad in [
            "https://user:token@github.com/o/r.git",
            "https://token@github.com/o/r.git",
            "file:///tmp/r.git",
            "http://example.com/r.git",
            "ftp://x/y",
            "git://github.com/o/r.git",
            "https:///r.git",
            "https://127.0.0.1/r.git",
            "https://localhost/r.git",
            "ssh://git@169.254.169.254/r.git",
            "git@10.0.0.1:o/r.git",
            "https://[fd00:ec2::254]/r.git",
            "not a url",
            "",
        ] {
            assert!(RepoUrl::parse(bad, &strict()).is_err(), "{bad}");
        }
        let open = RepoPolicy::open();
        assert!(RepoUrl::parse("file:///tmp/r.git", &open).is_ok());
        assert!(RepoUrl::parse("http://127.0.0.1:9/r.git", &open).is_ok());
        assert!(RepoUrl::parse("http://u:p@127.0.0.1:9/r.git", &open).is_err());
        assert!(RepoUrl::parse("git://127.0.0.1/r.git", &open).is_err());
        assert!(RepoUrl::parse("https:///r.git", &open).is_err());
        let listed = RepoPolicy {
            hosts: Some(crate::egress::HostList::parse("github.com").unwrap()),
            ..RepoPolicy::default()
        };
        assert!(RepoUrl::parse("https://github.com/o/r", &listed).is_ok());
        assert!(RepoUrl::parse("git@github.com:o/r", &listed).is_ok());
        let err = RepoUrl::parse("https://gitlab.com/o/r", &listed).unwrap_err();
        assert!(err.0.contains("OPENCLAW_REPO_HOSTS"), "{err}");
    }

    #[test]
    fn remotes_of_urls() {
        let r = |s: &str| Remote::of_url(s).map(|r| r.to_string());
        assert_eq!(
            r("https://GitHub.com/o/r.git").as_deref(),
            Some("github.com:443")
        );
        assert_eq!(r("http://h:8080/r").as_deref(), Some("h:8080"));
        assert_eq!(r("ssh://git@h/r").as_deref(), Some("h:22"));
        assert_eq!(r("ssh://git@h:2222/r").as_deref(), Some("h:2222"));
        assert_eq!(
            r("git@github.com:o/r.git").as_deref(),
            Some("github.com:22")
        );
        assert_eq!(r("https://[::1]:9/r").as_deref(), Some("[::1]:9"));
        assert_eq!(r("https:///r.git"), None);
        assert_eq!(r("file:///tmp/r.git"), None);
    }

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::7f00:1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "140.82.112.3",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn internal_names() {
        let internal = |s: &str| Remote::of_url(s).unwrap().internal_by_name().is_some();
        assert!(internal("https://localhost/r"));
        assert!(internal("https://a.localhost/r"));
        assert!(internal("ssh://2130706433/r"));
        assert!(internal("ssh://0x7f.1/r"));
        assert!(internal("https://127.0.0.1./r"));
        assert!(!internal("https://github.com/r"));
        assert!(!internal("https://1password.com/r"));
        assert!(
            !internal("https://cafe.de/r"),
            "a name that is hex but ends in letters"
        );
    }

    #[test]
    fn host_lists() {
        let list = HostList::parse("github.com, git.example.com:8443,[::1]:9").unwrap();
        let allows = |s: &str| list.allows(&Remote::of_url(s).unwrap());
        assert!(allows("https://github.com/o/r"));
        assert!(allows("git@GITHUB.com:o/r"));
        assert!(allows("https://git.example.com:8443/r"));
        assert!(!allows("https://git.example.com/r"), "another port");
        assert!(!allows("https://github.com.evil.io/r"));
        assert!(!allows("https://evil.io/github.com"));
        assert!(allows("https://[::1]:9/r"));
        assert!(HostList::parse("https://github.com").is_err());
        assert!(HostList::parse("h:notaport").is_err());
        assert!(HostList::parse("").unwrap().is_empty());
        assert!(
            HostList::parse("*.github.com").is_err(),
            "credential and repo lists name hosts in full"
        );
    }

    #[test]
    fn host_patterns() {
        let list = HostList::parse_patterns(["pypi.org", "*.pythonhosted.org:443"]).unwrap();
        let remote = |host: &str, port| Remote::new(host, port).unwrap();
        assert!(list.allows(&remote("files.pythonhosted.org", 443)));
        assert!(list.allows(&remote("a.b.pythonhosted.org", 443)));
        assert!(
            !list.allows(&remote("pythonhosted.org", 443)),
            "the domain itself is not below it"
        );
        assert!(!list.allows(&remote("evilpythonhosted.org", 443)));
        assert!(!list.allows(&remote("files.pythonhosted.org", 80)));
        assert!(!list.allows(&remote("pythonhosted.org.evil.io", 443)));
        for bad in [
            "*.com",
            "*",
            "*.1.2",
            "a.*.org",
            "**.org",
            "https://pypi.org",
        ] {
            let err = HostList::parse_patterns([bad]).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
        // What a repository asks for, against what its profile lets repositories add.
        let may = HostList::parse_patterns(["*.npmjs.org", "crates.io:443"]).unwrap();
        let asked = HostList::parse_patterns([
            "registry.npmjs.org",
            "*.cdn.npmjs.org",
            "crates.io",
            "evil.io",
        ])
        .unwrap();
        let (ok, refused) = may.split_covered(&asked);
        assert_eq!(ok.to_string(), "registry.npmjs.org,*.cdn.npmjs.org");
        assert_eq!(
            refused.to_string(),
            "crates.io,evil.io",
            "any port is more than port 443"
        );
        assert_eq!(
            ok.with_default_port(443).union(&may).to_string(),
            "registry.npmjs.org:443,*.cdn.npmjs.org:443,*.npmjs.org,crates.io:443"
        );
    }
}
