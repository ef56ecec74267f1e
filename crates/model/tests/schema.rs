//! `schemas/jeune.schema.json` against the Rust types: generated records serialise to
//! JSON that the schema accepts and that reads back to the same record, so the two
//! cannot drift apart; the schema also refuses what the contract refuses.

use passerelle_model::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use serde_json::{Value, json};

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/jeune.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("schemas/jeune.schema.json is readable");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema compiles")
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

// ----- strategies: each builds a valid value through the model's own parsers -----

fn text() -> impl Strategy<Value = String> {
    "[A-Za-zÀÂÇÉÈÊËÎÏÔÙÛÜàâçéèêëîïôùûüœŒ'’ -]{1,24}".prop_filter_map("blank", |s| clean_text(&s))
}

fn date() -> impl Strategy<Value = Date> {
    (1950i32..2030, 1u32..=12, 1u32..=31)
        .prop_filter_map("no such day", |(y, m, d)| Date::from_ymd(y, m, d).ok())
}

fn digits(n: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9]{{{n}}}")).expect("regex")
}

fn nir() -> impl Strategy<Value = Nir> {
    (
        prop::sample::select(vec!['1', '2', '7', '8']),
        digits(4),
        prop::sample::select(vec!["01", "13", "59", "75", "2A", "2B", "97"]),
        digits(6),
    )
        .prop_map(|(first, ym, dept, rest)| {
            Nir::parse(&format!("{first}{ym}{dept}{rest}")).expect("13 characters get a key")
        })
}

fn telephone() -> impl Strategy<Value = Telephone> {
    (1u8..=9, digits(8)).prop_map(|(d, rest)| Telephone::parse(&format!("0{d}{rest}")).unwrap())
}

fn email() -> impl Strategy<Value = Email> {
    (
        "[a-z][a-z0-9._-]{0,10}[a-z0-9]",
        "[a-z]{2,10}",
        "(fr|org|com)",
    )
        .prop_filter_map("shape", |(l, d, t)| {
            Email::parse(&format!("{l}@{d}.{t}")).ok()
        })
}

fn insee() -> impl Strategy<Value = CodeInsee> {
    (
        prop::sample::select(vec!["59", "75", "2A", "2B", "13"]),
        digits(3),
    )
        .prop_map(|(d, c)| CodeInsee::parse(&format!("{d}{c}")).unwrap())
}

fn structure() -> impl Strategy<Value = StructureCode> {
    (digits(5), digits(2)).prop_map(|(c, n)| StructureCode::parse(&format!("{c}S{n}")).unwrap())
}

fn select<T: Clone + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(all.to_vec())
}

fn personne() -> impl Strategy<Value = Personne> {
    (of(text()), of(email()))
        .prop_filter("not empty", |(n, e)| n.is_some() || e.is_some())
        .prop_map(|(nom, email)| Personne { nom, email })
}

fn source() -> impl Strategy<Value = Source> {
    (
        select(SourceSystem::ALL),
        "[A-Z0-9]{3,8}",
        "[A-Z0-9/-]{1,20}",
    )
        .prop_map(|(system, org, id)| Source {
            system,
            organisation: org,
            record_id: RecordId::parse(&id).unwrap(),
        })
}

fn identifiants() -> impl Strategy<Value = Identifiants> {
    (
        of(nir()),
        of(digits(6).prop_map(|d| ImiloDossier::parse(&d).unwrap())),
        of(prop_oneof![
            (select(CafOrganisme::ALL), digits(7)).prop_map(|(organisme, n)| Caf {
                organisme,
                numero_allocataire: NumeroAllocataire::parse(&n).unwrap(),
            }),
            // MSA matricules are kept whole (cnaf.md).
            digits(15).prop_map(|n| Caf {
                organisme: CafOrganisme::Msa,
                numero_allocataire: NumeroAllocataire::parse_for(CafOrganisme::Msa, &n).unwrap(),
            }),
        ]),
        of((10usize..=11)
            .prop_flat_map(digits)
            .prop_map(|d| NumeroDemandeRsa::parse(&d).unwrap())),
        of((digits(7), "[A-Z]")
            .prop_map(|(d, l)| FranceTravailIde::parse(&format!("{d}{l}")).unwrap())),
        of(digits(11).prop_map(|d| FranceTravailId::parse(&d).unwrap())),
        of("[0-9]{10}[A-Z]".prop_map(|s| Ine::parse(&s).unwrap())),
        of("IND[0-9]{7}".prop_map(|s| SolisId::parse(&s).unwrap())),
    )
        .prop_map(
            |(
                nir,
                imilo_dossier,
                caf,
                numero_demande_rsa,
                france_travail_ide,
                france_travail_id,
                ine,
                solis,
            )| {
                Identifiants {
                    nir,
                    imilo_dossier,
                    caf,
                    numero_demande_rsa,
                    france_travail_ide,
                    france_travail_id,
                    ine,
                    solis,
                }
            },
        )
}

