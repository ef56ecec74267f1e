//! The shared bilan (issue 23): indicators without personal data, per month, for an
//! organisation (a département's CD, a Mission Locale) and optionally one partner,
//! defined once as data (`schemas/bilans/indicateurs.toml`, compiled in) and computed
//! from what the hub already keeps.
//!
//! Sources, and only these:
//! - the state's `transfer` rows: flow, sender, recipient, the person's hub id (a random
//!   id, used only to join an orientation with its follow-up), status, reason (codes),
//!   creation time. Read by [`Bilans::facts`]; no sealed reference, no key, no payload.
//! - the table `bilan_faj` this module creates (plain standard SQL, its migration
//!   below): per month, flow, sender, recipient and outcome, a count and a sum of cents.
//!   The engine adds to it when it records a new `faj-demande` or `faj-decision`
//!   transfer ([`faj_figure`] reads the amounts of the projection being sent, then
//!   [`record_faj`] adds them): the only place a record's content is read, and it keeps
//!   aggregates only, never a per-person amount or a hub id. A crash between the
//!   transfer's record and this addition loses that one figure; nothing counts twice
//!   (only transfers recorded for the first time are added).
//!
//! The computation itself ([`compute`]) is a pure function of those facts and
//! aggregates. Every figure carries the number of young people or exchanges it is made
//! of; a figure made of 1 to 4 is masked (statistical secrecy) in every output: its
//! serialisation and [`Figure::text`] say "< 5", never the value.
//!
//! All the SQL of the bilan is in this file, so that another backend ports it here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::OnceLock;

use crate::state::db::{Cols, Db, on};
use chrono::{DateTime, Datelike, Utc};
use passerelle_model::Jeune;
use passerelle_model::codes::FajStatut;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::{HubState, TransferStatus};

/// Errors of the bilan.
#[derive(Debug, thiserror::Error)]
pub enum BilanError {
    #[error("bilan database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("invalid indicator definitions: {0}")]
    Definitions(String),
    #[error("invalid month `{0}` (YYYY-MM)")]
    Month(String),
    #[error("state database holds an invalid {0}")]
    Corrupt(&'static str),
}

type Result<T> = std::result::Result<T, BilanError>;

/// The shipped definitions.
pub const DEFINITIONS: &str = include_str!("../../../schemas/bilans/indicateurs.toml");

/// What a figure counts or measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unite {
    /// Distinct young people.
    Jeunes,
    /// Transfers.
    Echanges,
    /// A delay in days (one decimal).
    Jours,
    /// Money, integer cents.
    Centimes,
}

impl Unite {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Jeunes => "jeunes",
            Self::Echanges => "echanges",
            Self::Jours => "jours",
            Self::Centimes => "centimes",
        }
    }
}

/// One indicator's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indicateur {
    pub id: String,
    pub section: String,
    pub libelle: String,
    pub formule: String,
    pub unite: Unite,
    /// What one line's detail names (`issue`, `motif`, `flux`); absent: one line a month.
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionsFile {
    indicateur: Vec<Indicateur>,
}

/// The ids [`compute`] knows how to compute, in the order of the shipped file.
pub const COMPUTED: [&str; 21] = [
    "brsa_orientes",
    "brsa_orientes_suivis",
    "brsa_delai_suivi_median",
    "brsa_delai_suivi_p90",
    "ase_annonces",
    "ase_accueillis",
    "ase_connus_ml",
    "faj_demandes",
    "faj_montant_demande",
    "faj_decisions",
    "faj_montant_accorde",
    "faj_delai_decision_median",
    "faj_delai_decision_p90",
    "of_signalements",
    "of_reponses",
    "of_delai_reponse_median",
    "of_delai_reponse_p90",
    "echanges_envoyes",
    "echanges_refuses",
    "echanges_non_remis",
    "echanges_en_attente",
];

