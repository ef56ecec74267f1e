//! Field paths on the typed record: which of `FIELDS` a record holds and how to take
//! one away, without going through `serde_json::Value` (the engine asks this of every
//! record it sends, several times). A path is present when its JSON form would carry
//! the key: an `Option` that is `Some`, a list that is not empty.
//!
//! `TYPED` follows `FIELDS` path for path; when it does not (a field added to the
//! record and to `FIELDS` but not here), the callers fall back to the JSON form, so a
//! forgotten entry costs speed, never correctness (and a test fails).

use std::sync::LazyLock;

use crate::classes::FIELDS;
use crate::record::{Jeune, Orientation};

type Present = fn(&Jeune) -> bool;
type Clear = fn(&mut Jeune);

/// Each path of `FIELDS`, in order: whether a record holds it, and how to drop it.
pub(crate) const TYPED: &[(&str, Present, Clear)] = &[
    ("schema", |_| true, |_| {}),
    ("hub_id", |j| j.hub_id.is_some(), |j| j.hub_id = None),
    (
        "sources[]",
        |j| !j.sources.is_empty(),
        |j| j.sources.clear(),
    ),
    (
        "identifiants.nir",
        |j| j.identifiants.nir.is_some(),
        |j| j.identifiants.nir = None,
    ),
    (
        "identifiants.imilo_dossier",
        |j| j.identifiants.imilo_dossier.is_some(),
        |j| j.identifiants.imilo_dossier = None,
    ),
    (
        "identifiants.caf",
        |j| j.identifiants.caf.is_some(),
        |j| j.identifiants.caf = None,
    ),
    (
        "identifiants.numero_demande_rsa",
        |j| j.identifiants.numero_demande_rsa.is_some(),
        |j| j.identifiants.numero_demande_rsa = None,
    ),
    (
        "identifiants.france_travail_ide",
        |j| j.identifiants.france_travail_ide.is_some(),
        |j| j.identifiants.france_travail_ide = None,
    ),
    (
        "identifiants.france_travail_id",
        |j| j.identifiants.france_travail_id.is_some(),
        |j| j.identifiants.france_travail_id = None,
    ),
    (
        "identifiants.ine",
        |j| j.identifiants.ine.is_some(),
        |j| j.identifiants.ine = None,
    ),
    (
        "identifiants.solis",
        |j| j.identifiants.solis.is_some(),
        |j| j.identifiants.solis = None,
    ),
    (
        "etat_civil.civilite",
        |j| j.etat_civil.civilite.is_some(),
        |j| j.etat_civil.civilite = None,
    ),
    (
        "etat_civil.nom_naissance",
        |j| j.etat_civil.nom_naissance.is_some(),
        |j| j.etat_civil.nom_naissance = None,
    ),
    (
        "etat_civil.nom_usage",
        |j| j.etat_civil.nom_usage.is_some(),
        |j| j.etat_civil.nom_usage = None,
    ),
    (
        "etat_civil.prenoms",
        |j| !j.etat_civil.prenoms.is_empty(),
        |j| j.etat_civil.prenoms.clear(),
    ),
    (
        "etat_civil.date_naissance",
        |j| j.etat_civil.date_naissance.is_some(),
        |j| j.etat_civil.date_naissance = None,
    ),
    (
        "etat_civil.commune_naissance_insee",
        |j| j.etat_civil.commune_naissance_insee.is_some(),
        |j| j.etat_civil.commune_naissance_insee = None,
    ),
    (
        "contact.adresse",
        |j| j.contact.adresse.is_some(),
        |j| j.contact.adresse = None,
    ),
    (
        "contact.telephones[]",
        |j| !j.contact.telephones.is_empty(),
        |j| j.contact.telephones.clear(),
    ),
    (
        "contact.email",
        |j| j.contact.email.is_some(),
        |j| j.contact.email = None,
    ),
    (
        "contact.sans_domicile_fixe",
        |j| j.contact.sans_domicile_fixe.is_some(),
        |j| j.contact.sans_domicile_fixe = None,
    ),
    (
        "representants_legaux[]",
        |j| !j.representants_legaux.is_empty(),
        |j| j.representants_legaux.clear(),
    ),
    ("rsa.role", |j| j.rsa.role.is_some(), |j| j.rsa.role = None),
    (
        "rsa.etat_droit",
        |j| j.rsa.etat_droit.is_some(),
        |j| j.rsa.etat_droit = None,
    ),
    (
        "rsa.soumis_droits_devoirs",
        |j| j.rsa.soumis_droits_devoirs.is_some(),
        |j| j.rsa.soumis_droits_devoirs = None,
    ),
    (
        "rsa.entrant_droits_devoirs",
        |j| j.rsa.entrant_droits_devoirs.is_some(),
        |j| j.rsa.entrant_droits_devoirs = None,
    ),
    (
        "rsa.date_ouverture",
        |j| j.rsa.date_ouverture.is_some(),
        |j| j.rsa.date_ouverture = None,
    ),
    (
        "rsa.motif_suspension",
        |j| j.rsa.motif_suspension.is_some(),
        |j| j.rsa.motif_suspension = None,
    ),
    (
        "rsa.motif_cloture",
        |j| j.rsa.motif_cloture.is_some(),
        |j| j.rsa.motif_cloture = None,
    ),
    (
        "rsa.date_cloture",
        |j| j.rsa.date_cloture.is_some(),
        |j| j.rsa.date_cloture = None,
    ),
    (
        "orientation.type",
        |j| j.orientation.as_ref().is_some_and(|o| o.kind.is_some()),
        |j| orientation(j, |o| o.kind = None),
    ),
    (
        "orientation.type_source",
        |j| {
            j.orientation
                .as_ref()
                .is_some_and(|o| o.type_source.is_some())
        },
        |j| orientation(j, |o| o.type_source = None),
    ),
    (
        "orientation.date",
        |j| j.orientation.as_ref().is_some_and(|o| o.date.is_some()),
        |j| orientation(j, |o| o.date = None),
    ),
    (
        "orientation.organisme",
        |j| {
            j.orientation
                .as_ref()
                .is_some_and(|o| o.organisme.is_some())
        },
        |j| orientation(j, |o| o.organisme = None),
    ),
    (
        "orientation.referent",
        |j| j.orientation.as_ref().is_some_and(|o| o.referent.is_some()),
        |j| orientation(j, |o| o.referent = None),
    ),
    (
        "accompagnement",
        |j| j.accompagnement.is_some(),
        |j| j.accompagnement = None,
    ),
    (
        "situations[]",
        |j| !j.situations.is_empty(),
        |j| j.situations.clear(),
    ),
    (
        "niveau_formation",
        |j| j.niveau_formation.is_some(),
        |j| j.niveau_formation = None,
    ),
    ("faj[]", |j| !j.faj.is_empty(), |j| j.faj.clear()),
    ("ase", |j| j.ase.is_some(), |j| j.ase = None),
    (
        "obligation_formation",
        |j| j.obligation_formation.is_some(),
        |j| j.obligation_formation = None,
    ),
    (
        "sensible.rqth",
        |j| j.sensible.rqth.is_some(),
        |j| j.sensible.rqth = None,
    ),
    (
        "sensible.freins_sante",
        |j| !j.sensible.freins_sante.is_empty(),
        |j| j.sensible.freins_sante.clear(),
    ),
    (
        "sensible.commentaires",
        |j| !j.sensible.commentaires.is_empty(),
        |j| j.sensible.commentaires.clear(),
    ),
    (
        "sensible.situation_penitentiaire",
        |j| j.sensible.situation_penitentiaire.is_some(),
        |j| j.sensible.situation_penitentiaire = None,
    ),
];

/// Drops a field of `orientation`, and the orientation itself once nothing is left in
/// it (as its JSON form loses an emptied object).
fn orientation(j: &mut Jeune, clear: impl FnOnce(&mut Orientation)) {
    if let Some(o) = j.orientation.as_mut() {
        clear(o);
        if *o == Orientation::default() {
            j.orientation = None;
        }
    }
}

/// Whether `TYPED` names the paths of `FIELDS`, in the same order.
pub(crate) fn complete() -> bool {
    static COMPLETE: LazyLock<bool> = LazyLock::new(|| {
        TYPED.len() == FIELDS.len() && TYPED.iter().zip(FIELDS).all(|(t, f)| t.0 == f.0)
    });
    *COMPLETE
}

#[cfg(test)]
mod tests {
    #[test]
    fn typed_paths_follow_fields() {
        let missing: Vec<&str> = crate::classes::FIELDS
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !super::TYPED.iter().any(|(t, ..)| t == p))
            .collect();
        assert!(
            super::complete(),
            "add these paths to project::TYPED, in FIELDS order: {missing:?}"
        );
    }
}