fn etat_civil() -> impl Strategy<Value = EtatCivil> {
    (
        of(select(Civilite::ALL)),
        of(text()),
        of(text()),
        vec(text(), 0..3),
        of(date()),
        of(insee()),
    )
        .prop_map(
            |(civilite, nom_naissance, nom_usage, prenoms, date_naissance, commune)| EtatCivil {
                civilite,
                nom_naissance,
                nom_usage,
                prenoms,
                date_naissance,
                commune_naissance_insee: commune,
            },
        )
}

fn contact() -> impl Strategy<Value = Contact> {
    let adresse = (
        of(digits(2)),
        of(text()),
        of(text()),
        of(digits(5)),
        of(text()),
        of(insee()),
    )
        .prop_map(
            |(numero, voie, complement, cp, commune, code_insee)| Adresse {
                numero,
                voie,
                complement,
                code_postal: cp.map(|c| CodePostal::parse(&c).unwrap()),
                commune,
                code_insee,
            },
        )
        .prop_filter("not empty", |a| !a.is_empty());
    (
        of(adresse),
        vec(telephone(), 0..3),
        of(email()),
        of(any::<bool>()),
    )
        .prop_map(|(adresse, telephones, email, sans_domicile_fixe)| Contact {
            adresse,
            telephones,
            email,
            sans_domicile_fixe,
        })
}

fn rsa() -> impl Strategy<Value = Rsa> {
    (
        of(select(RsaRole::ALL)),
        of(select(EtatDroit::ALL)),
        of(any::<bool>()),
        of(any::<bool>()),
        of(date()),
        of("[A-Z0-9]{2,3}"),
        of("[A-Z0-9]{2,3}"),
        of(date()),
    )
        .prop_map(
            |(role, etat_droit, sdd, entrant, ouverture, susp, clot, date_cloture)| Rsa {
                role,
                etat_droit,
                soumis_droits_devoirs: sdd,
                entrant_droits_devoirs: entrant,
                date_ouverture: ouverture,
                motif_suspension: susp,
                motif_cloture: clot,
                date_cloture,
            },
        )
}

fn orientation() -> impl Strategy<Value = Orientation> {
    (
        of(select(OrientationType::ALL)),
        of("[A-Z_]{2,10}"),
        of(date()),
        of((select(OrganismeType::ALL), of("[0-9A-Z]{3,8}"))
            .prop_map(|(kind, code)| Organisme { kind, code })),
        of(personne()),
    )
        .prop_map(
            |(kind, type_source, date, organisme, referent)| Orientation {
                kind,
                type_source,
                date,
                organisme,
                referent,
            },
        )
        .prop_filter("not empty", |o| *o != Orientation::default())
}

fn accompagnement() -> impl Strategy<Value = Accompagnement> {
    (
        of(select(Dispositif::ALL)),
        of(date()),
        of(date()),
        of(date()),
        of(structure()),
        of(personne()),
    )
        .prop_map(
            |(dispositif, debut, prevue, reelle, structure, conseiller)| Accompagnement {
                dispositif,
                dispositif_source: None,
                date_debut: debut,
                date_fin_prevue: prevue,
                date_fin_reelle: reelle,
                structure,
                conseiller,
            },
        )
        .prop_filter("not empty", |a| *a != Accompagnement::default())
}

fn situation() -> impl Strategy<Value = Situation> {
    (
        select(SituationCategorie::ALL),
        of(text()),
        of(select(SituationEtat::ALL)),
        of(date()),
        of(date()),
        of("[A-N][0-9]{4}"),
    )
        .prop_map(
            |(categorie, categorie_source, etat, date_debut, date_fin, code_rome)| Situation {
                categorie,
                categorie_source,
                etat,
                date_debut,
                date_fin,
                code_rome,
            },
        )
}

