//! Change detection and transfer ids.
//!
//! A transfer id is derived from what is sent (flow, recipient, person, content hash)
//! rather than drawn at random: after a crash between "published" and "recorded", the
//! rerun publishes the same content under the same id, and the target's idempotency
//! key (`referenceExterne`, `Idempotency-Key`) turns the second delivery into a no-op.

use passerelle_model::Jeune;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// SHA-256 of the record's canonical JSON (the projection a flow sends), so the same
/// content always hashes the same and any change of an allowed field shows.
pub fn content_hash(record: &Jeune) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(record.to_json_line().as_bytes());
    h.finalize().into()
}

/// The transfer id of sending `hash` about `hub_id` to `recipient` under `flow`: a
/// version-8 UUID made of the first 16 bytes of a SHA-256 over those four values.
pub fn transfer_id(flow: &str, recipient: &str, hub_id: &Uuid, hash: &[u8; 32]) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"passerelle/transfer/v1\0");
    for part in [
        flow.as_bytes(),
        recipient.as_bytes(),
        hub_id.as_bytes().as_slice(),
        hash.as_slice(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(nom: &str) -> Jeune {
        serde_json::from_str(&format!(
            r#"{{"schema":"passerelle.jeune/1","etat_civil":{{"nom_naissance":"{nom}"}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn same_content_same_hash_and_id() {
        let a = content_hash(&record("Lefèvre"));
        assert_eq!(a, content_hash(&record("Lefèvre")));
        assert_ne!(a, content_hash(&record("Lefevre")));
        let hub = Uuid::from_u128(1);
        let id = transfer_id("brsa-orientation", "59350S00", &hub, &a);
        assert_eq!(id, transfer_id("brsa-orientation", "59350S00", &hub, &a));
        assert_eq!(id.get_version_num(), 8);
        assert_ne!(id, transfer_id("ase-majorite", "59350S00", &hub, &a));
        assert_ne!(id, transfer_id("brsa-orientation", "59512S00", &hub, &a));
        assert_ne!(
            id,
            transfer_id("brsa-orientation", "59350S00", &Uuid::from_u128(2), &a)
        );
        // Lengths are part of the input: moving a character between fields changes the id.
        assert_ne!(
            transfer_id("ab", "c", &hub, &a),
            transfer_id("a", "bc", &hub, &a)
        );
    }
}
