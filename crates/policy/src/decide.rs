//! Decisions as pure functions: which flows connect a sender to a recipient, and what
//! of a record may leave under one.
//!
//! Two outcomes, both kept (policy.md):
//! - **Minimisation**: under a matching flow, every path the flow does not allow is
//!   projected away and listed in `dropped` (the engine counts and audits them). This
//!   includes `nir`, `art9` and `art10` data: such a field on a record never blocks the
//!   transfer of the rest, it simply does not leave.
//! - **Denial**: no flow (or the named flow does not exist, does not join these two
//!   parties, or more than one flow matches and none was named) refuses the whole
//!   transfer with a reason. The projected record is checked again before it is
//!   returned; a special-class path still present under a flow that does not name it
//!   is a denial too (it cannot happen through `decide`, but `check_payload` applies
//!   the same rule to a payload built or received elsewhere).

use std::fmt;

use passerelle_model::{FieldClass, Jeune, class_of};

use crate::flow::{Direction, Endpoint, Flow, OrgKind, System};

/// One end of a transfer: an organisation (its kind and code) through one system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Party<'a> {
    pub kind: OrgKind,
    /// ML structure code (`59350S00`), CD code (`CD059`), platform id…
    pub org: &'a str,
    pub system: System,
}

impl<'a> Party<'a> {
    pub fn new(kind: OrgKind, org: &'a str, system: System) -> Self {
        Self { kind, org, system }
    }
}

/// The outcome for one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'p> {
    /// The record may leave under `flow`, reduced to `projection`; `dropped` lists the
    /// canonical paths the record held that were removed.
    Allowed {
        flow: &'p Flow,
        projection: Box<Jeune>,
        dropped: Vec<&'static str>,
    },
    /// Nothing leaves.
    Denied { reason: DenyReason },
}

impl Decision<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// Why a transfer is refused. The text names flows, parties and paths, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// No declared flow joins the sender to the recipient.
    NoFlow { from: String, to: String },
    /// The flow named by the caller is not declared.
    UnknownFlow { flow: String },
    /// The named flow exists but does not join these parties.
    OutsideFlow {
        flow: String,
        from: String,
        to: String,
    },
    /// Several flows join the parties and the caller named none (purpose limitation:
    /// the purpose must be chosen, not guessed).
    Ambiguous { flows: Vec<String> },
    /// A `nir`/`art9`/`art10` path would leave under a flow that does not name it.
    SpecialData {
        flow: String,
        path: &'static str,
        class: FieldClass,
    },
    /// A path outside the flow's allowed fields is present in a payload.
    PathOutsideFlow { flow: String, path: &'static str },
}

impl DenyReason {
    /// A short stable code for audit entries and counters.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoFlow { .. } => "no-flow",
            Self::UnknownFlow { .. } => "unknown-flow",
            Self::OutsideFlow { .. } => "outside-flow",
            Self::Ambiguous { .. } => "ambiguous-flow",
            Self::SpecialData { .. } => "special-data",
            Self::PathOutsideFlow { .. } => "path-outside-flow",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFlow { from, to } => write!(f, "no declared flow from {from} to {to}"),
            Self::UnknownFlow { flow } => write!(f, "flow `{flow}` is not declared"),
            Self::OutsideFlow { flow, from, to } => {
                write!(
                    f,
                    "flow `{flow}` does not allow transfers from {from} to {to}"
                )
            }
            Self::Ambiguous { flows } => write!(
                f,
                "several flows join these parties ({}), name one",
                flows.join(", ")
            ),
            Self::SpecialData { flow, path, class } => write!(
                f,
                "path `{path}` is `{class}` data and flow `{flow}` does not name that class"
            ),
            Self::PathOutsideFlow { flow, path } => {
                write!(f, "path `{path}` is not allowed by flow `{flow}`")
            }
        }
    }
}

fn describe(p: &Party<'_>) -> String {
    format!("{} {} ({})", p.kind, p.org, p.system)
}

/// The département of an organisation code: `CD059` → `59`, `CD02A` → `2A`,
/// `CD971` → `971`, ML `59350S00` → `59`, `97101S00` → `971`. `None` otherwise.
pub fn departement_of(code: &str) -> Option<String> {
    if let Some(rest) = code.strip_prefix("CD") {
        let ok = rest.len() == 3 && rest.chars().all(|c| c.is_ascii_alphanumeric());
        return ok.then(|| rest.strip_prefix('0').unwrap_or(rest).to_owned());
    }
    let b = code.as_bytes();
    let is_structure = b.len() == 8
        && b[..5].iter().all(u8::is_ascii_digit)
        && b[5] == b'S'
        && b[6..].iter().all(u8::is_ascii_digit);
    if !is_structure {
        return None;
    }
    Some(if code.starts_with("97") {
        code[..3].to_owned()
    } else {
        code[..2].to_owned()
    })
}

