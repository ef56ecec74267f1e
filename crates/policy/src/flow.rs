//! The flows file as data: what a flow declares (parties, purpose, legal basis, allowed
//! fields, retention, consent, special-category justifications).

use std::collections::BTreeSet;
use std::fmt;

use passerelle_model::classes::canonical_path;
use passerelle_model::{FieldClass, class_of};
use serde::{Deserialize, Serialize};

/// The whole flows file (`schemas/policy/flows.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version of the file; only 1 exists.
    pub version: u32,
    /// What the Art. 30 register says that is common to every flow.
    pub register: RegisterInfo,
    /// The flows, in file order.
    #[serde(rename = "flow", default)]
    pub flows: Vec<Flow>,
}

/// Register items shared by every flow (Art. 30(1)(a), (e), (g)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterInfo {
    pub title: String,
    /// Who is controller (and processor) and how to reach them.
    pub controller: String,
    /// How to reach the data protection officers.
    pub dpo_contact: String,
    /// Transfers outside the EU, or the statement that there are none.
    pub third_country_transfers: String,
    /// Technical and organisational security measures (Art. 32), one item each.
    pub security_measures: Vec<String>,
}

/// One declared flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Stable identifier (`brsa-orientation`), lower-case letters, digits and dashes.
    pub id: String,
    /// Short human title.
    pub name: String,
    /// The finalité, one sentence a DPO would sign.
    pub purpose: String,
    pub legal_basis: LegalBasis,
    /// Categories of data subjects (Art. 30(1)(c)).
    pub data_subjects: String,
    pub from: Endpoint,
    pub to: Endpoint,
    /// Which of the hub's sources read this flow's records from the sender's system
    /// (`"solis"`: SOLIS exports, `"cnaf"`, `"box"`, `"imilo"`, `"faj"`: a platform's
    /// decisions), one of [`SOURCE_KINDS`] each, and each of a system `from` names.
    /// Empty for a flow no source feeds (sent from the hub's own pages, or none yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    pub direction: Direction,
    pub fields: Fields,
    pub retention_days: Retention,
    /// Whether the transfer needs the person's consent.
    pub consent: bool,
    /// Justification for each special class the flow allows (required for each one).
    #[serde(default, skip_serializing_if = "Special::is_empty")]
    pub special: Special,
}

/// The kinds of source a flow's `sources` may name, each reading one system.
pub const SOURCE_KINDS: &[(&str, System)] = &[
    ("solis", System::Solis),
    ("cnaf", System::Cnaf),
    ("box", System::Box),
    ("imilo", System::Imilo),
    ("faj", System::Faj),
];

/// GDPR Art. 6 point and the French text that gives the mission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegalBasis {
    /// `6(1)(a)` … `6(1)(f)`.
    pub gdpr: String,
    /// The French reference (CASF, Code de l'éducation…).
    pub reference: String,
}

/// Organisation kinds a flow can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgKind {
    /// Mission Locale.
    Ml,
    /// Conseil départemental.
    Cd,
    /// FAJ platform operator.
    Faj,
    /// The hub itself (its API/UI, its bilans).
    Hub,
}

impl OrgKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ml => "ml",
            Self::Cd => "cd",
            Self::Faj => "faj",
            Self::Hub => "hub",
        }
    }

    /// A readable label for the register.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ml => "Mission Locale",
            Self::Cd => "Conseil départemental",
            Self::Faj => "FAJ platform",
            Self::Hub => "Passerelle hub",
        }
    }
}

impl fmt::Display for OrgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Information systems a flow can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Imilo,
    Solis,
    Cnaf,
    Faj,
    Box,
    /// Passerelle's own API/UI.
    Hub,
}

impl System {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Imilo => "imilo",
            Self::Solis => "solis",
            Self::Cnaf => "cnaf",
            Self::Faj => "faj",
            Self::Box => "box",
            Self::Hub => "hub",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One end of a flow: which organisations, through which systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub kinds: Vec<OrgKind>,
    pub systems: Vec<System>,
    /// Glob on the organisation code (`*` any run, `?` one character); default `*`.
    #[serde(default = "any_org")]
    pub org: String,
    /// The organisation must be in the same département as the other end (a CD and
    /// the MLs of its territory).
    #[serde(default)]
    pub same_departement: bool,
}

fn any_org() -> String {
    "*".to_owned()
}

/// Which way records move between `from` and `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// From `from` to `to` only.
    OneWay,
    /// Either way (a file box both sides drop lists into).
    BothWays,
}

impl Direction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OneWay => "one-way",
            Self::BothWays => "both-ways",
        }
    }
}

/// The allowed part of the canonical record: whole classes and single paths.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
}

/// Retention in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// The recipient's copy.
    pub recipient: u32,
    /// The audit entries of this flow.
    pub audit: u32,
}

/// Why a flow may carry each special class (absent = not allowed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Special {
    /// NIR: the decree article allowing it ("cadre NIR").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nir: Option<String>,
    /// Art. 9 data: the Art. 9(2) point and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub art9: Option<String>,
    /// Art. 10 data: the authority or law allowing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub art10: Option<String>,
}

impl Special {
    pub fn is_empty(&self) -> bool {
        self.nir.is_none() && self.art9.is_none() && self.art10.is_none()
    }

    /// The justification for a special class, if given.
    pub fn for_class(&self, class: FieldClass) -> Option<&str> {
        match class {
            FieldClass::Nir => self.nir.as_deref(),
            FieldClass::Art9 => self.art9.as_deref(),
            FieldClass::Art10 => self.art10.as_deref(),
            _ => None,
        }
    }
}

impl Flow {
    /// The classes listed in `fields.classes` (after validation every name parses).
    pub fn allowed_classes(&self) -> BTreeSet<FieldClass> {
        self.fields
            .classes
            .iter()
            .filter_map(|c| FieldClass::parse(c))
            .collect()
    }

    /// The canonical paths listed in `fields.paths` (with their `[]` marks).
    pub fn allowed_paths(&self) -> BTreeSet<&'static str> {
        self.fields
            .paths
            .iter()
            .filter_map(|p| canonical_path(p))
            .collect()
    }

    /// Whether a canonical path may leave under this flow (`schema` always may).
    pub fn allows(&self, path: &str) -> bool {
        let Some(canonical) = canonical_path(path) else {
            return false;
        };
        if canonical == "schema" {
            return true;
        }
        let Some(class) = class_of(canonical) else {
            return false;
        };
        self.allows_path_of_class(canonical, class)
    }

    pub(crate) fn allows_path_of_class(&self, canonical: &str, class: FieldClass) -> bool {
        canonical == "schema"
            || self
                .fields
                .classes
                .iter()
                .any(|c| FieldClass::parse(c) == Some(class))
            || self
                .fields
                .paths
                .iter()
                .any(|p| canonical_path(p) == Some(canonical))
    }

    /// Every canonical path this flow lets through, in record order.
    pub fn effective_paths(&self) -> Vec<&'static str> {
        passerelle_model::FIELDS
            .iter()
            .filter(|(p, c)| self.allows_path_of_class(p, *c))
            .map(|(p, _)| *p)
            .collect()
    }

    /// The special classes (nir, art9, art10) this flow lets through.
    pub fn special_classes(&self) -> BTreeSet<FieldClass> {
        passerelle_model::FIELDS
            .iter()
            .filter(|(p, c)| c.is_special() && self.allows_path_of_class(p, *c))
            .map(|(_, c)| *c)
            .collect()
    }
}
