//! Field classes as data: every canonical path and its class, the paths a record
//! holds, and projection of a record onto allowed paths (what policy enforces).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Severity;
use crate::record::Jeune;

/// The class of a field, which policy allows or denies as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldClass {
    Identifiant,
    Nir,
    Identite,
    Contact,
    Social,
    Parcours,
    Financier,
    Mineur,
    Art9,
    Art10,
    Meta,
}

impl FieldClass {
    /// Every class.
    pub const ALL: &'static [FieldClass] = &[
        Self::Identifiant,
        Self::Nir,
        Self::Identite,
        Self::Contact,
        Self::Social,
        Self::Parcours,
        Self::Financier,
        Self::Mineur,
        Self::Art9,
        Self::Art10,
        Self::Meta,
    ];

    /// The class name as written in policy files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Identifiant => "identifiant",
            Self::Nir => "nir",
            Self::Identite => "identite",
            Self::Contact => "contact",
            Self::Social => "social",
            Self::Parcours => "parcours",
            Self::Financier => "financier",
            Self::Mineur => "mineur",
            Self::Art9 => "art9",
            Self::Art10 => "art10",
            Self::Meta => "meta",
        }
    }

    /// Parses a class name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// Whether data of this class needs a flow that names it explicitly (GDPR Art. 9,
    /// Art. 10, and the NIR decree).
    pub fn is_special(&self) -> bool {
        matches!(self, Self::Nir | Self::Art9 | Self::Art10)
    }
}

impl fmt::Display for FieldClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every field path of `passerelle.jeune/1` and its class, in record order.
///
/// A path is the unit policy speaks of: `[]` marks a list, and a path names a whole
/// sub-object where canonical.md does (`contact.adresse`, `accompagnement`). No path
/// is a prefix of another, so a record's content is partitioned by these paths.
pub const FIELDS: &[(&str, FieldClass)] = &[
    ("schema", FieldClass::Meta),
    ("hub_id", FieldClass::Meta),
    ("sources[]", FieldClass::Meta),
    ("identifiants.nir", FieldClass::Nir),
    ("identifiants.imilo_dossier", FieldClass::Identifiant),
    ("identifiants.caf", FieldClass::Identifiant),
    ("identifiants.numero_demande_rsa", FieldClass::Identifiant),
    ("identifiants.france_travail_ide", FieldClass::Identifiant),
    ("identifiants.france_travail_id", FieldClass::Identifiant),
    ("identifiants.ine", FieldClass::Identifiant),
    ("identifiants.solis", FieldClass::Identifiant),
    ("etat_civil.civilite", FieldClass::Identite),
    ("etat_civil.nom_naissance", FieldClass::Identite),
    ("etat_civil.nom_usage", FieldClass::Identite),
    ("etat_civil.prenoms", FieldClass::Identite),
    ("etat_civil.date_naissance", FieldClass::Identite),
    ("etat_civil.commune_naissance_insee", FieldClass::Identite),
    ("contact.adresse", FieldClass::Contact),
    ("contact.telephones[]", FieldClass::Contact),
    ("contact.email", FieldClass::Contact),
    ("contact.sans_domicile_fixe", FieldClass::Social),
    ("representants_legaux[]", FieldClass::Mineur),
    ("rsa.role", FieldClass::Social),
    ("rsa.etat_droit", FieldClass::Social),
    ("rsa.soumis_droits_devoirs", FieldClass::Social),
    ("rsa.entrant_droits_devoirs", FieldClass::Social),
    ("rsa.date_ouverture", FieldClass::Social),
    ("rsa.motif_suspension", FieldClass::Social),
    ("rsa.motif_cloture", FieldClass::Social),
    ("rsa.date_cloture", FieldClass::Social),
    ("orientation.type", FieldClass::Parcours),
    ("orientation.type_source", FieldClass::Parcours),
    ("orientation.date", FieldClass::Parcours),
    ("orientation.organisme", FieldClass::Parcours),
    ("orientation.referent", FieldClass::Parcours),
    ("accompagnement", FieldClass::Parcours),
    ("situations[]", FieldClass::Parcours),
    ("niveau_formation", FieldClass::Parcours),
    ("faj[]", FieldClass::Financier),
    ("ase", FieldClass::Mineur),
    ("obligation_formation", FieldClass::Parcours),
    ("sensible.rqth", FieldClass::Art9),
    ("sensible.freins_sante", FieldClass::Art9),
    ("sensible.commentaires", FieldClass::Art9),
    ("sensible.situation_penitentiaire", FieldClass::Art10),
];

/// The class of a canonical path, with or without its `[]` marks; `None` for a path
/// that is not in the record.
pub fn class_of(path: &str) -> Option<FieldClass> {
    let bare = strip_marks(path);
    let bare = bare.as_str();
    FIELDS
        .iter()
        .zip(bare_fields())
        .find(|(_, p)| p.as_str() == bare)
        .map(|((_, c), _)| *c)
        // A sub-path of a whole-object path (`contact.adresse.voie`) has its parent's class.
        .or_else(|| {
            FIELDS
                .iter()
                .zip(bare_fields())
                .find(|(_, p)| {
                    bare.len() > p.len()
                        && bare.starts_with(p.as_str())
                        && bare.as_bytes()[p.len()] == b'.'
                })
                .map(|((_, c), _)| *c)
        })
}

