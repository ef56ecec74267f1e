//! SOLIS connector configuration: the element names of the département's SOLIS
//! version (aliases), which vary between départements and so live in configuration.

use passerelle_connector::ConnectorError;
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
