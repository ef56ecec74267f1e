//! SOLIS connector configuration: the element names of the département's SOLIS
//! version (aliases), which vary between départements and so live in configuration.

use std::path::{Path, PathBuf};

use passerelle_connector::ConnectorError;
use serde::{Deserialize, Serialize};

use crate::export::ExportFlux;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Accepted element names, each a list of aliases (the first is the name written in
/// imports). Defaults are the names of the SOLIS contract (solis.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElementNames {
    pub individu: Vec<String>,
    pub etat_civil: Vec<String>,
    pub civilite: Vec<String>,
    pub nom_naissance: Vec<String>,
    pub nom_usage: Vec<String>,
    pub prenoms: Vec<String>,
    pub date_naissance: Vec<String>,
    pub commune_naissance: Vec<String>,
    pub nir: Vec<String>,
    pub adresse: Vec<String>,
    pub contact: Vec<String>,
    pub telephone: Vec<String>,
    pub courriel: Vec<String>,
    pub dossier_rsa: Vec<String>,
    pub orientation: Vec<String>,
    pub organisme: Vec<String>,
    pub referent: Vec<String>,
    pub prise_en_charge_ase: Vec<String>,
    pub observations: Vec<String>,
    pub sante: Vec<String>,
}

impl Default for ElementNames {
    fn default() -> Self {
        Self {
            individu: names(&["Individu"]),
            etat_civil: names(&["EtatCivil"]),
            civilite: names(&["Civilite"]),
            nom_naissance: names(&["NomNaissance"]),
            nom_usage: names(&["NomUsage"]),
            prenoms: names(&["Prenoms"]),
            date_naissance: names(&["DateNaissance"]),
            commune_naissance: names(&["CommuneNaissance"]),
            nir: names(&["Nir", "NIR"]),
            adresse: names(&["Adresse"]),
            contact: names(&["Contact"]),
            telephone: names(&["Telephone", "Tel"]),
            courriel: names(&["Courriel", "Email", "Mail"]),
            dossier_rsa: names(&["DossierRSA", "DossierRsa"]),
            orientation: names(&["Orientation"]),
            organisme: names(&["Organisme"]),
            referent: names(&["Referent"]),
            prise_en_charge_ase: names(&["PriseEnChargeASE", "PriseEnChargeAse"]),
            observations: names(&["Observations", "Commentaire"]),
            sante: names(&["Sante"]),
        }
    }
}

impl ElementNames {
    fn lists(&self) -> [(&'static str, &Vec<String>); 20] {
        [
            ("individu", &self.individu),
            ("etat_civil", &self.etat_civil),
            ("civilite", &self.civilite),
            ("nom_naissance", &self.nom_naissance),
            ("nom_usage", &self.nom_usage),
            ("prenoms", &self.prenoms),
            ("date_naissance", &self.date_naissance),
            ("commune_naissance", &self.commune_naissance),
            ("nir", &self.nir),
            ("adresse", &self.adresse),
            ("contact", &self.contact),
            ("telephone", &self.telephone),
            ("courriel", &self.courriel),
            ("dossier_rsa", &self.dossier_rsa),
            ("orientation", &self.orientation),
            ("organisme", &self.organisme),
            ("referent", &self.referent),
            ("prise_en_charge_ase", &self.prise_en_charge_ase),
            ("observations", &self.observations),
            ("sante", &self.sante),
        ]
    }
}

/// The SOLIS connector's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SolisConfig {
    /// Element names and their aliases.
    pub elements: ElementNames,
    /// The encoding when the département's SOLIS is known to write another than it
    /// declares, and the readers' limits (`passerelle_connector::ReaderConfig`).
    pub reading: passerelle_connector::ReaderConfig,
}

