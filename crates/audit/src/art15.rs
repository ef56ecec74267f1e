//! The answer to a person's access request (GDPR Art. 15), in French, from their journal
//! entries and the flows file: who received what (field labels, not paths), when (local
//! dates, Europe/Paris), why (purpose and legal basis of each flow), recipients by name,
//! retention, and the consultations of their data.
//!
//! [`Report::build`] gathers it (shared by `passerelle audit subject` and the DPO's web
//! console); [`report`] writes it as the plain text the cli prints. Dates are formatted
//! by the caller's function (the server's Europe/Paris rendering), so this crate needs
//! no time-zone table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use passerelle_model::{FIELDS, FieldClass};
use passerelle_policy::Policy;

use crate::Entry;

/// The French label of a canonical field path (canonical.md); the path itself for one
/// this table does not know.
pub fn field_label(path: &str) -> &str {
    match path {
        "schema" => "version du format",
        "hub_id" => "identifiant interne à Passerelle",
        "sources[]" => "systèmes d'origine de la fiche",
        "identifiants.nir" => "numéro de sécurité sociale (NIR)",
        "identifiants.imilo_dossier" => "numéro de dossier I-MILO",
        "identifiants.caf" => "numéro d'allocataire CAF ou MSA",
        "identifiants.numero_demande_rsa" => "numéro de demande de RSA",
        "identifiants.france_travail_ide" => "identifiant France Travail",
        "identifiants.france_travail_id" => "identifiant interne France Travail",
        "identifiants.ine" => "identifiant national élève (INE)",
        "identifiants.solis" => "numéro de dossier du Département (SOLIS)",
        "etat_civil.civilite" => "civilité",
        "etat_civil.nom_naissance" => "nom de naissance",
        "etat_civil.nom_usage" => "nom d'usage",
        "etat_civil.prenoms" => "prénoms",
        "etat_civil.date_naissance" => "date de naissance",
        "etat_civil.commune_naissance_insee" => "commune de naissance",
        "contact.adresse" => "adresse",
        "contact.telephones[]" => "téléphones",
        "contact.email" => "adresse électronique",
        "contact.sans_domicile_fixe" => "sans domicile fixe",
        "representants_legaux[]" => "représentants légaux",
        "rsa.role" => "rôle dans le foyer RSA",
        "rsa.etat_droit" => "état du droit au RSA",
        "rsa.soumis_droits_devoirs" => "soumission aux droits et devoirs du RSA",
        "rsa.entrant_droits_devoirs" => "nouvel entrant dans les droits et devoirs du RSA",
        "rsa.date_ouverture" => "date d'ouverture du droit au RSA",
        "rsa.motif_suspension" => "motif de suspension du RSA",
        "rsa.motif_cloture" => "motif de clôture du RSA",
        "rsa.date_cloture" => "date de clôture du RSA",
        "orientation.type" => "type d'orientation",
        "orientation.type_source" => "type d'orientation (libellé d'origine)",
        "orientation.date" => "date d'orientation",
        "orientation.organisme" => "organisme d'orientation",
        "orientation.referent" => "référent",
        "accompagnement" => "accompagnement (programme, dates)",
        "situations[]" => "situations (emploi, formation…)",
        "niveau_formation" => "niveau de formation",
        "faj[]" => "demandes et décisions d'aide du FAJ",
        "ase" => "prise en charge par l'aide sociale à l'enfance",
        "obligation_formation" => "obligation de formation",
        "sensible.rqth" => "reconnaissance de travailleur handicapé (RQTH)",
        "sensible.freins_sante" => "freins liés à la santé",
        "sensible.commentaires" => "commentaires",
        "sensible.situation_penitentiaire" => "situation pénitentiaire",
        other => other,
    }
}

