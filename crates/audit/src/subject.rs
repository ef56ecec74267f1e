//! Who an entry is about, without saying it: the subject pseudonym and the blind indexes
//! that let a DPO find a person again from their identifiers.
//!
//! The journal stores the pseudonym (a keyed hash of the hub id) in each entry and, in a
//! separate table, keyed hashes of the person's normalised identifiers (blind indexes),
//! each pointing to the pseudonym. A lookup normalises the identifiers it is given the
//! same way, hashes them with the same key and follows the index to the entries.
//!
//! # Normalisation (documented because lookups must reproduce it exactly)
//!
//! - `nir`: the model's normal form of [`Nir`] (15 characters with its key, `2A`/`2B`
//!   upper-case, no separators).
//! - `caf`: the model's normal form of [`NumeroAllocataire`] (7 digits).
//! - `nom-prenom-naissance`: `NOM|PRENOM|YYYY-MM-DD`, the same strings (and the same
//!   kind) as identity matching, from `passerelle_model::normalise`: NOM is
//!   `nom_key` (accents removed, `Œ`/`Æ`/`ß` spelt out, upper-case, spaces, hyphens and
//!   apostrophes removed, particles such as `de la` or `Le` dropped: `de la Fontaine` →
//!   `FONTAINE`, `N'Diaye` → `NDIAYE`), PRENOM is `prenom_key` (same folding, words
//!   joined: `Jean-Baptiste` → `JEANBAPTISTE`). A record gets one index for each of its
//!   names (birth and usage) times each of its given names. A lookup hashes the given
//!   name as typed and each of its words, so `--prenom "Anaïs Marie"` finds a record whose
//!   given names are `Anaïs`, `Marie`.

use passerelle_crypto::PseudonymKey;
use passerelle_model::normalise::{nom_key, prenom_key};
use passerelle_model::{Date, Jeune, Nir, NumeroAllocataire};

/// Kind of the blind index of a NIR.
pub const KIND_NIR: &str = "nir";
/// Kind of the blind index of a CAF/MSA allocataire number.
pub const KIND_CAF: &str = "caf";
/// Kind of the blind index of birth name (or usage name), first given name and birth date.
pub const KIND_IDENTITE: &str = "nom-prenom-naissance";

/// One keyed hash of one normalised identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlindIndex {
    pub kind: &'static str,
    /// Lowercase hex HMAC (see [`PseudonymKey::blind_index`]).
    pub value: String,
}

/// The subject of an entry: its pseudonym, plus the blind indexes of the identifiers
/// known when the entry is written (they feed the lookup table, never the entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub pseudonym: String,
    pub identifiers: Vec<BlindIndex>,
}

impl Subject {
    /// The subject known by this hub id, with no identifier yet.
    pub fn new(key: &PseudonymKey, hub_id: &str) -> Self {
        Self {
            pseudonym: key.pseudonym(hub_id),
            identifiers: Vec::new(),
        }
    }

    /// The subject with the blind indexes of every identifier the record carries that
    /// a DPO can search by (NIR, CAF number, names with birth date).
    pub fn of_jeune(key: &PseudonymKey, hub_id: &str, jeune: &Jeune) -> Self {
        let mut s = Self::new(key, hub_id);
        let ids = &jeune.identifiants;
        if let Some(nir) = &ids.nir {
            s.identifiers
                .extend(Lookup::Nir(nir.clone()).blind_indexes(key));
        }
        if let Some(caf) = &ids.caf {
            s.identifiers
                .extend(Lookup::Caf(caf.numero_allocataire.clone()).blind_indexes(key));
        }
        let ec = &jeune.etat_civil;
        if let Some(date) = ec.date_naissance {
            for nom in [&ec.nom_naissance, &ec.nom_usage].into_iter().flatten() {
                for prenom in &ec.prenoms {
                    let value = identite(nom, prenom, date);
                    if let Some(v) = value {
                        s.identifiers.push(BlindIndex {
                            kind: KIND_IDENTITE,
                            value: key.blind_index(KIND_IDENTITE, &v),
                        });
                    }
                }
            }
        }
        s.identifiers.sort();
        s.identifiers.dedup();
        s
    }

    /// Adds the blind index of one more identifier.
    pub fn with(mut self, key: &PseudonymKey, lookup: &Lookup) -> Self {
        for b in lookup.blind_indexes(key) {
            if !self.identifiers.contains(&b) {
                self.identifiers.push(b);
            }
        }
        self
    }
}

