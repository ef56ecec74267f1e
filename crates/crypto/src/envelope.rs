//! Envelope encryption of one message for one recipient organisation.
//!
//! A fresh 256-bit data key encrypts the payload with AES-256-GCM; the data key is
//! itself encrypted (wrapped) with AES-256-GCM under the recipient's current
//! key-encryption key, with its own random nonce. The header (transfer id, flow,
//! sender, recipient, key id, schema) is bound as associated data to both
//! encryptions, so a changed header, a header moved onto another payload or a wrapped
//! key moved onto another header all fail to open.
//!
//! Binary form, version 1 (all integers big-endian):
//!
//! ```text
//! "PSRL" | version u8 = 1 | header_len u16 | header
//!        | wrap_nonce [12] | wrapped_key [32 + 16] | nonce [12] | ciphertext+tag [n + 16]
//! header = transfer_id [16] | flow | sender | recipient | key_id | schema
//!          (each string: len u16 | UTF-8 bytes)
//! ```
//!
//! The associated data is the bytes from `"PSRL"` to the end of the header.
//!
//! Nonces are random (96 bits). Each data key encrypts exactly one message, so its
//! nonce cannot repeat; a key-encryption key wraps one data key per message, so rotate
//! it well before 2^32 messages (NIST SP 800-38D's bound for random nonces).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::CryptoError;
use crate::key::{Kek, OrgKeys};

const MAGIC: &[u8; 4] = b"PSRL";
/// The envelope format version this build writes and reads.
pub const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const WRAPPED_LEN: usize = 32 + TAG_LEN;
const PREFIX_LEN: usize = 4 + 1 + 2;

/// What a router may read without any key: who sends what to whom under which flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub transfer_id: Uuid,
    pub flow: String,
    /// Sender organisation code.
    pub sender: String,
    /// Recipient organisation code.
    pub recipient: String,
    /// Id of the recipient's key that wraps the data key.
    pub key_id: String,
    /// Schema of the payload (`passerelle.jeune/1`).
    pub schema: String,
}

/// The routing facts a sender provides; the recipient and key id come from the keys.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub transfer_id: Uuid,
    pub flow: &'a str,
    pub sender: &'a str,
    pub schema: &'a str,
}

/// A sealed message.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    header: Header,
    /// `"PSRL"`, version, length and encoded header: the associated data.
    aad: Vec<u8>,
    wrap_nonce: [u8; NONCE_LEN],
    wrapped_key: [u8; WRAPPED_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("header", &self.header)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), CryptoError> {
    let len = u16::try_from(s.len())
        .map_err(|_| CryptoError::Malformed("header field longer than 65535 bytes"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn encode_header(h: &Header) -> Result<Vec<u8>, CryptoError> {
    let mut body = Vec::with_capacity(
        16 + 10
            + h.flow.len()
            + h.sender.len()
            + h.recipient.len()
            + h.key_id.len()
            + h.schema.len(),
    );
    body.extend_from_slice(h.transfer_id.as_bytes());
    for s in [&h.flow, &h.sender, &h.recipient, &h.key_id, &h.schema] {
        put_str(&mut body, s)?;
    }
    let len = u16::try_from(body.len())
        .map_err(|_| CryptoError::Malformed("header longer than 65535 bytes"))?;
    let mut aad = Vec::with_capacity(PREFIX_LEN + body.len());
    aad.extend_from_slice(MAGIC);
    aad.push(VERSION);
    aad.extend_from_slice(&len.to_be_bytes());
    aad.extend_from_slice(&body);
    Ok(aad)
}

/// A cursor over bytes that fails with `Malformed` instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CryptoError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(CryptoError::Malformed("truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, CryptoError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn string(&mut self) -> Result<String, CryptoError> {
        let len = usize::from(self.u16()?);
        let b = self.take(len)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| CryptoError::Malformed("header field is not UTF-8"))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CryptoError> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
}

/// Parses the prefix and header; returns the header and the length of the AAD.
fn parse_header(bytes: &[u8]) -> Result<(Header, usize), CryptoError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return Err(CryptoError::Malformed("not a passerelle envelope"));
    }
    if r.take(1)?[0] != VERSION {
        return Err(CryptoError::Malformed("unsupported envelope version"));
    }
    let len = usize::from(r.u16()?);
    let end = PREFIX_LEN + len;
    let body = r.take(len)?;
    let mut h = Reader { bytes: body, at: 0 };
    let transfer_id = Uuid::from_bytes(h.array::<16>()?);
    let header = Header {
        transfer_id,
        flow: h.string()?,
        sender: h.string()?,
        recipient: h.string()?,
        key_id: h.string()?,
        schema: h.string()?,
    };
    if h.at != body.len() {
        return Err(CryptoError::Malformed("trailing bytes in header"));
    }
    Ok((header, end))
}

fn random<const N: usize>() -> [u8; N] {
    let mut a = [0u8; N];
    rand::rng().fill_bytes(&mut a);
    a
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(&(*key).into())
}

