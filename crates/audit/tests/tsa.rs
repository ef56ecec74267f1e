//! RFC 3161 tokens from a real `openssl ts` authority: requested, read, checked; a token
//! for another statement, an altered token and another authority's token are refused.

mod tsa_world;

use passerelle_audit::tsa::{self, TsaCertificate, TsaError};
use tsa_world::Tsa;

fn stamp(tsa: &Tsa, statement: &[u8], nonce: u64) -> Vec<u8> {
    let resp = tsa.reply(&tsa::request(statement, nonce));
    tsa::token_of_response(&resp, statement, nonce).expect("a granted token")
}

#[test]
fn openssl_tokens_check_and_altered_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = Tsa::new(&dir.path().join("rsa"), false);
    let cert = TsaCertificate::from_pem(&rsa.cert_pem).unwrap();
    let statement = b"passerelle/audit-anchor/v1\0head 42".to_vec();

    let token = stamp(&rsa, &statement, 7);
    let ok = tsa::verify(&token, &statement, &cert).expect("a good token checks");
    assert!(
        ok.gen_time.ends_with('Z') && ok.gen_time.len() >= 15,
        "{}",
        ok.gen_time
    );

    // For another statement: the imprint differs.
    assert_eq!(
        tsa::verify(&token, b"another statement", &cert),
        Err(TsaError::WrongImprint)
    );

    // The answer to another nonce is refused when read.
    let resp = rsa.reply(&tsa::request(&statement, 8));
    assert_eq!(
        tsa::token_of_response(&resp, &statement, 9),
        Err(TsaError::WrongNonce)
    );
    assert_eq!(
        tsa::token_of_response(&resp, b"other", 8),
        Err(TsaError::WrongImprint)
    );

    // Any single byte changed in what the TSA signed (the TSTInfo: imprint, serial,
    // time) or in its signature is found. The certificates the token carries, the
    // signer's identifier and the algorithms' parameters are not signed and not used
    // (the configuration pins the TSA's certificate), so they are not asserted on.
    let accepted: Vec<usize> = (0..token.len())
        .filter(|&i| {
            let mut bad = token.clone();
            bad[i] ^= 0x01;
            tsa::verify(&bad, &statement, &cert).is_ok()
        })
        .collect();
    let imprint = <sha2::Sha256 as sha2::Digest>::digest(&statement);
    let imprint_at = token
        .windows(32)
        .position(|w| w == imprint.as_slice())
        .unwrap();
    let time_at = token
        .windows(ok.gen_time.len())
        .position(|w| w == ok.gen_time.as_bytes())
        .unwrap();
    let signed = imprint_at - 2..time_at + ok.gen_time.len();
    let signature = token.len() - 256..token.len();
    assert!(
        accepted
            .iter()
            .all(|i| !signed.contains(i) && !signature.contains(i)),
        "altered bytes accepted: {accepted:?} of {}",
        token.len()
    );
    // The time inside the TSTInfo, changed: the signer's digest no longer matches.
    let gen_time = ok.gen_time.as_bytes();
    let at = token
        .windows(gen_time.len())
        .position(|w| w == gen_time)
        .unwrap();
    let mut later = token.clone();
    later[at + 3] = if later[at + 3] == b'9' {
        b'8'
    } else {
        later[at + 3] + 1
    };
    assert_eq!(
        tsa::verify(&later, &statement, &cert),
        Err(TsaError::BadSignature)
    );

    // Another authority (EC P-256): its tokens check with its own certificate only.
    let ec = Tsa::new(&dir.path().join("ec"), true);
    let ec_cert = TsaCertificate::from_pem(&ec.cert_pem).unwrap();
    let ec_token = stamp(&ec, &statement, 11);
    tsa::verify(&ec_token, &statement, &ec_cert).expect("an ECDSA token checks");
    assert!(tsa::verify(&ec_token, &statement, &cert).is_err());
    assert!(tsa::verify(&token, &statement, &ec_cert).is_err());
}

#[tokio::test]
async fn a_journal_anchor_carries_a_token_that_check_timestamps_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let tsa = Tsa::new(&dir.path().join("tsa"), false);
    let cert = TsaCertificate::from_pem(&tsa.cert_pem).unwrap();
    let journal = passerelle_audit::JournalConfig::sqlite_file(&dir.path().join("j.sqlite"))
        .build()
        .await
        .unwrap();
    journal
        .append(passerelle_audit::NewEntry::new(
            passerelle_audit::Event::Consulted,
            "dpo",
            passerelle_audit::Outcome::Ok,
        ))
        .await
        .unwrap();
    let key = passerelle_crypto::AnchorKey::generate();
    let a = journal
        .anchor_with(&key, async |s: Vec<u8>| {
            let resp = tsa.reply(&tsa::request(&s, 1));
            tsa::token_of_response(&resp, &s, 1)
                .map(|t| Some(hex::encode(t)))
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap()
        .unwrap();
    assert!(a.timestamp.is_some());
    let t = passerelle_audit::anchor::check_timestamps(&journal.anchors().await.unwrap(), &cert);
    assert_eq!((t.good, t.without, t.problems.len()), (1, 0, 0));

    // A token moved from another anchor (another statement) is caught.
    let mut other = a.clone();
    other.seq += 1;
    let t = passerelle_audit::anchor::check_timestamps(&[a.clone(), other], &cert);
    assert_eq!(t.good, 1);
    assert!(matches!(
        &t.problems[..],
        [passerelle_audit::AnchorProblem::BadTimestamp { reason, .. }] if reason.contains("another statement")
    ));

    // A failing authority stores no anchor.
    journal
        .append(passerelle_audit::NewEntry::new(
            passerelle_audit::Event::Consulted,
            "dpo",
            passerelle_audit::Outcome::Ok,
        ))
        .await
        .unwrap();
    let before = journal.anchors().await.unwrap().len();
    let err = journal
        .anchor_with(&key, async |_| Err("connection refused".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), passerelle_audit::ErrorKind::Unavailable);
    assert_eq!(journal.anchors().await.unwrap().len(), before);
}
