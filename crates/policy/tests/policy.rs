//! Tests of the flows file, the loader's errors, decisions and the Art. 30 register.

use std::path::PathBuf;

use passerelle_model::{FIELDS, FieldClass, Jeune, class_of};
use passerelle_policy::{
    Decision, DenyReason, OrgKind, Party, Policy, PolicyErrorKind, System, register,
};
use proptest::prelude::*;

const NINE: [&str; 9] = [
    "brsa-orientation",
    "brsa-suivi",
    "faj-demande",
    "faj-decision",
    "ase-majorite",
    "of-signalement",
    "of-suivi",
    "box-depot",
    "bilan",
];

fn shipped_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/policy/flows.toml")
}

fn shipped() -> Policy {
    Policy::load(shipped_path()).expect("shipped flows file is valid")
}

/// A record holding at least one value of every class, including the special ones.
/// The NIR key is valid (97 − 2040359350123 mod 97 = 49).
const FULL: &str = r#"{"schema":"passerelle.jeune/1","hub_id":"0190c0de-0000-7000-8000-000000000001",
 "sources":[{"system":"solis","organisation":"CD059","record_id":"IND0004412"}],
 "identifiants":{"nir":"204035935012349","caf":{"organisme":"CAF","numero_allocataire":"1234567"},"solis":"IND0004412","imilo_dossier":"778899"},
 "etat_civil":{"civilite":"MME","nom_naissance":"Lefèvre","prenoms":["Léa","Marie"],"date_naissance":"2004-03-12"},
 "contact":{"telephones":["+33612345678"],"email":"lea.lefevre@example.org","sans_domicile_fixe":false},
 "rsa":{"role":"DEM","etat_droit":"2","soumis_droits_devoirs":true,"date_ouverture":"2025-09-01"},
 "orientation":{"type":"socio_professionnelle","date":"2026-10-02","organisme":{"type":"ML","code":"59350S00"}},
 "ase":{"statut":"confie","mna":false},
 "sensible":{"rqth":true,"freins_sante":["x"],"commentaires":["y"],"situation_penitentiaire":"z"}}"#;

fn full() -> Jeune {
    serde_json::from_str(FULL).expect("fixture parses")
}

fn cd(code: &str) -> Party<'_> {
    Party::new(OrgKind::Cd, code, System::Solis)
}

fn ml(code: &str) -> Party<'_> {
    Party::new(OrgKind::Ml, code, System::Imilo)
}

#[test]
fn shipped_file_loads_with_the_nine_flows() {
    let p = shipped();
    let ids: Vec<&str> = p.flows().iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, NINE);
    for id in NINE {
        let f = p.flow(id).unwrap();
        assert!(f.purpose.ends_with('.'), "{id}: purpose is one sentence");
        assert!(f.retention_days.recipient > 0 && f.retention_days.audit <= 365);
    }
    assert!(p.flow("nope").is_none());
}

#[test]
fn shipped_flows_are_minimal() {
    let p = shipped();
    // No shipped flow carries NIR, Art. 9 or Art. 10 data.
    for f in p.flows() {
        assert!(
            f.special_classes().is_empty(),
            "{} allows special data",
            f.id
        );
    }
    let o = p.flow("brsa-orientation").unwrap();
    for path in [
        "etat_civil.nom_naissance",
        "contact.email",
        "identifiants.caf",
        "rsa.etat_droit",
        "orientation.type",
    ] {
        assert!(o.allows(path), "brsa-orientation needs {path}");
    }
    for path in [
        "identifiants.nir",
        "sensible.rqth",
        "faj[]",
        "ase",
        "representants_legaux[]",
        "accompagnement",
        "obligation_formation",
    ] {
        assert!(!o.allows(path), "brsa-orientation must not carry {path}");
    }
    // ase-majorite carries the ASE block but not the legal representatives, although
    // both are of class `mineur`.
    let a = p.flow("ase-majorite").unwrap();
    assert!(a.allows("ase") && !a.allows("representants_legaux[]"));
    // The bilan carries nothing personal.
    assert_eq!(p.flow("bilan").unwrap().effective_paths(), vec!["schema"]);
}

