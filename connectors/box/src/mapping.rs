//! Column mappings as data: a département's `BRSA_LISTE` headers mapped to canonical
//! paths, with value translations, loaded from `schemas/mappings/<name>.toml`. The
//! default mapping (box.md's columns) is compiled in.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The default `BRSA_LISTE` mapping of box.md, compiled into the binary.
pub const DEFAULT_MAPPING_TOML: &str = include_str!("../../../schemas/mappings/brsa_liste.toml");

/// A canonical field a column can feed, with the rule that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    CafNumero,
    CafOrganisme,
    Nir,
    Civilite,
    NomUsage,
    NomNaissance,
    Prenoms,
    DateNaissance,
    AdresseVoie,
    AdresseComplement,
    CodePostal,
    Commune,
    Telephone,
    Email,
    RsaRole,
    EtatDroit,
    SoumisDroitsDevoirs,
    DateOuverture,
    OrientationType,
    OrientationDate,
    OrientationOrganisme,
    ReferentNom,
    ReferentEmail,
}

impl Target {
    /// Every target with the canonical path a mapping names it by.
    pub const ALL: &'static [(Target, &'static str)] = &[
        (Self::CafNumero, "identifiants.caf.numero_allocataire"),
        (Self::CafOrganisme, "identifiants.caf.organisme"),
        (Self::Nir, "identifiants.nir"),
        (Self::Civilite, "etat_civil.civilite"),
        (Self::NomUsage, "etat_civil.nom_usage"),
        (Self::NomNaissance, "etat_civil.nom_naissance"),
        (Self::Prenoms, "etat_civil.prenoms"),
        (Self::DateNaissance, "etat_civil.date_naissance"),
        (Self::AdresseVoie, "contact.adresse.voie"),
        (Self::AdresseComplement, "contact.adresse.complement"),
        (Self::CodePostal, "contact.adresse.code_postal"),
        (Self::Commune, "contact.adresse.commune"),
        (Self::Telephone, "contact.telephones"),
        (Self::Email, "contact.email"),
        (Self::RsaRole, "rsa.role"),
        (Self::EtatDroit, "rsa.etat_droit"),
        (Self::SoumisDroitsDevoirs, "rsa.soumis_droits_devoirs"),
        (Self::DateOuverture, "rsa.date_ouverture"),
        (Self::OrientationType, "orientation.type"),
        (Self::OrientationDate, "orientation.date"),
        (Self::OrientationOrganisme, "orientation.organisme"),
        (Self::ReferentNom, "orientation.referent.nom"),
        (Self::ReferentEmail, "orientation.referent.email"),
    ];

    /// The canonical path.
    pub fn path(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("", |(_, p)| p)
    }

    /// The target named by a canonical path.
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, p)| *p == path).map(|(t, _)| *t)
    }
}

/// A mapping file as written (see `schemas/mappings/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// The XLSX sheet to read (default: the first).
    #[serde(default)]
    sheet: Option<String>,
    /// Columns present in the files that carry nothing for the hub.
    #[serde(default)]
    ignore: Vec<String>,
    /// Header → canonical path.
    columns: BTreeMap<String, String>,
    /// Canonical path → (source spelling → spelling the canonical parser reads).
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, String>>,
}

/// Why a mapping cannot be loaded. Messages name the mapping, the key and the rule.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mapping {origin} is not valid toml or has an unknown key: {reason}")]
    Syntax { origin: String, reason: String },
    #[error("mapping {mapping}: {reason}")]
    Invalid { mapping: String, reason: String },
}

/// A loaded, checked mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    pub description: Option<String>,
    pub sheet: Option<String>,
    /// How the département's files are read (encoding, limits): `[box.reading]` of the
    /// configuration, set by `BoxConfig::build`; the defaults otherwise.
    pub reading: passerelle_connector::ReaderConfig,
    /// Normalised header → target.
    columns: BTreeMap<String, Target>,
    ignore: Vec<String>,
    /// Target → (folded source spelling → replacement).
    values: BTreeMap<Target, BTreeMap<String, String>>,
}

/// How headers are compared: trimmed, NFC, case and inner spaces ignored.
pub fn header_key(header: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    header
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .nfc()
        .collect::<String>()
        .to_lowercase()
}