fn faj() -> impl Strategy<Value = Faj> {
    let aide = (
        select(FajAideType::ALL),
        of(0u64..200_000),
        of(0u64..200_000),
    )
        .prop_map(|(kind, montant_demande, montant_accorde)| FajAide {
            kind,
            montant_demande,
            montant_accorde,
        });
    (
        of("FAJ-059-2026-[0-9]{6}"),
        of(date()),
        vec(aide, 0..3),
        of(select(FajStatut::ALL)),
        of(date()),
        of(text()),
        of(text()),
        of(any::<bool>()),
    )
        .prop_map(
            |(id, date_depot, aides, statut, date_commission, motif, projet, derogation)| Faj {
                id,
                date_depot,
                aides,
                statut,
                date_commission,
                motif,
                projet_insertion: projet,
                derogation_mineur: derogation,
            },
        )
        .prop_filter("not empty", |f| *f != Faj::default())
}

fn jeune() -> impl Strategy<Value = Jeune> {
    let part1 = (
        of("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
        vec(source(), 0..3),
        identifiants(),
        etat_civil(),
        contact(),
        vec(
            (
                of(text()),
                of(text()),
                of(text()),
                of(telephone()),
                of(email()),
            )
                .prop_map(|(nom, prenom, lien, telephone, email)| RepresentantLegal {
                    nom,
                    prenom,
                    lien,
                    telephone,
                    email,
                })
                .prop_filter("not empty", |r| *r != RepresentantLegal::default()),
            0..2,
        ),
        rsa(),
    );
    let part2 = (
        of(orientation()),
        of(accompagnement()),
        vec(situation(), 0..3),
        of((
            select(Niveau::ALL),
            of("[A-Z0-9]{2,4}"),
            of(select(SourceSystem::ALL)),
        )
            .prop_map(|(niveau, code_source, systeme_source)| NiveauFormation {
                niveau,
                code_source,
                systeme_source,
            })),
        vec(faj(), 0..2),
        of((
            of(select(AseStatut::ALL)),
            of(date()),
            of(any::<bool>()),
            of(personne()),
        )
            .prop_map(|(statut, date_majorite, mna, referent)| Ase {
                statut,
                date_majorite,
                mna,
                referent,
            })
            .prop_filter("not empty", |a| *a != Ase::default())),
        of((
            of(select(ObligationFormationStatut::ALL)),
            of(date()),
            of(text()),
            of(text()),
        )
            .prop_map(
                |(statut, date_signalement, motif, suite)| ObligationFormation {
                    statut,
                    date_signalement,
                    motif,
                    suite,
                },
            )
            .prop_filter("not empty", |o| *o != ObligationFormation::default())),
        (
            of(any::<bool>()),
            vec(text(), 0..2),
            vec(text(), 0..2),
            of(text()),
        )
            .prop_map(
                |(rqth, freins_sante, commentaires, situation_penitentiaire)| Sensible {
                    rqth,
                    freins_sante,
                    commentaires,
                    situation_penitentiaire,
                },
            ),
    );
    (part1, part2).prop_map(
        |(
            (hub_id, sources, identifiants, etat_civil, contact, representants_legaux, rsa),
            (
                orientation,
                accompagnement,
                situations,
                niveau_formation,
                faj,
                ase,
                obligation_formation,
                sensible,
            ),
        )| Jeune {
            schema: SchemaId,
            hub_id,
            sources,
            identifiants,
            etat_civil,
            contact,
            representants_legaux,
            rsa,
            orientation,
            accompagnement,
            situations,
            niveau_formation,
            faj,
            ase,
            obligation_formation,
            sensible,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn generated_records_match_the_schema_and_round_trip(record in jeune()) {
        let json = serde_json::to_value(&record).unwrap();
        let errs = errors(&validator(), &json);
        prop_assert!(errs.is_empty(), "schema refuses a valid record: {errs:?}");
        let back: Jeune = serde_json::from_value(json).unwrap();
        prop_assert_eq!(back, record);
    }

    /// The typed paths and projection say what the JSON form says, record for record.
    #[test]
    fn typed_projection_is_the_json_one(record in jeune(), keep in vec(select(FieldClass::ALL), 0..5)) {
        prop_assert_eq!(record.paths(), record.paths_by_json());
        let allowed = |_: &str, c: FieldClass| keep.contains(&c);
        let typed = record.project_with(allowed);
        let json = record.project_by_json(allowed);
        prop_assert_eq!(&typed.dropped, &json.dropped);
        prop_assert_eq!(typed.record.to_json_line(), json.record.to_json_line());
    }

    #[test]
    fn projections_stay_valid(record in jeune(), keep in vec(select(FieldClass::ALL), 0..5)) {
        let p = record.project(&[], &keep);
        let json = serde_json::to_value(&p.record).unwrap();
        prop_assert!(errors(&validator(), &json).is_empty());
        for path in p.record.paths() {
            let class = class_of(path).unwrap();
            prop_assert!(path == "schema" || keep.contains(&class), "{path} kept outside {keep:?}");
        }
    }
}

#[test]
fn every_field_path_is_in_the_schema() {
    let schema = schema();
    for (path, _) in FIELDS {
        let mut node = &schema;
        for key in path.replace("[]", "").split('.') {
            let props = node
                .get("properties")
                .unwrap_or_else(|| panic!("{path}: no properties above {key}"));
            node = props
                .get(key)
                .unwrap_or_else(|| panic!("{path}: {key} missing from the schema"));
            if let Some(r) = node.get("$ref").and_then(Value::as_str) {
                let name = r.trim_start_matches("#/$defs/");
                node = &schema["$defs"][name];
            }
            if node.get("type") == Some(&json!("array")) {
                node = &node["items"];
            }
        }
    }
}

#[test]
fn the_schema_refuses_what_the_contract_refuses() {
    let v = validator();
    let ok = json!({"schema": "passerelle.jeune/1", "etat_civil": {"nom_naissance": "Lefèvre"}});
    assert!(errors(&v, &ok).is_empty());
    for bad in [
        json!({}),
        json!({"schema": "passerelle.jeune/2"}),
        json!({"schema": "passerelle.jeune/1", "nom": "x"}),
        json!({"schema": "passerelle.jeune/1", "etat_civil": {"nom_naissance": null}}),
        json!({"schema": "passerelle.jeune/1", "etat_civil": {"nom_naissance": ""}}),
        json!({"schema": "passerelle.jeune/1", "etat_civil": {"nom_naissance": " Lefèvre"}}),
        json!({"schema": "passerelle.jeune/1", "etat_civil": {}}),
        json!({"schema": "passerelle.jeune/1", "etat_civil": {"date_naissance": "12/03/2004"}}),
        json!({"schema": "passerelle.jeune/1", "identifiants": {"nir": "2040359350123"}}),
        json!({"schema": "passerelle.jeune/1", "contact": {"telephones": ["06 12 34 56 78"]}}),
        json!({"schema": "passerelle.jeune/1", "contact": {"email": "Lea@Example.org"}}),
        json!({"schema": "passerelle.jeune/1", "rsa": {"etat_droit": 2}}),
        json!({"schema": "passerelle.jeune/1", "identifiants": {"caf": {"organisme": "CAF", "numero_allocataire": "922016057501584"}}}),
        json!({"schema": "passerelle.jeune/1", "identifiants": {"numero_demande_rsa": "012345678901"}}),
        json!({"schema": "passerelle.jeune/1", "orientation": {"type": "SOCIO_PRO"}}),
        json!({"schema": "passerelle.jeune/1", "faj": [{"aides": [{"type": "permis", "montant_demande": 12.5}]}]}),
        json!({"schema": "passerelle.jeune/1", "situations": []}),
        json!({"schema": "passerelle.jeune/1", "faj": [{"derogation_mineur": "oui"}]}),
        json!({"schema": "passerelle.jeune/1", "faj": [{"projet_insertion": ""}]}),
    ] {
        assert!(!errors(&v, &bad).is_empty(), "the schema accepts {bad}");
    }
}

#[test]
fn caf_number_length_depends_on_the_organisme() {
    let msa: Caf = serde_json::from_value(
        json!({"organisme": "MSA", "numero_allocataire": "922016057501584"}),
    )
    .unwrap();
    assert_eq!(msa.numero_allocataire.as_str(), "922016057501584");
    let err = serde_json::from_value::<Caf>(
        json!({"organisme": "CAF", "numero_allocataire": "922016057501584"}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("must be 7 digits"), "{err}");
    assert!(
        serde_json::from_value::<Caf>(
            json!({"organisme": "CAF", "numero_allocataire": "1234567", "x": 1})
        )
        .is_err()
    );
}
