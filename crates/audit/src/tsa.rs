//! RFC 3161 time-stamping of anchors: the request sent to a time-stamping authority
//! (TSA), the token read from its answer, and the token's check against the TSA's
//! certificate. No I/O here: the HTTP POST (`application/timestamp-query`) is the
//! caller's (the cli), so that this crate stays without a network client.
//!
//! What a good token proves: the TSA (whose certificate the configuration names)
//! signed, at `genTime`, a statement whose SHA-256 is the anchor's. The check is the
//! CMS one: the `TSTInfo`'s message imprint is SHA-256 of the signed statement; the
//! signer's `message-digest` attribute is the digest of that `TSTInfo`; the signature
//! over the DER of the signed attributes verifies with the certificate's key (RSA
//! PKCS #1 v1.5 or ECDSA P-256/P-384, with SHA-256/384/512).
//!
//! Not checked here: the TSA certificate's own chain and revocation (the configuration
//! pins the certificate itself, as X-Road pins its TSAs).

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::{Decode, Encode};
use sha2::Digest;

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_SHA384: &str = "2.16.840.1.101.3.4.2.2";
const OID_SHA512: &str = "2.16.840.1.101.3.4.2.3";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// DER of `sha256` as an AlgorithmIdentifier with NULL parameters.
const SHA256_ALG: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
];

/// What is wrong with a TSA answer or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsaError {
    /// Not the DER this module expects (a truncated or altered token).
    #[error("malformed time-stamp {what}")]
    Malformed { what: &'static str },
    /// The TSA answered with a status other than granted.
    #[error("the time-stamping authority refused the request (status {status})")]
    Rejected { status: u64 },
    /// The token stamps another statement than this anchor's.
    #[error("the time-stamp token is for another statement (message imprint differs)")]
    WrongImprint,
    /// The nonce of the answer is not the request's.
    #[error("the time-stamp answer does not carry the request's nonce")]
    WrongNonce,
    /// The signature does not verify with the TSA certificate (altered, or another TSA).
    #[error("the time-stamp token's signature does not verify with the TSA certificate")]
    BadSignature,
    /// An algorithm this module does not check.
    #[error("unsupported algorithm {oid} in the time-stamp token")]
    Unsupported { oid: String },
    /// The configured TSA certificate cannot be read.
    #[error("the TSA certificate is not a PEM X.509 certificate: {0}")]
    Certificate(String),
}

/// Which kind of error, for callers that decide without matching messages.
impl TsaError {
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            Self::Certificate(_) | Self::Unsupported { .. } => crate::ErrorKind::Invalid,
            Self::Rejected { .. } => crate::ErrorKind::Unavailable,
            _ => crate::ErrorKind::Corrupt,
        }
    }
}

/// The TSA's certificate, pinned by the configuration.
#[derive(Debug, Clone)]
pub struct TsaCertificate {
    /// Public key algorithm and curve OIDs, and the key's bytes.
    algorithm: String,
    curve: Option<String>,
    key: Vec<u8>,
}

impl TsaCertificate {
    /// Reads a PEM certificate (the first one if several are given).
    pub fn from_pem(pem: &str) -> Result<Self, TsaError> {
        use der::DecodePem;
        let begin = pem
            .find("-----BEGIN CERTIFICATE-----")
            .ok_or_else(|| TsaError::Certificate("no BEGIN CERTIFICATE line".into()))?;
        let end = pem[begin..]
            .find("-----END CERTIFICATE-----")
            .map(|e| begin + e + "-----END CERTIFICATE-----".len())
            .ok_or_else(|| TsaError::Certificate("no END CERTIFICATE line".into()))?;
        let cert = x509_cert::Certificate::from_pem(&pem[begin..end])
            .map_err(|e| TsaError::Certificate(e.to_string()))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
            .map(|o| o.to_string());
        Ok(Self {
            algorithm: spki.algorithm.oid.to_string(),
            curve,
            key: spki.subject_public_key.raw_bytes().to_vec(),
        })
    }
}

/// A token that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// The TSA's time, as written in the token (`GeneralizedTime`, e.g. `20261204211500Z`).
    pub gen_time: String,
}

/// A DER TimeStampReq for SHA-256 of `statement`, asking for the TSA's certificate in
/// the token, with `nonce`.
pub fn request(statement: &[u8], nonce: u64) -> Vec<u8> {
    let digest = sha2::Sha256::digest(statement);
    let mut imprint = SHA256_ALG.to_vec();
    imprint.extend(tlv(0x04, &digest));
    let mut body = tlv(0x02, &[1]);
    body.extend(tlv(0x30, &imprint));
    body.extend(tlv(0x02, &uint(nonce)));
    body.extend(tlv(0x01, &[0xff])); // certReq
    tlv(0x30, &body)
}

