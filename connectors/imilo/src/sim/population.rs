//! The synthetic population: every dossier is computed from `(seed, id, version)` on
//! demand, so 100,000 or a million dossiers cost nothing until served and the same
//! seed always gives the same people.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use crate::wire::{
    AccompagnementCej, Dossier, DossierAdresse, DossierObligationFormation, DossierSituation,
    OrientationRequest, StructureRattachement,
};

/// SplitMix64: tiny, fast, and stable across versions (unlike a library RNG whose
/// algorithm may change), which keeps populations reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// One Mission Locale of the population.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structure {
    pub code: String,
    pub nom_officiel: String,
    pub nom_usuel: String,
    pub commune: &'static str,
    pub code_postal: &'static str,
}

/// (commune INSEE code, commune, postal code): the structure code is the INSEE code
/// followed by `S00`.
const COMMUNES: [(&str, &str, &str); 40] = [
    ("59350", "Lille", "59000"),
    ("59606", "Valenciennes", "59300"),
    ("59183", "Dunkerque", "59140"),
    ("59512", "Roubaix", "59100"),
    ("62041", "Arras", "62000"),
    ("62193", "Calais", "62100"),
    ("02691", "Saint-Quentin", "02100"),
    ("80021", "Amiens", "80000"),
    ("60057", "Beauvais", "60000"),
    ("69123", "Lyon", "69001"),
    ("13055", "Marseille", "13001"),
    ("31555", "Toulouse", "31000"),
    ("33063", "Bordeaux", "33000"),
    ("44109", "Nantes", "44000"),
    ("35238", "Rennes", "35000"),
    ("67482", "Strasbourg", "67000"),
    ("34172", "Montpellier", "34000"),
    ("06088", "Nice", "06000"),
    ("2A004", "Ajaccio", "20000"),
    ("2B033", "Bastia", "20200"),
    ("97411", "Saint-Denis", "97400"),
    ("29019", "Brest", "29200"),
    ("63113", "Clermont-Ferrand", "63000"),
    ("21231", "Dijon", "21000"),
    ("37261", "Tours", "37000"),
    ("76540", "Rouen", "76000"),
    ("14118", "Caen", "14000"),
    ("51454", "Reims", "51100"),
    ("54395", "Nancy", "54000"),
    ("38185", "Grenoble", "38000"),
    ("42218", "Saint-Étienne", "42000"),
    ("49007", "Angers", "49000"),
    ("87085", "Limoges", "87000"),
    ("86194", "Poitiers", "86000"),
    ("25056", "Besançon", "25000"),
    ("64445", "Pau", "64000"),
    ("66136", "Perpignan", "66000"),
    ("30189", "Nîmes", "30000"),
    ("08105", "Charleville-Mézières", "08000"),
    ("57463", "Metz", "57000"),
];

const PRENOMS: [&str; 48] = [
    "Léa",
    "Chloé",
    "Inès",
    "Zoé",
    "Maël",
    "Noé",
    "Anaïs",
    "Loïc",
    "Jérôme",
    "Hélène",
    "Gaëlle",
    "Maëlys",
    "Éloïse",
    "Clément",
    "Théo",
    "Yanis",
    "Lucas",
    "Emma",
    "Jade",
    "Louise",
    "Adèle",
    "Célia",
    "Raphaël",
    "Mathéo",
    "Léna",
    "Aïcha",
    "Moussa",
    "Kévin",
    "Océane",
    "Jean-Baptiste",
    "Marie-Ève",
    "Anne-Sophie",
    "Pierre-Louis",
    "Lou-Anne",
    "Timothée",
    "Bérénice",
    "Noémie",
    "Ophélie",
    "Aurélien",
    "Sébastien",
    "Joël",
    "Maïwenn",
    "Mamadou",
    "Fatoumata",
    "Ilyès",
    "Sofiane",
    "Élise",
    "Côme",
];

const NOMS: [&str; 48] = [
    "Martin",
    "Lefèvre",
    "Bénard",
    "Côté",
    "Dubois",
    "Fournier",
    "Lemaître",
    "Moreau",
    "Girard",
    "Rousseau",
    "Mercier",
    "Faure",
    "Barbier",
    "Chevalier",
    "Lambert",
    "Boyer",
    "Gauthier",
    "Perrin",
    "Noël",
    "Hébert",
    "Bréhier",
    "Le Goff",
    "Le Bihan",
    "Le Gall",
    "de La Fontaine",
    "de Saint-Just",
    "du Plessis",
    "d'Almeida",
    "N'Diaye",
    "Diallo",
    "Traoré",
    "Nguyen",
    "Da Silva",
    "Dos Santos",
    "Ben Ahmed",
    "El Amrani",
    "Van den Berghe",
    "Deschamps",
    "Lecœur",
    "Müller",
    "Dupré",
    "Ménard",
    "Lagüe",
    "Le Guével",
    "de Villèle",
    "Saint-Hilaire",
    "Pérez",
    "Kowalczyk",
];

