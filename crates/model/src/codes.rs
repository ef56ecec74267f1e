//! The canonical enum values of `passerelle.jeune/1`, and the source spellings each
//! accepts (`MR`, `M.`, `1` for `M`; `SOCIO_PRO` or `AS` for `socio_professionnelle`…).

use std::fmt;

use crate::error::InvalidValue;

/// Defines a closed set of canonical codes, serialised as the code string.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident, $expected:literal { $($(#[$vmeta:meta])* $variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical code.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $code),+
                }
            }

            /// Parses the exact canonical code.
            pub fn from_code(s: &str) -> Result<Self, InvalidValue> {
                match s {
                    $($code => Ok($name::$variant),)+
                    _ => Err(InvalidValue::new(
                        $expected,
                        concat!("unknown code, expected one of: ", $($code, " "),+).trim_end().to_owned(),
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_code(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Upper-cases and strips accents, dots, spaces, dashes and underscores, so that
/// `Socio-professionnelle`, `SOCIO_PRO` and `socio pro` compare alike.
fn fold(s: &str) -> String {
    s.trim()
        .chars()
        .filter_map(|c| match c {
            'à' | 'â' | 'ä' | 'À' | 'Â' | 'Ä' => Some('A'),
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => Some('E'),
            'î' | 'ï' | 'Î' | 'Ï' => Some('I'),
            'ô' | 'ö' | 'Ô' | 'Ö' => Some('O'),
            'ù' | 'û' | 'ü' | 'Ù' | 'Û' | 'Ü' => Some('U'),
            'ç' | 'Ç' => Some('C'),
            '.' | ' ' | '-' | '_' | '\'' | '’' => None,
            c => Some(c.to_ascii_uppercase()),
        })
        .collect()
}

fn unknown(expected: &'static str) -> InvalidValue {
    InvalidValue::new(expected, "unknown code")
}

code_enum!(
    /// `etat_civil.civilite`.
    Civilite, "civilite" { M => "M", Mme => "MME" }
);

impl Civilite {
    /// `M`, `MR`, `M.`, `1`, `Monsieur` → `M`; `MME`, `Mme`, `2`, `Madame`, `MLLE` → `MME`.
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        match fold(s).as_str() {
            "M" | "MR" | "1" | "MONSIEUR" => Ok(Self::M),
            "MME" | "2" | "MADAME" | "MLLE" | "MADEMOISELLE" => Ok(Self::Mme),
            _ => Err(unknown("civilite")),
        }
    }
}

code_enum!(
    /// `sources[].system`.
    SourceSystem, "system" {
        Imilo => "imilo", Solis => "solis", Faj => "faj", Box => "box", Cnaf => "cnaf"
    }
);

code_enum!(
    /// `identifiants.caf.organisme`.
    CafOrganisme, "organisme" { Caf => "CAF", Msa => "MSA" }
);

impl CafOrganisme {
    /// `CAF`/`MSA` in any case.
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        match fold(s).as_str() {
            "CAF" => Ok(Self::Caf),
            "MSA" => Ok(Self::Msa),
            _ => Err(unknown("organisme")),
        }
    }
}

code_enum!(
    /// `rsa.role`.
    RsaRole, "rsa_role" { Dem => "DEM", Cjt => "CJT", Enf => "ENF", Aut => "AUT" }
);

impl RsaRole {
    /// `DEM`/`Demandeur`, `CJT`/`Conjoint`/`CONJOINT/CONCUBIN/PACSE`, `ENF`/`Enfant`,
    /// `AUT`/`Autre`.
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        let f = fold(s);
        match f.as_str() {
            "DEM" | "DEMANDEUR" => Ok(Self::Dem),
            "CJT" | "CONJOINT" => Ok(Self::Cjt),
            "ENF" | "ENFANT" => Ok(Self::Enf),
            "AUT" | "AUTRE" => Ok(Self::Aut),
            _ if f.starts_with("CONJOINT/") => Ok(Self::Cjt),
            _ => Err(unknown("rsa_role")),
        }
    }
}

code_enum!(
    /// `rsa.etat_droit`: CNAF ETATDOSRSA, 0 awaiting decision … 6 closed previous month.
    EtatDroit, "etat_droit" {
        EnAttente => "0", Refuse => "1", OuvertVerse => "2", OuvertSuspendu => "3",
        VersementSuspendu => "4", Clos => "5", ClosMoisPrecedent => "6"
    }
);

impl EtatDroit {
    /// The digit, trimmed.
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        Self::from_code(s.trim())
            .map_err(|_| InvalidValue::new("etat_droit", "must be a digit from 0 to 6"))
    }
}

code_enum!(
    /// `orientation.type`.
    OrientationType, "orientation_type" {
        Sociale => "sociale",
        SocioProfessionnelle => "socio_professionnelle",
        Professionnelle => "professionnelle",
    }
);

impl OrientationType {
    /// CNAF `PS`/`AS`/`PP`, SOLIS `SOCIAL`/`SOCIO_PRO`/`PRO`, and the spelled-out forms.
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        match fold(s).as_str() {
            "SOCIAL" | "SOCIALE" | "PS" => Ok(Self::Sociale),
            "SOCIOPRO" | "SOCIOPROFESSIONNELLE" | "SOCIOPROFESSIONNEL" | "AS" => {
                Ok(Self::SocioProfessionnelle)
            }
            "PRO" | "PROFESSIONNELLE" | "PROFESSIONNEL" | "PP" => Ok(Self::Professionnelle),
            _ => Err(unknown("orientation_type")),
        }
    }
}