/// Reads and checks definitions: known fields only, ids unique, each one computed here
/// and each computed one defined, labels and formulas written.
pub fn parse_definitions(text: &str) -> Result<Vec<Indicateur>> {
    let file: DefinitionsFile =
        toml::from_str(text).map_err(|e| BilanError::Definitions(e.to_string()))?;
    let mut seen = BTreeSet::new();
    for i in &file.indicateur {
        if !seen.insert(i.id.as_str()) {
            return Err(BilanError::Definitions(format!(
                "indicator `{}` defined twice",
                i.id
            )));
        }
        if !COMPUTED.contains(&i.id.as_str()) {
            return Err(BilanError::Definitions(format!(
                "indicator `{}` has no computation",
                i.id
            )));
        }
        if i.libelle.trim().is_empty() || i.formule.trim().is_empty() || i.section.is_empty() {
            return Err(BilanError::Definitions(format!(
                "indicator `{}` needs a section, a libelle and a formule",
                i.id
            )));
        }
    }
    if let Some(missing) = COMPUTED.iter().find(|c| !seen.contains(*c)) {
        return Err(BilanError::Definitions(format!(
            "indicator `{missing}` is computed but not defined"
        )));
    }
    Ok(file.indicateur)
}

/// The shipped definitions, read once (a test proves they parse).
pub fn definitions() -> &'static [Indicateur] {
    static DEFS: OnceLock<Vec<Indicateur>> = OnceLock::new();
    DEFS.get_or_init(|| parse_definitions(DEFINITIONS).expect("shipped definitions are valid"))
}

/// One shipped definition.
pub fn definition(id: &str) -> Option<&'static Indicateur> {
    definitions().iter().find(|d| d.id == id)
}

/// The smallest population shown: below it (and above zero) a figure is masked.
pub const SECRET_BELOW: u64 = 5;

/// One figure of the bilan.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub indicateur: &'static str,
    /// `YYYY-MM`.
    pub mois: String,
    /// The outcome, reason or flow a line is about; empty for a whole month.
    pub detail: String,
    /// How many young people or exchanges the figure is made of.
    population: u64,
    value: f64,
}

impl Figure {
    /// Whether statistical secrecy hides it (1 to 4 young people or exchanges).
    pub fn masked(&self) -> bool {
        self.population > 0 && self.population < SECRET_BELOW
    }

    /// The value to show, `None` when masked.
    pub fn value(&self) -> Option<f64> {
        (!self.masked()).then_some(self.value)
    }

    /// The unit of its indicator.
    pub fn unite(&self) -> Unite {
        definition(self.indicateur).map_or(Unite::Echanges, |d| d.unite)
    }

    /// The value as files write it: `< 5` when masked, days with one decimal and a
    /// decimal comma, counts and cents as integers.
    pub fn text(&self) -> String {
        match self.value() {
            None => "< 5".into(),
            Some(v) => match self.unite() {
                Unite::Jours => format!("{v:.1}").replace('.', ","),
                _ => format!("{}", v.round() as i64),
            },
        }
    }
}

impl Serialize for Figure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Figure", 5)?;
        st.serialize_field("indicateur", self.indicateur)?;
        st.serialize_field("mois", &self.mois)?;
        st.serialize_field("detail", &self.detail)?;
        st.serialize_field("unite", self.unite().as_str())?;
        match self.value() {
            None => st.serialize_field("valeur", "< 5")?,
            Some(v) if self.unite() == Unite::Jours => {
                st.serialize_field("valeur", &((v * 10.0).round() / 10.0))?
            }
            Some(v) => st.serialize_field("valeur", &(v.round() as i64))?,
        }
        st.end()
    }
}

/// Whose bilan: an organisation (a CD or an ML) and optionally one partner; `None`
/// for every organisation (admin, dpo).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scope {
    pub org: Option<String>,
    pub partner: Option<String>,
}

impl Scope {
    fn holds(&self, sender: &str, recipient: &str) -> bool {
        let touches =
            |o: &Option<String>| o.as_deref().is_none_or(|o| sender == o || recipient == o);
        touches(&self.org) && touches(&self.partner)
    }
}

/// The bilan of a scope over months.
#[derive(Debug, Clone, Serialize)]
pub struct Bilan {
    pub scope: Scope,
    /// The months covered, oldest first.
    pub mois: Vec<String>,
    pub figures: Vec<Figure>,
}