/// The token of a TimeStampResp, once its status is granted and it stamps `statement`
/// with the request's `nonce`. The signature is checked by [`verify`].
pub fn token_of_response(resp: &[u8], statement: &[u8], nonce: u64) -> Result<Vec<u8>, TsaError> {
    let bad = |what| TsaError::Malformed { what };
    let (tag, body, _) = read(resp).ok_or(bad("response"))?;
    if tag != 0x30 {
        return Err(bad("response"));
    }
    let (tag, status_info, rest) = read(body).ok_or(bad("response status"))?;
    if tag != 0x30 {
        return Err(bad("response status"));
    }
    let (tag, status, _) = read(status_info).ok_or(bad("response status"))?;
    if tag != 0x02 {
        return Err(bad("response status"));
    }
    let status = status.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
    if status > 1 {
        return Err(TsaError::Rejected { status });
    }
    let (_, _, after) = read(rest).ok_or(bad("token"))?;
    let token = &rest[..rest.len() - after.len()];
    let info = tst_info(token)?;
    if info.imprint != sha2::Sha256::digest(statement).as_slice() {
        return Err(TsaError::WrongImprint);
    }
    if info.nonce.as_deref() != Some(uint(nonce).as_slice()) {
        return Err(TsaError::WrongNonce);
    }
    Ok(token.to_vec())
}

/// Checks `token` (DER) against `statement` and the TSA's certificate.
pub fn verify(token: &[u8], statement: &[u8], cert: &TsaCertificate) -> Result<Stamped, TsaError> {
    let bad = |what| TsaError::Malformed { what };
    let info = tst_info(token)?;
    if info.imprint_alg != OID_SHA256 || info.imprint != sha2::Sha256::digest(statement).as_slice()
    {
        return Err(TsaError::WrongImprint);
    }
    let signed = signed_data(token)?;
    let signer = signed.signer_infos.0.iter().next().ok_or(bad("signer"))?;
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or(bad("signed attributes"))?;
    // The signed attributes must name the TSTInfo and carry its digest: the signature
    // covers them, not the TSTInfo itself.
    let digest_oid = signer.digest_alg.oid.to_string();
    let econtent_digest = digest(&digest_oid, &info.der)?;
    let mut content_type_ok = false;
    let mut digest_ok = false;
    for a in attrs.iter() {
        let value = a.values.iter().next().ok_or(bad("signed attribute"))?;
        match a.oid.to_string().as_str() {
            OID_CONTENT_TYPE => {
                content_type_ok = value
                    .decode_as::<der::asn1::ObjectIdentifier>()
                    .is_ok_and(|o| o.to_string() == OID_TST_INFO);
            }
            OID_MESSAGE_DIGEST => {
                digest_ok = value
                    .decode_as::<der::asn1::OctetString>()
                    .is_ok_and(|o| o.as_bytes() == econtent_digest.as_slice());
            }
            _ => {}
        }
    }
    if !content_type_ok || !digest_ok {
        return Err(TsaError::BadSignature);
    }
    let signed_bytes = attrs.to_der().map_err(|_| bad("signed attributes"))?;
    let alg = signature_algorithm(
        cert,
        &signer.signature_algorithm.oid.to_string(),
        &digest_oid,
    )?;
    ring::signature::UnparsedPublicKey::new(alg, &cert.key)
        .verify(&signed_bytes, signer.signature.as_bytes())
        .map_err(|_| TsaError::BadSignature)?;
    Ok(Stamped {
        gen_time: info.gen_time,
    })
}

/// Checks a token stored as hex on an anchor.
pub fn verify_hex(
    token_hex: &str,
    statement: &[u8],
    cert: &TsaCertificate,
) -> Result<Stamped, TsaError> {
    let token = hex::decode(token_hex).map_err(|_| TsaError::Malformed { what: "token" })?;
    verify(&token, statement, cert)
}

fn signature_algorithm(
    cert: &TsaCertificate,
    sig_oid: &str,
    digest_oid: &str,
) -> Result<&'static dyn ring::signature::VerificationAlgorithm, TsaError> {
    use ring::signature as s;
    let unsupported = |oid: &str| TsaError::Unsupported {
        oid: oid.to_owned(),
    };
    match cert.algorithm.as_str() {
        OID_RSA => {
            // `rsaEncryption` leaves the hash to the digest algorithm.
            let hash = match sig_oid {
                OID_RSA => digest_oid,
                OID_RSA_SHA256 => OID_SHA256,
                OID_RSA_SHA384 => OID_SHA384,
                OID_RSA_SHA512 => OID_SHA512,
                o => return Err(unsupported(o)),
            };
            match hash {
                OID_SHA256 => Ok(&s::RSA_PKCS1_2048_8192_SHA256),
                OID_SHA384 => Ok(&s::RSA_PKCS1_2048_8192_SHA384),
                OID_SHA512 => Ok(&s::RSA_PKCS1_2048_8192_SHA512),
                o => Err(unsupported(o)),
            }
        }
        OID_EC => match (cert.curve.as_deref(), sig_oid) {
            (Some(OID_P256), OID_ECDSA_SHA256) => Ok(&s::ECDSA_P256_SHA256_ASN1),
            (Some(OID_P384), OID_ECDSA_SHA384) => Ok(&s::ECDSA_P384_SHA384_ASN1),
            (_, o) => Err(unsupported(o)),
        },
        o => Err(unsupported(o)),
    }
}