impl Mapping {
    /// The compiled-in default (`schemas/mappings/brsa_liste.toml`).
    pub fn default_brsa() -> Self {
        // The default is checked by a test; a broken one cannot ship.
        Self::from_toml(DEFAULT_MAPPING_TOML, "brsa_liste.toml")
            .unwrap_or_else(|e| panic!("the compiled-in mapping is broken: {e}"))
    }

    /// Loads a mapping file.
    pub fn load(path: &Path) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and checks a mapping; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, MappingError> {
        let file: MappingFile = toml::from_str(text).map_err(|e| MappingError::Syntax {
            origin: origin.to_owned(),
            reason: e.message().to_owned(),
        })?;
        let invalid = |reason: String| MappingError::Invalid {
            mapping: file.name.clone(),
            reason,
        };
        if file.columns.is_empty() {
            return Err(invalid("maps no column".to_owned()));
        }
        let mut columns = BTreeMap::new();
        let mut seen: BTreeMap<Target, &str> = BTreeMap::new();
        for (header, path) in &file.columns {
            let target = Target::from_path(path).ok_or_else(|| {
                invalid(format!(
                    "column \"{header}\" maps to unknown path {path} (known: {})",
                    Target::ALL
                        .iter()
                        .map(|(_, p)| *p)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if let Some(other) = seen.insert(target, header) {
                return Err(invalid(format!(
                    "columns \"{other}\" and \"{header}\" both map to {path}"
                )));
            }
            if columns.insert(header_key(header), target).is_some() {
                return Err(invalid(format!("column \"{header}\" is listed twice")));
            }
        }
        let ignore: Vec<String> = file.ignore.iter().map(|h| header_key(h)).collect();
        if let Some(h) = file
            .ignore
            .iter()
            .find(|h| columns.contains_key(&header_key(h)))
        {
            return Err(invalid(format!(
                "column \"{h}\" is both mapped and ignored"
            )));
        }
        let mut values = BTreeMap::new();
        for (path, table) in &file.values {
            let target = Target::from_path(path)
                .ok_or_else(|| invalid(format!("values for unknown path {path}")))?;
            if !seen.contains_key(&target) {
                return Err(invalid(format!("values for {path}, which no column maps")));
            }
            let mut folded = BTreeMap::new();
            for (from, to) in table {
                // A translation must land on a spelling the canonical rule accepts.
                if let Err(reason) = crate::brsa::check_value(target, to) {
                    return Err(invalid(format!(
                        "values.\"{path}\": \"{from}\" translates to a value that {reason}"
                    )));
                }
                folded.insert(fold_value(from), to.clone());
            }
            values.insert(target, folded);
        }
        Ok(Self {
            name: file.name,
            description: file.description,
            sheet: file.sheet,
            reading: passerelle_connector::ReaderConfig::default(),
            columns,
            ignore,
            values,
        })
    }

    /// Binds the mapping to a file's header: which column feeds which target.
    ///
    /// A header that the mapping neither maps nor ignores refuses the file: silently
    /// dropping a column would lose data the département meant to send.
    pub fn bind(&self, header: &[String]) -> Result<Binding, MappingError> {
        let mut targets = Vec::with_capacity(header.len());
        for (i, h) in header.iter().enumerate() {
            let key = header_key(h);
            match self.columns.get(&key) {
                Some(t) => targets.push(Some(*t)),
                None if self.ignore.contains(&key) => targets.push(None),
                None => {
                    // By number, not by name: in a file without a header the first
                    // row is data (a CAF number), and errors reach the ACK file.
                    return Err(MappingError::Invalid {
                        mapping: self.name.clone(),
                        reason: format!(
                            "column {} of the header (line 1) is neither mapped nor ignored by the mapping",
                            i + 1
                        ),
                    });
                }
            }
        }
        if !targets
            .iter()
            .any(|t| matches!(t, Some(Target::CafNumero | Target::Nir | Target::NomUsage)))
        {
            return Err(MappingError::Invalid {
                mapping: self.name.clone(),
                reason: "the file has none of the identifying columns (caf number, nir, name)"
                    .to_owned(),
            });
        }
        Ok(Binding {
            targets,
            values: self.values.clone(),
        })
    }
}

/// How value translations are matched: trimmed, upper-cased, inner spaces collapsed.
pub fn fold_value(v: &str) -> String {
    v.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// A mapping bound to one file's header.
#[derive(Debug, Clone)]
pub struct Binding {
    /// One entry per column: the target it feeds, or `None` when ignored.
    pub targets: Vec<Option<Target>>,
    values: BTreeMap<Target, BTreeMap<String, String>>,
}

impl Binding {
    /// The raw cell for a target after translation, `None` when blank or unmapped.
    pub fn value<'a>(&'a self, fields: &'a [String], target: Target) -> Option<&'a str> {
        let i = self.targets.iter().position(|t| *t == Some(target))?;
        let raw = fields.get(i)?.trim();
        if raw.is_empty() {
            return None;
        }
        match self
            .values
            .get(&target)
            .and_then(|t| t.get(&fold_value(raw)))
        {
            Some(to) => Some(to.as_str()),
            None => Some(raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mapping_loads_and_binds_box_md_columns() {
        let m = Mapping::default_brsa();
        let header: Vec<String> = "N° CAF;Rôle;Civilité;Nom;Nom de naissance;Prénom;Date de naissance;NIR;Adresse;Code postal;Ville;Téléphone;Email;Date ouverture droits;Etat droit;Soumis D&D;Orientation;Structure référente;Référent"
            .split(';')
            .map(str::to_owned)
            .collect();
        let b = m.bind(&header).unwrap();
        assert!(b.targets.iter().all(Option::is_some));
        assert_eq!(b.targets[0], Some(Target::CafNumero));
        assert_eq!(b.targets[18], Some(Target::ReferentNom));
    }

    #[test]
    fn headers_match_whatever_the_case_and_spaces() {
        let m = Mapping::default_brsa();
        let header = vec!["  n° caf ".to_owned(), "NOM".to_owned()];
        let b = m.bind(&header).unwrap();
        assert_eq!(
            b.targets,
            vec![Some(Target::CafNumero), Some(Target::NomUsage)]
        );
    }

    #[test]
    fn an_unknown_column_refuses_the_file_by_number() {
        let m = Mapping::default_brsa();
        let err = m
            .bind(&["N° CAF".to_owned(), "Couleur".to_owned()])
            .unwrap_err();
        assert!(err.to_string().contains("column 2 of the header"), "{err}");
        // A file without a header: its first row is data, never quoted (issue 16).
        let err = m
            .bind(&["0027004992".to_owned(), "DUPONT".to_owned()])
            .unwrap_err();
        assert!(!err.to_string().contains("0027004992"), "{err}");
        assert!(!err.to_string().contains("DUPONT"), "{err}");
    }

    #[test]
    fn errors_are_precise() {
        let unknown_key = "name = \"x\"\nfoo = 1\n[columns]\n\"A\" = \"etat_civil.nom_usage\"\n";
        let e = Mapping::from_toml(unknown_key, "x.toml").unwrap_err();
        assert!(e.to_string().contains("unknown field `foo`"), "{e}");
        let bad_path = "name = \"x\"\n[columns]\n\"A\" = \"etat_civil.nom\"\n";
        let e = Mapping::from_toml(bad_path, "x.toml").unwrap_err();
        assert!(e.to_string().contains("unknown path etat_civil.nom"), "{e}");
        let twice = "name = \"x\"\n[columns]\n\"A\" = \"etat_civil.nom_usage\"\n\"B\" = \"etat_civil.nom_usage\"\n";
        let e = Mapping::from_toml(twice, "x.toml").unwrap_err();
        assert!(
            e.to_string().contains("both map to etat_civil.nom_usage"),
            "{e}"
        );
        let bad_value = "name = \"x\"\n[columns]\n\"R\" = \"rsa.role\"\n[values.\"rsa.role\"]\n\"Chef\" = \"BOSS\"\n";
        let e = Mapping::from_toml(bad_value, "x.toml").unwrap_err();
        assert!(e.to_string().contains("\"Chef\" translates"), "{e}");
        let unmapped = "name = \"x\"\n[columns]\n\"R\" = \"rsa.role\"\n[values.\"orientation.type\"]\n\"a\" = \"PRO\"\n";
        let e = Mapping::from_toml(unmapped, "x.toml").unwrap_err();
        assert!(e.to_string().contains("which no column maps"), "{e}");
    }

    #[test]
    fn shipped_variants_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/mappings");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Mapping::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 3, "the default and two variants");
    }
}