/// An identifier a DPO searches by (`passerelle audit subject`). `Debug` is redacted.
#[derive(Clone)]
pub enum Lookup {
    Nir(Nir),
    Caf(NumeroAllocataire),
    Identite {
        nom: String,
        prenom: String,
        date_naissance: Date,
    },
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lookup::Nir(_) => "Lookup::Nir(<redacted>)",
            Lookup::Caf(_) => "Lookup::Caf(<redacted>)",
            Lookup::Identite { .. } => "Lookup::Identite(<redacted>)",
        })
    }
}

impl Lookup {
    /// The blind index kind this identifier is looked up under.
    pub fn kind(&self) -> &'static str {
        match self {
            Lookup::Nir(_) => KIND_NIR,
            Lookup::Caf(_) => KIND_CAF,
            Lookup::Identite { .. } => KIND_IDENTITE,
        }
    }

    /// The normalised values that are hashed (see the module documentation); empty
    /// when a name folds to nothing.
    pub fn normalised(&self) -> Vec<String> {
        match self {
            Lookup::Nir(n) => vec![n.as_str().to_owned()],
            Lookup::Caf(c) => vec![c.as_str().to_owned()],
            Lookup::Identite {
                nom,
                prenom,
                date_naissance,
            } => {
                let mut out: Vec<String> = std::iter::once(prenom.as_str())
                    .chain(prenom.split_whitespace())
                    .filter_map(|p| identite(nom, p, *date_naissance))
                    .collect();
                out.sort();
                out.dedup();
                out
            }
        }
    }

    /// The blind indexes to look up.
    pub fn blind_indexes(&self, key: &PseudonymKey) -> Vec<BlindIndex> {
        self.normalised()
            .iter()
            .map(|v| BlindIndex {
                kind: self.kind(),
                value: key.blind_index(self.kind(), v),
            })
            .collect()
    }
}

/// `NOM|PRENOM|YYYY-MM-DD`, or `None` when a name folds to nothing.
fn identite(nom: &str, prenom: &str, date: Date) -> Option<String> {
    let n = nom_key(nom);
    let p = prenom_key(prenom);
    (!n.is_empty() && !p.is_empty()).then(|| format!("{n}|{p}|{date}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(nom: &str, prenom: &str, date: &str) -> Lookup {
        Lookup::Identite {
            nom: nom.into(),
            prenom: prenom.into(),
            date_naissance: Date::parse(date).expect("date"),
        }
    }

    #[test]
    fn identite_lookup_agrees_across_spellings() {
        let key = PseudonymKey::from_bytes([7; 32]);
        let a = lookup("Le Goff", "Amélie Marie", "03/04/2005");
        let b = lookup("GOFF", "AMELIE", "2005-04-03");
        assert_eq!(
            a.normalised(),
            vec![
                "GOFF|AMELIEMARIE|2005-04-03",
                "GOFF|AMELIE|2005-04-03",
                "GOFF|MARIE|2005-04-03"
            ]
        );
        assert!(
            b.blind_indexes(&key)
                .iter()
                .all(|x| a.blind_indexes(&key).contains(x))
        );
        // Another key gives other indexes: nothing to compare across installations.
        assert_ne!(
            a.blind_indexes(&key),
            a.blind_indexes(&PseudonymKey::from_bytes([8; 32]))
        );
        assert!(lookup("-", "Jean", "2005-04-03").normalised().is_empty());
    }

    #[test]
    fn a_record_is_indexed_under_every_name_and_given_name() {
        let key = PseudonymKey::from_bytes([7; 32]);
        let j: Jeune = serde_json::from_value(serde_json::json!({
            "schema": "passerelle.jeune/1",
            "identifiants": {"nir": "2040359350123"},
            "etat_civil": {"nom_naissance": "N'Diaye", "nom_usage": "de la Fontaine",
                           "prenoms": ["Awa", "Marie"], "date_naissance": "2004-03-12"}
        }))
        .expect("record");
        let s = Subject::of_jeune(&key, "hub-9", &j);
        assert_eq!(s.pseudonym, key.pseudonym("hub-9"));
        assert_eq!(s.identifiers.len(), 1 + 2 * 2);
        for (nom, prenom) in [
            ("NDIAYE", "Marie"),
            ("Fontaine", "awa"),
            ("DE LA FONTAINE", "Awa"),
        ] {
            let l = lookup(nom, prenom, "12/03/2004");
            assert!(
                l.blind_indexes(&key)
                    .iter()
                    .any(|b| s.identifiers.contains(b)),
                "{nom} {prenom}"
            );
        }
        let nir = Lookup::Nir(Nir::parse("2040359350123").expect("nir"));
        assert!(s.identifiers.contains(&nir.blind_indexes(&key)[0]));
    }

    #[test]
    fn lookup_debug_is_redacted() {
        let s = format!("{:?}", lookup("Dupont", "Jean", "2005-04-03"));
        assert!(!s.contains("Dupont") && !s.contains("2005"), "{s}");
    }
}