impl Bilan {
    /// The figures of one indicator in one month (several when it has details).
    pub fn of<'a>(&'a self, id: &'a str, mois: &'a str) -> impl Iterator<Item = &'a Figure> {
        self.figures
            .iter()
            .filter(move |f| f.indicateur == id && f.mois == mois)
    }

    /// The one figure of an indicator without detail in a month.
    pub fn one(&self, id: &str, mois: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.indicateur == id && f.mois == mois && f.detail.is_empty())
    }
}

/// One transfer as the bilan reads it: no content, no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferFact {
    pub flow: String,
    pub sender: String,
    pub recipient: String,
    /// The person's hub id: joins an orientation with its follow-up, nothing more.
    pub hub_id: Uuid,
    pub status: TransferStatus,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// One line of `bilan_faj`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FajAggregate {
    pub month: String,
    pub flow: String,
    pub sender: String,
    pub recipient: String,
    /// `demande` for requests; the decision's statut (`accordee`…) for decisions.
    pub outcome: String,
    pub count: u64,
    pub cents: u64,
}

// The table, `bilan_faj`, is in the state's schemas (`state/schema.rs`) for both engines.

/// What one FAJ transfer adds to the aggregates, read from its projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FajFigure {
    pub outcome: String,
    pub cents: u64,
}

/// The FAJ figure of a record sent under `flow` (`None` for other flows): a request's
/// amounts asked, a decision's statut and amounts granted.
pub fn faj_figure(flow: &str, projection: &Jeune) -> Option<FajFigure> {
    match flow {
        "faj-demande" => Some(FajFigure {
            outcome: "demande".into(),
            cents: projection
                .faj
                .iter()
                .flat_map(|f| &f.aides)
                .filter_map(|a| a.montant_demande)
                .sum(),
        }),
        "faj-decision" => {
            let f = projection.faj.iter().rev().find(|f| f.statut.is_some())?;
            Some(FajFigure {
                outcome: f.statut.map_or("inconnue", |s| s.as_str()).to_owned(),
                cents: f.aides.iter().filter_map(|a| a.montant_accorde).sum(),
            })
        }
        _ => None,
    }
}