/// The French name of a class of data.
pub fn class_label(class: FieldClass) -> &'static str {
    match class {
        FieldClass::Identifiant => "Identifiants",
        FieldClass::Nir => "Numéro de sécurité sociale",
        FieldClass::Identite => "Identité",
        FieldClass::Contact => "Coordonnées",
        FieldClass::Social => "Situation sociale",
        FieldClass::Parcours => "Parcours",
        FieldClass::Financier => "Aides financières",
        FieldClass::Mineur => "Données relatives aux mineurs",
        FieldClass::Art9 => "Données sensibles (art. 9 du RGPD)",
        FieldClass::Art10 => "Données pénales (art. 10 du RGPD)",
        FieldClass::Meta => "Données techniques",
    }
}

/// What an event means for the person, in French.
pub fn event_label(event: &str) -> &str {
    match event {
        "received" => "reçues par Passerelle depuis le système d'origine",
        "published" => "envoyées au destinataire (chiffrées)",
        "delivered" => "remises au système du destinataire",
        "applied" => "enregistrées par le destinataire",
        "rejected" => "refusées par le destinataire",
        "dead_lettered" => "non remises après plusieurs essais",
        "denied" => "transmission bloquée : aucun flux autorisé ne la permet",
        "consulted" => "consultation",
        "purged" => "suppression d'entrées anciennes",
        other => other,
    }
}

/// An organisation's name: the one the configuration gives, else what its code says.
pub fn org_name(code: &str, names: &BTreeMap<String, String>) -> String {
    if let Some(n) = names.get(code) {
        return format!("{n} ({code})");
    }
    let is_ml = code.len() == 8
        && code.as_bytes()[5] == b'S'
        && code[..5].bytes().all(|b| b.is_ascii_digit());
    if let Some(dept) = code.strip_prefix("CD") {
        format!("Conseil départemental du {dept} ({code})")
    } else if let Some(dept) = code.strip_prefix("FAJ") {
        format!("plateforme du Fonds d'aide aux jeunes du {dept} ({code})")
    } else if is_ml {
        format!("Mission Locale {code}")
    } else if code == "system" {
        "Passerelle (traitement automatique)".to_owned()
    } else {
        code.to_owned()
    }
}