code_enum!(
    /// `orientation.organisme.type`.
    OrganismeType, "organisme_type" { Ml => "ML", Cd => "CD", Ft => "FT", Autre => "AUTRE" }
);

impl OrganismeType {
    /// `ML`, `CD`, `FT` (also `PE`, the former Pôle emploi), anything else → error.
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        match fold(s).as_str() {
            "ML" => Ok(Self::Ml),
            "CD" | "CG" => Ok(Self::Cd),
            "FT" | "PE" => Ok(Self::Ft),
            "AUTRE" => Ok(Self::Autre),
            _ => Err(unknown("organisme_type")),
        }
    }
}

code_enum!(
    /// `accompagnement.dispositif`.
    Dispositif, "dispositif" {
        Cej => "CEJ", Pacea => "PACEA", Cer => "CER", Ppae => "PPAE", Autre => "AUTRE"
    }
);

code_enum!(
    /// `situations[].categorie`.
    SituationCategorie, "categorie" {
        Emploi => "emploi", Alternance => "alternance", Formation => "formation",
        Immersion => "immersion", Pmsmp => "pmsmp", Volontariat => "volontariat",
        Scolarite => "scolarite", DemandeurEmploi => "demandeur_emploi", Autre => "autre",
    }
);

impl SituationCategorie {
    /// I-MILO `categorieSituation` labels and upper-case codes (`FORMATION`).
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        match fold(s).as_str() {
            "EMPLOI" => Ok(Self::Emploi),
            "CONTRATENALTERNANCE" | "ALTERNANCE" => Ok(Self::Alternance),
            "FORMATION" => Ok(Self::Formation),
            "IMMERSIONENENTREPRISE" | "IMMERSION" => Ok(Self::Immersion),
            "PMSMP" => Ok(Self::Pmsmp),
            "CONTRATDEVOLONTARIATBENEVOLAT" | "VOLONTARIAT" => Ok(Self::Volontariat),
            "SCOLARITE" => Ok(Self::Scolarite),
            "DEMANDEURDEMPLOI" | "DEMANDEUREMPLOI" => Ok(Self::DemandeurEmploi),
            "AUTRE" => Ok(Self::Autre),
            _ => Err(unknown("categorie")),
        }
    }
}

code_enum!(
    /// `situations[].etat`.
    SituationEtat, "etat" { Prevu => "prevu", EnCours => "en_cours", Termine => "termine" }
);

impl SituationEtat {
    /// `PREVU`, `EN_COURS`, `TERMINE` in any case.
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        match fold(s).as_str() {
            "PREVU" => Ok(Self::Prevu),
            "ENCOURS" => Ok(Self::EnCours),
            "TERMINE" => Ok(Self::Termine),
            _ => Err(unknown("etat")),
        }
    }
}

code_enum!(
    /// `niveau_formation.niveau` (2019 national framework).
    Niveau, "niveau" {
        Infra3 => "infra3", N3 => "3", N4 => "4", N5 => "5", N6 => "6", N7 => "7", N8 => "8"
    }
);

code_enum!(
    /// `faj[].aides[].type`.
    FajAideType, "aide_type" {
        Subsistance => "subsistance", Urgence => "urgence", Projet => "projet",
        Permis => "permis", Mobilite => "mobilite", Logement => "logement",
        Formation => "formation",
    }
);

impl FajAideType {
    /// The platform's upper-case codes (`MOBILITE`).
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        Self::from_code(&fold(s).to_lowercase()).map_err(|_| unknown("aide_type"))
    }
}

code_enum!(
    /// `faj[].statut`.
    FajStatut, "faj_statut" {
        Deposee => "deposee", Incomplete => "incomplete", EnCommission => "en_commission",
        Accordee => "accordee", Refusee => "refusee", Ajournee => "ajournee", Payee => "payee",
    }
);

impl FajStatut {
    /// The platform's upper-case codes (`EN_COMMISSION`).
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        Self::from_code(&s.trim().to_lowercase()).map_err(|_| unknown("faj_statut"))
    }
}

code_enum!(
    /// `ase.statut`.
    AseStatut, "ase_statut" {
        Confie => "confie", ContratJeuneMajeur => "contrat_jeune_majeur", Sorti => "sorti"
    }
);

impl AseStatut {
    /// SOLIS upper-case codes (`CONFIE`, `CONTRAT_JEUNE_MAJEUR`).
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        Self::from_code(&s.trim().to_lowercase()).map_err(|_| unknown("ase_statut"))
    }
}