#[test]
fn brsa_orientation_projects_and_counts_drops() {
    let p = shipped();
    let d = p.decide(
        Some("brsa-orientation"),
        &cd("CD059"),
        &ml("59350S00"),
        &full(),
    );
    let Decision::Allowed {
        flow,
        projection,
        dropped,
    } = d
    else {
        panic!("expected allowed, got {d:?}");
    };
    assert_eq!(flow.id, "brsa-orientation");
    let kept = projection.paths();
    assert!(kept.contains(&"identifiants.caf"));
    assert!(kept.contains(&"etat_civil.prenoms"));
    for path in [
        "identifiants.nir",
        "identifiants.imilo_dossier",
        "ase",
        "sensible.rqth",
        "sensible.freins_sante",
        "sensible.commentaires",
        "sensible.situation_penitentiaire",
    ] {
        assert!(dropped.contains(&path), "{path} should be dropped");
        assert!(!kept.contains(&path));
    }
}

#[test]
fn no_flow_and_wrong_parties_are_denied() {
    let p = shipped();
    // ML → FAJ platform through I-MILO is faj-demande; FAJ → CD is nothing.
    let faj = Party::new(OrgKind::Faj, "FAJ059", System::Faj);
    match p.decide(None, &faj, &cd("CD059"), &full()) {
        Decision::Denied {
            reason: DenyReason::NoFlow { .. },
        } => {}
        other => panic!("expected no-flow, got {other:?}"),
    }
    // Another département's ML is outside brsa-orientation.
    match p.decide(
        Some("brsa-orientation"),
        &cd("CD059"),
        &ml("62010S00"),
        &full(),
    ) {
        Decision::Denied {
            reason: r @ DenyReason::OutsideFlow { .. },
        } => {
            assert_eq!(r.code(), "outside-flow");
        }
        other => panic!("expected outside-flow, got {other:?}"),
    }
    match p.decide(Some("nope"), &cd("CD059"), &ml("59350S00"), &full()) {
        Decision::Denied {
            reason: DenyReason::UnknownFlow { .. },
        } => {}
        other => panic!("expected unknown-flow, got {other:?}"),
    }
    // CD → ML has several purposes: the caller must name one.
    match p.decide(None, &cd("CD059"), &ml("59350S00"), &full()) {
        Decision::Denied {
            reason: DenyReason::Ambiguous { flows },
        } => {
            assert!(flows.contains(&"brsa-orientation".to_owned()));
            assert!(flows.contains(&"ase-majorite".to_owned()));
        }
        other => panic!("expected ambiguous, got {other:?}"),
    }
    // The only flow FAJ → ML is chosen without a name.
    assert!(p.decide(None, &faj, &ml("59350S00"), &full()).is_allowed());
}

#[test]
fn both_ways_flow_joins_either_direction_and_one_way_does_not() {
    let p = shipped();
    let b = p.flow("box-depot").unwrap();
    let box_cd = Party::new(OrgKind::Cd, "CD059", System::Box);
    let ml_ = ml("59350S00");
    assert!(b.joins(&ml_, &box_cd));
    assert!(b.joins(&box_cd, &ml_));
    let o = p.flow("brsa-orientation").unwrap();
    assert!(o.joins(&cd("CD059"), &ml_));
    assert!(!o.joins(&ml_, &cd("CD059")));
}

#[test]
fn deny_reasons_never_hold_personal_values() {
    let p = shipped();
    let j = full();
    let faj = Party::new(OrgKind::Faj, "FAJ059", System::Faj);
    let mut texts = Vec::new();
    if let Decision::Denied { reason } = p.decide(None, &faj, &cd("CD059"), &j) {
        texts.push(reason.to_string());
    }
    for f in p.flows() {
        if let Err(r) = f.check_payload(&j) {
            texts.push(r.to_string());
        }
    }
    assert!(texts.len() > 5);
    for t in texts {
        for secret in [
            "Lefèvre",
            "Léa",
            "204035935012349",
            "1234567",
            "lea.lefevre",
            "+33612345678",
            "2004-03-12",
        ] {
            assert!(!t.contains(secret), "{t:?} leaks a value");
        }
    }
}

