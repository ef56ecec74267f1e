//! What `passerelle sync --flow` reads: the sources that feed the named flow, each whole
//! (for every flow it feeds), since a source acknowledges what it served.

use passerelle_runtime::wiring::{self, Hub};
use passerelle_world::{World, WorldOptions};

fn plan_of(night: &passerelle_hub::Night) -> Vec<(String, Vec<String>)> {
    night
        .sources
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.flows.iter().map(|f| f.flow.clone()).collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_filter_picks_sources_and_reads_them_whole() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(50, 5))
        .await
        .unwrap();
    let hub = Hub::open(&world.config, &dir.path().join("hub"))
        .await
        .unwrap();

    let ase = wiring::plan(&world.config, &hub, &["ase-majorite".into()])
        .await
        .unwrap();
    assert_eq!(
        plan_of(&ase),
        [(
            "solis:CD059".to_owned(),
            vec!["brsa-orientation".to_owned(), "ase-majorite".to_owned()]
        )]
    );

    let suivi = wiring::plan(&world.config, &hub, &["brsa-suivi".into()])
        .await
        .unwrap();
    let names: Vec<String> = plan_of(&suivi).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["imilo"]);

    let all = wiring::plan(&world.config, &hub, &[]).await.unwrap();
    let names: Vec<String> = plan_of(&all).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["solis:CD059", "cnaf:CD059", "box:CD059:59350S00", "imilo"]
    );
    // FAJ decisions answer the requests delivered during the night: read after them,
    // with their own cursor.
    let replies: Vec<&str> = all.replies.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(replies, ["faj:FAJ059"]);
    assert!(all.replies[0].cursor.is_some() && all.sources[3].cursor.is_some());
    assert!(ase.replies.is_empty());
    // The CDs and MLs are delivered whatever the filter; the FAJ platform only with its
    // flow (its queue waits).
    let recipients = |p: &passerelle_hub::Night| -> Vec<String> {
        p.sinks.iter().map(|s| s.recipient.clone()).collect()
    };
    let mut expected = recipients(&all);
    expected.retain(|r| r != "FAJ059");
    assert_eq!(recipients(&ase), expected);

    // After the first night's full load, the nights read I-MILO's event queue until
    // the next reconciliation is due.
    let now = chrono::Utc::now();
    hub.engine
        .state()
        .set_cursor(
            "imilo:dossiers",
            &now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
        .await
        .unwrap();
    let mut weekly = world.config.clone();
    weekly.imilo.as_mut().unwrap().reconcile_every_days = 7;
    let next = wiring::plan(&weekly, &hub, &["brsa-suivi".into()])
        .await
        .unwrap();
    let names: Vec<String> = plan_of(&next).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["imilo:events"]);
    assert!(
        next.sources[0].cursor.is_none(),
        "the reconciliation's cursor stays"
    );
    assert!(wiring::reconciliation_due(None, 7, now));
    assert!(!wiring::reconciliation_due(
        Some("2026-12-01T00:00:00Z"),
        7,
        "2026-12-07T23:00:00Z".parse().unwrap()
    ));
    assert!(wiring::reconciliation_due(
        Some("2026-12-01T00:00:00Z"),
        7,
        "2026-12-08T00:00:00Z".parse().unwrap()
    ));
    assert!(wiring::reconciliation_due(
        Some("2026-12-01T00:00:00Z"),
        0,
        "2026-12-01T01:00:00Z".parse().unwrap()
    ));
    assert!(wiring::reconciliation_due(Some("not a date"), 7, now));
    world.stop().await;
}

/// Which source feeds which flow is the flows file's `sources`: a flows file in which
/// no source feeds `ase-majorite` plans the SOLIS exports for `brsa-orientation` only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flows_file_says_which_source_feeds_which_flow() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(dir.path(), &WorldOptions::new(50, 5))
        .await
        .unwrap();
    let shipped = wiring::SHIPPED_FLOWS;
    let fed = "from = { kinds = [\"cd\"], systems = [\"solis\"] }\nsources = [\"solis\"]\n";
    assert_eq!(
        shipped.matches(fed).count(),
        1,
        "ase-majorite's lines changed"
    );
    let flows = dir.path().join("flows.toml");
    std::fs::write(
        &flows,
        shipped.replace(fed, "from = { kinds = [\"cd\"], systems = [\"solis\"] }\n"),
    )
    .unwrap();
    let mut config = world.config.clone();
    config.flows = Some(flows);
    let hub = Hub::open(&config, &dir.path().join("hub")).await.unwrap();

    let all = wiring::plan(&config, &hub, &[]).await.unwrap();
    let solis = plan_of(&all)
        .into_iter()
        .find(|(n, _)| n == "solis:CD059")
        .expect("the SOLIS exports are planned");
    assert_eq!(solis.1, ["brsa-orientation"]);
    // Filtered on a flow nothing feeds, the night reads no source.
    let ase = wiring::plan(&config, &hub, &["ase-majorite".into()])
        .await
        .unwrap();
    assert!(plan_of(&ase).is_empty(), "{:?}", plan_of(&ase));
    hub.close().await.unwrap();
    world.stop().await;
}