/// Adds FAJ figures of transfers recorded for the first time, at `at`, to the
/// aggregates: `(flow, sender, recipient, figure)`.
pub async fn record_faj(
    state: &HubState,
    at: DateTime<Utc>,
    figures: &[(String, String, String, FajFigure)],
) -> Result<()> {
    if figures.is_empty() {
        return Ok(());
    }
    let month = month_of(at);
    on!(state.db(), |p, q| {
        let mut tx = p.begin().await?;
        for (flow, sender, recipient, f) in figures {
            sqlx::query(q(
                "INSERT INTO bilan_faj (month, flow, sender, recipient, outcome, count, cents)
                 VALUES (?, ?, ?, ?, ?, 1, ?)
                 ON CONFLICT (month, flow, sender, recipient, outcome)
                 DO UPDATE SET count = bilan_faj.count + 1, cents = bilan_faj.cents + excluded.cents",
            ))
            .bind(&month)
            .bind(flow)
            .bind(sender)
            .bind(recipient)
            .bind(&f.outcome)
            .bind(f.cents.min(i64::MAX as u64) as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// `YYYY-MM` of an instant (UTC).
pub fn month_of(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

/// The `n` months ending with `last` (`YYYY-MM`), oldest first.
pub fn months_ending(last: &str, n: usize) -> Result<Vec<String>> {
    let bad = || BilanError::Month(last.to_owned());
    let (y, m) = last.split_once('-').ok_or_else(bad)?;
    let (mut y, mut m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if last.len() != 7 || !(1..=12).contains(&m) || !(1970..=9999).contains(&y) {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        out.push(format!("{y:04}-{m:02}"));
        if m == 1 {
            y -= 1;
            m = 12;
        } else {
            m -= 1;
        }
    }
    out.reverse();
    Ok(out)
}

/// The bilan's reach into the hub's state.
#[derive(Debug, Clone)]
pub struct Bilans {
    db: Db,
}

impl Bilans {
    /// Over the hub's state (whose schema holds `bilan_faj`).
    pub async fn open(state: &HubState) -> Result<Self> {
        Ok(Self {
            db: state.db().clone(),
        })
    }

    /// The transfers the bilan reads, for organisations of `scope` (all time: a
    /// follow-up may come months after its orientation).
    pub async fn facts(&self, scope: &Scope) -> Result<Vec<TransferFact>> {
        let org = scope.org.as_deref();
        on!(&self.db, |p, q| {
            let rows = sqlx::query(q(
                "SELECT flow, sender, recipient, hub_id, status, reason, created_at FROM transfer
                 WHERE (? IS NULL OR sender = ? OR recipient = ?)",
            ))
            .bind(org)
            .bind(org)
            .bind(org)
            .fetch_all(p)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let hub = r.text(3)?;
                let status = r.text(4)?;
                let at = r.text(6)?;
                let (sender, recipient) = (r.text(1)?, r.text(2)?);
                if !scope.holds(&sender, &recipient) {
                    continue;
                }
                out.push(TransferFact {
                    flow: r.text(0)?,
                    sender,
                    recipient,
                    hub_id: Uuid::from_str(&hub).map_err(|_| BilanError::Corrupt("hub id"))?,
                    status: TransferStatus::parse_name(&status)
                        .ok_or(BilanError::Corrupt("status"))?,
                    reason: r.opt_text(5)?,
                    at: DateTime::parse_from_rfc3339(&at)
                        .map_err(|_| BilanError::Corrupt("time"))?
                        .with_timezone(&Utc),
                });
            }
            Ok(out)
        })
    }

    /// The FAJ aggregates of `scope`.
    pub async fn faj(&self, scope: &Scope) -> Result<Vec<FajAggregate>> {
        on!(&self.db, |p, q| {
            let rows = sqlx::query(
                "SELECT month, flow, sender, recipient, outcome, count, cents FROM bilan_faj
                 ORDER BY month, flow, sender, recipient, outcome",
            )
            .fetch_all(p)
            .await?;
            let mut out = Vec::new();
            for r in &rows {
                let (sender, recipient) = (r.text(2)?, r.text(3)?);
                if !scope.holds(&sender, &recipient) {
                    continue;
                }
                let (count, cents) = (r.int(5)?, r.int(6)?);
                out.push(FajAggregate {
                    month: r.text(0)?,
                    flow: r.text(1)?,
                    sender,
                    recipient,
                    outcome: r.text(4)?,
                    count: count.max(0) as u64,
                    cents: cents.max(0) as u64,
                });
            }
            Ok(out)
        })
    }

    /// The organisations `org` exchanged with (every organisation for `None`), for
    /// the partner filter.
    pub async fn partners(&self, org: Option<&str>) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        on!(&self.db, |p, q| {
            let rows = sqlx::query(q("SELECT DISTINCT sender, recipient FROM transfer
                 WHERE (? IS NULL OR sender = ? OR recipient = ?)"))
            .bind(org)
            .bind(org)
            .bind(org)
            .fetch_all(p)
            .await?;
            for r in &rows {
                for i in 0..2usize {
                    let o = r.text(i)?;
                    if Some(o.as_str()) != org {
                        out.insert(o);
                    }
                }
            }
        });
        Ok(out.into_iter().collect())
    }

    /// The bilan of `scope` over `mois`.
    pub async fn bilan(&self, scope: &Scope, mois: &[String]) -> Result<Bilan> {
        let facts = self.facts(scope).await?;
        let faj = self.faj(scope).await?;
        Ok(compute(scope, mois, &facts, &faj))
    }
}

/// The delays of what was answered in month `m`: median, then 90th percentile, each
/// over as many answers.
fn delays(
    push: &mut impl FnMut(&'static str, &str, String, u64, f64),
    [median, p90]: [&'static str; 2],
    m: &str,
    d: &[f64],
) {
    for (id, q) in [(median, 50.0), (p90, 90.0)] {
        push(id, m, String::new(), d.len() as u64, percentile(d, q));
    }
}

/// Days between two instants.
fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_seconds().max(0) as f64 / 86_400.0
}

/// The nearest-rank `p`-th percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A request and what answered it: for each (person, first party) the first transfer
/// of `ask` from `a` to `b`, and the first transfer of `answer` from `b` to `a` about
/// the same person after it. Counted at the month of the request.
struct Pairs {
    /// month → (asked, delays of the answered, in days)
    by_month: BTreeMap<String, (u64, Vec<f64>)>,
}

fn pairs(facts: &[TransferFact], ask: &str, answer: &str, per_person: bool) -> Pairs {
    // (hub, asker-side sender, recipient) → first time asked
    let mut asked: Vec<(Uuid, &str, &str, DateTime<Utc>)> = Vec::new();
    if per_person {
        let mut first: HashMap<(Uuid, &str, &str), DateTime<Utc>> = HashMap::new();
        for f in facts.iter().filter(|f| f.flow == ask) {
            let e = first
                .entry((f.hub_id, f.sender.as_str(), f.recipient.as_str()))
                .or_insert(f.at);
            if f.at < *e {
                *e = f.at;
            }
        }
        asked.extend(first.into_iter().map(|((h, s, r), t)| (h, s, r, t)));
    } else {
        asked.extend(
            facts
                .iter()
                .filter(|f| f.flow == ask)
                .map(|f| (f.hub_id, f.sender.as_str(), f.recipient.as_str(), f.at)),
        );
    }
    let mut answers: HashMap<(Uuid, &str, &str), Vec<DateTime<Utc>>> = HashMap::new();
    for f in facts.iter().filter(|f| f.flow == answer) {
        answers
            .entry((f.hub_id, f.sender.as_str(), f.recipient.as_str()))
            .or_default()
            .push(f.at);
    }
    let mut by_month: BTreeMap<String, (u64, Vec<f64>)> = BTreeMap::new();
    for (hub, s, r, t) in asked {
        let e = by_month.entry(month_of(t)).or_default();
        e.0 += 1;
        let first_answer = answers
            .get(&(hub, r, s))
            .and_then(|v| v.iter().filter(|a| **a >= t).min().copied());
        if let Some(a) = first_answer {
            e.1.push(days(t, a));
        }
    }
    Pairs { by_month }
}

/// The bilan of `scope` over `mois`, from transfer facts and FAJ aggregates alone.
pub fn compute(
    scope: &Scope,
    mois: &[String],
    facts: &[TransferFact],
    faj: &[FajAggregate],
) -> Bilan {
    let facts: Vec<TransferFact> = facts
        .iter()
        .filter(|f| scope.holds(&f.sender, &f.recipient))
        .cloned()
        .collect();
    let wanted: BTreeSet<&str> = mois.iter().map(String::as_str).collect();
    let mut figures = Vec::new();
    let mut push = |id: &'static str, m: &str, detail: String, population: u64, value: f64| {
        figures.push(Figure {
            indicateur: id,
            mois: m.to_owned(),
            detail,
            population,
            value,
        });
    };

    // A request answered: counts, answered, median and 90th percentile of the delay.
    let answered = |p: &Pairs, m: &str| -> (u64, Vec<f64>) {
        let (n, mut d) = p.by_month.get(m).cloned().unwrap_or_default();
        d.sort_by(f64::total_cmp);
        (n, d)
    };
    let orient = pairs(&facts, "brsa-orientation", "brsa-suivi", true);
    let of = pairs(&facts, "of-signalement", "of-suivi", true);
    let fajp = pairs(&facts, "faj-demande", "faj-decision", false);

    // ASE: announced, applied by the ML's system, then known from the ML.
    let mut ase_first: HashMap<(Uuid, &str), DateTime<Utc>> = HashMap::new();
    let mut ase_applied: BTreeSet<(Uuid, &str)> = BTreeSet::new();
    for f in facts.iter().filter(|f| f.flow == "ase-majorite") {
        let e = ase_first
            .entry((f.hub_id, f.recipient.as_str()))
            .or_insert(f.at);
        if f.at < *e {
            *e = f.at;
        }
        if f.status == TransferStatus::Applied {
            ase_applied.insert((f.hub_id, f.recipient.as_str()));
        }
    }
    let mut from_ml: HashMap<(Uuid, &str), Vec<DateTime<Utc>>> = HashMap::new();
    for f in facts.iter().filter(|f| {
        matches!(
            f.flow.as_str(),
            "brsa-suivi" | "of-signalement" | "faj-demande"
        )
    }) {
        from_ml
            .entry((f.hub_id, f.sender.as_str()))
            .or_default()
            .push(f.at);
    }
    let mut ase: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for (key, t) in &ase_first {
        let e = ase.entry(month_of(*t)).or_default();
        e.0 += 1;
        if ase_applied.contains(key) {
            e.1 += 1;
        }
        if from_ml.get(key).is_some_and(|v| v.iter().any(|a| a >= t)) {
            e.2 += 1;
        }
    }

    // Exchanges per month and flow / status / reason.
    let mut sent: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut refused: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut dead: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut waiting: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut faj_sent: BTreeMap<String, u64> = BTreeMap::new();
    for f in &facts {
        let m = month_of(f.at);
        if !wanted.contains(m.as_str()) {
            continue;
        }
        *sent.entry((m.clone(), f.flow.clone())).or_default() += 1;
        if f.flow == "faj-demande" {
            *faj_sent.entry(m.clone()).or_default() += 1;
        }
        let reason = || reason_code(f.reason.as_deref());
        match f.status {
            TransferStatus::Rejected => *refused.entry((m, reason())).or_default() += 1,
            TransferStatus::DeadLettered => *dead.entry((m, reason())).or_default() += 1,
            TransferStatus::Published | TransferStatus::Delivered => {
                *waiting.entry((m, f.flow.clone())).or_default() += 1
            }
            TransferStatus::Applied => {}
        }
    }

    // FAJ aggregates per month.
    let mut faj_asked: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut faj_outcomes: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut faj_granted: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for a in faj {
        match a.flow.as_str() {
            "faj-demande" => {
                let e = faj_asked.entry(&a.month).or_default();
                e.0 += a.count;
                e.1 += a.cents;
            }
            "faj-decision" => {
                *faj_outcomes.entry((&a.month, &a.outcome)).or_default() += a.count;
                if a.outcome == FajStatut::Accordee.as_str() {
                    let e = faj_granted.entry(&a.month).or_default();
                    e.0 += a.count;
                    e.1 += a.cents;
                }
            }
            _ => {}
        }
    }

    for m in mois {
        let m = m.as_str();
        let (n, d) = answered(&orient, m);
        push("brsa_orientes", m, String::new(), n, n as f64);
        push(
            "brsa_orientes_suivis",
            m,
            String::new(),
            d.len() as u64,
            d.len() as f64,
        );
        delays(
            &mut push,
            ["brsa_delai_suivi_median", "brsa_delai_suivi_p90"],
            m,
            &d,
        );

        let (a, applied, known) = ase.get(m).copied().unwrap_or_default();
        push("ase_annonces", m, String::new(), a, a as f64);
        push("ase_accueillis", m, String::new(), applied, applied as f64);
        push("ase_connus_ml", m, String::new(), known, known as f64);

        let n = faj_sent.get(m).copied().unwrap_or(0);
        push("faj_demandes", m, String::new(), n, n as f64);
        let (c, cents) = faj_asked.get(m).copied().unwrap_or_default();
        push("faj_montant_demande", m, String::new(), c, cents as f64);
        for ((_, outcome), c) in faj_outcomes
            .range((m, "")..)
            .take_while(|((mm, _), _)| *mm == m)
        {
            push("faj_decisions", m, (*outcome).to_owned(), *c, *c as f64);
        }
        let (c, cents) = faj_granted.get(m).copied().unwrap_or_default();
        push("faj_montant_accorde", m, String::new(), c, cents as f64);
        let (_, d) = answered(&fajp, m);
        delays(
            &mut push,
            ["faj_delai_decision_median", "faj_delai_decision_p90"],
            m,
            &d,
        );

        let (n, d) = answered(&of, m);
        push("of_signalements", m, String::new(), n, n as f64);
        push(
            "of_reponses",
            m,
            String::new(),
            d.len() as u64,
            d.len() as f64,
        );
        delays(
            &mut push,
            ["of_delai_reponse_median", "of_delai_reponse_p90"],
            m,
            &d,
        );

        for (id, map) in [
            ("echanges_envoyes", &sent),
            ("echanges_refuses", &refused),
            ("echanges_non_remis", &dead),
            ("echanges_en_attente", &waiting),
        ] {
            for ((_, detail), c) in map
                .range((m.to_owned(), String::new())..)
                .take_while(|((mm, _), _)| mm == m)
            {
                push(id, m, detail.clone(), *c, *c as f64);
            }
        }
    }
    Bilan {
        scope: scope.clone(),
        mois: mois.to_vec(),
        figures,
    }
}

/// A reason as the bilan groups it: its code (what comes before the first `:`), at
/// most 60 characters; `sans motif` when none.
fn reason_code(reason: Option<&str>) -> String {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        None => "sans motif".into(),
        Some(r) => {
            let code = r.split(':').next().unwrap_or(r).trim();
            code.chars().take(60).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    fn fact(
        flow: &str,
        s: &str,
        r: &str,
        hub: u128,
        status: TransferStatus,
        at: DateTime<Utc>,
    ) -> TransferFact {
        TransferFact {
            flow: flow.into(),
            sender: s.into(),
            recipient: r.into(),
            hub_id: Uuid::from_u128(hub),
            status,
            reason: None,
            at,
        }
    }

    #[test]
    fn shipped_definitions_parse_and_match_the_computations() {
        let d = definitions();
        assert_eq!(d.len(), COMPUTED.len());
        for (def, id) in d.iter().zip(COMPUTED) {
            assert_eq!(def.id, id);
        }
        assert_eq!(
            definition("faj_montant_accorde").unwrap().unite,
            Unite::Centimes
        );
    }

    #[test]
    fn definitions_refuse_unknown_fields_duplicates_and_uncomputed_ids() {
        let one = |extra: &str| {
            format!(
                "[[indicateur]]\nid = \"brsa_orientes\"\nsection = \"s\"\nlibelle = \"l\"\nformule = \"f\"\nunite = \"jeunes\"\n{extra}"
            )
        };
        let e = parse_definitions(&one("couleur = \"bleu\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("couleur"), "{e}");
        let e = parse_definitions(&format!("{}\n{}", one(""), one("")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
        let e = parse_definitions(&one("").replace("brsa_orientes", "inconnu"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no computation"), "{e}");
        let e = parse_definitions(&one("")).unwrap_err().to_string();
        assert!(e.contains("computed but not defined"), "{e}");
        let e = parse_definitions(&one("").replace("jeunes", "kilos"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kilos"), "{e}");
    }

    #[test]
    fn months_end_where_asked_and_cross_years() {
        assert_eq!(
            months_ending("2026-02", 3).unwrap(),
            vec!["2025-12", "2026-01", "2026-02"]
        );
        assert!(months_ending("2026-13", 1).is_err());
        assert!(months_ending("26-01", 1).is_err());
    }

    #[test]
    fn orientations_their_follow_ups_and_delays() {
        use TransferStatus::*;
        let ml = "59350S00";
        let mut facts = Vec::new();
        // Six young people oriented on the 2nd; five answered, after 1 to 5 days; one
        // oriented twice (counted once, from the first).
        for i in 0..6u32 {
            facts.push(fact(
                "brsa-orientation",
                "CD059",
                ml,
                i as u128,
                Applied,
                t(2, 0),
            ));
            if i < 5 {
                facts.push(fact(
                    "brsa-suivi",
                    ml,
                    "CD059",
                    i as u128,
                    Applied,
                    t(3 + i, 0),
                ));
                // A second follow-up does not move the delay.
                facts.push(fact(
                    "brsa-suivi",
                    ml,
                    "CD059",
                    i as u128,
                    Applied,
                    t(20, 0),
                ));
            }
        }
        facts.push(fact("brsa-orientation", "CD059", ml, 0, Applied, t(10, 0)));
        // A follow-up to another CD is not this orientation's.
        facts.push(fact("brsa-suivi", ml, "CD062", 5, Applied, t(4, 0)));
        let b = compute(&Scope::default(), &["2026-11".into()], &facts, &[]);
        let v = |id| b.one(id, "2026-11").unwrap().value();
        assert_eq!(v("brsa_orientes"), Some(6.0));
        assert_eq!(v("brsa_orientes_suivis"), Some(5.0));
        assert_eq!(v("brsa_delai_suivi_median"), Some(3.0));
        assert_eq!(v("brsa_delai_suivi_p90"), Some(5.0));
        // Seen from the partner CD062: one follow-up, no orientation.
        let s = Scope {
            org: Some("CD062".into()),
            partner: None,
        };
        let b = compute(&s, &["2026-11".into()], &facts, &[]);
        assert_eq!(
            b.one("brsa_orientes", "2026-11").unwrap().value(),
            Some(0.0)
        );
        let sent: Vec<_> = b.of("echanges_envoyes", "2026-11").collect();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].masked());
    }

    #[test]
    fn small_counts_are_masked_in_every_output() {
        use TransferStatus::*;
        let facts: Vec<_> = (0..3)
            .map(|i| fact("of-signalement", "59350S00", "CD059", i, Published, t(5, 0)))
            .collect();
        let b = compute(&Scope::default(), &["2026-11".into()], &facts, &[]);
        let f = b.one("of_signalements", "2026-11").unwrap();
        assert!(f.masked());
        assert_eq!(f.value(), None);
        assert_eq!(f.text(), "< 5");
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.contains(r#""indicateur":"of_signalements","mois":"2026-11","detail":"","unite":"jeunes","valeur":"< 5""#), "{json}");
        assert!(!json.contains(r#""valeur":3"#), "{json}");
        // Zero is no secret.
        let z = b.one("brsa_orientes", "2026-11").unwrap();
        assert_eq!(z.text(), "0");
    }

    #[test]
    fn faj_figures_from_aggregates_and_delays_from_transfers() {
        use TransferStatus::*;
        let ml = "59350S00";
        let mut facts = Vec::new();
        for i in 0..6u128 {
            facts.push(fact("faj-demande", ml, "FAJ059", i, Applied, t(1, 0)));
            facts.push(fact("faj-decision", "FAJ059", ml, i, Applied, t(1, 12)));
        }
        let agg = |flow: &str, s: &str, r: &str, outcome: &str, count, cents| FajAggregate {
            month: "2026-11".into(),
            flow: flow.into(),
            sender: s.into(),
            recipient: r.into(),
            outcome: outcome.into(),
            count,
            cents,
        };
        let faj = vec![
            agg("faj-demande", ml, "FAJ059", "demande", 6, 150_000),
            agg("faj-decision", "FAJ059", ml, "accordee", 5, 100_000),
            agg("faj-decision", "FAJ059", ml, "refusee", 1, 0),
        ];
        let b = compute(&Scope::default(), &["2026-11".into()], &facts, &faj);
        let v = |id| b.one(id, "2026-11").unwrap().value();
        assert_eq!(v("faj_demandes"), Some(6.0));
        assert_eq!(v("faj_montant_demande"), Some(150_000.0));
        assert_eq!(v("faj_montant_accorde"), Some(100_000.0));
        assert_eq!(v("faj_delai_decision_median"), Some(0.5));
        let d: Vec<_> = b
            .of("faj_decisions", "2026-11")
            .map(|f| (f.detail.as_str(), f.text()))
            .collect();
        assert_eq!(
            d,
            vec![("accordee", "5".to_owned()), ("refusee", "< 5".to_owned())]
        );
    }

    #[test]
    fn the_computation_reads_no_personal_value() {
        // What the bilan is computed from: transfer facts (codes, a random hub id,
        // times) and aggregates. Its source holds no key, seal or payload type, and the
        // FAJ table has no column for a person.
        let src = include_str!("bilan.rs");
        let code = src.split("#[cfg(test)]").next().unwrap();
        for word in [
            "Sealer",
            "PseudonymKey",
            "Keyring",
            "peer_ref",
            "sender_ref",
            "Envelope",
        ] {
            assert!(!code.contains(word), "the bilan mentions {word}");
        }
        for schema in [crate::state::schema::SQLITE, crate::state::schema::POSTGRES] {
            let cols = schema
                .split("bilan_faj (")
                .nth(1)
                .unwrap()
                .split(");")
                .next()
                .unwrap()
                .to_lowercase();
            assert!(
                !cols.contains("hub_id") && !cols.contains("subject"),
                "{cols}"
            );
        }
        // The one content read: a FAJ projection's amounts and statut.
        assert_eq!(code.matches("projection: &Jeune").count(), 1);
    }
}
