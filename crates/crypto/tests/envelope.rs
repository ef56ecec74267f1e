//! Envelope properties: round trip, tampering anywhere fails, headers cannot be moved,
//! rotation keeps old messages readable, another organisation's key opens nothing.

use chrono::Utc;
use passerelle_crypto::envelope::{open_with, seal_with};
use passerelle_crypto::{CryptoErrorKind, Envelope, Kek, OrgKeys, Route, open, seal};
use proptest::prelude::*;
use uuid::Uuid;

fn keys(org: &str, seed: u8, n: usize) -> OrgKeys {
    let ks = (0..n)
        .map(|i| {
            Kek::from_bytes(
                format!("{org}-k{}", i + 1),
                Utc::now(),
                [seed.wrapping_add(i as u8); 32],
            )
        })
        .collect();
    OrgKeys::new(org, ks).unwrap()
}

fn route(id: u128) -> Route<'static> {
    Route {
        transfer_id: Uuid::from_u128(id),
        flow: "brsa-orientation",
        sender: "CD059",
        schema: "passerelle.jeune/1",
    }
}

#[test]
fn round_trip_through_bytes() {
    let ml = keys("59350S00", 1, 1);
    let env = seal(&route(1), &ml, b"{\"schema\":\"passerelle.jeune/1\"}").unwrap();
    let bytes = env.to_bytes();
    assert_eq!(bytes.len(), env.encoded_len());
    let back = Envelope::from_bytes(&bytes).unwrap();
    assert_eq!(back, env);
    let h = Envelope::peek_header(&bytes).unwrap();
    assert_eq!(h.recipient, "59350S00");
    assert_eq!(h.sender, "CD059");
    assert_eq!(h.key_id, "59350S00-k1");
    assert_eq!(h.flow, "brsa-orientation");
    assert_eq!(h.transfer_id, Uuid::from_u128(1));
    assert_eq!(
        &**open(&back, &ml).unwrap(),
        b"{\"schema\":\"passerelle.jeune/1\"}"
    );
    // The payload is not in clear in the bytes.
    assert!(!bytes.windows(6).any(|w| w == b"schema"));
    assert_eq!(env.digest().len(), 64);
}

#[test]
fn same_plaintext_seals_differently() {
    let ml = keys("59350S00", 1, 1);
    let a = seal(&route(1), &ml, b"same").unwrap().to_bytes();
    let b = seal(&route(1), &ml, b"same").unwrap().to_bytes();
    assert_ne!(a, b, "fresh data key and nonces per message");
}

#[test]
fn rotated_out_key_still_opens_its_messages() {
    let old = keys("59350S00", 1, 1);
    let before = seal(&route(1), &old, b"before rotation").unwrap();
    let rotated = keys("59350S00", 1, 2);
    assert_eq!(rotated.current().id(), "59350S00-k2");
    let after = seal(&route(2), &rotated, b"after rotation").unwrap();
    assert_eq!(after.header().key_id, "59350S00-k2");
    assert_eq!(&**open(&before, &rotated).unwrap(), b"before rotation");
    assert_eq!(&**open(&after, &rotated).unwrap(), b"after rotation");
    // The old set does not know the new key.
    assert_eq!(
        open(&after, &old).unwrap_err().kind(),
        CryptoErrorKind::UnknownKey
    );
}

#[test]
fn another_organisations_key_does_not_open() {
    let ml = keys("59350S00", 1, 1);
    let other = keys("62010S00", 9, 1);
    let env = seal(&route(1), &ml, b"secret").unwrap();
    assert_eq!(
        open(&env, &other).unwrap_err().kind(),
        CryptoErrorKind::WrongRecipient
    );
    // Even forcing the key (same id, other bytes) fails authentication.
    let impostor = Kek::from_bytes("59350S00-k1", Utc::now(), [9; 32]);
    assert_eq!(
        open_with(&env, &impostor).unwrap_err().kind(),
        CryptoErrorKind::Authentication
    );
}

