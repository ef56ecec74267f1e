//! A simulated world: every peer simulator started in one process (I-MILO and a FAJ
//! platform on loopback ports, SOLIS, CNAF and a departmental box as folders), filled
//! from a seed, and the `passerelle.toml` that points the hub at them. `demo`, the
//! end-to-end tests and the night benchmark run the real night against it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{Local, NaiveDate};
use passerelle_box::BoxConfig;
use passerelle_box::folder::LocalFolder;
use passerelle_cnaf::CnafConfig;
use passerelle_faj::{FajConfig, SecretSource};
use passerelle_hub::routes::{TerritoireMl, Territoires};
use passerelle_imilo::{ImiloConfig, KeySource, KeySources};
use passerelle_model::Departement;
use passerelle_solis::{ExportFlux, SolisPeerConfig};

use passerelle_runtime::config::{DepartementSection, HubConfig, ImiloSection};

/// How big a world and how faulty.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    pub seed: u64,
    /// I-MILO dossiers.
    pub imilo: u64,
    /// Individus of the SOLIS BRSA export (the ASE export holds a tenth as many).
    pub solis: u64,
    /// CNAF households (about 1.5 records each).
    pub cnaf_foyers: u64,
    /// Rows of the box's BRSA list.
    pub box_rows: u64,
    /// I-MILO faults (5xx, 429, latency), as its simulator takes them.
    pub imilo_faults: passerelle_imilo::sim::Faults,
    /// Orientations spread over the département's Missions Locales as a real
    /// département's are (SOLIS names each, CNAF places find theirs by postal code),
    /// rather than all to the first one.
    pub spread: bool,
}

impl WorldOptions {
    /// `jeunes` young people in each simulated system (half as many CNAF households,
    /// a quarter as many box rows).
    pub fn new(jeunes: u64, seed: u64) -> Self {
        Self {
            seed,
            imilo: jeunes.max(1),
            solis: jeunes.max(1),
            cnaf_foyers: (jeunes / 2).max(1),
            box_rows: (jeunes / 4).max(1),
            imilo_faults: Default::default(),
            spread: false,
        }
    }
}

/// The running simulators and the configuration that reaches them.
pub struct World {
    pub config: HubConfig,
    pub dir: PathBuf,
    pub imilo_addr: SocketAddr,
    pub faj_addr: SocketAddr,
    imilo: Option<passerelle_imilo::sim::SimHandle>,
    faj: Option<passerelle_faj::sim::SimHandle>,
    /// What each simulator wrote, for the summary.
    pub written: Vec<String>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("dir", &self.dir)
            .field("imilo", &self.imilo_addr)
            .field("faj", &self.faj_addr)
            .finish_non_exhaustive()
    }
}

/// The box partner and the département the folder simulators play.
pub const DEPT: &str = "059";
pub const BOX_PARTENAIRE: &str = "59350S00";
pub const FAJ_PLATFORM: &str = "FAJ059";