fn digest(oid: &str, data: &[u8]) -> Result<Vec<u8>, TsaError> {
    Ok(match oid {
        OID_SHA256 => sha2::Sha256::digest(data).to_vec(),
        OID_SHA384 => sha2::Sha384::digest(data).to_vec(),
        OID_SHA512 => sha2::Sha512::digest(data).to_vec(),
        o => return Err(TsaError::Unsupported { oid: o.to_owned() }),
    })
}

fn signed_data(token: &[u8]) -> Result<SignedData, TsaError> {
    let bad = |what| TsaError::Malformed { what };
    let ci = ContentInfo::from_der(token).map_err(|_| bad("token"))?;
    if ci.content_type.to_string() != OID_SIGNED_DATA {
        return Err(bad("token"));
    }
    let sd: SignedData = ci.content.decode_as().map_err(|_| bad("signed data"))?;
    if sd.encap_content_info.econtent_type.to_string() != OID_TST_INFO {
        return Err(bad("signed data"));
    }
    Ok(sd)
}

/// What the check needs of a TSTInfo.
struct TstInfo {
    /// The TSTInfo's own DER (what the signer's message digest covers).
    der: Vec<u8>,
    imprint_alg: String,
    imprint: Vec<u8>,
    gen_time: String,
    /// The nonce's INTEGER bytes.
    nonce: Option<Vec<u8>>,
}

fn tst_info(token: &[u8]) -> Result<TstInfo, TsaError> {
    let bad = |what| TsaError::Malformed { what };
    let sd = signed_data(token)?;
    let econtent = sd.encap_content_info.econtent.ok_or(bad("TSTInfo"))?;
    let der_bytes = econtent
        .decode_as::<der::asn1::OctetString>()
        .map_err(|_| bad("TSTInfo"))?
        .as_bytes()
        .to_vec();
    let (tag, body, _) = read(&der_bytes).ok_or(bad("TSTInfo"))?;
    if tag != 0x30 {
        return Err(bad("TSTInfo"));
    }
    let (_, _, rest) = read(body).ok_or(bad("TSTInfo version"))?;
    let (_, _, rest) = read(rest).ok_or(bad("TSTInfo policy"))?;
    let (tag, imprint, rest) = read(rest).ok_or(bad("message imprint"))?;
    if tag != 0x30 {
        return Err(bad("message imprint"));
    }
    let (_, alg, hashed) = read(imprint).ok_or(bad("message imprint"))?;
    let (_, alg_oid, _) = read(alg).ok_or(bad("message imprint"))?;
    let imprint_alg = der::asn1::ObjectIdentifier::from_bytes(alg_oid)
        .map_err(|_| bad("message imprint"))?
        .to_string();
    let (tag, hashed, _) = read(hashed).ok_or(bad("message imprint"))?;
    if tag != 0x04 {
        return Err(bad("message imprint"));
    }
    let (_, _, rest) = read(rest).ok_or(bad("serial number"))?;
    let (tag, gen_time, mut rest) = read(rest).ok_or(bad("time"))?;
    if tag != 0x18 {
        return Err(bad("time"));
    }
    let mut nonce = None;
    while let Some((tag, v, r)) = read(rest) {
        if tag == 0x02 {
            nonce = Some(v.to_vec());
        }
        rest = r;
    }
    Ok(TstInfo {
        imprint_alg,
        imprint: hashed.to_vec(),
        gen_time: String::from_utf8_lossy(gen_time).into_owned(),
        nonce,
        der: der_bytes,
    })
}

/// One DER TLV: tag, contents, what follows. Only single-byte tags (all this module reads).
fn read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER's contents (minimal, with a leading zero when the top bit is set).
fn uint(n: u64) -> Vec<u8> {
    let mut b: Vec<u8> = n
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    if b.is_empty() || b[0] & 0x80 != 0 {
        b.insert(0, 0);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_der_with_the_sha256_imprint_and_nonce() {
        let req = request(b"statement", 0x80);
        let (tag, body, rest) = read(&req).unwrap();
        assert_eq!((tag, rest.len()), (0x30, 0));
        let (_, v, rest) = read(body).unwrap();
        assert_eq!(v, [1]);
        let (_, imprint, rest) = read(rest).unwrap();
        assert!(imprint.starts_with(&SHA256_ALG));
        assert!(imprint.ends_with(&sha2::Sha256::digest(b"statement")));
        let (tag, nonce, _) = read(rest).unwrap();
        assert_eq!((tag, nonce), (0x02, &[0x00, 0x80][..]));
        assert_eq!(uint(0), vec![0]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(matches!(
            token_of_response(&[0x30, 0x03, 0x30, 0x01], b"x", 1),
            Err(TsaError::Malformed { .. })
        ));
        assert!(matches!(
            token_of_response(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02], b"x", 1),
            Err(TsaError::Rejected { status: 2 })
        ));
        assert!(matches!(
            tst_info(&[0x30, 0x80]),
            Err(TsaError::Malformed { .. })
        ));
        assert!(TsaCertificate::from_pem("nothing").is_err());
    }
}