code_enum!(
    /// `obligation_formation.statut`.
    ObligationFormationStatut, "obligation_formation_statut" {
        EnRegle => "en_regle", Signale => "signale", Injoignable => "injoignable",
        Refus => "refus", SolutionTrouvee => "solution_trouvee",
    }
);

impl ObligationFormationStatut {
    /// Upper-case codes (`INJOIGNABLE`, `SOLUTION_TROUVEE`) in any case.
    pub fn from_source(s: &str) -> Result<Self, InvalidValue> {
        Self::from_code(&s.trim().to_lowercase())
            .map_err(|_| unknown("obligation_formation_statut"))
    }
}

/// Reads the booleans French files use: `O`/`N`, `Oui`/`Non`, `1`/`0`, `true`/`false`.
pub fn parse_bool(s: &str) -> Result<bool, InvalidValue> {
    match fold(s).as_str() {
        "O" | "OUI" | "1" | "TRUE" | "VRAI" | "Y" | "YES" => Ok(true),
        "N" | "NON" | "0" | "FALSE" | "FAUX" | "NO" => Ok(false),
        _ => Err(InvalidValue::new("boolean", "must be O/N, Oui/Non or 1/0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civilite_variants() {
        for s in ["M", "MR", "M.", "1", "Monsieur", "mr"] {
            assert_eq!(Civilite::from_source(s).unwrap(), Civilite::M, "{s}");
        }
        for s in ["MME", "Mme", "2", "Madame", "MLLE"] {
            assert_eq!(Civilite::from_source(s).unwrap(), Civilite::Mme, "{s}");
        }
        assert!(Civilite::from_source("3").is_err());
        assert!(Civilite::from_source("").is_err());
    }

    #[test]
    fn orientation_variants() {
        use OrientationType::*;
        for (s, t) in [
            ("PS", Sociale),
            ("SOCIAL", Sociale),
            ("social", Sociale),
            ("Sociale", Sociale),
            ("AS", SocioProfessionnelle),
            ("SOCIO_PRO", SocioProfessionnelle),
            ("socio_pro", SocioProfessionnelle),
            ("Socio-professionnelle", SocioProfessionnelle),
            ("PP", Professionnelle),
            ("PRO", Professionnelle),
            ("pro", Professionnelle),
            ("Professionnelle", Professionnelle),
        ] {
            assert_eq!(OrientationType::from_source(s).unwrap(), t, "{s}");
        }
        assert!(OrientationType::from_source("XX").is_err());
    }

    #[test]
    fn role_variants() {
        assert_eq!(RsaRole::from_source("Demandeur").unwrap(), RsaRole::Dem);
        assert_eq!(
            RsaRole::from_source("CONJOINT/CONCUBIN/PACSE").unwrap(),
            RsaRole::Cjt
        );
        assert_eq!(RsaRole::from_source("conjoint").unwrap(), RsaRole::Cjt);
        assert_eq!(RsaRole::from_source("ENF").unwrap(), RsaRole::Enf);
        assert!(RsaRole::from_source("RDO").is_err());
    }

    #[test]
    fn etat_droit_digits() {
        for (i, e) in EtatDroit::ALL.iter().enumerate() {
            assert_eq!(EtatDroit::from_source(&i.to_string()).unwrap(), *e);
        }
        assert!(EtatDroit::from_source("7").is_err());
    }

    #[test]
    fn situation_categories_from_imilo_labels() {
        use SituationCategorie::*;
        for (s, c) in [
            ("Emploi", Emploi),
            ("Contrat en Alternance", Alternance),
            ("Formation", Formation),
            ("Immersion en entreprise", Immersion),
            ("Pmsmp", Pmsmp),
            ("Contrat de volontariat - bénévolat", Volontariat),
            ("Scolarité", Scolarite),
            ("Demandeur d'emploi", DemandeurEmploi),
        ] {
            assert_eq!(SituationCategorie::from_source(s).unwrap(), c, "{s}");
        }
        assert_eq!(
            SituationEtat::from_source("EN_COURS").unwrap(),
            SituationEtat::EnCours
        );
    }

    #[test]
    fn booleans() {
        for s in ["O", "Oui", "1", "oui", "true"] {
            assert!(parse_bool(s).unwrap(), "{s}");
        }
        for s in ["N", "Non", "0", "non", "false"] {
            assert!(!parse_bool(s).unwrap(), "{s}");
        }
        assert!(parse_bool("peut-être").is_err());
    }

    #[test]
    fn codes_round_trip_through_serde() {
        for c in FajStatut::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(serde_json::from_str::<FajStatut>(&json).unwrap(), *c);
        }
        assert!(serde_json::from_str::<FajStatut>("\"ACCORDEE\"").is_err());
        assert_eq!(
            FajStatut::from_source("EN_COMMISSION").unwrap(),
            FajStatut::EnCommission
        );
        assert_eq!(
            FajAideType::from_source("MOBILITE").unwrap(),
            FajAideType::Mobilite
        );
    }
}
