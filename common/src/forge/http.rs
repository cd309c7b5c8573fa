//! What every forge client shares: the API URL's address rules, one JSON call retried while
//! the forge is down or rate-limiting, and its error body as one line.

use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;

use super::ForgeError;
use crate::backoff::Backoff;
use crate::egress::RepoPolicy;

/// The API URL, checked like a repository's: https (http only where http repos are allowed),
/// no credentials or query, no internal host unless private addresses are allowed, a listed
/// host when the deployment lists them (`api.github.com` goes with `github.com`).
pub(crate) fn api_url(raw: &str, policy: &RepoPolicy) -> Result<url::Url, String> {
    let mut url = url::Url::parse(raw).map_err(|e| format!("a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err("an https:// URL (http:// only with OPENCLAW_ALLOW_HTTP_REPOS)".into()),
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err("a URL without credentials or a query".into());
    }
    let Some(remote) = crate::egress::Remote::of_url(raw) else {
        return Err("a URL with a host".into());
    };
    if !policy.allow_private
        && let Some(why) = remote.internal_by_name()
    {
        return Err(format!(
            "a public host, not {why} (OPENCLAW_ALLOW_PRIVATE_REPOS allows it)"
        ));
    }
    if let Some(hosts) = &policy.hosts
        && !hosts.allows(&remote)
        && !url
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case("api.github.com"))
    {
        return Err(format!("a host OPENCLAW_REPO_HOSTS allows ({hosts})"));
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

/// One API request.
pub(crate) struct Call<'a> {
    pub forge: &'static str,
    pub what: &'static str,
    pub method: Method,
    /// The API URL with the path segments appended (each percent-encoded as one segment).
    pub url: url::Url,
    pub query: &'a [(&'a str, &'a str)],
    pub body: Option<serde_json::Value>,
    /// Header name and value (the credential among them).
    pub headers: Vec<(&'static str, String)>,
}

/// `base` with `path` appended, segment by segment.
pub(crate) fn join(base: &url::Url, path: &[&str]) -> Result<url::Url, ForgeError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ForgeError::Invalid("the API URL cannot take a path".into()))?
        .pop_if_empty()
        .extend(path);
    Ok(url)
}

/// Sends `call` (retrying 429, 5xx and connection errors, three times at most) and reads its
/// JSON answer; an empty one (204) reads as `null`, which `()` takes.
pub(crate) async fn send<T: DeserializeOwned>(
    http: &reqwest::Client,
    call: Call<'_>,
) -> Result<T, ForgeError> {
    let Call {
        forge,
        what,
        method,
        url,
        query,
        body,
        headers,
    } = call;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
    let mut tries = 0;
    loop {
        tries += 1;
        let mut request = http.request(method.clone(), url.clone());
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let error = match request.send().await {
            Ok(response) if response.status().is_success() => {
                let unreadable = |message: String| ForgeError::Unreachable {
                    forge,
                    what,
                    message: format!("unreadable answer: {message}"),
                };
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| unreadable(e.without_url().to_string()))?;
                let body: &[u8] = if body.is_empty() { b"null" } else { &body };
                return serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()));
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                ForgeError::Refused {
                    forge,
                    what,
                    status,
                    message: error_message(&text),
                }
            }
            Err(e) => ForgeError::Unreachable {
                forge,
                what,
                message: e.without_url().to_string(),
            },
        };
        if !error.is_transient() || tries >= 4 {
            return Err(error);
        }
        tokio::time::sleep(backoff.failed()).await;
    }
}

/// A forge's error body as one short line: GitHub's `{"message": …, "errors": [{"message":
/// …}]}`, GitLab's `{"message": …}` (a string, a list or an object of lists) or `{"error": …}`.
pub(crate) fn error_message(body: &str) -> String {
    let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let mut message = match &parsed["message"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => parsed["error"].as_str().unwrap_or("").to_owned(),
        other => other.to_string(),
    };
    if let Some(detail) = parsed["errors"]
        .as_array()
        .and_then(|e| e.first())
        .and_then(|e| e["message"].as_str())
    {
        message = format!("{message} ({detail})");
    }
    if message.is_empty() {
        message = "no message".into();
    }
    message.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forge_error_bodies_become_one_line() {
        let body = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for octo:openclaw/1."}],"documentation_url":"https://docs.github.com/rest"}"#;
        assert_eq!(
            error_message(body),
            "Validation Failed (A pull request already exists for octo:openclaw/1.)"
        );
        assert_eq!(
            error_message(
                r#"{"message":["Another open merge request already exists for this source branch: !3"]}"#
            ),
            r#"["Another open merge request already exists for this source branch: !3"]"#
        );
        assert_eq!(
            error_message(r#"{"error":"insufficient_scope"}"#),
            "insufficient_scope"
        );
        assert_eq!(error_message("<html>"), "no message");
    }
}
