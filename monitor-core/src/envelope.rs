//! The wire envelope: per-client key derivation, `seal` and `open`.
//!
//! A body on the wire is standard padded base64 of `"MON1" ‖ iv[16] ‖ ciphertext ‖ tag[32]`.
//! The ciphertext is AES-128-CTR (128-bit big-endian counter starting at `iv`) of the JSON
//! sample; the tag is HMAC-SHA256 over `"MON1" ‖ u16be(len(name)) ‖ name ‖ iv ‖ ciphertext`,
//! so a message sealed for one client never opens as another. [`Envelope::decode`] does the
//! checks that need no key (the server answers 400 for them before it looks the client up);
//! [`Envelope::open`] checks the tag in constant time before anything is decrypted.
//!
//! Not here: what the plaintext means (see [`crate::sample`]) or where keys are stored
//! (see [`crate::masterkey`]).

use aes::cipher::{KeyIvInit, StreamCipher};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::masterkey::MasterKey;

/// The four bytes every sealed message starts with.
pub const MAGIC: &[u8; 4] = b"MON1";
/// Length of the random per-message counter block.
pub const IV_LEN: usize = 16;
/// Length of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// The largest body (base64 text) the server accepts, in bytes.
pub const MAX_BODY: usize = 65_536;

const HKDF_SALT: &[u8] = b"monitord v1";

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;
type HmacSha256 = hmac::Hmac<Sha256>;

/// The two keys of one client, derived from the master key and the client's name.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKeys {
    enc: [u8; 16],
    mac: [u8; 32],
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKeys(***)")
    }
}

impl ClientKeys {
    /// `okm = HKDF-SHA256(ikm = master, salt = "monitord v1", info = "client:" + name, L = 48)`;
    /// the first 16 bytes are the AES key, the other 32 the HMAC key.
    pub fn derive(master: &MasterKey, name: &str) -> ClientKeys {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(HKDF_SALT), master.bytes());
        let mut okm = [0u8; 48];
        let info = format!("client:{name}");
        hk.expand(info.as_bytes(), &mut okm)
            .expect("48 bytes is a valid HKDF-SHA256 output length");
        let mut keys = ClientKeys {
            enc: [0; 16],
            mac: [0; 32],
        };
        keys.enc.copy_from_slice(&okm[..16]);
        keys.mac.copy_from_slice(&okm[16..]);
        keys
    }

    pub fn from_bytes(enc: [u8; 16], mac: [u8; 32]) -> ClientKeys {
        ClientKeys { enc, mac }
    }

    pub fn enc(&self) -> &[u8; 16] {
        &self.enc
    }

    pub fn mac(&self) -> &[u8; 32] {
        &self.mac
    }

    fn tag(&self, name: &str, iv: &[u8], ciphertext: &[u8]) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.mac)
            .expect("HMAC accepts keys of any length");
        mac.update(MAGIC);
        mac.update(&authenticated_name(name));
        mac.update(iv);
        mac.update(ciphertext);
        mac
    }
}

/// `u16be(len(name)) ‖ name`. Names are short (config validation keeps them well under 64 KiB).
fn authenticated_name(name: &str) -> Vec<u8> {
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + name.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out
}

/// Seals `plaintext` for client `name` with a fresh random IV and returns the base64 body.
pub fn seal(keys: &ClientKeys, name: &str, plaintext: &[u8]) -> String {
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).expect("the operating system's random source works");
    BASE64.encode(seal_with_iv(keys, name, &iv, plaintext))
}

/// Seals with a given IV and returns the raw (not yet base64) envelope.
/// Use [`seal`] unless you need a fixed IV (test vectors).
pub fn seal_with_iv(keys: &ClientKeys, name: &str, iv: &[u8; IV_LEN], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + IV_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(iv);
    let start = out.len();
    out.extend_from_slice(plaintext);
    Aes128Ctr::new(&keys.enc.into(), &(*iv).into()).apply_keystream(&mut out[start..]);
    let tag = keys.tag(name, iv, &out[start..]).finalize().into_bytes();
    out.extend_from_slice(&tag);
    out
}

/// Why a body is not an envelope at all (the server answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not standard padded base64")]
    NotBase64,
    #[error("body is too short to be a sealed message")]
    TooShort,
    #[error("body does not start with MON1")]
    BadMagic,
}

/// The tag did not verify: wrong key, wrong client name, or a tampered message (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message authentication failed")]
pub struct BadTag;

/// A decoded, not yet authenticated, sealed message.
#[derive(Debug)]
pub struct Envelope {
    raw: Vec<u8>,
}

