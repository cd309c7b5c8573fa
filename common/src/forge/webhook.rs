//! Checking that a webhook came from the forge: before anything of its body is parsed.

/// Whether `signature` (GitHub's `X-Hub-Signature-256` header, `sha256=<hex>`) is the
/// HMAC-SHA256 of `body` under `secret`. The comparison takes the same time whatever the
/// bytes (ring's `hmac::verify`).
pub fn github_signature_valid(secret: &[u8], body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex) = signature.and_then(|s| s.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &tag).is_ok()
}

/// `sha256=<hex>` of `body` under `secret`, as GitHub sends it (for the test forge and tests).
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's own example ("Validating webhook deliveries", docs.github.com): this secret and
    /// payload give this signature.
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const PAYLOAD: &[u8] = b"Hello, World!";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_example_verifies() {
        assert_eq!(github_signature(SECRET, PAYLOAD), SIGNATURE);
        assert!(github_signature_valid(SECRET, PAYLOAD, Some(SIGNATURE)));
    }

    #[test]
    fn anything_else_does_not() {
        assert!(!github_signature_valid(SECRET, PAYLOAD, None));
        assert!(!github_signature_valid(
            b"another secret",
            PAYLOAD,
            Some(SIGNATURE)
        ));
        assert!(!github_signature_valid(
            SECRET,
            b"Hello, World?",
            Some(SIGNATURE)
        ));
        // The SHA-1 header's form, a bare hex, a truncated tag, non-hex.
        assert!(!github_signature_valid(
            SECRET,
            PAYLOAD,
            Some(&SIGNATURE.replace("sha256", "sha1"))
        ));
        assert!(!github_signature_valid(
            SECRET,
            PAYLOAD,
            Some(&SIGNATURE[7..])
        ));
        assert!(!github_signature_valid(
            SECRET,
            PAYLOAD,
            Some(&SIGNATURE[..70])
        ));
        assert!(!github_signature_valid(
            SECRET,
            PAYLOAD,
            Some(&SIGNATURE.replace('7', "g"))
        ));
        assert!(!github_signature_valid(
            SECRET,
            PAYLOAD,
            Some("sha256=é7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1")
        ));
    }
}
