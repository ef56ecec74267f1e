//! Heap bytes per person held by an `IdentityIndex` of 100,000 people, counted by a
//! global allocator (a size figure, not a speed one: the machine's load does not change
//! it). Each person has the keys of a typical night record: a NIR, a CAF role, an
//! I-MILO dossier, and two identities (birth and usage name); one person in ten shares
//! its CAF role key with the next person (a household), so some keys point at several
//! hub ids.

use std::alloc::System;

use passerelle_crypto::PseudonymKey;
use passerelle_identity::{IdentityIndex, IdentityKeys, IndexEntry, KeyKind};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use uuid::Uuid;

// The workspace forbids unsafe code: the counting allocator comes from stats_alloc.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const PERSONS: u128 = 100_000;

#[allow(clippy::print_stdout)] // A bench prints its figure.
fn main() {
    let key = PseudonymKey::from_bytes([9; 32]);
    let bi = |kind: KeyKind, v: String| key.blind_index(kind.as_str(), &v);
    // Built before counting: the keys of every record, as the engine holds them.
    let records: Vec<(Uuid, IdentityKeys)> = (0..PERSONS)
        .map(|i| {
            let household = i - i % 2 * u128::from(i % 20 == 1);
            let keys = IdentityKeys {
                identifiers: vec![
                    (KeyKind::Nir, bi(KeyKind::Nir, format!("nir{i}"))),
                    (
                        KeyKind::CafRole,
                        bi(KeyKind::CafRole, format!("caf{household}")),
                    ),
                    (
                        KeyKind::ImiloDossier,
                        bi(KeyKind::ImiloDossier, format!("d{i}")),
                    ),
                ],
                identites: vec![
                    bi(KeyKind::Identite, format!("naissance{i}")),
                    bi(KeyKind::Identite, format!("usage{i}")),
                ],
            };
            (Uuid::from_u128(i + 1), keys)
        })
        .collect();
    let entries: Vec<IndexEntry> = records.iter().flat_map(|(id, k)| k.entries(*id)).collect();

    let region = Region::new(GLOBAL);
    let index = IdentityIndex::from_entries(entries.iter().cloned());
    let change = region.change();
    // Bytes still held: the clones of the entries given in are counted when kept.
    let held = change.bytes_allocated as isize - change.bytes_deallocated as isize
        + change.bytes_reallocated;
    assert_eq!(index.len(), PERSONS as usize);
    println!(
        "identity index, {PERSONS} persons, {} entries: {held} bytes ({:.1} MiB), {} bytes per person",
        entries.len(),
        held as f64 / (1024.0 * 1024.0),
        held / PERSONS as isize
    );
    drop(index);
}