impl SolisConfig {
    /// Reads a configuration from TOML (the `--mapping` file of `passerelle import`).
    pub fn from_toml(text: &str) -> Result<Self, ConnectorError> {
        let config: Self = toml::from_str(text)
            .map_err(|e| ConnectorError::Config(format!("solis mapping: {}", e.message())))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every list is non-empty and holds XML names (no I/O).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.reading.validate()?;
        for (key, list) in self.elements.lists() {
            if list.is_empty() {
                return Err(ConnectorError::Config(format!(
                    "elements.{key} must name at least one element"
                )));
            }
            for name in list {
                let ok = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if !ok {
                    return Err(ConnectorError::Config(format!(
                        "elements.{key} holds a name that is not an xml element name"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The SOLIS peer as the hub's engine drives it: where exports are read, where imports
/// are written and ACKs read back, and the département's element names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolisPeerConfig {
    /// Folder SOLIS writes its exports into (`SolisExportSource` reads it; finished
    /// files go to `traites/`, refused ones to `refuses/`).
    #[serde(default)]
    pub export_dir: Option<PathBuf>,
    /// Folder the hub writes imports into and SOLIS reads them from (`SolisSink`).
    #[serde(default)]
    pub import_dir: Option<PathBuf>,
    /// Folder SOLIS writes its `SOLIS_ACK_*` files into; `import_dir` when absent.
    #[serde(default)]
    pub ack_dir: Option<PathBuf>,
    /// Export fluxes to read (`BRSA`, `ASE`); every flux when empty.
    #[serde(default)]
    pub export_flux: Vec<String>,
    /// Items per `next_batch` of the export source.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The département's element names and aliases.
    #[serde(default)]
    pub mapping: SolisConfig,
}

fn default_batch_size() -> usize {
    500
}

impl Default for SolisPeerConfig {
    fn default() -> Self {
        Self {
            export_dir: None,
            import_dir: None,
            ack_dir: None,
            export_flux: Vec::new(),
            batch_size: default_batch_size(),
            mapping: SolisConfig::default(),
        }
    }
}

impl SolisPeerConfig {
    /// Reads a configuration from TOML and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConnectorError> {
        let config: Self = toml::from_str(text)
            .map_err(|e| ConnectorError::Config(format!("solis peer: {}", e.message())))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration without touching the disk.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.export_dir.is_none() && self.import_dir.is_none() {
            return Err(ConnectorError::Config(
                "solis peer needs export_dir, import_dir or both".into(),
            ));
        }
        for (key, dir) in [
            ("export_dir", &self.export_dir),
            ("import_dir", &self.import_dir),
            ("ack_dir", &self.ack_dir),
        ] {
            if dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
                return Err(ConnectorError::Config(format!("{key} must not be empty")));
            }
        }
        if self.ack_dir.is_some() && self.import_dir.is_none() {
            return Err(ConnectorError::Config(
                "ack_dir needs import_dir (acks answer imports)".into(),
            ));
        }
        if !(1..=100_000).contains(&self.batch_size) {
            return Err(ConnectorError::Config(
                "batch_size must be between 1 and 100000".into(),
            ));
        }
        self.export_fluxes()?;
        self.mapping.validate()
    }

    /// The export fluxes to read (empty: all).
    pub fn export_fluxes(&self) -> Result<Vec<ExportFlux>, ConnectorError> {
        self.export_flux
            .iter()
            .map(|f| {
                ExportFlux::parse(f).ok_or_else(|| {
                    ConnectorError::Config(format!("export_flux {f} is not BRSA or ASE"))
                })
            })
            .collect()
    }

    /// The folder ACK files arrive in.
    pub fn ack_folder(&self) -> Option<&Path> {
        self.ack_dir.as_deref().or(self.import_dir.as_deref())
    }
}

/// Checks that a configured folder exists (the `build` step).
pub(crate) fn existing_dir(key: &str, dir: Option<&Path>) -> Result<PathBuf, ConnectorError> {
    let dir = dir.ok_or_else(|| ConnectorError::Config(format!("{key} is not set")))?;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(dir.to_owned()),
        Ok(_) => Err(ConnectorError::Config(format!(
            "{key} {} is not a folder",
            dir.display()
        ))),
        Err(e) => Err(ConnectorError::io(format!("{key} {}", dir.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_config_validates_without_io() {
        let c = SolisPeerConfig::from_toml(
            "export_dir = \"/nonexistent/export\"\nimport_dir = \"/nonexistent/import\"\nexport_flux = [\"BRSA\"]\n[mapping.elements]\ncourriel = [\"Mail\"]\n",
        )
        .unwrap();
        assert_eq!(c.batch_size, 500);
        assert_eq!(c.export_fluxes().unwrap(), vec![ExportFlux::Brsa]);
        assert_eq!(c.ack_folder(), Some(Path::new("/nonexistent/import")));
        for bad in [
            "",
            "export_dir = \"/x\"\nbatch_size = 0\n",
            "export_dir = \"/x\"\nexport_flux = [\"RSA\"]\n",
            "export_dir = \"/x\"\nack_dir = \"/y\"\n",
            "export_dir = \"/x\"\nunknown = 1\n",
        ] {
            assert!(SolisPeerConfig::from_toml(bad).is_err(), "{bad}");
        }
        let e = existing_dir("import_dir", Some(Path::new("/nonexistent/import"))).unwrap_err();
        assert!(e.to_string().contains("import_dir"));
    }

    #[test]
    fn defaults_validate_and_aliases_parse() {
        SolisConfig::default().validate().unwrap();
        let c = SolisConfig::from_toml("[elements]\ncourriel = [\"AdresseMail\"]\n").unwrap();
        assert_eq!(c.elements.courriel, vec!["AdresseMail".to_owned()]);
        assert_eq!(c.elements.nir, ElementNames::default().nir);
        assert!(SolisConfig::from_toml("[elements]\nunknown = [\"X\"]\n").is_err());
        assert!(SolisConfig::from_toml("[elements]\nnir = []\n").is_err());
        assert!(SolisConfig::from_toml("[elements]\nnir = [\"1bad\"]\n").is_err());
    }
}
