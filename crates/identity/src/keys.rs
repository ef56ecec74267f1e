//! The keys a record is matched on: blind indexes of each identifier it carries, and
//! of its identity (family name × given name × birth date, in every combination the
//! systems write them).

use passerelle_crypto::PseudonymKey;
use passerelle_model::Jeune;
use passerelle_model::normalise::{nom_key, prenom_key};
use serde::{Deserialize, Serialize};

/// What a key stands for. Identifier kinds are deterministic: one value, one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Nir,
    /// A CAF/MSA number is shared by a household: with the role it names one person.
    CafRole,
    ImiloDossier,
    Solis,
    FranceTravailIde,
    FranceTravailId,
    Ine,
    /// A source system's own record id (`box/CD059/<reference>`, `cnaf/CAF591/<numdem>/<rank>`):
    /// the same record read again, night after night, finds the same person even when
    /// it carries no other identifier.
    SourceRecord,
    /// Normalised family name, given name and birth date.
    Identite,
}

impl KeyKind {
    /// Every kind.
    pub const ALL: [KeyKind; 9] = [
        Self::Nir,
        Self::CafRole,
        Self::ImiloDossier,
        Self::Solis,
        Self::FranceTravailIde,
        Self::FranceTravailId,
        Self::Ine,
        Self::SourceRecord,
        Self::Identite,
    ];

    /// The kind's name where it is stored (its serde name: `caf_role`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Nir => "nir",
            Self::CafRole => "caf_role",
            Self::ImiloDossier => "imilo_dossier",
            Self::Solis => "solis",
            Self::FranceTravailIde => "france_travail_ide",
            Self::FranceTravailId => "france_travail_id",
            Self::Ine => "ine",
            Self::SourceRecord => "source_record",
            Self::Identite => "identite",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind's name in blind indexes (part of the HMAC input).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Nir => "nir",
            Self::CafRole => "caf-role",
            Self::ImiloDossier => "imilo-dossier",
            Self::Solis => "solis",
            Self::FranceTravailIde => "france-travail-ide",
            Self::FranceTravailId => "france-travail-id",
            Self::Ine => "ine",
            Self::SourceRecord => "source-record",
            Self::Identite => "nom-prenom-naissance",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KeyKind;

    #[test]
    fn stored_names_are_the_serde_names() {
        for k in KeyKind::ALL {
            let serde = serde_json::to_value(k).unwrap();
            assert_eq!(serde.as_str(), Some(k.name()));
            assert_eq!(KeyKind::parse(k.name()), Some(k));
        }
    }
}

/// The blind indexes of one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityKeys {
    /// One key per identifier the record carries.
    pub identifiers: Vec<(KeyKind, String)>,
    /// Every (family name, given name, birth date) combination of the record.
    pub identites: Vec<String>,
}

impl IdentityKeys {
    /// Computes the keys of a record with the hub's blind-index key.
    pub fn of(record: &Jeune, key: &PseudonymKey) -> Self {
        let ids = &record.identifiants;
        let mut identifiers = Vec::new();
        let mut push = |kind: KeyKind, value: &str| {
            identifiers.push((kind, key.blind_index(kind.as_str(), value)));
        };
        if let Some(nir) = &ids.nir {
            push(KeyKind::Nir, nir.as_str());
        }
        if let (Some(caf), Some(role)) = (&ids.caf, record.rsa.role) {
            let value = format!(
                "{}/{}/{}",
                caf.organisme,
                caf.numero_allocataire.as_str(),
                role
            );
            push(KeyKind::CafRole, &value);
        }
        if let Some(v) = &ids.imilo_dossier {
            push(KeyKind::ImiloDossier, v.as_str());
        }
        if let Some(v) = &ids.solis {
            // A SOLIS id is unique within one département's SOLIS only.
            let org = record
                .sources
                .iter()
                .find(|s| s.system == passerelle_model::SourceSystem::Solis)
                .map(|s| s.organisation.as_str())
                .unwrap_or("");
            push(KeyKind::Solis, &format!("{org}/{}", v.as_str()));
        }
        if let Some(v) = &ids.france_travail_ide {
            push(KeyKind::FranceTravailIde, v.as_str());
        }
        if let Some(v) = &ids.france_travail_id {
            push(KeyKind::FranceTravailId, v.as_str());
        }
        if let Some(v) = &ids.ine {
            push(KeyKind::Ine, v.as_str());
        }
        for src in &record.sources {
            // A line number names a row of one file, not a person: never a key.
            if src.record_id.as_str().starts_with("ligne-") {
                continue;
            }
            let value = format!(
                "{}/{}/{}",
                src.system.as_str(),
                src.organisation,
                src.record_id.as_str()
            );
            push(KeyKind::SourceRecord, &value);
        }
        Self {
            identifiers,
            identites: identity_values(record)
                .iter()
                .map(|v| key.blind_index(KeyKind::Identite.as_str(), v))
                .collect(),
        }
    }
}

/// The normalised identity strings of a record: birth name and usage name, each given
/// name (their order varies between systems), and the birth date. Empty without a
/// birth date, a family name and a given name: a partial identity never matches.
pub fn identity_values(record: &Jeune) -> Vec<String> {
    let ec = &record.etat_civil;
    let Some(date) = ec.date_naissance else {
        return Vec::new();
    };
    let mut noms: Vec<String> = [&ec.nom_naissance, &ec.nom_usage]
        .into_iter()
        .flatten()
        .map(|n| nom_key(n))
        .filter(|n| !n.is_empty())
        .collect();
    noms.sort();
    noms.dedup();
    let mut prenoms: Vec<String> = ec
        .prenoms
        .iter()
        .map(|p| prenom_key(p))
        .filter(|p| !p.is_empty())
        .collect();
    prenoms.sort();
    prenoms.dedup();
    let mut out = Vec::new();
    for nom in &noms {
        for prenom in &prenoms {
            out.push(format!("{nom}|{prenom}|{date}"));
        }
    }
    out
}

impl IdentityKeys {
    /// The index entries that attach these keys to a hub id, for storage.
    pub fn entries(&self, hub_id: uuid::Uuid) -> Vec<crate::IndexEntry> {
        self.identifiers
            .iter()
            .map(|(kind, key)| (*kind, key))
            .chain(self.identites.iter().map(|k| (KeyKind::Identite, k)))
            .map(|(kind, key)| crate::IndexEntry {
                hub_id,
                kind,
                key: key.clone(),
            })
            .collect()
    }
}