/// Seals `plaintext` for the organisation owning `recipient`, under its newest key.
pub fn seal(
    route: &Route<'_>,
    recipient: &OrgKeys,
    plaintext: &[u8],
) -> Result<Envelope, CryptoError> {
    seal_with(route, recipient.org(), recipient.current(), plaintext)
}

/// Seals under one given key (tests, and re-sealing under a chosen key).
pub fn seal_with(
    route: &Route<'_>,
    recipient_org: &str,
    kek: &Kek,
    plaintext: &[u8],
) -> Result<Envelope, CryptoError> {
    let header = Header {
        transfer_id: route.transfer_id,
        flow: route.flow.to_owned(),
        sender: route.sender.to_owned(),
        recipient: recipient_org.to_owned(),
        key_id: kek.id().to_owned(),
        schema: route.schema.to_owned(),
    };
    let aad = encode_header(&header)?;
    let data_key = Zeroizing::new(random::<32>());
    let wrap_nonce = random::<NONCE_LEN>();
    let nonce = random::<NONCE_LEN>();
    let wrapped = cipher(kek.bytes())
        .encrypt(
            &Nonce::from(wrap_nonce),
            Payload {
                msg: data_key.as_slice(),
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::Malformed("data key cannot be wrapped"))?;
    let mut wrapped_key = [0u8; WRAPPED_LEN];
    wrapped_key.copy_from_slice(&wrapped);
    let ciphertext = cipher(&data_key)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::Malformed("payload too long"))?;
    Ok(Envelope {
        header,
        aad,
        wrap_nonce,
        wrapped_key,
        nonce,
        ciphertext,
    })
}

impl Envelope {
    /// The header, readable without any key (routing, audit).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Reads only the header of a serialised envelope, without checking the rest.
    /// Nothing in it is authenticated until the envelope is opened.
    pub fn peek_header(bytes: &[u8]) -> Result<Header, CryptoError> {
        parse_header(bytes).map(|(h, _)| h)
    }

    /// The ciphertext length (payload + tag), for size accounting.
    pub fn ciphertext_len(&self) -> usize {
        self.ciphertext.len()
    }

    /// The stable binary form (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.aad);
        out.extend_from_slice(&self.wrap_nonce);
        out.extend_from_slice(&self.wrapped_key);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// The length of [`Envelope::to_bytes`].
    pub fn encoded_len(&self) -> usize {
        self.aad.len() + NONCE_LEN + WRAPPED_LEN + NONCE_LEN + self.ciphertext.len()
    }

    /// Parses the binary form; authenticity is checked only by [`open`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Envelope, CryptoError> {
        let (header, aad_len) = parse_header(bytes)?;
        let mut r = Reader { bytes, at: aad_len };
        let wrap_nonce = r.array::<NONCE_LEN>()?;
        let wrapped_key = r.array::<WRAPPED_LEN>()?;
        let nonce = r.array::<NONCE_LEN>()?;
        let ciphertext = bytes[r.at..].to_vec();
        if ciphertext.len() < TAG_LEN {
            return Err(CryptoError::Malformed("truncated"));
        }
        Ok(Envelope {
            header,
            aad: bytes[..aad_len].to_vec(),
            wrap_nonce,
            wrapped_key,
            nonce,
            ciphertext,
        })
    }

    /// SHA-256 of the binary form, hex: what the audit journal records.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(&self.aad);
        h.update(self.wrap_nonce);
        h.update(self.wrapped_key);
        h.update(self.nonce);
        h.update(&self.ciphertext);
        hex::encode(h.finalize())
    }
}

/// Opens an envelope with the recipient's keys: checks it is addressed to them, finds
/// the key by id, unwraps the data key and decrypts, all bound to the header.
pub fn open(envelope: &Envelope, recipient: &OrgKeys) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let h = &envelope.header;
    if h.recipient != recipient.org() {
        return Err(CryptoError::WrongRecipient {
            recipient: h.recipient.clone(),
            org: recipient.org().to_owned(),
        });
    }
    let kek = recipient
        .get(&h.key_id)
        .ok_or_else(|| CryptoError::UnknownKey {
            org: recipient.org().to_owned(),
            key_id: h.key_id.clone(),
        })?;
    open_with(envelope, kek)
}

/// Opens with one given key, without the recipient check.
pub fn open_with(envelope: &Envelope, kek: &Kek) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let aad = &envelope.aad;
    let unwrapped = Zeroizing::new(
        cipher(kek.bytes())
            .decrypt(
                &Nonce::from(envelope.wrap_nonce),
                Payload {
                    msg: &envelope.wrapped_key,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Authentication)?,
    );
    let mut data_key = Zeroizing::new([0u8; 32]);
    if unwrapped.len() != 32 {
        return Err(CryptoError::Authentication);
    }
    data_key.copy_from_slice(&unwrapped);
    cipher(&data_key)
        .decrypt(
            &Nonce::from(envelope.nonce),
            Payload {
                msg: &envelope.ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Authentication)
}
