//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256>` over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, one per configured key, so a
//! receiver that knows either the old or the new secret accepts a message
//! while the secret rotates. Pure functions; keys come from `config::notify`.

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::config::notify::SecretBytes;

/// The `webhook-signature` header value for `body`: `v1,<sig>` per key,
/// separated by spaces.
pub fn signature(keys: &[SecretBytes], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| {
            // HMAC takes keys of any length; new_from_slice cannot fail for it.
            let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&key.0)
                .expect("BUG: HMAC accepts keys of any length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            let tag = mac.finalize().into_bytes();
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(tag)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::notify::decode_whsec;

    #[test]
    fn signature_matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification's reference
        // implementations (secret, id, timestamp, body and signature).
        let key = decode_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid secret");
        let sig = signature(
            &[SecretBytes(key)],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn one_signature_per_key_while_rotating() {
        let a = SecretBytes(vec![1; 32]);
        let b = SecretBytes(vec![2; 32]);
        let both = signature(&[a.clone(), b], "msg_1", 1, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature(&[a], "msg_1", 1, b"{}"));
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
    }
}