#[test]
fn check_payload_denies_special_data_outside_its_flow() {
    let p = shipped();
    let f = p.flow("brsa-orientation").unwrap();
    let r = f.check_payload(&full()).unwrap_err();
    // The first special path in record order is the NIR.
    assert_eq!(
        r,
        DenyReason::SpecialData {
            flow: "brsa-orientation".into(),
            path: "identifiants.nir",
            class: FieldClass::Nir
        }
    );
    let (projected, _) = f.project(&full());
    assert!(f.check_payload(&projected).is_ok());
}

#[test]
fn register_lists_every_flow_in_both_formats() {
    let p = shipped();
    let md = register::to_markdown(&p);
    let html = register::to_html(&p);
    for f in p.flows() {
        assert!(
            md.contains(&format!("({})", f.id)),
            "markdown misses {}",
            f.id
        );
        assert!(
            html.contains(&format!("id=\"flow-{}\"", f.id)),
            "html misses {}",
            f.id
        );
    }
    for item in [
        "Controller",
        "Purpose",
        "Legal basis",
        "Categories of data subjects",
        "Categories of personal data",
        "Recipients",
        "Transfers to third countries",
        "Retention",
        "Security measures",
    ] {
        assert_eq!(md.matches(&format!("**{item}**")).count(), 9, "{item}");
        assert_eq!(
            html.matches(&format!("<dt>{item}</dt>")).count(),
            9,
            "{item}"
        );
    }
    assert!(md.contains("CASF L262-29"));
    assert!(md.contains("`identifiants.numero_demande_rsa`"));
    assert!(html.contains("<code>identifiants.caf</code>"));
    // The bilan says it carries no personal data.
    assert!(md.contains("none: aggregated, anonymous indicators only"));
    // Apostrophes in references are escaped in HTML.
    assert!(html.contains("Code de l&#39;éducation L114-1"));
    assert!(!html.contains("l'éducation"));
}

#[test]
fn register_escapes_html_and_markdown() {
    let src = minimal_with(
        r#"purpose = "<script>alert(1)</script> & *bold* | x.""#,
        r#"fields = { classes = ["identite"] }"#,
    );
    let p = Policy::from_toml_str(&src).unwrap();
    let html = register::to_html(&p);
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp;"));
    let md = register::to_markdown(&p);
    assert!(md.contains(r"\<script\>") && md.contains(r"\*bold\*") && md.contains(r"\|"));
}

/// A valid one-flow file, with `purpose` and extra flow lines replaceable.
fn minimal_with(purpose_line: &str, extra: &str) -> String {
    format!(
        r#"version = 1
[register]
title = "t"
controller = "c"
dpo_contact = "d"
third_country_transfers = "none"
security_measures = ["m"]

[[flow]]
id = "test-flow"
name = "n"
{purpose_line}
data_subjects = "s"
direction = "one-way"
consent = false
retention_days = {{ recipient = 30, audit = 30 }}
legal_basis = {{ gdpr = "6(1)(e)", reference = "CASF L262-40" }}
from = {{ kinds = ["cd"], systems = ["solis"] }}
to = {{ kinds = ["ml"], systems = ["imilo"] }}
{extra}
"#
    )
}