/// `FIELDS`' paths without their marks, in the same order, computed once: the engine
/// asks `class_of` for every field of every record it sends.
fn bare_fields() -> &'static [String] {
    static BARE: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| FIELDS.iter().map(|(p, _)| strip_marks(p)).collect());
    &BARE
}

/// Whether a path is one of `FIELDS` (with or without `[]`).
pub fn is_known_path(path: &str) -> bool {
    let bare = strip_marks(path);
    bare_fields().contains(&bare)
}

/// What happens to a record whose field at `path` fails validation: contact values are
/// dropped with a warning, anything else rejects the record.
pub fn severity_of(path: &str) -> Severity {
    match class_of(path) {
        Some(FieldClass::Contact) => Severity::Drop,
        _ if strip_marks(path).starts_with("representants_legaux.") => {
            let leaf = strip_marks(path);
            if leaf.ends_with(".telephone") || leaf.ends_with(".email") {
                Severity::Drop
            } else {
                Severity::Reject
            }
        }
        _ => Severity::Reject,
    }
}

fn strip_marks(path: &str) -> String {
    if path.contains("[]") {
        path.replace("[]", "")
    } else {
        path.to_owned()
    }
}

/// The canonical path (with its `[]` marks) for a path written with or without them.
pub fn canonical_path(path: &str) -> Option<&'static str> {
    let bare = strip_marks(path);
    FIELDS
        .iter()
        .zip(bare_fields())
        .find(|(_, p)| **p == bare)
        .map(|((p, _), _)| *p)
}

/// The result of a projection: the reduced record and the paths that were removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub record: Jeune,
    /// Canonical paths the record held that were not allowed, in `FIELDS` order.
    pub dropped: Vec<&'static str>,
}

impl Jeune {
    /// The canonical paths this record holds a value for, in `FIELDS` order.
    pub fn paths(&self) -> Vec<&'static str> {
        if crate::project::complete() {
            return crate::project::TYPED
                .iter()
                .filter(|(_, present, _)| present(self))
                .map(|(p, ..)| *p)
                .collect();
        }
        self.paths_by_json()
    }

    /// `paths` through the record's JSON form (the reference the typed form follows).
    #[doc(hidden)]
    pub fn paths_by_json(&self) -> Vec<&'static str> {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        FIELDS
            .iter()
            .filter(|(p, _)| lookup(&value, &strip_marks(p)).is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// The classes of the paths this record holds.
    pub fn classes(&self) -> BTreeSet<FieldClass> {
        self.paths().into_iter().filter_map(class_of).collect()
    }

    /// Keeps only the paths for which `allowed` says yes (and `schema`, always);
    /// returns the reduced record and what was dropped.
    pub fn project_with(&self, allowed: impl Fn(&'static str, FieldClass) -> bool) -> Projection {
        if !crate::project::complete() {
            return self.project_by_json(allowed);
        }
        let mut record = self.clone();
        let mut dropped = Vec::new();
        for ((path, present, clear), (_, class)) in crate::project::TYPED.iter().zip(FIELDS) {
            if *path != "schema" && present(&record) && !allowed(path, *class) {
                clear(&mut record);
                dropped.push(*path);
            }
        }
        Projection { record, dropped }
    }

    /// `project_with` through the record's JSON form (the reference the typed form
    /// follows).
    #[doc(hidden)]
    pub fn project_by_json(
        &self,
        allowed: impl Fn(&'static str, FieldClass) -> bool,
    ) -> Projection {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut dropped = Vec::new();
        for (path, class) in FIELDS {
            if *path == "schema" {
                continue;
            }
            let bare = strip_marks(path);
            if lookup(&value, &bare).is_some() && !allowed(path, *class) {
                remove(&mut value, &bare);
                dropped.push(*path);
            }
        }
        // The value came from a valid record and only lost keys, so it reads back.
        let record = serde_json::from_value(value).unwrap_or_default();
        Projection { record, dropped }
    }

    /// Keeps only the listed paths (with or without `[]`) and the fields of the listed classes.
    pub fn project(&self, paths: &[&str], classes: &[FieldClass]) -> Projection {
        let wanted: BTreeSet<String> = paths.iter().map(|p| strip_marks(p)).collect();
        self.project_with(|p, c| classes.contains(&c) || wanted.contains(&strip_marks(p)))
    }
}

fn lookup<'a>(value: &'a Value, dotted: &str) -> Option<&'a Value> {
    let mut cur = value;
    for key in dotted.split('.') {
        cur = cur.as_object()?.get(key)?;
    }
    Some(cur)
}

/// Removes a dotted key and then any parent object left empty.
fn remove(value: &mut Value, dotted: &str) {
    fn go(obj: &mut Map<String, Value>, keys: &[&str]) {
        match keys {
            [] => {}
            [last] => {
                obj.remove(*last);
            }
            [first, rest @ ..] => {
                let now_empty = match obj.get_mut(*first) {
                    Some(Value::Object(inner)) => {
                        go(inner, rest);
                        inner.is_empty()
                    }
                    _ => false,
                };
                if now_empty {
                    obj.remove(*first);
                }
            }
        }
    }
    if let Value::Object(obj) = value {
        let keys: Vec<&str> = dotted.split('.').collect();
        go(obj, &keys);
    }
}