const VOIES: [&str; 12] = [
    "rue des Tanneurs",
    "avenue Jean-Jaurès",
    "place de l'Église",
    "boulevard Émile-Zola",
    "allée des Châtaigniers",
    "impasse du Moulin",
    "chemin de la Côte",
    "rue Sainte-Thérèse",
    "rue du Général-de-Gaulle",
    "cours Léon-Gambetta",
    "rue de l'Hôtel-de-Ville",
    "quai des Bateliers",
];

const CATEGORIES: [&str; 8] = [
    "Emploi",
    "Contrat en Alternance",
    "Formation",
    "Immersion en entreprise",
    "Pmsmp",
    "Contrat de volontariat - bénévolat",
    "Scolarité",
    "Demandeur d'emploi",
];

const ROME: [&str; 10] = [
    "F1501", "K2204", "D1106", "H2909", "G1602", "N1103", "J1501", "A1203", "M1607", "I1203",
];

const NIVEAUX: [&str; 10] = [
    "NV1", "NV2", "NV3", "NV4", "NV5", "CFG", "CP4", "C12", "C3A", "AFS",
];

const COMMENTAIRES: [&str; 4] = [
    "Jeune motivé, recherche un contrat en alternance.",
    "Difficultés de mobilité, à revoir en entretien.",
    "Projet de formation à confirmer avec la référente.",
    "Reprise de contact après une période d'absence.",
];

/// ASCII slug for e-mail addresses: accents folded, other marks dropped.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let folded = match c {
            'à' | 'â' | 'ä' | 'À' | 'Â' => "a",
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' => "e",
            'î' | 'ï' | 'Î' => "i",
            'ô' | 'ö' | 'Ô' => "o",
            'ù' | 'û' | 'ü' | 'Ü' => "u",
            'ç' | 'Ç' => "c",
            'œ' => "oe",
            c if c.is_ascii_alphanumeric() => {
                out.push(c.to_ascii_lowercase());
                continue;
            }
            '-' => "-",
            _ => "",
        };
        out.push_str(folded);
    }
    out
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn random_date(rng: &mut Rng, from: NaiveDate, days: u64) -> NaiveDate {
    from + Duration::days(rng.below(days) as i64)
}

/// The population: its seed, size and structures.
#[derive(Debug, Clone)]
pub struct Population {
    seed: u64,
    n: u64,
    structures: Vec<Structure>,
}