fn minimal(extra: &str) -> String {
    minimal_with(r#"purpose = "p.""#, extra)
}

fn err(src: &str) -> passerelle_policy::PolicyError {
    Policy::from_toml_str(src).expect_err("should be refused")
}

#[test]
fn minimal_file_loads() {
    let p = Policy::from_toml_str(&minimal(r#"fields = { classes = ["identite"] }"#)).unwrap();
    assert_eq!(p.flows().len(), 1);
}

#[test]
fn unknown_key_is_refused_with_position() {
    let e = err(&minimal(
        "fields = { classes = [\"identite\"] }\ncolour = \"blue\"",
    ));
    assert_eq!(e.kind, PolicyErrorKind::Syntax);
    assert!(e.reason.contains("unknown field `colour`"), "{e}");
    let (line, _) = e.position.expect("position");
    assert_eq!(line, 21, "{e}");
    let e = err(&minimal(
        "fields = { classes = [\"identite\"], extra = [] }",
    ));
    assert!(e.reason.contains("unknown field `extra`"), "{e}");
}

#[test]
fn unknown_class_and_path_are_refused() {
    let e = err(&minimal(r#"fields = { classes = ["sante"] }"#));
    assert_eq!(e.kind, PolicyErrorKind::Invalid);
    assert_eq!(e.flow.as_deref(), Some("test-flow"));
    assert_eq!(e.key.as_deref(), Some("fields.classes"));
    assert!(e.reason.contains("unknown class `sante`"));
    assert_eq!(
        e.position.map(|p| p.0),
        Some(10),
        "points at the flow's id: {e}"
    );
    let e = err(&minimal(r#"fields = { paths = ["contact.fax"] }"#));
    assert_eq!(e.key.as_deref(), Some("fields.paths"));
    assert!(e.reason.contains("unknown path `contact.fax`"));
    // A sub-path of a whole-object path is not a unit policy can speak of.
    let e = err(&minimal(r#"fields = { paths = ["contact.adresse.voie"] }"#));
    assert!(e.reason.contains("unknown path"));
    let e = err(&minimal(
        r#"fields = { classes = ["contact"], paths = ["contact.email"] }"#,
    ));
    assert!(e.reason.contains("already allowed by class `contact`"));
}

#[test]
fn sources_name_known_kinds_of_a_system_the_sender_has() {
    let fields = r#"fields = { classes = ["identite"] }"#;
    let p = Policy::from_toml_str(&minimal(&format!("{fields}\nsources = [\"solis\"]"))).unwrap();
    let fed: Vec<&str> = p
        .flows_fed_by("solis")
        .iter()
        .map(|f| f.id.as_str())
        .collect();
    assert_eq!(fed, ["test-flow"]);
    assert!(p.flows_fed_by("cnaf").is_empty());

    let e = err(&minimal(&format!("{fields}\nsources = [\"minitel\"]")));
    assert_eq!(e.kind, PolicyErrorKind::Invalid);
    assert_eq!(e.flow.as_deref(), Some("test-flow"));
    assert_eq!(e.key.as_deref(), Some("sources"));
    assert!(e.reason.contains("unknown source kind `minitel`"), "{e}");
    assert!(e.to_string().contains("test-flow"), "{e}");
    // `from` names SOLIS only: a CNAF source cannot read this flow's records.
    let e = err(&minimal(&format!("{fields}\nsources = [\"cnaf\"]")));
    assert!(e.reason.contains("cnaf"), "{e}");
    let e = err(&minimal(&format!(
        "{fields}\nsources = [\"solis\", \"solis\"]"
    )));
    assert!(e.reason.contains("twice"), "{e}");
}

#[test]
fn shipped_sources_feed_the_flows_the_hub_reads() {
    let p = shipped();
    let fed =
        |kind: &str| -> Vec<String> { p.flows_fed_by(kind).iter().map(|f| f.id.clone()).collect() };
    assert_eq!(fed("solis"), ["brsa-orientation", "ase-majorite"]);
    assert_eq!(fed("cnaf"), ["brsa-orientation"]);
    assert_eq!(fed("box"), ["brsa-orientation", "of-suivi"]);
    assert_eq!(fed("imilo"), ["brsa-suivi", "of-signalement"]);
    assert_eq!(fed("faj"), ["faj-decision"]);
}

#[test]
fn duplicate_flow_id_is_refused() {
    let one = minimal(r#"fields = { classes = ["identite"] }"#);
    let flow = &one[one.find("[[flow]]").unwrap()..];
    let e = err(&format!("{one}\n{flow}"));
    assert_eq!(e.key.as_deref(), Some("id"));
    assert_eq!(e.reason, "duplicate flow id");
}

#[test]
fn special_classes_need_their_justification() {
    for (fields, class) in [
        (r#"fields = { classes = ["art9"] }"#, "art9"),
        (r#"fields = { paths = ["sensible.rqth"] }"#, "art9"),
        (r#"fields = { paths = ["identifiants.nir"] }"#, "nir"),
        (r#"fields = { classes = ["art10"] }"#, "art10"),
    ] {
        let e = err(&minimal(fields));
        assert_eq!(
            e.key.as_deref(),
            Some(format!("special.{class}").as_str()),
            "{e}"
        );
        assert!(e.reason.contains("no justification"), "{e}");
    }
    // Art. 9 needs its 9(2) point.
    let e = err(&minimal(
        "fields = { classes = [\"art9\"] }\nspecial = { art9 = \"because it helps\" }",
    ));
    assert!(e.reason.contains("9(2)"), "{e}");
    // Justified: loads, and the data passes.
    let p = Policy::from_toml_str(&minimal(
        "fields = { classes = [\"identite\"], paths = [\"sensible.rqth\"] }\nspecial = { art9 = \"Art. 9(2)(b): obligations in social protection law\" }",
    ))
    .unwrap();
    let f = p.flow("test-flow").unwrap();
    assert!(f.allows("sensible.rqth") && !f.allows("sensible.freins_sante"));
    // A justification for a class the flow does not allow is refused too.
    let e = err(&minimal(
        "fields = { classes = [\"identite\"] }\nspecial = { nir = \"décret 2019-341\" }",
    ));
    assert!(e.reason.contains("does not allow it"), "{e}");
}

#[test]
fn other_rules() {
    let e = err(&minimal(r#"fields = {}"#).replace("version = 1", "version = 2"));
    assert_eq!(e.key.as_deref(), Some("version"));
    let e = err(&minimal(r#"fields = {}"#).replace("6(1)(e)", "6(1)(g)"));
    assert_eq!(e.key.as_deref(), Some("legal_basis.gdpr"));
    let e = err(&minimal(r#"fields = {}"#).replace("6(1)(e)", "6(1)(a)"));
    assert_eq!(e.key.as_deref(), Some("consent"));
    let e = err(&minimal(r#"fields = {}"#).replace("recipient = 30", "recipient = 0"));
    assert_eq!(e.key.as_deref(), Some("retention_days.recipient"));
    let e = err(&minimal(r#"fields = {}"#).replace("\"cd\"", "\"prefecture\""));
    assert_eq!(e.kind, PolicyErrorKind::Syntax);
    assert!(e.reason.contains("prefecture"), "{e}");
    let e = err(&minimal(r#"fields = {}"#).replace("id = \"test-flow\"", "id = \"Test Flow\""));
    assert_eq!(e.key.as_deref(), Some("id"));
    let e = err("version = 1\n[register\n");
    assert_eq!(e.kind, PolicyErrorKind::Syntax);
    assert_eq!(e.position.map(|p| p.0), Some(2));
}

#[test]
fn load_error_names_the_file() {
    let dir = std::env::temp_dir().join(format!("passerelle-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flows.toml");
    std::fs::write(&path, minimal(r#"fields = { classes = ["sante"] }"#)).unwrap();
    let e = Policy::load(&path).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "{}:10:1: flow `test-flow`: key `fields.classes`: ",
            path.display()
        )),
        "{text}"
    );
    let e = Policy::load(dir.join("missing.toml")).unwrap_err();
    assert_eq!(e.kind, PolicyErrorKind::Io);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn any_subset() -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
    let classes = proptest::sample::subsequence(
        FieldClass::ALL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect::<Vec<_>>(),
        0..=FieldClass::ALL.len(),
    );
    let paths = proptest::sample::subsequence(
        FIELDS
            .iter()
            .map(|(p, _)| (*p).to_owned())
            .collect::<Vec<_>>(),
        0..=12,
    );
    (classes, paths)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the flow allows, projection never emits a path outside it, and never
    /// an `art9`/`art10`/`nir` path unless the flow names that class or path.
    #[test]
    fn projection_stays_inside_the_flow((classes, paths) in any_subset(), held_mask in any::<u64>()) {
        // A record holding a random part of the full fixture.
        let record = full().project_with(|p, _| {
            let i = FIELDS.iter().position(|(q, _)| *q == p).unwrap_or(0);
            held_mask & (1 << i) != 0
        }).record;
        let class_set: Vec<FieldClass> = classes.iter().filter_map(|c| FieldClass::parse(c)).collect();
        let paths: Vec<String> = paths
            .into_iter()
            .filter(|p| !class_of(p).is_some_and(|c| class_set.contains(&c)))
            .collect();
        let mut special = Vec::new();
        let named_special = |c: FieldClass| class_set.contains(&c) || paths.iter().any(|p| class_of(p) == Some(c));
        if named_special(FieldClass::Art9) { special.push(r#"art9 = "Art. 9(2)(b): test""#); }
        if named_special(FieldClass::Art10) { special.push(r#"art10 = "Art. 10: test""#); }
        if named_special(FieldClass::Nir) { special.push(r#"nir = "décret 2019-341""#); }
        let q = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let src = minimal(&format!(
            "fields = {{ classes = [{}], paths = [{}] }}\nspecial = {{ {} }}",
            q(&classes), q(&paths), special.join(", ")
        ));
        let p = Policy::from_toml_str(&src).unwrap();
        let f = p.flow("test-flow").unwrap();
        let d = p.decide(None, &cd("CD059"), &ml("59350S00"), &record);
        let Decision::Allowed { projection, dropped, .. } = d else { panic!("denied: {d:?}") };
        let kept = projection.paths();
        for path in &kept {
            prop_assert!(f.allows(path), "{} leaked", path);
            let c = class_of(path).unwrap();
            if c.is_special() {
                prop_assert!(named_special(c), "{} leaked without naming {}", path, c);
            }
        }
        // Nothing is lost silently: kept and dropped partition what the record held.
        let mut all: Vec<&str> = kept.iter().chain(dropped.iter()).copied().collect();
        all.sort_unstable();
        let mut held = record.paths();
        held.sort_unstable();
        prop_assert_eq!(all, held);
    }
}

#[test]
fn register_in_french_states_its_source_and_the_running_measures_only() {
    let p = shipped();
    let measures = vec!["Mesure vraie de la configuration".to_owned()];
    let fr = register::French {
        source: "le fichier des flux /etc/passerelle/flows.toml",
        measures: &measures,
    };
    let md = register::to_markdown_fr(&p, &fr);
    let html = register::to_html_fr(&p, &fr);
    assert!(md.contains("/etc/passerelle/flows.toml"));
    for item in [
        "Responsable du traitement",
        "Finalité",
        "Base légale",
        "Personnes concernées",
        "Catégories de données",
        "Destinataires",
        "Durées de conservation",
        "Mesures de sécurité",
    ] {
        assert_eq!(
            md.matches(&format!("**{item}**")).count(),
            p.flows().len(),
            "{item}"
        );
        assert_eq!(
            html.matches(&format!("<dt>{item}</dt>")).count(),
            p.flows().len(),
            "{item}"
        );
    }
    // The measures are the caller's, never the flows file's own claims.
    assert_eq!(
        md.matches("Mesure vraie de la configuration").count(),
        p.flows().len()
    );
    for claim in &p.file().register.security_measures {
        assert!(!md.contains(claim.as_str()), "claim from the file: {claim}");
    }
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"fr\">"));
    assert!(md.contains("aucune : indicateurs agrégés et anonymes seulement"));
    // No English label left.
    for english in ["Purpose", "Legal basis", "Recipients", "Retention"] {
        assert!(!md.contains(english), "{english}");
    }
}
