//! A GitHub App's identity: its private key and the short-lived RS256 JWT that asks GitHub for
//! an installation token.
//!
//! Signed with `ring`, which the build already holds for TLS, rather than `jsonwebtoken` (whose
//! current versions bring a second crypto backend): a JWT here is one fixed header, three
//! claims and one RSA signature.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

/// A GitHub App's private key, as GitHub hands it out (PEM, PKCS#1 `RSA PRIVATE KEY`) or
/// converted to PKCS#8 (`PRIVATE KEY`). `Debug` prints nothing of it.
pub struct AppKey(RsaKeyPair);

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey([redacted])")
    }
}

impl AppKey {
    /// The key in a PEM file's text. The error says what was wrong, never what the file held.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let block = |label: &str| -> Option<Vec<u8>> {
            let begin = format!("-----BEGIN {label}-----");
            let end = format!("-----END {label}-----");
            let start = pem.find(&begin)? + begin.len();
            let stop = start + pem[start..].find(&end)?;
            let body: String = pem[start..stop]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD.decode(body).ok()
        };
        let pair = if let Some(der) = block("RSA PRIVATE KEY") {
            RsaKeyPair::from_der(&der)
        } else if let Some(der) = block("PRIVATE KEY") {
            RsaKeyPair::from_pkcs8(&der)
        } else {
            return Err(
                "not a PEM RSA private key (expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)"
                    .into(),
            );
        };
        pair.map(Self)
            .map_err(|e| format!("not a usable RSA private key: {e}"))
    }

    /// The JWT GitHub takes from an App: `iss` = the App id, issued a minute ago (clock drift),
    /// expiring in nine minutes (GitHub refuses more than ten). `now` in Unix seconds.
    pub fn jwt(&self, app_id: u64, now: i64) -> Result<String, String> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"iat": now - 60, "exp": now + 540, "iss": app_id.to_string()})
                .to_string(),
        );
        let signed = format!("{header}.{claims}");
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the App's JWT failed".to_owned())?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The public key (PKCS#1 `RSAPublicKey` DER), to check a signature with.
    pub fn public_der(&self) -> Vec<u8> {
        use ring::signature::KeyPair as _;
        self.0.public_key().as_ref().to_vec()
    }
}

/// Checks an RS256 JWT against a public key (PKCS#1 DER) and returns its claims: what GitHub
/// does with the App's JWT, and what the test forge does in its place.
pub fn verify_jwt(token: &str, public_der: &[u8]) -> Result<serde_json::Value, String> {
    let (signed, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
    let (header, claims) = signed.split_once('.').ok_or("not a JWT")?;
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string());
    let header: serde_json::Value =
        serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg is {}, not RS256", header["alg"]));
    }
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_der,
    )
    .verify(signed.as_bytes(), &decode(signature)?)
    .map_err(|_| "bad signature".to_owned())?;
    serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit key made by `openssl genrsa -traditional` for this test (PKCS#1, as GitHub's).
    fn generated_key() -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("app.pem");
        let ok = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&path)
            .arg("2048")
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is installed")
            .success();
        assert!(ok, "openssl genrsa failed");
        std::fs::read_to_string(path).expect("key file")
    }

    #[test]
    fn a_jwt_is_signed_with_the_apps_key_and_says_who_and_when() {
        let key = AppKey::from_pem(&generated_key()).expect("key");
        let jwt = key.jwt(4242, 1_700_000_000).expect("jwt");
        let claims = verify_jwt(&jwt, &key.public_der()).expect("valid");
        assert_eq!(claims["iss"], "4242");
        assert_eq!(claims["iat"], 1_700_000_000 - 60);
        assert_eq!(claims["exp"], 1_700_000_000 + 540);
        // Another key's signature does not pass.
        let other = AppKey::from_pem(&generated_key()).expect("key");
        assert!(verify_jwt(&jwt, &other.public_der()).is_err());
        // Nor a changed claim under the same signature.
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"iat":0,"exp":9999999999,"iss":"1"}"#);
        parts[1] = &forged;
        assert!(verify_jwt(&parts.join("."), &key.public_der()).is_err());
    }

    #[test]
    fn what_is_not_a_key_is_refused_without_echoing_it() {
        let err = AppKey::from_pem("hunter2-not-a-key").expect_err("refused");
        assert!(!err.contains("hunter2"), "{err}");
        let err = AppKey::from_pem(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
        )
        .expect_err("refused");
        assert!(err.contains("not a usable"), "{err}");
        assert!(
            format!("{:?}", AppKey::from_pem(&generated_key()).expect("key")).contains("redacted")
        );
    }
}