fn same_departement(a: &str, b: &str) -> bool {
    match (departement_of(a), departement_of(b)) {
        (Some(x), Some(y)) => {
            // ML structure codes of Corsica start with 20; the CDs are 2A and 2B.
            let corsica = |d: &str| d == "20" || d == "2A" || d == "2B";
            x == y || (corsica(&x) && corsica(&y) && (x == "20" || y == "20"))
        }
        _ => false,
    }
}

/// `*` matches any run of characters, `?` exactly one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn endpoint_matches(e: &Endpoint, p: &Party<'_>) -> bool {
    e.kinds.contains(&p.kind) && e.systems.contains(&p.system) && glob_match(&e.org, p.org)
}

fn oriented_match(a: &Endpoint, b: &Endpoint, from: &Party<'_>, to: &Party<'_>) -> bool {
    endpoint_matches(a, from)
        && endpoint_matches(b, to)
        && (!(a.same_departement || b.same_departement) || same_departement(from.org, to.org))
}

impl Flow {
    /// Whether this flow joins `from` to `to` (either way for a both-ways flow).
    pub fn joins(&self, from: &Party<'_>, to: &Party<'_>) -> bool {
        oriented_match(&self.from, &self.to, from, to)
            || (self.direction == Direction::BothWays
                && oriented_match(&self.to, &self.from, from, to))
    }

    /// The record reduced to what this flow allows, and the paths removed.
    pub fn project(&self, record: &Jeune) -> (Jeune, Vec<&'static str>) {
        let p = record.project_with(|path, class| self.allows_path_of_class(path, class));
        (p.record, p.dropped)
    }

    /// Checks that a payload holds only paths this flow allows; the first offending
    /// path is returned as a denial (special classes get their own reason).
    pub fn check_payload(&self, record: &Jeune) -> Result<(), DenyReason> {
        for path in record.paths() {
            let class = class_of(path).unwrap_or(FieldClass::Meta);
            if self.allows_path_of_class(path, class) {
                continue;
            }
            return Err(if class.is_special() {
                DenyReason::SpecialData {
                    flow: self.id.clone(),
                    path,
                    class,
                }
            } else {
                DenyReason::PathOutsideFlow {
                    flow: self.id.clone(),
                    path,
                }
            });
        }
        Ok(())
    }
}

/// The flows of `flows` that join `from` to `to`.
pub fn flows_between<'p>(flows: &'p [Flow], from: &Party<'_>, to: &Party<'_>) -> Vec<&'p Flow> {
    flows.iter().filter(|f| f.joins(from, to)).collect()
}

/// Decides the fate of one record sent from `from` to `to`, under the named flow or
/// under the only flow joining them.
pub fn decide<'p>(
    flows: &'p [Flow],
    flow_id: Option<&str>,
    from: &Party<'_>,
    to: &Party<'_>,
    record: &Jeune,
) -> Decision<'p> {
    let flow = match flow_id {
        Some(id) => match flows.iter().find(|f| f.id == id) {
            None => {
                return Decision::Denied {
                    reason: DenyReason::UnknownFlow {
                        flow: id.to_owned(),
                    },
                };
            }
            Some(f) if !f.joins(from, to) => {
                return Decision::Denied {
                    reason: DenyReason::OutsideFlow {
                        flow: id.to_owned(),
                        from: describe(from),
                        to: describe(to),
                    },
                };
            }
            Some(f) => f,
        },
        None => match flows_between(flows, from, to).as_slice() {
            [] => {
                return Decision::Denied {
                    reason: DenyReason::NoFlow {
                        from: describe(from),
                        to: describe(to),
                    },
                };
            }
            [only] => *only,
            many => {
                return Decision::Denied {
                    reason: DenyReason::Ambiguous {
                        flows: many.iter().map(|f| f.id.clone()).collect(),
                    },
                };
            }
        },
    };
    let (projection, dropped) = flow.project(record);
    // Belt and braces: the projection must satisfy the same check a recipient applies.
    if let Err(reason) = flow.check_payload(&projection) {
        return Decision::Denied { reason };
    }
    Decision::Allowed {
        flow,
        projection: Box::new(projection),
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departements_of_codes() {
        assert_eq!(departement_of("CD059").as_deref(), Some("59"));
        assert_eq!(departement_of("CD02A").as_deref(), Some("2A"));
        assert_eq!(departement_of("CD971").as_deref(), Some("971"));
        assert_eq!(departement_of("59350S00").as_deref(), Some("59"));
        assert_eq!(departement_of("97101S00").as_deref(), Some("971"));
        assert_eq!(departement_of("FAJ059"), None);
        assert_eq!(departement_of("5935S000"), None);
        assert!(same_departement("CD059", "59350S00"));
        assert!(!same_departement("CD059", "62010S00"));
        assert!(same_departement("CD02A", "20100S00"));
        assert!(!same_departement("CD02A", "CD02B"));
        assert!(!same_departement("FAJ059", "59350S00"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("59*S??", "59350S00"));
        assert!(!glob_match("59*S?", "59350S00"));
        assert!(glob_match("CD0?9", "CD059"));
        assert!(!glob_match("CD059", "CD0590"));
        assert!(glob_match("*S*", "59350S00"));
    }
}