impl Envelope {
    /// Decodes a request body: trailing whitespace is ignored, then base64, length and magic
    /// are checked.
    pub fn decode(body: &[u8]) -> Result<Envelope, EnvelopeError> {
        let end = body
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let raw = BASE64
            .decode(&body[..end])
            .map_err(|_| EnvelopeError::NotBase64)?;
        if raw.len() < MAGIC.len() + IV_LEN + TAG_LEN {
            return Err(EnvelopeError::TooShort);
        }
        if &raw[..MAGIC.len()] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        Ok(Envelope { raw })
    }

    /// Verifies the tag for client `name` (constant time) and only then decrypts.
    pub fn open(mut self, keys: &ClientKeys, name: &str) -> Result<Vec<u8>, BadTag> {
        let tag_at = self.raw.len() - TAG_LEN;
        let (head, tag) = self.raw.split_at(tag_at);
        let iv = &head[MAGIC.len()..MAGIC.len() + IV_LEN];
        let ciphertext = &head[MAGIC.len() + IV_LEN..];
        keys.tag(name, iv, ciphertext)
            .verify_slice(tag)
            .map_err(|_| BadTag)?;

        let mut iv_block = [0u8; IV_LEN];
        iv_block.copy_from_slice(iv);
        self.raw.truncate(tag_at);
        let mut plaintext = self.raw.split_off(MAGIC.len() + IV_LEN);
        Aes128Ctr::new(&keys.enc.into(), &iv_block.into()).apply_keystream(&mut plaintext);
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_for(name: &str) -> ClientKeys {
        ClientKeys::derive(&MasterKey::from_bytes([7u8; 32]), name)
    }

    fn open_body(body: &str, keys: &ClientKeys, name: &str) -> Result<Vec<u8>, BadTag> {
        Envelope::decode(body.as_bytes())
            .expect("decodes")
            .open(keys, name)
    }

    #[test]
    fn round_trip() {
        let keys = keys_for("web1");
        let body = seal(&keys, "web1", br#"{"v":1}"#);
        assert_eq!(open_body(&body, &keys, "web1").unwrap(), br#"{"v":1}"#);
    }

    #[test]
    fn trailing_whitespace_is_ignored() {
        let keys = keys_for("web1");
        let body = seal(&keys, "web1", b"hello") + "\r\n  ";
        assert_eq!(open_body(&body, &keys, "web1").unwrap(), b"hello");
    }

    #[test]
    fn flipping_any_single_byte_is_rejected() {
        let keys = keys_for("web1");
        let raw = seal_with_iv(&keys, "web1", &[3u8; IV_LEN], b"a sample of some length");
        for i in 0..raw.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = raw.clone();
                bad[i] ^= bit;
                let body = BASE64.encode(&bad);
                let result = Envelope::decode(body.as_bytes()).map(|e| e.open(&keys, "web1"));
                assert!(
                    !matches!(result, Ok(Ok(_))),
                    "flipping bit {bit:#x} of byte {i} was not detected"
                );
            }
        }
    }

    #[test]
    fn sealed_for_a_does_not_open_as_b() {
        let a = keys_for("web1");
        let b = keys_for("web2");
        let body = seal(&a, "web1", b"x");
        assert_eq!(open_body(&body, &b, "web2"), Err(BadTag));
        // Right keys, wrong name in the tag: still refused.
        assert_eq!(open_body(&body, &a, "web2"), Err(BadTag));
    }

    #[test]
    fn decode_reports_what_is_wrong() {
        assert_eq!(
            Envelope::decode(b"not base64!").unwrap_err(),
            EnvelopeError::NotBase64
        );
        assert_eq!(
            Envelope::decode(BASE64.encode(b"MON1short").as_bytes()).unwrap_err(),
            EnvelopeError::TooShort
        );
        let wrong_magic = BASE64.encode([b'X'; 60]);
        assert_eq!(
            Envelope::decode(wrong_magic.as_bytes()).unwrap_err(),
            EnvelopeError::BadMagic
        );
    }

    #[test]
    fn derivation_matches_the_contract() {
        // HKDF-SHA256(ikm = 32 x 0x07, salt = "monitord v1", info = "client:web1", L = 48),
        // computed independently with Python's hmac/hashlib from the RFC 5869 steps.
        let keys = keys_for("web1");
        let okm = hex::encode([keys.enc().as_slice(), keys.mac()].concat());
        assert_eq!(
            okm,
            "0bf573682fe6034cf87b49c3758e186fc81597435a4b5296ff295f1bb7ae4322941b9c395f793e0551d79a26d9df0097"
        );
    }
}
