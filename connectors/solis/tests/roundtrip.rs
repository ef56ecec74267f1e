//! Property test: any text windows-1252 can carry survives the import writer (escaping,
//! windows-1252 encoding) and the streaming reader unchanged.

use chrono::NaiveDate;
use passerelle_connector::Delivery;
use passerelle_connector::xml::open_file;
use passerelle_model::{
    Date, Departement, Jeune, ObligationFormation, ObligationFormationStatut, clean_text,
};
use passerelle_solis::{ImportFlux, write_import};
use proptest::prelude::*;

/// Names made of letters windows-1252 holds, with the characters XML must escape.
fn name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-zÀ-ÿŒœŠšŽžŸ'’&<>\"€ -]{1,30}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn signalement_names_round_trip(nom in name(), prenom in name()) {
        let Some(nom) = clean_text(&nom) else { return Ok(()) };
        let Some(prenom) = clean_text(&prenom) else { return Ok(()) };
        let prenom = prenom.split_whitespace().collect::<Vec<_>>().join(" ");
        let dir = tempfile::tempdir().unwrap();
        let mut j = Jeune::default();
        j.etat_civil.nom_naissance = Some(nom.clone());
        j.etat_civil.prenoms = vec![prenom.clone()];
        j.etat_civil.date_naissance = Some(Date::parse("2009-01-31").unwrap());
        j.obligation_formation = Some(ObligationFormation {
            statut: Some(ObligationFormationStatut::Signale),
            ..ObligationFormation::default()
        });
        let d = Delivery { transfer_id: "t1".into(), flow: "of-signalement".into(), sender: "59350S00".into(), recipient: "CD059".into(), record: j };
        let at = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap().and_hms_opt(2, 10, 0).unwrap();
        let w = write_import(dir.path(), ImportFlux::Of, &Departement::parse("059").unwrap(), "59350S00", &[d], at).unwrap();
        prop_assert_eq!(w.written.len(), 1);
        let (_, mut stream) = open_file(&w.path).unwrap();
        let child = stream.next_child().unwrap().unwrap();
        prop_assert_eq!(child.element.attr("nom"), Some(nom.as_str()));
        prop_assert_eq!(child.element.attr("prenoms"), Some(prenom.as_str()));
        prop_assert!(stream.next_child().unwrap().is_none());
    }
}
