//! Which route each flow a source feeds takes. flows.toml says which flows a kind of
//! source feeds (`sources`); the routing rules (`hub::routes`) say, for a record read
//! from a sender, who it goes to under each. A flow a source feeds with no rule here
//! is refused at planning, naming the flow and the source.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use chrono::NaiveDate;
use passerelle_hub::routes::{self, Territoires};
use passerelle_hub::{FlowRoute, Org, Route};
use passerelle_policy::{Policy, System};

/// What the routing rules need beyond the record: the territories (which ML serves
/// which place), today (ASE majorities), and the system each served CD takes.
pub(crate) struct Routing {
    pub territoires: Arc<Territoires>,
    pub today: NaiveDate,
    /// How each CD this hub reaches takes what MLs send it (SOLIS imports, its box).
    pub cd_systems: Arc<BTreeMap<String, System>>,
}

impl Routing {
    /// The flows a `kind` of source feeds (flows.toml, in file order), each with its
    /// route from `from`; `partenaire` is the ML of a box (the one its answers go to).
    pub fn fed(
        &self,
        policy: &Policy,
        kind: &str,
        from: &Org,
        partenaire: Option<&str>,
    ) -> Result<Vec<FlowRoute>> {
        policy
            .flows_fed_by(kind)
            .into_iter()
            .map(|f| {
                self.route(&f.id, from, partenaire).ok_or_else(|| {
                    anyhow!(
                        "flow {}: flows.toml has {kind} sources feed it, and the hub has no route for it",
                        f.id
                    )
                })
            })
            .collect()
    }

    fn route(&self, flow: &str, from: &Org, partenaire: Option<&str>) -> Option<FlowRoute> {
        let route = match flow {
            "brsa-orientation" => routes::brsa_orientation(from.clone(), self.territoires.clone()),
            "ase-majorite" => {
                routes::ase_majorite(from.clone(), self.territoires.clone(), self.today)
            }
            "of-suivi" => routes::of_suivi(from.clone(), partenaire?.to_owned()),
            // A reply to what the CD sent: only about persons the CD sent first.
            "brsa-suivi" => {
                return Some(
                    FlowRoute::new(flow, self.to_cd(routes::brsa_suivi(System::Solis)))
                        .replies_only(),
                );
            }
            "of-signalement" => self.to_cd(routes::of_signalement(System::Solis)),
            _ => return None,
        };
        Some(FlowRoute::new(flow, route))
    }

    /// Only to CDs this hub reaches, through the system they take.
    fn to_cd(&self, route: Route) -> Route {
        let systems = self.cd_systems.clone();
        Arc::new(move |record| {
            let (from, mut to) = route(record)?;
            to.system = *systems
                .get(&to.org)
                .ok_or_else(|| format!("{} is not a département this hub serves", to.org))?;
            Ok((from, to))
        })
    }
}