#[test]
fn header_moved_onto_another_payload_fails() {
    let ml = keys("59350S00", 1, 1);
    let a = seal(&route(1), &ml, b"payload a").unwrap().to_bytes();
    let b = seal(&route(2), &ml, b"payload b").unwrap().to_bytes();
    let ha = Envelope::peek_header(&a).unwrap();
    // Both headers encode to the same length (same strings, other uuid).
    let hlen = 7 + usize::from(u16::from_be_bytes([a[5], a[6]]));
    let mut swapped = a[..hlen].to_vec();
    swapped.extend_from_slice(&b[hlen..]);
    let env = Envelope::from_bytes(&swapped).unwrap();
    assert_eq!(env.header(), &ha);
    assert_eq!(
        open(&env, &ml).unwrap_err().kind(),
        CryptoErrorKind::Authentication
    );
    // A header naming another flow, with the original key material, fails too.
    let other_flow = Route {
        flow: "ase-majorite",
        ..route(1)
    };
    let c = seal_with(&other_flow, "59350S00", ml.current(), b"payload c")
        .unwrap()
        .to_bytes();
    let hc = 7 + usize::from(u16::from_be_bytes([c[5], c[6]]));
    let mut moved = c[..hc].to_vec();
    moved.extend_from_slice(&a[hlen..]);
    let env = Envelope::from_bytes(&moved).unwrap();
    assert_eq!(env.header().flow, "ase-majorite");
    assert!(open(&env, &ml).is_err());
}

#[test]
fn malformed_inputs_are_refused_without_panic() {
    for bad in [&b""[..], b"PSRL", b"XXXX\x01\x00\x00", b"PSRL\x02\x00\x00"] {
        assert_eq!(
            Envelope::from_bytes(bad).unwrap_err().kind(),
            CryptoErrorKind::Malformed
        );
    }
    let ml = keys("59350S00", 1, 1);
    let bytes = seal(&route(1), &ml, b"x").unwrap().to_bytes();
    for cut in 0..bytes.len() {
        assert!(
            Envelope::from_bytes(&bytes[..cut]).is_err()
                || open(&Envelope::from_bytes(&bytes[..cut]).unwrap(), &ml).is_err()
        );
    }
}

#[test]
fn debug_never_shows_key_bytes_or_payload() {
    let k = Kek::from_bytes("id-1", Utc::now(), [0xab; 32]);
    let shown = format!("{k:?}");
    assert!(
        !shown.contains("ab, ") && !shown.contains("171") && !shown.contains("abab"),
        "{shown}"
    );
    let ks = OrgKeys::new("CD059", vec![k]).unwrap();
    let shown = format!("{ks:?}");
    assert!(!shown.contains("171") && !shown.contains("abab"), "{shown}");
    let env = seal(&route(1), &ks, b"Lefevre").unwrap();
    assert!(!format!("{env:?}").contains("Lefevre"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A flipped bit anywhere (header, wrap nonce, wrapped key, nonce, ciphertext or
    /// tag) makes opening fail.
    #[test]
    fn any_flipped_bit_fails(payload in proptest::collection::vec(any::<u8>(), 0..2048), pos in any::<proptest::sample::Index>(), bit in 0u8..8) {
        let ml = keys("59350S00", 1, 1);
        let bytes = seal(&route(7), &ml, &payload).unwrap().to_bytes();
        let mut bad = bytes.clone();
        let i = pos.index(bad.len());
        bad[i] ^= 1 << bit;
        let result = Envelope::from_bytes(&bad).and_then(|e| open(&e, &ml));
        prop_assert!(result.is_err(), "flip at byte {} of {} opened", i, bytes.len());
        // And the untouched one still opens.
        prop_assert_eq!(&**open(&Envelope::from_bytes(&bytes).unwrap(), &ml).unwrap(), &payload[..]);
    }

    /// Header fields of any content round-trip and stay bound.
    #[test]
    fn headers_round_trip(flow in "[a-z-]{1,40}", sender in "\\PC{0,30}", payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let ml = keys("59350S00", 3, 2);
        let r = Route { transfer_id: Uuid::new_v4(), flow: &flow, sender: &sender, schema: "passerelle.jeune/1" };
        let env = seal(&r, &ml, &payload).unwrap();
        let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
        prop_assert_eq!(&back.header().flow, &flow);
        prop_assert_eq!(&back.header().sender, &sender);
        prop_assert_eq!(&**open(&back, &ml).unwrap(), &payload[..]);
    }
}