fn entry_date(at: &str, date: &dyn Fn(DateTime<Utc>) -> String) -> String {
    DateTime::parse_from_rfc3339(at)
        .map(|t| date(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| at.to_owned())
}

/// The data of an entry by class: `Identité : nom de naissance, prénoms`.
pub fn data_of(fields: &[String]) -> Vec<String> {
    let mut by_class: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for f in fields.iter().filter(|f| *f != "schema") {
        let class = FIELDS
            .iter()
            .find(|(p, _)| p == f)
            .map(|(_, c)| *c)
            .unwrap_or(FieldClass::Meta);
        let i = FieldClass::ALL
            .iter()
            .position(|c| *c == class)
            .unwrap_or(0);
        by_class.entry(i).or_default().push(field_label(f));
    }
    by_class
        .into_iter()
        .map(|(i, labels)| {
            format!(
                "{} : {}",
                class_label(FieldClass::ALL[i]),
                labels.join(", ")
            )
        })
        .collect()
}

/// Who asks, and when, for the heading.
pub struct Context<'a> {
    pub now: DateTime<Utc>,
    pub actor: &'a str,
    pub names: &'a BTreeMap<String, String>,
    /// Where the flows come from, as said to the reader.
    pub flows_source: &'a str,
    /// A date as the reader reads it (`3 décembre 2026 à 15 h 12`, Europe/Paris).
    pub date: &'a dyn Fn(DateTime<Utc>) -> String,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("now", &self.now)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// The report, as plain text a DPO can send (or print).
pub fn report(entries: &[Entry], policy: &Policy, cx: &Context<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "RAPPORT D'ACCÈS AUX DONNÉES PERSONNELLES (article 15 du RGPD)"
    );
    let _ = writeln!(
        out,
        "Établi le {} (heure de Paris) par {}, à partir du journal d'audit de Passerelle.",
        (cx.date)(cx.now),
        cx.actor
    );
    let _ = writeln!(
        out,
        "Passerelle ne conserve pas vos données dans ce journal : il dit seulement quelles \
         catégories de données ont circulé, entre qui, quand et pourquoi."
    );
    let (consults, transfers): (Vec<&Entry>, Vec<&Entry>) =
        entries.iter().partition(|e| e.event == "consulted");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "1. TRANSMISSIONS VOUS CONCERNANT ({})",
        transfers.len()
    );
    if transfers.is_empty() {
        let _ = writeln!(out, "   Aucune transmission enregistrée dans le journal.");
    }
    let mut flows = BTreeSet::new();
    for e in &transfers {
        let flow = e.flow.as_deref().and_then(|f| policy.flow(f));
        let what = flow.map_or_else(
            || e.flow.clone().unwrap_or_else(|| "hors flux déclaré".into()),
            |f| format!("{} ({})", f.name, f.id),
        );
        if let Some(f) = &e.flow {
            flows.insert(f.clone());
        }
        let _ = writeln!(
            out,
            "- Le {} : données {}",
            entry_date(&e.at, cx.date),
            event_label(&e.event)
        );
        let _ = writeln!(out, "  Flux : {what}");
        if let Some(s) = &e.sender {
            let _ = writeln!(out, "  Expéditeur : {}", org_name(s, cx.names));
        }
        if let Some(r) = &e.recipient {
            let _ = writeln!(out, "  Destinataire : {}", org_name(r, cx.names));
        }
        for line in data_of(&e.fields) {
            let _ = writeln!(out, "  {line}");
        }
        if e.outcome != "ok"
            && let Some(r) = &e.reason
        {
            let _ = writeln!(out, "  Motif : {r}");
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "2. POURQUOI : FINALITÉS, BASES LÉGALES ET DURÉES DE CONSERVATION"
    );
    if flows.is_empty() {
        let _ = writeln!(out, "   Sans objet.");
    }
    for id in &flows {
        let Some(f) = policy.flow(id) else {
            let _ = writeln!(out, "- {id} : flux absent du fichier des flux actuel");
            continue;
        };
        let _ = writeln!(out, "- {} ({})", f.name, f.id);
        let _ = writeln!(out, "  Finalité : {}", f.purpose);
        let _ = writeln!(
            out,
            "  Base légale : article {} du RGPD ; {}",
            f.legal_basis.gdpr, f.legal_basis.reference
        );
        let _ = writeln!(
            out,
            "  Conservation : {} jours chez le destinataire ; {} jours dans le journal d'audit",
            f.retention_days.recipient, f.retention_days.audit
        );
        let _ = writeln!(
            out,
            "  Consentement requis : {}",
            if f.consent { "oui" } else { "non" }
        );
    }
    let _ = writeln!(out, "  (textes tels que déclarés dans {})", cx.flows_source);
    let _ = writeln!(out);
    let _ = writeln!(out, "3. CONSULTATIONS DE VOS DONNÉES ({})", consults.len());
    if consults.is_empty() {
        let _ = writeln!(out, "   Aucune consultation enregistrée.");
    }
    for e in &consults {
        let _ = writeln!(
            out,
            "- Le {} par {}{}",
            entry_date(&e.at, cx.date),
            e.actor,
            e.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_path_has_a_french_label() {
        for (p, _) in FIELDS {
            assert_ne!(field_label(p), *p, "{p}");
        }
    }

    #[test]
    fn names_are_readable() {
        let mut names = BTreeMap::new();
        names.insert("59350S00".to_owned(), "Mission Locale de Lille".to_owned());
        assert_eq!(
            org_name("59350S00", &names),
            "Mission Locale de Lille (59350S00)"
        );
        assert_eq!(
            org_name("CD059", &names),
            "Conseil départemental du 059 (CD059)"
        );
        assert_eq!(org_name("62010S00", &names), "Mission Locale 62010S00");
    }
}