impl Population {
    /// One structure per 2,500 dossiers, from 1 to 40.
    pub fn new(seed: u64, n: u64) -> Self {
        let k = n.div_ceil(2_500).clamp(1, COMMUNES.len() as u64) as usize;
        let structures = COMMUNES[..k]
            .iter()
            .map(|(insee, commune, cp)| {
                let de = if commune.starts_with(['A', 'E', 'I', 'O', 'U', 'É']) {
                    "d'"
                } else {
                    "de "
                };
                Structure {
                    code: format!("{insee}S00"),
                    nom_officiel: format!("Mission Locale {de}{commune}"),
                    nom_usuel: format!("ML {commune}"),
                    commune,
                    code_postal: cp,
                }
            })
            .collect();
        Self {
            seed,
            n,
            structures,
        }
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn contains(&self, id: u64) -> bool {
        (1..=self.n).contains(&id)
    }

    pub fn structures(&self) -> &[Structure] {
        &self.structures
    }

    pub fn structure_index(&self, code: &str) -> Option<usize> {
        self.structures.iter().position(|s| s.code == code)
    }

    /// Dossiers are dealt to structures in turn: structure `s` holds ids
    /// `s+1, s+1+k, s+1+2k…`, so a listing page is computed, not searched.
    pub fn structure_of(&self, id: u64) -> usize {
        ((id - 1) % self.structures.len() as u64) as usize
    }

    pub fn count_in(&self, s: usize) -> u64 {
        let k = self.structures.len() as u64;
        let s = s as u64;
        if self.n > s {
            (self.n - 1 - s) / k + 1
        } else {
            0
        }
    }

    pub fn id_at(&self, s: usize, index: u64) -> u64 {
        s as u64 + 1 + index * self.structures.len() as u64
    }

    fn rng(&self, id: u64, salt: u64) -> Rng {
        Rng::new(mix(self.seed
            ^ mix(id)
            ^ mix(salt.wrapping_mul(0x1000_0001))))
    }

    /// When the generated dossier was last modified (before any mutation).
    pub fn base_modified(&self, id: u64) -> DateTime<Utc> {
        let mut rng = self.rng(id, 7);
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            + Duration::seconds(rng.below(300 * 86_400) as i64)
    }

    /// The dossier `id` at `version` (0 as generated; each touch adds one and changes
    /// the accompaniment data, never the identity).
    pub fn dossier(&self, id: u64, version: u32) -> Dossier {
        let mut rng = self.rng(id, 0);
        let structure = &self.structures[self.structure_of(id)];
        let mut prenom = (*rng.pick(&PRENOMS)).to_owned();
        if rng.chance(0.1) {
            prenom.push(' ');
            let second: &str = PRENOMS[rng.below(PRENOMS.len() as u64) as usize];
            prenom.push_str(second);
        }
        let mut nom = (*rng.pick(&NOMS)).to_owned();
        if rng.chance(0.08) {
            nom = format!("{nom}-{}", *rng.pick(&NOMS));
        }
        let nom_usage = if rng.chance(0.12) {
            (*rng.pick(&NOMS)).to_owned()
        } else {
            nom.clone()
        };
        let naissance = random_date(&mut rng, date(2000, 1, 1), 11 * 365);
        let mail = rng.chance(0.85).then(|| {
            let first = prenom.split(' ').next().unwrap_or_default();
            format!(
                "{}.{}{}@example.org",
                slug(first),
                slug(&nom),
                rng.below(100)
            )
        });
        let telephone = rng.chance(0.75).then(|| {
            let d = rng.digits(8);
            let lead = if rng.chance(0.7) { '6' } else { '7' };
            match rng.below(3) {
                0 => format!(
                    "0{lead} {} {} {} {}",
                    &d[0..2],
                    &d[2..4],
                    &d[4..6],
                    &d[6..8]
                ),
                1 => format!("0{lead}{d}"),
                _ => format!(
                    "+33 {lead} {} {} {} {}",
                    &d[0..2],
                    &d[2..4],
                    &d[4..6],
                    &d[6..8]
                ),
            }
        });
        let numero_de = rng.chance(0.55).then(|| {
            format!(
                "{}{}",
                rng.digits(7),
                char::from(b'A' + rng.below(26) as u8)
            )
        });
        let numero_allocataire = rng.chance(0.35).then(|| rng.digits(7));
        let adresse = rng.chance(0.92).then(|| DossierAdresse {
            numero: Some((1 + rng.below(200)).to_string()),
            libelle_voie: Some((*rng.pick(&VOIES)).to_owned()),
            complement: rng
                .chance(0.1)
                .then(|| format!("Bâtiment {}", char::from(b'A' + rng.below(6) as u8))),
            code_postal: Some(structure.code_postal.to_owned()),
            commune: Some(structure.commune.to_owned()),
        });
        let id_jeune = format!("{:019}", rng.next_u64() % 10_000_000_000_000_000_000);
        let niveau = rng.chance(0.8).then(|| (*rng.pick(&NIVEAUX)).to_owned());
        let rqth = rng.chance(0.7).then(|| rng.chance(0.07));
        let commentaire = rng
            .chance(0.15)
            .then(|| (*rng.pick(&COMMENTAIRES)).to_owned());
        let obligation = (naissance >= date(2008, 6, 1) && rng.chance(0.4)).then(|| {
            DossierObligationFormation {
                statut: Some(
                    (*rng.pick(&["EN_REGLE", "SIGNALE", "INJOIGNABLE", "SOLUTION_TROUVEE"]))
                        .to_owned(),
                ),
                date_signalement: Some(random_date(&mut rng, date(2025, 9, 1), 400).to_string()),
                motif: None,
            }
        });

        // What a touch changes comes from its own stream, so identity stays put.
        let mut prng = if version == 0 {
            self.rng(id, 1)
        } else {
            self.rng(id, 1000 + u64::from(version))
        };
        let accompagnement = {
            let r = prng.below(10);
            let premier = random_date(&mut prng, date(2023, 1, 1), 700);
            if r < 4 {
                let debut = random_date(&mut prng, date(2025, 1, 1), 640);
                let fin_prevue = debut + Duration::days(365);
                let fin_reelle = prng
                    .chance(0.15)
                    .then(|| (debut + Duration::days(30 + prng.below(300) as i64)).to_string());
                Some(AccompagnementCej {
                    accompagnement_cej: Some(true),
                    date_debut: Some(debut.to_string()),
                    date_fin_prevue: Some(fin_prevue.to_string()),
                    date_fin_reelle: fin_reelle,
                    premier_accompagnement: Some(premier.to_string()),
                })
            } else if r < 8 {
                Some(AccompagnementCej {
                    accompagnement_cej: Some(false),
                    date_debut: None,
                    date_fin_prevue: None,
                    date_fin_reelle: None,
                    premier_accompagnement: Some(premier.to_string()),
                })
            } else {
                None
            }
        };
        let situations = (0..prng.below(4))
            .map(|_| {
                let etat = *prng.pick(&["PREVU", "EN_COURS", "TERMINE"]);
                let rome = (*prng.pick(&ROME)).to_owned();
                let which = prng.below(3);
                DossierSituation {
                    etat: Some(etat.to_owned()),
                    date_debut: None,
                    date_fin: (etat == "TERMINE")
                        .then(|| random_date(&mut prng, date(2025, 1, 1), 600).to_string()),
                    categorie_situation: Some((*prng.pick(&CATEGORIES)).to_owned()),
                    code_rome_metier_prepare: (which == 0).then(|| rome.clone()),
                    code_rome_premier_metier: (which == 1).then(|| rome.clone()),
                    code_rome_metier_exerce: (which == 2).then_some(rome),
                }
            })
            .collect();

        Dossier {
            id_dossier: id,
            id_jeune: Some(id_jeune),
            numero_de,
            nom_naissance: Some(nom),
            nom_usage: Some(nom_usage),
            prenom: Some(prenom),
            date_naissance: Some(naissance.to_string()),
            mail,
            adresse,
            structure_rattachement: Some(StructureRattachement {
                nom_usuel: Some(structure.nom_usuel.clone()),
                nom_officiel: Some(structure.nom_officiel.clone()),
                code_structure: Some(structure.code.clone()),
            }),
            accompagnement_cej: accompagnement,
            situations,
            telephone,
            numero_allocataire,
            niveau_formation: niveau,
            rqth,
            commentaire,
            obligation_formation: obligation,
        }
    }
}

impl Population {
    /// The dossier an accepted orientation opens in structure `s`, under the new id
    /// `id` (after the generated ones): identity, contact and CAF number from the
    /// prescription, the orientation date (or `today`) as accompaniment start, and a
    /// dispositif drawn from `(seed, id)`: CEJ for about 4 in 10, PACEA otherwise.
    pub fn dossier_from_orientation(
        &self,
        id: u64,
        s: usize,
        req: &OrientationRequest,
        today: NaiveDate,
    ) -> Dossier {
        let mut rng = self.rng(id, 2);
        let structure = &self.structures[s];
        let j = &req.jeune;
        // The hub sends ISO dates, but a French one would be accepted by the API too.
        let debut = req
            .orientation
            .as_ref()
            .and_then(|o| o.date.as_deref())
            .and_then(|d| passerelle_model::Date::parse(d).ok())
            .map_or(today, |d| d.naive());
        let id_jeune = format!("{:019}", rng.next_u64() % 10_000_000_000_000_000_000);
        let accompagnement = if rng.chance(0.4) {
            AccompagnementCej {
                accompagnement_cej: Some(true),
                date_debut: Some(debut.to_string()),
                date_fin_prevue: Some((debut + Duration::days(365)).to_string()),
                date_fin_reelle: None,
                premier_accompagnement: Some(debut.to_string()),
            }
        } else {
            AccompagnementCej {
                accompagnement_cej: Some(false),
                date_debut: None,
                date_fin_prevue: None,
                date_fin_reelle: None,
                premier_accompagnement: Some(debut.to_string()),
            }
        };
        Dossier {
            id_dossier: id,
            id_jeune: Some(id_jeune),
            numero_de: None,
            nom_naissance: j.nom_naissance.clone().or_else(|| j.nom_usage.clone()),
            nom_usage: j.nom_usage.clone().or_else(|| j.nom_naissance.clone()),
            prenom: j.prenom.clone(),
            date_naissance: j.date_naissance.as_deref().map(|d| {
                passerelle_model::Date::parse(d).map_or_else(|_| d.to_owned(), |d| d.to_string())
            }),
            mail: j.mail.clone(),
            adresse: j.adresse.clone(),
            structure_rattachement: Some(StructureRattachement {
                nom_usuel: Some(structure.nom_usuel.clone()),
                nom_officiel: Some(structure.nom_officiel.clone()),
                code_structure: Some(structure.code.clone()),
            }),
            accompagnement_cej: Some(accompagnement),
            situations: Vec::new(),
            telephone: j.telephone.clone(),
            numero_allocataire: j.numero_allocataire.clone(),
            niveau_formation: None,
            rqth: None,
            commentaire: None,
            obligation_formation: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = Population::new(42, 10_000);
        let b = Population::new(42, 10_000);
        let c = Population::new(43, 10_000);
        assert_eq!(
            serde_json::to_string(&a.dossier(77, 0)).unwrap(),
            serde_json::to_string(&b.dossier(77, 0)).unwrap()
        );
        assert_ne!(
            serde_json::to_string(&a.dossier(77, 0)).unwrap(),
            serde_json::to_string(&c.dossier(77, 0)).unwrap()
        );
        // A touch changes accompaniment data, not identity.
        let (v0, v1) = (a.dossier(77, 0), a.dossier(77, 1));
        assert_eq!(v0.nom_naissance, v1.nom_naissance);
        assert_eq!(v0.date_naissance, v1.date_naissance);
    }

    #[test]
    fn structures_partition_the_ids() {
        let p = Population::new(1, 10_001);
        assert_eq!(p.structures().len(), 5);
        let total: u64 = (0..5).map(|s| p.count_in(s)).sum();
        assert_eq!(total, 10_001);
        for s in 0..5 {
            let last = p.id_at(s, p.count_in(s) - 1);
            assert!(last <= 10_001);
            assert_eq!(p.structure_of(last), s);
        }
        assert_eq!(p.structures()[0].code, "59350S00");
        assert_eq!(p.structures()[0].nom_officiel, "Mission Locale de Lille");
        let arras = Population::new(1, 100_000);
        assert_eq!(arras.structures()[4].nom_officiel, "Mission Locale d'Arras");
    }

    #[test]
    fn every_generated_dossier_maps_cleanly() {
        let p = Population::new(9, 3_000);
        for id in 1..=3_000 {
            let m = crate::mapping::dossier_to_jeune(&p.dossier(id, 0));
            assert!(
                m.rejects.is_empty() && m.warnings.is_empty(),
                "dossier {id}: {:?} {:?}",
                m.rejects,
                m.warnings
            );
        }
    }

    #[test]
    fn orientation_dossiers_map_cleanly_with_both_dispositifs() {
        let p = Population::new(5, 100);
        let req: OrientationRequest = serde_json::from_value(serde_json::json!({
            "referenceExterne": "tr-1", "codeStructure": "59350S00",
            "jeune": {"nomNaissance": "Côté", "prenom": "Loïc", "dateNaissance": "01/02/2005",
                      "numeroAllocataire": "1234567"},
            "orientation": {"type": "SOCIALE", "date": "2026-10-02"}
        }))
        .unwrap();
        let today = date(2026, 11, 22);
        let mut dispositifs = std::collections::BTreeSet::new();
        for id in 101..=200 {
            let d = p.dossier_from_orientation(id, 0, &req, today);
            assert_eq!(d.date_naissance.as_deref(), Some("2005-02-01"));
            let m = crate::mapping::dossier_to_jeune(&d);
            assert!(
                m.rejects.is_empty() && m.warnings.is_empty(),
                "{:?}",
                m.rejects
            );
            let j = m.record.unwrap();
            assert_eq!(
                j.identifiants.caf.unwrap().numero_allocataire.as_str(),
                "1234567"
            );
            let a = j.accompagnement.unwrap();
            assert_eq!(a.date_debut.unwrap().to_string(), "2026-10-02");
            dispositifs.insert(format!("{:?}", a.dispositif));
        }
        assert_eq!(dispositifs.len(), 2, "{dispositifs:?}");
        // Without an orientation date the accompaniment starts today.
        let mut bare = req.clone();
        bare.orientation = None;
        let d = p.dossier_from_orientation(101, 0, &bare, today);
        assert_eq!(
            d.accompagnement_cej
                .unwrap()
                .premier_accompagnement
                .as_deref(),
            Some("2026-11-22")
        );
    }
}