impl World {
    /// Starts every simulator under `dir` (peer folders in `dir/peers`, secrets in
    /// `dir/secrets`).
    pub async fn start(dir: &Path, opts: &WorldOptions) -> Result<Self> {
        let peers = dir.join("peers");
        let secrets = dir.join("secrets");
        std::fs::create_dir_all(&secrets)?;
        let today: NaiveDate = Local::now().date_naive();
        let dept = Departement::parse(DEPT).map_err(|e| anyhow::anyhow!("{}", e.reason))?;
        let mut written = Vec::new();

        // I-MILO.
        let (imilo_addr, imilo) = passerelle_imilo::sim::spawn(passerelle_imilo::sim::SimConfig {
            jeunes: opts.imilo,
            seed: opts.seed,
            faults: opts.imilo_faults.clone(),
            ..Default::default()
        })
        .await
        .context("cannot start the I-MILO simulator")?;
        // The simulated I-MILO remembers, across demo runs on one folder, the dossiers it
        // opened for accepted orientations (what `brsa-suivi` then reports on).
        imilo
            .restore(&dir.join("imilo-sim.json"))
            .context("cannot restore the I-MILO simulator state")?;
        let structures: Vec<String> = passerelle_imilo::sim::Population::new(opts.seed, opts.imilo)
            .structures()
            .iter()
            .map(|s| s.code.clone())
            .collect();
        written.push(format!(
            "I-MILO on http://{imilo_addr}: {} dossiers in {} structures",
            opts.imilo,
            structures.len()
        ));
        let key = |family: &str| -> Result<KeySource> {
            let path = secrets.join(format!("imilo-{family}.key"));
            write_private(&path, format!("sim-{family}").as_bytes())?;
            Ok(KeySource::File(path))
        };
        let mut imilo_client = ImiloConfig::new(
            format!("http://{imilo_addr}"),
            KeySources {
                dossiers: key("dossiers")?,
                events: key("events")?,
                situations: key("situations")?,
                partenaires: key("partenaires")?,
            },
        );
        // The local simulator enforces no limit unless asked to: the client's limiter
        // is off so that a night does not crawl at the production 20 requests/s.
        imilo_client.rate_limit_per_s = 0.0;
        imilo_client.concurrency = 8;

        // The département's MLs, in the order the I-MILO population has them.
        let dept_mls: Vec<String> = structures
            .iter()
            .filter(|s| passerelle_policy::departement_of(s).as_deref() == Some(&DEPT[1..]))
            .cloned()
            .collect();

        // SOLIS: a BRSA export and an ASE export; imports and ACKs in one folder.
        let exports = peers.join("solis/exports");
        let imports = peers.join("solis/imports");
        std::fs::create_dir_all(&exports)?;
        std::fs::create_dir_all(&imports)?;
        for (flux, n) in [
            (ExportFlux::Brsa, opts.solis),
            (ExportFlux::Ase, (opts.solis / 10).max(1)),
        ] {
            let mut o = passerelle_solis::sim::SimOptions::new(n, opts.seed);
            o.flux = flux;
            o.departement = dept.clone();
            o.date = today;
            if opts.spread {
                o.mls = dept_mls.clone();
            }
            let s = passerelle_solis::sim::write_export(&exports, &o)
                .context("cannot write a SOLIS export")?;
            written.push(format!("SOLIS {}: {} individus", flux.as_str(), s.written));
        }

        // CNAF.
        let cnaf_dir = peers.join("cnaf");
        std::fs::create_dir_all(&cnaf_dir)?;
        let mut o = passerelle_cnaf::sim::SimOptions::new(opts.cnaf_foyers, opts.seed);
        o.departement = dept.clone();
        o.date = today;
        let s =
            passerelle_cnaf::sim::write_flux(&cnaf_dir, &o).context("cannot write a CNAF file")?;
        written.push(format!("CNAF: {} foyers, {} records", s.foyers, s.records));

        // The departmental box, played by the CD for the ML.
        let box_root = peers.join("box");
        std::fs::create_dir_all(&box_root)?;
        let folder = LocalFolder::new(&box_root);
        let played = passerelle_box::sim::Departement {
            folder: &folder,
            config: passerelle_box::sim::SimConfig {
                partenaire: BOX_PARTENAIRE.into(),
                dept: DEPT.into(),
                emetteur: format!("CD{DEPT}"),
                seed: opts.seed,
                jeunes: opts.box_rows as usize,
                faults: Vec::new(),
            },
        }
        .play()
        .context("cannot fill the box")?;
        written.push(format!("box: {} files dropped", played.len()));

        // A FAJ platform.
        let (faj_addr, faj) = passerelle_faj::sim::spawn(passerelle_faj::sim::SimConfig {
            seed: opts.seed,
            departement: DEPT.into(),
            faults: passerelle_faj::sim::Faults {
                commission_delay_ms: 200,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .context("cannot start the FAJ simulator")?;
        let faj_secret = secrets.join("faj-client.secret");
        write_private(&faj_secret, b"sim-secret")?;
        let faj_webhook = secrets.join("faj-webhook.secret");
        write_private(&faj_webhook, b"sim-webhook")?;
        let mut faj_config = FajConfig::new(
            format!("http://{faj_addr}"),
            "sim-client",
            SecretSource::File(faj_secret),
            SecretSource::File(faj_webhook),
        );
        faj_config.platform = FAJ_PLATFORM.into();
        written.push(format!("FAJ platform on http://{faj_addr}"));

        // Which ML serves the rest of each département: the first structure there;
        // spread, each ML of the Nord also serves the postal codes of its town.
        let mut seen = BTreeSet::new();
        let mut territoires = Territoires {
            ml: structures
                .iter()
                .filter(|s| seen.insert(passerelle_policy::departement_of(s)))
                .map(|s| TerritoireMl {
                    code: s.clone(),
                    codes_postaux: Vec::new(),
                    defaut: true,
                })
                .collect(),
        };
        if opts.spread {
            for ml in &dept_mls {
                let codes: &[&str] = match ml.as_str() {
                    "59350S00" => &["59000"],
                    "59512S00" => &["59100", "59200"],
                    "59183S00" => &["59140"],
                    "59606S00" => &["59300"],
                    _ => &[],
                };
                let codes: Vec<String> = codes.iter().map(|c| (*c).to_owned()).collect();
                match territoires.ml.iter_mut().find(|t| t.code == *ml) {
                    Some(t) => t.codes_postaux = codes,
                    None => territoires.ml.push(TerritoireMl {
                        code: ml.clone(),
                        codes_postaux: codes,
                        defaut: false,
                    }),
                }
            }
        }

        let config = HubConfig {
            territoires,
            imilo: Some(ImiloSection {
                structures,
                client: imilo_client,
                // The listings every night (see `ImiloSection::reconcile_every_days`).
                reconcile_every_days: 0,
            }),
            departements: vec![DepartementSection {
                code: DEPT.into(),
                solis: Some(SolisPeerConfig {
                    export_dir: Some(exports),
                    import_dir: Some(imports),
                    ..Default::default()
                }),
                cnaf: Some(CnafConfig::new(cnaf_dir)),
                boxes: vec![BoxConfig {
                    url: format!("file://{}", box_root.display()),
                    partenaire: BOX_PARTENAIRE.into(),
                    state_dir: dir.join("box-state"),
                    mapping: None,
                    sftp: None,
                    reading: Default::default(),
                }],
                // Both CD sinks at work: follow-ups as SOLIS imports, reports in the box.
                of_signalement: Some(passerelle_runtime::config::Via::Box),
            }],
            faj: vec![faj_config],
            ..Default::default()
        };
        config.validate()?;
        Ok(Self {
            config,
            dir: dir.to_owned(),
            imilo_addr,
            faj_addr,
            imilo: Some(imilo),
            faj: Some(faj),
            written,
        })
    }

    /// The world's `passerelle.toml`, for a `passerelle sync` or `serve` in another
    /// process (paths and key files only; no secret in it).
    pub fn config_toml(&self) -> String {
        let d = &self.dir;
        let secrets = d.join("secrets");
        let peers = d.join("peers");
        let mut t = String::new();
        for ml in &self.config.territoires.ml {
            let codes: Vec<String> = ml
                .codes_postaux
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect();
            t.push_str(&format!(
                "[[territoires.ml]]\ncode = \"{}\"\ncodes_postaux = [{}]\ndefaut = {}\n\n",
                ml.code,
                codes.join(", "),
                ml.defaut
            ));
        }
        let structures: Vec<String> = self
            .config
            .imilo
            .as_ref()
            .map(|i| i.structures.iter().map(|s| format!("\"{s}\"")).collect())
            .unwrap_or_default();
        t.push_str(&format!(
            "[imilo]\nstructures = [{}]\nreconcile_every_days = {}\n\n[imilo.client]\nbase_url = \"http://{}\"\nrate_limit_per_s = 0.0\nconcurrency = 8\n\n",
            structures.join(", "),
            self.config
                .imilo
                .as_ref()
                .map_or(0, |i| i.reconcile_every_days),
            self.imilo_addr
        ));
        t.push_str("[imilo.client.keys]\n");
        for family in ["dossiers", "events", "situations", "partenaires"] {
            t.push_str(&format!(
                "{family} = {{ file = \"{}\" }}\n",
                secrets.join(format!("imilo-{family}.key")).display()
            ));
        }
        t.push_str(&format!(
            "\n[[departement]]\ncode = \"{DEPT}\"\nof_signalement = \"box\"\n\n[departement.solis]\nexport_dir = \"{}\"\nimport_dir = \"{}\"\n\n[departement.cnaf]\nflux_dir = \"{}\"\n\n[[departement.box]]\nurl = \"file://{}\"\npartenaire = \"{BOX_PARTENAIRE}\"\nstate_dir = \"{}\"\n\n",
            peers.join("solis/exports").display(),
            peers.join("solis/imports").display(),
            peers.join("cnaf").display(),
            peers.join("box").display(),
            d.join("box-state").display(),
        ));
        t.push_str(&format!(
            "[[faj]]\nbase_url = \"http://{}\"\nplatform = \"{FAJ_PLATFORM}\"\nclient_id = \"sim-client\"\nclient_secret = {{ file = \"{}\" }}\nwebhook_secret = {{ file = \"{}\" }}\n",
            self.faj_addr,
            secrets.join("faj-client.secret").display(),
            secrets.join("faj-webhook.secret").display(),
        ));
        t
    }

    /// The file peers answer what the hub wrote: SOLIS processes its imports (ACK
    /// files), the CD reads the `JEUNES_OF` reports in its box and answers them with an
    /// `OF_SUIVI` file (read by the next night).
    pub fn peers_answer(&self) -> Result<()> {
        self.solis_answers()?;
        let folder = LocalFolder::new(self.dir.join("peers/box"));
        let dept = passerelle_box::sim::Departement {
            folder: &folder,
            config: passerelle_box::sim::SimConfig {
                partenaire: BOX_PARTENAIRE.into(),
                dept: DEPT.into(),
                emetteur: format!("CD{DEPT}"),
                seed: 1,
                jeunes: 1,
                faults: Vec::new(),
            },
        };
        dept.answer_jeunes_of()
            .context("the box simulator cannot answer the reports")?;
        Ok(())
    }

    /// SOLIS reads the imports the hub wrote and answers each with its ACK file.
    pub fn solis_answers(&self) -> Result<usize> {
        let imports = self.dir.join("peers/solis/imports");
        let opts = passerelle_solis::sim::AnswerOptions {
            exports_dir: Some(self.dir.join("peers/solis/exports")),
            ..Default::default()
        };
        let answered = passerelle_solis::sim::answer_imports_with(&imports, &opts)
            .context("the SOLIS simulator cannot answer the imports")?;
        Ok(answered.acks.len())
    }

    /// A few conseillers file FAJ requests for young people of their dossiers, through
    /// the hub (`faj-demande`) by the web form's path (`FajDesk::file`): the record
    /// comes pre-filled from I-MILO, the conseiller adds the aid asked for and the
    /// project. Returns what the engine did with them.
    pub async fn conseiller_requests(
        &self,
        hub: &passerelle_runtime::wiring::Hub,
        n: usize,
    ) -> Result<passerelle_hub::SendSummary> {
        use passerelle_connector::Source;
        use passerelle_hub::{Org, Routed};
        use passerelle_policy::{OrgKind, System};

        let Some(imilo) = &self.config.imilo else {
            return Ok(Default::default());
        };
        let client = imilo.client.build()?;
        let structure = imilo.structures[0].clone();
        let mut source =
            passerelle_imilo::ReconcileSource::new(client, vec![structure.clone()], None);
        let today = Local::now().date_naive();
        let mut picked = Vec::new();
        while picked.len() < n {
            let batch = source.next_batch().await?;
            if batch.is_empty() {
                break;
            }
            for item in batch {
                let Ok(mut record) = item.outcome else {
                    continue;
                };
                let adult = record
                    .etat_civil
                    .date_naissance
                    .map(|d| d.age_on(today.into()))
                    .is_some_and(|a| (18..=25).contains(&a));
                if !adult || picked.len() >= n {
                    continue;
                }
                // What the conseiller types in Passerelle's form.
                record.faj = vec![serde_json::from_value(serde_json::json!({
                    "aides": [{"type": "mobilite", "montant_demande": 25000}],
                    "projet_insertion": "Mobilité pour une entrée en formation"
                }))?];
                let acc = record.accompagnement.get_or_insert_with(Default::default);
                if acc.structure.is_none() {
                    acc.structure = Some(
                        passerelle_model::StructureCode::parse(&structure)
                            .map_err(|e| anyhow::anyhow!("{}", e.reason))?,
                    );
                }
                picked.push(Routed {
                    from: Org::new(OrgKind::Ml, &structure, System::Hub),
                    to: Org::new(OrgKind::Faj, FAJ_PLATFORM, System::Faj),
                    record,
                    known_to_recipient: false,
                });
            }
        }
        hub.ensure_keys(FAJ_PLATFORM)?;
        let Some(desk) = passerelle_runtime::faj_desk::FajDesk::new(&self.config, hub)? else {
            return Ok(hub.engine.send_routed("faj-demande", picked).await?);
        };
        use passerelle_server::web::{FajDesk as _, Filed};
        let mut summary = passerelle_hub::SendSummary::default();
        for r in picked {
            summary.read += 1;
            match desk
                .file(&r.from.org, r.record)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                Filed::Sent(_) => summary.sent += 1,
                Filed::Unchanged => summary.unchanged += 1,
                Filed::Review => summary.review += 1,
                Filed::Denied(_) => summary.denied += 1,
            }
        }
        Ok(summary)
    }

    /// Stops the simulators.
    pub async fn stop(&mut self) {
        if let Some(h) = self.imilo.take() {
            if let Err(e) = h.save(&self.dir.join("imilo-sim.json")) {
                tracing::warn!("cannot save the I-MILO simulator state: {e}");
            }
            h.shutdown().await;
        }
        if let Some(h) = self.faj.take() {
            h.shutdown().await;
        }
    }
}

/// Writes a secret readable by its owner only, as production key files are.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
