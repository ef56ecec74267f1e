//! The web application over HTTP (in process): login, sessions, CSRF, throttle,
//! search and the parcours des échanges, refusals, headers, consultations journaled.

mod common;
#[path = "../../audit/tests/tsa_world/mod.rs"]
mod tsa_world;

use std::collections::HashMap;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use common::*;
use passerelle_audit::Filter;
use tower::ServiceExt;

/// A browser without JavaScript: keeps cookies, follows nothing.
struct Client {
    app: axum::Router,
    cookies: HashMap<String, String>,
}

struct Answer {
    code: StatusCode,
    location: String,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Client {
    fn new(app: &axum::Router) -> Self {
        Self {
            app: app.clone(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        for v in resp.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (kv, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            if val.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.into(), val.into());
            }
        }
        let code = resp.status();
        let headers = resp.headers().clone();
        let location = headers
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = to_bytes(resp.into_body(), 1 << 22).await.unwrap();
        Answer {
            code,
            location,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, uri: &str) -> Answer {
        let req = Request::get(uri)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    async fn post(&mut self, uri: &str, form: &[(&str, &str)]) -> Answer {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let req = Request::post(uri)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(req).await
    }

    async fn login(&mut self, login: &str, password: &str) -> Answer {
        let form = self.get("/connexion").await;
        let csrf = csrf_of(&form.body);
        self.post(
            "/connexion",
            &[
                ("csrf", &csrf),
                ("identifiant", login),
                ("mot_de_passe", password),
            ],
        )
        .await
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 64].to_owned()
}

#[tokio::test]
async fn pages_need_a_session_and_open_routes_stay_open() {
    let f = fixture().await;
    let mut c = Client::new(&f.app);
    for uri in [
        "/",
        "/recherche",
        "/envois",
        "/exploitation",
        "/personne/abcd",
    ] {
        let a = c.get(uri).await;
        assert_eq!(
            (a.code, a.location.as_str()),
            (StatusCode::SEE_OTHER, "/connexion"),
            "{uri}"
        );
    }
    let a = c.post("/recherche", &[("mode", "nir"), ("nir", NIR)]).await;
    assert_eq!(a.location, "/connexion");
    assert_eq!(c.get("/health").await.code, StatusCode::OK);
    assert_eq!(c.get("/metrics").await.code, StatusCode::OK);
    let login = c.get("/connexion").await;
    assert_eq!(login.code, StatusCode::OK);
    assert!(login.body.contains("<html lang=\"fr\">"));
    let h = &login.headers;
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let set = h[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"),
        "{set}"
    );
}

#[tokio::test]
async fn login_logout_and_wrong_passwords_say_the_same() {
    let f = fixture().await;
    let mut c = Client::new(&f.app);
    let wrong = c.login("conseiller.ml", "pas le bon mot de passe").await;
    let unknown = c.login("personne", PASSWORD).await;
    assert_eq!(wrong.code, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.code, StatusCode::UNAUTHORIZED);
    let msg = |b: &str| {
        b[b.find("role=\"alert\"").unwrap()..]
            .split("</p>")
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        msg(&wrong.body),
        msg(&unknown.body),
        "never says which was wrong"
    );
    assert!(wrong.body.contains("Identifiant ou mot de passe incorrect"));

    let ok = c.login("conseiller.ml", PASSWORD).await;
    assert_eq!(
        (ok.code, ok.location.as_str()),
        (StatusCode::SEE_OTHER, "/")
    );
    let session = c.cookies["passerelle"].clone();
    let home = c.get("/").await;
    assert_eq!(home.code, StatusCode::OK);
    assert!(
        home.body.contains("Mission Locale de Lille"),
        "{}",
        home.body
    );
    // The session id is stored hashed only.
    let db = std::fs::read(f.dir.path().join("state.sqlite")).unwrap();
    let wal = std::fs::read(f.dir.path().join("state.sqlite-wal")).unwrap_or_default();
    let hay = [db, wal].concat();
    assert!(
        !hay.windows(64).any(|w| w == session.as_bytes()),
        "session id in clear in the store"
    );

    // Logging out needs the token; then the session is gone.
    let no = c.post("/deconnexion", &[]).await;
    assert_eq!(no.code, StatusCode::FORBIDDEN);
    let csrf = csrf_of(&home.body);
    let out = c.post("/deconnexion", &[("csrf", &csrf)]).await;
    assert_eq!(out.location, "/connexion");
    let mut old = Client::new(&f.app);
    old.cookies.insert("passerelle".into(), session);
    assert_eq!(old.get("/").await.location, "/connexion");
}

#[tokio::test]
async fn login_is_throttled_per_account_and_per_address() {
    let f = fixture().await;
    let mut c = Client::new(&f.app);
    for _ in 0..5 {
        assert_eq!(
            c.login("dpo", "mauvais mot de passe").await.code,
            StatusCode::UNAUTHORIZED
        );
    }
    // The right password no longer opens the account for the window.
    let a = c.login("dpo", PASSWORD).await;
    assert_eq!(a.code, StatusCode::TOO_MANY_REQUESTS);
    assert!(a.body.contains("Identifiant ou mot de passe incorrect"));
    // The address is throttled too (every request here comes from the same one).
    assert_eq!(
        c.login("admin", PASSWORD).await.code,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn login_form_without_its_token_is_refused() {
    let f = fixture().await;
    let mut c = Client::new(&f.app);
    let _ = c.get("/connexion").await;
    let a = c
        .post(
            "/connexion",
            &[("identifiant", "dpo"), ("mot_de_passe", PASSWORD)],
        )
        .await;
    assert_eq!(a.code, StatusCode::FORBIDDEN);
    assert!(a.body.contains("Ce formulaire a expiré"));
    assert!(!c.cookies.contains_key("passerelle"));
}

#[tokio::test]
async fn search_shows_the_parcours_of_the_organisation_and_journals_it() {
    let f = fixture().await;
    let mut c = Client::new(&f.app);
    c.login("conseiller.ml", PASSWORD).await;
    let form = c.get("/recherche").await;
    let csrf = csrf_of(&form.body);

    // Without the token: refused, journaled, nothing found.
    let no = c.post("/recherche", &[("mode", "nir"), ("nir", NIR)]).await;
    assert_eq!(no.code, StatusCode::FORBIDDEN);

    let bad = c
        .post(
            "/recherche",
            &[("csrf", &csrf), ("mode", "nir"), ("nir", "12345")],
        )
        .await;
    assert_eq!(bad.code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("Ce NIR n&#39;est pas valide"),
        "{}",
        bad.body
    );

    for form in [
        vec![("mode", "nir"), ("nir", "2 04 03 59 350 123")],
        vec![("mode", "caf"), ("caf", CAF)],
        vec![
            ("mode", "identite"),
            ("nom", "NDIAYE"),
            ("prenom", "awa"),
            ("naissance", NAISSANCE),
        ],
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let a = c.post("/recherche", &form).await;
        assert_eq!(a.code, StatusCode::SEE_OTHER, "{form:?}: {}", a.body);
        assert!(a.location.starts_with("/personne/"), "{}", a.location);
        assert!(!a.location.contains(NIR) && !a.location.contains(CAF));
        let p = c.get(&a.location).await;
        assert_eq!(p.code, StatusCode::OK);
        let b = &p.body;
        assert!(
            b.contains("Orientation BRSA") && b.contains("reçu de Conseil départemental du Nord"),
            "{b}"
        );
        assert!(
            b.contains("nom de naissance, adresse électronique, type d'orientation"),
            "{b}"
        );
        assert!(b.contains("appliqué"), "{b}");
        assert!(
            b.contains("Suivi BRSA") && b.contains("refusé : SOLIS E12: dossier inconnu"),
            "{b}"
        );
        assert!(
            !b.contains("Demande FAJ"),
            "another ML's exchange shown: {b}"
        );
        assert_eq!(p.headers[header::CACHE_CONTROL], "no-store");
    }

    let none = c
        .post(
            "/recherche",
            &[("csrf", &csrf), ("mode", "caf"), ("caf", "7654321")],
        )
        .await;
    assert!(none.body.contains("Aucune personne trouvée"));

    // Every search and view is journaled, with the account and the pseudonym only.
    let entries = f.journal.entries(&Filter::default()).await.unwrap();
    let consulted: Vec<_> = entries.iter().filter(|e| e.event == "consulted").collect();
    assert_eq!(consulted.len(), 3 + 3 + 1, "{consulted:#?}");
    assert!(consulted.iter().all(|e| e.actor == "conseiller.ml"));
    let pseudonym = entries[0].subject.clone().unwrap();
    assert_eq!(
        consulted
            .iter()
            .filter(|e| e.subject.as_deref() == Some(pseudonym.as_str()))
            .count(),
        6
    );
    assert!(
        consulted
            .iter()
            .any(|e| e.reason.as_deref() == Some("recherche par NIR"))
    );
    let denied = entries.iter().filter(|e| e.event == "denied").count();
    assert_eq!(denied, 1, "the search without its token");
    let all = serde_json::to_string(&entries).unwrap();
    for v in [NIR, CAF, "Diaye", "NDIAYE", "2004-03-12", "awa"] {
        assert!(!all.contains(v), "{v} in the journal");
    }
}

#[tokio::test]
async fn pages_of_another_organisation_or_session_are_refused() {
    let f = fixture().await;
    let mut c = Client::new(&f.app);
    c.login("conseiller.ml", PASSWORD).await;
    let a = c.get(&format!("/envois?organisation={CD}")).await;
    assert_eq!(a.code, StatusCode::FORBIDDEN);
    assert!(
        a.body
            .contains("Vous ne pouvez pas voir les envois de Conseil départemental du Nord"),
        "{}",
        a.body
    );
    assert_eq!(c.get("/exploitation").await.code, StatusCode::FORBIDDEN);

    // A person found in one session is not a page of another.
    let csrf = csrf_of(&c.get("/recherche").await.body);
    let found = c
        .post(
            "/recherche",
            &[("csrf", &csrf), ("mode", "nir"), ("nir", NIR)],
        )
        .await;
    let mut other = Client::new(&f.app);
    other.login("conseiller.autre", PASSWORD).await;
    assert_eq!(other.get(&found.location).await.code, StatusCode::NOT_FOUND);

    // The admin searches nobody; the operator sees the dashboard.
    let mut admin = Client::new(&f.app);
    admin.login("admin", PASSWORD).await;
    assert_eq!(admin.get("/recherche").await.code, StatusCode::FORBIDDEN);
    assert_eq!(admin.get("/exploitation").await.code, StatusCode::OK);
    let entries = f.journal.entries(&Filter::default()).await.unwrap();
    assert!(entries.iter().any(|e| e.event == "denied"
        && e.actor == "conseiller.ml"
        && e.reason.as_deref() == Some("page /envois de l'organisation CD059 refusée")));
}

#[tokio::test]
async fn disabled_accounts_and_idle_sessions_end() {
    let config = passerelle_server::WebConfig {
        idle_minutes: 1,
        ..Default::default()
    };
    let f = fixture_with(config).await;
    // Idle past the limit: the session ends.
    let mut idle = Client::new(&f.app);
    idle.login("dpo", PASSWORD).await;
    assert_eq!(idle.get("/").await.code, StatusCode::OK);
    let id = passerelle_server::web::auth::token_hash(&idle.cookies["passerelle"]);
    let then = chrono::Utc::now() - chrono::Duration::minutes(2);
    f.store.touch_session(&id, then).await.unwrap();
    assert_eq!(idle.get("/").await.location, "/connexion");
    assert!(f.store.session(&id).await.unwrap().is_none());

    let mut c = Client::new(&f.app);
    c.login("conseiller.ml", PASSWORD).await;
    assert_eq!(c.get("/").await.code, StatusCode::OK);
    f.store.disable("conseiller.ml").await.unwrap();
    assert_eq!(c.get("/").await.location, "/connexion");
    assert_eq!(
        c.login("conseiller.ml", PASSWORD).await.code,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn envois_of_the_organisation_with_filters() {
    let f = fixture().await;
    let mut c = Client::new(&f.app);
    c.login("conseiller.ml", PASSWORD).await;
    let all = c.get("/envois").await;
    assert_eq!(all.code, StatusCode::OK);
    let b = &all.body;
    assert!(b.contains("<h1>Mes envois</h1>"), "{b}");
    assert!(
        b.contains("Suivi BRSA") && b.contains("refusé : SOLIS E12: dossier inconnu"),
        "{b}"
    );
    assert!(b.contains("Corrigez la donnée dans votre logiciel"), "{b}");
    assert!(
        b.contains("Signalement obligation de formation") && b.contains("en attente de réponse")
    );
    assert!(
        !b.contains("Orientation BRSA</td>"),
        "received, not sent: {b}"
    );
    assert!(!b.contains("Demande FAJ</td>"), "another ML's: {b}");

    let rejected = c.get("/envois?statut=rejected").await.body;
    assert!(
        rejected.contains("Suivi BRSA</td>")
            && !rejected.contains("Signalement obligation de formation</td>")
    );
    let by_flow = c.get("/envois?flux=of-signalement").await.body;
    assert!(
        !by_flow.contains("Suivi BRSA</td>")
            && by_flow.contains("Signalement obligation de formation</td>")
    );
    let past = c.get("/envois?au=2020-01-01").await.body;
    assert!(past.contains("Aucun envoi ne correspond"), "{past}");
    let bad = c.get("/envois?du=hier").await.body;
    assert!(
        bad.contains("Une date de la période n'est pas valide"),
        "{bad}"
    );

    // The DPO names the organisation; the other ML's dead letter says what to do.
    let mut dpo = Client::new(&f.app);
    dpo.login("dpo", PASSWORD).await;
    let other = dpo
        .get(&format!("/envois?organisation={OTHER_ML}"))
        .await
        .body;
    assert!(
        other.contains("non remis après plusieurs essais : HTTP 503"),
        "{other}"
    );
    assert!(other.contains("un opérateur peut relancer"), "{other}");
}

#[tokio::test]
async fn the_dashboard_is_french_and_counts_what_awaits_an_answer() {
    let f = fixture().await;
    let mut c = Client::new(&f.app);
    c.login("operateur.cd", PASSWORD).await;
    let a = c.get("/exploitation").await;
    assert_eq!(a.code, StatusCode::OK);
    assert!(
        a.body.contains("Aucune nuit d&#39;échanges") || a.body.contains("Aucune nuit d'échanges"),
        "{}",
        a.body
    );
    assert!(a.body.contains("n'est pas une perte"), "{}", a.body);
}

#[tokio::test]
async fn the_admin_manages_accounts_and_nobody_else_does() {
    let f = fixture().await;
    let mut c = Client::new(&f.app);
    c.login("conseiller.ml", PASSWORD).await;
    assert_eq!(c.get("/admin/comptes").await.code, StatusCode::FORBIDDEN);

    let mut admin = Client::new(&f.app);
    admin.login("admin", PASSWORD).await;
    let page = admin.get("/admin/comptes").await;
    assert_eq!(page.code, StatusCode::OK);
    assert!(
        page.body.contains("<td>conseiller.ml</td>"),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    let add = |org: &'static str, pw: &'static str| {
        vec![
            ("action", "creer"),
            ("identifiant", "nouveau"),
            ("role", "conseiller"),
            ("organisation", org),
            ("mot_de_passe", pw),
        ]
    };
    let mut form = add("", PASSWORD);
    form.push(("csrf", &csrf));
    let a = admin.post("/admin/comptes", &form).await;
    assert_eq!(a.code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("rattaché à une organisation"), "{}", a.body);
    let mut form = add(ML, "court");
    form.push(("csrf", &csrf));
    assert!(
        admin
            .post("/admin/comptes", &form)
            .await
            .body
            .contains("au moins 12 caractères")
    );
    let mut form = add(ML, PASSWORD);
    assert_eq!(
        admin.post("/admin/comptes", &form).await.code,
        StatusCode::FORBIDDEN,
        "no CSRF token"
    );
    form.push(("csrf", &csrf));
    let a = admin.post("/admin/comptes", &form).await;
    assert!(a.body.contains("Le compte nouveau est créé."), "{}", a.body);
    let mut n = Client::new(&f.app);
    assert_eq!(n.login("nouveau", PASSWORD).await.location, "/");

    let a = admin
        .post(
            "/admin/comptes",
            &[
                ("csrf", &csrf),
                ("action", "desactiver"),
                ("identifiant", "nouveau"),
            ],
        )
        .await;
    assert!(
        a.body.contains("Le compte nouveau est désactivé"),
        "{}",
        a.body
    );
    assert_eq!(n.get("/").await.location, "/connexion");

    // Reset from the admin page: the account is enabled again with the new password.
    let a = admin
        .post(
            "/admin/comptes",
            &[
                ("csrf", &csrf),
                ("action", "reinitialiser"),
                ("identifiant", "nouveau"),
                ("mot_de_passe", "pivoine ardoise tramway"),
            ],
        )
        .await;
    assert!(a.body.contains("est réinitialisé"), "{}", a.body);
    let mut n = Client::new(&f.app);
    assert_eq!(
        n.login("nouveau", "pivoine ardoise tramway").await.location,
        "/"
    );

    // Each change journaled, by the admin, never a password.
    let entries = f
        .journal
        .entries(&passerelle_audit::Filter::default())
        .await
        .unwrap();
    let admin_lines: Vec<&str> = entries
        .iter()
        .filter(|e| e.actor == "admin")
        .filter_map(|e| e.reason.as_deref())
        .filter(|r| r.starts_with("administration des comptes"))
        .collect();
    assert_eq!(
        admin_lines,
        [
            "administration des comptes : compte nouveau créé (rôle conseiller, organisation 59350S00)",
            "administration des comptes : compte nouveau désactivé",
            "administration des comptes : mot de passe de nouveau réinitialisé",
        ]
    );
    for e in &entries {
        let line = format!("{e:?}");
        assert!(
            !line.contains("pivoine") && !line.contains(PASSWORD),
            "{line}"
        );
    }
}

/// Replays what it is asked to, once.
#[derive(Default)]
struct Letters(std::sync::Mutex<Vec<(String, uuid::Uuid)>>);

#[async_trait::async_trait]
impl passerelle_server::web::ReplayDesk for Letters {
    async fn replay(
        &self,
        recipient: &str,
        transfer_id: uuid::Uuid,
    ) -> Result<bool, passerelle_server::web::DeskError> {
        let mut v = self.0.lock().unwrap();
        if v.iter().any(|(_, t)| *t == transfer_id) {
            return Ok(false);
        }
        v.push((recipient.to_owned(), transfer_id));
        Ok(true)
    }
}

#[tokio::test]
async fn an_operateur_replays_a_dead_letter_from_mes_envois_journaled() {
    let letters = std::sync::Arc::new(Letters::default());
    let l = letters.clone();
    let f = fixture_made(passerelle_server::WebConfig::default(), move |w| {
        w.with_replay_desk(l)
    })
    .await;
    for (login, role) in [
        ("operateur.autre", passerelle_hub::Role::Operateur),
        ("conseiller.x", passerelle_hub::Role::Conseiller),
    ] {
        f.store
            .add_account(
                login,
                &passerelle_server::web::hash_password(PASSWORD).unwrap(),
                role,
                Some(OTHER_ML),
            )
            .await
            .unwrap();
    }
    // A conseiller sees what to do, without the button.
    let mut c = Client::new(&f.app);
    c.login("conseiller.x", PASSWORD).await;
    let page = c.get("/envois").await;
    assert!(
        page.body.contains("un opérateur peut relancer"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Relancer l'envoi"), "{}", page.body);

    let mut o = Client::new(&f.app);
    o.login("operateur.autre", PASSWORD).await;
    let page = o.get("/envois").await;
    let at = page
        .body
        .find("name=\"transfert\" value=\"")
        .expect("the replay button")
        + 24;
    let id = page.body[at..at + 36].to_owned();
    let csrf = csrf_of(&page.body);
    assert_eq!(
        o.post("/envois/relancer", &[("transfert", &id)]).await.code,
        StatusCode::FORBIDDEN,
        "no CSRF token"
    );
    let c_csrf = csrf_of(&c.get("/envois").await.body);
    assert_eq!(
        c.post("/envois/relancer", &[("csrf", &c_csrf), ("transfert", &id)])
            .await
            .code,
        StatusCode::FORBIDDEN,
        "a conseiller may not replay"
    );
    let a = o
        .post("/envois/relancer", &[("csrf", &csrf), ("transfert", &id)])
        .await;
    assert!(a.body.contains("est relancé"), "{}", a.body);
    assert_eq!(
        letters.0.lock().unwrap().as_slice(),
        [("FAJ059".to_owned(), uuid::Uuid::parse_str(&id).unwrap())]
    );
    let again = o
        .post("/envois/relancer", &[("csrf", &csrf), ("transfert", &id)])
        .await;
    assert!(again.body.contains("déjà été relancé"), "{}", again.body);

    let entries = f
        .journal
        .entries(&passerelle_audit::Filter::default())
        .await
        .unwrap();
    let replays: Vec<_> = entries
        .iter()
        .filter(|e| {
            e.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("relance de l'envoi non remis"))
        })
        .collect();
    assert_eq!(replays.len(), 1);
    assert_eq!(replays[0].actor, "operateur.autre");
    assert!(replays[0].subject.is_some(), "the person's pseudonym");
}

// ---------------------------------------------------------------- the DPO's console

fn dpo_setup(anchors: &std::path::Path) -> passerelle_server::DpoSetup {
    passerelle_server::DpoSetup {
        policy: std::sync::Arc::new(
            passerelle_policy::Policy::from_toml_str(include_str!(
                "../../../schemas/policy/flows.toml"
            ))
            .unwrap(),
        ),
        flows_source: "le fichier des flux livré".into(),
        measures: vec!["Chiffrement des données transmises.".into()],
        anchor_key: Some(passerelle_crypto::AnchorKey::generate()),
        anchor_file: Some(anchors.to_owned()),
        tsa_certificate: None,
        stamper: None,
    }
}

#[tokio::test]
async fn the_dpo_console_is_the_dpo_s_alerts_on_hours_purge_within_retention_csv_neutralised() {
    let side = tempfile::tempdir().unwrap();
    let mut config = passerelle_server::WebConfig::default();
    // The ML declares no working hour at all: any consultation of its accounts is outside.
    config.declared_hours.insert(
        ML.into(),
        passerelle_server::DeclaredHours {
            start_hour: 0,
            end_hour: 0,
            saturday: false,
            sunday: false,
        },
    );
    let f = fixture_made(config, |w| {
        w.with_dpo(dpo_setup(&side.path().join("a.jsonl")))
    })
    .await;

    // A conseiller consults (journaled with its ML), and is refused the console.
    let mut ml = Client::new(&f.app);
    ml.login("conseiller.ml", PASSWORD).await;
    let form = ml.get("/recherche").await;
    let csrf = csrf_of(&form.body);
    let found = ml
        .post(
            "/recherche",
            &[("csrf", &csrf), ("mode", "nir"), ("nir", NIR)],
        )
        .await;
    assert_eq!(found.code, StatusCode::SEE_OTHER, "{}", found.body);
    let refused = ml.get("/dpo/registre").await;
    assert_eq!(refused.code, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("réservée au délégué"));

    let mut dpo = Client::new(&f.app);
    dpo.login("dpo", PASSWORD).await;
    assert!(
        dpo.get("/")
            .await
            .body
            .contains("<a href=\"/dpo\">Ouvrir la console du DPO</a>")
    );
    let home = dpo.get("/dpo").await;
    assert_eq!(home.code, StatusCode::OK);
    assert!(home.body.contains("journal intact"), "{}", home.body);
    assert!(
        home.body
            .contains("Consultation hors des horaires déclarés")
            && home.body.contains("conseiller.ml (59350S00)"),
        "{}",
        home.body
    );
    assert_eq!(home.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");

    // The DPO's search crosses organisations: the FAJ request of another ML is listed.
    let csrf = csrf_of(&home.body);
    let found = dpo
        .post(
            "/recherche",
            &[
                ("csrf", &csrf),
                ("mode", "nir"),
                ("nir", NIR),
                ("suite", "dpo"),
                ("recue_le", "2026-11-30"),
            ],
        )
        .await;
    assert!(
        found.location.starts_with("/dpo/personne/")
            && found.location.ends_with("?recue=2026-11-30"),
        "{}",
        found.location
    );
    let report = dpo.get(&found.location).await;
    assert_eq!(report.code, StatusCode::OK);
    for want in [
        "30 novembre 2026",
        "30 décembre 2026",
        "Demande FAJ",
        "Mission Locale de Lille",
        "refusé : SOLIS E12: dossier inconnu",
        "conseiller.ml",
    ] {
        assert!(
            report.body.contains(want),
            "{want} missing:\n{}",
            report.body
        );
    }
    assert!(!report.body.contains(NOM) || report.body.contains("Personne recherchée"));

    // The register is the running flows', in French.
    let reg = dpo.get("/dpo/registre").await;
    assert!(
        reg.body.contains("le fichier des flux livré"),
        "{}",
        reg.body
    );
    assert!(reg.body.contains("Chiffrement des données transmises."));

    // Purge: inside the retention refused, a dry run removes nothing, CSRF needed.
    let page = dpo.get("/dpo/purge").await;
    let csrf = csrf_of(&page.body);
    // The console counts Paris days: from 23:00 UTC in winter, Paris is on the next day.
    let today = passerelle_server::Timezone::EuropeParis
        .to_local(chrono::Utc::now())
        .date()
        .to_string();
    let inside = dpo
        .post(
            "/dpo/purge",
            &[
                ("csrf", &csrf),
                ("action", "purger"),
                ("avant", &today),
                ("confirmation", "oui"),
            ],
        )
        .await;
    assert_eq!(inside.code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(inside.body.contains("dans la durée de conservation"));
    let no_token = dpo
        .post(
            "/dpo/purge",
            &[("action", "apercu"), ("avant", "2000-01-01")],
        )
        .await;
    assert_eq!(no_token.code, StatusCode::FORBIDDEN);
    let dry = dpo
        .post(
            "/dpo/purge",
            &[
                ("csrf", &csrf),
                ("action", "apercu"),
                ("avant", "2000-01-01"),
            ],
        )
        .await;
    assert!(dry.body.contains("Aperçu : 0 entrée(s)"), "{}", dry.body);
    let unconfirmed = dpo
        .post(
            "/dpo/purge",
            &[
                ("csrf", &csrf),
                ("action", "purger"),
                ("avant", "2000-01-01"),
            ],
        )
        .await;
    assert!(unconfirmed.body.contains("Rien n'a encore été supprimé"));

    // The export: `;`, BOM, formulas neutralised.
    let mut e = passerelle_audit::NewEntry::new(
        passerelle_audit::Event::Rejected,
        "system",
        passerelle_audit::Outcome::Refused,
    );
    e.reason = Some("=HYPERLINK(\"http://x\";\"y\")".into());
    f.journal.append(e).await.unwrap();
    let csv = dpo
        .get(&format!("/dpo/exports?du={today}&au={today}&telecharger=1"))
        .await;
    assert!(csv.body.starts_with('\u{feff}'));
    assert!(
        csv.body
            .contains("\"'=HYPERLINK(\"\"http://x\"\";\"\"y\"\")\""),
        "{}",
        csv.body
    );
    assert!(!csv.body.contains(NIR));

    // Each raised alert is journaled once, however often the console is opened.
    dpo.get("/dpo").await;
    let entries = f.journal.entries(&Filter::default()).await.unwrap();
    let alerted: Vec<_> = entries.iter().filter(|e| e.event == "alerted").collect();
    assert_eq!(alerted.len(), 1, "{alerted:?}");
    assert!(
        alerted[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("outside_hours:")
    );
    assert!(entries.iter().any(|e| e.event == "denied"
        && e.actor == "conseiller.ml"
        && e.reason.as_deref() == Some("page /dpo/registre refusée au rôle conseiller")));
}

#[tokio::test]
async fn the_console_checks_each_anchor_s_time_stamp_token_against_the_tsa_certificate() {
    let side = tempfile::tempdir().unwrap();
    let tsa = std::sync::Arc::new(tsa_world::Tsa::new(&side.path().join("tsa"), false));
    let cert = passerelle_audit::TsaCertificate::from_pem(&tsa.cert_pem).unwrap();
    let anchors = side.path().join("anchors.jsonl");
    let mut setup = dpo_setup(&anchors);
    let key = setup.anchor_key.clone().unwrap();
    setup.tsa_certificate = Some(cert.clone());
    setup.stamper = Some(std::sync::Arc::new(TestStamper(tsa.clone())));
    let f = fixture_made(passerelle_server::WebConfig::default(), |w| {
        w.with_dpo(setup)
    })
    .await;
    let stamp = async |s: Vec<u8>| {
        let resp = tsa.reply(&passerelle_audit::tsa::request(&s, 5));
        passerelle_audit::tsa::token_of_response(&resp, &s, 5)
            .map(|t| Some(hex::encode(t)))
            .map_err(|e| e.to_string())
    };
    let first = f.journal.anchor_with(&key, stamp).await.unwrap().unwrap();
    f.journal
        .append(passerelle_audit::NewEntry::new(
            passerelle_audit::Event::Consulted,
            "dpo",
            passerelle_audit::Outcome::Ok,
        ))
        .await
        .unwrap();
    let second = f.journal.anchor_with(&key, stamp).await.unwrap().unwrap();

    let mut dpo = Client::new(&f.app);
    dpo.login("dpo", PASSWORD).await;
    let home = dpo.get("/dpo").await;
    assert!(home.body.contains("journal intact"), "{}", home.body);
    assert!(home.body.contains("dont 2 horodatée(s)"), "{}", home.body);

    // A purge from the console anchors the head after it, stamped by the authority.
    let page = dpo.get("/dpo/purge").await;
    let csrf = csrf_of(&page.body);
    let done = dpo
        .post(
            "/dpo/purge",
            &[
                ("csrf", &csrf),
                ("action", "purger"),
                ("avant", "2000-01-01"),
                ("confirmation", "oui"),
            ],
        )
        .await;
    assert!(
        done.body.contains("ont été supprimées par dpo"),
        "{}",
        done.body
    );
    let anchored = f.journal.anchors().await.unwrap();
    let t = passerelle_audit::anchor::check_timestamps(&anchored, &cert);
    assert_eq!(
        (t.good, t.without, t.problems.len()),
        (3, 0, 0),
        "{anchored:?}"
    );
    assert_eq!(
        passerelle_audit::anchor::read_file(&anchors).unwrap().len(),
        1,
        "the purge's anchor is kept in the anchor file too"
    );

    // The copy kept outside the database: the first anchor with the second's token.
    let mut moved = first.clone();
    moved.timestamp = second.timestamp.clone();
    passerelle_audit::anchor::append_file(&anchors, &[moved]).unwrap();
    let home = dpo.get("/dpo").await;
    assert!(
        home.body.contains("journal altéré") && home.body.contains("another statement"),
        "{}",
        home.body
    );
    assert!(home.body.contains("Échec de la vérification du journal"));
}

/// The test TSA as the console's stamper (the cli's HTTP client does the same over HTTP).
struct TestStamper(std::sync::Arc<tsa_world::Tsa>);

#[async_trait::async_trait]
impl passerelle_server::Stamper for TestStamper {
    async fn stamp(&self, statement: &[u8]) -> Result<String, String> {
        let resp = self.0.reply(&passerelle_audit::tsa::request(statement, 9));
        passerelle_audit::tsa::token_of_response(&resp, statement, 9)
            .map(hex::encode)
            .map_err(|e| e.to_string())
    }
}
