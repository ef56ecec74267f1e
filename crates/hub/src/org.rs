//! Who a transfer is between: the parties (`Org`), a record with its parties
//! (`Routed`), and the rule that gives a record its parties under a flow (`Route`).

use std::sync::Arc;

use passerelle_model::Jeune;
use passerelle_policy::{OrgKind, Party, System};

/// A party to a transfer, owned (a routed record names its sender and recipient).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Org {
    pub kind: OrgKind,
    /// ML structure code, CD code, platform id.
    pub org: String,
    pub system: System,
}

impl Org {
    pub fn new(kind: OrgKind, org: impl Into<String>, system: System) -> Self {
        Self {
            kind,
            org: org.into(),
            system,
        }
    }

    /// The owned form of a party.
    pub fn of(party: &Party<'_>) -> Self {
        Self::new(party.kind, party.org, party.system)
    }

    /// As the policy sees it.
    pub fn party(&self) -> Party<'_> {
        Party::new(self.kind, &self.org, self.system)
    }
}

/// A record with its sender and recipient.
#[derive(Debug, Clone)]
pub struct Routed {
    pub from: Org,
    pub to: Org,
    pub record: Jeune,
    /// Send only if the recipient already knows the person (it sent us its own
    /// reference earlier): a `brsa-suivi` goes back only about those the CD oriented.
    pub known_to_recipient: bool,
}

/// Where a record goes under a flow: its sender and recipient, or why the record is
/// not for this flow (oriented elsewhere, not a BRSA, no ML known) — a reason without
/// personal data (codes and rules only), counted in the night's summary and told to a
/// sender that answers line by line (a box ACK).
pub type Route = Arc<dyn Fn(&Jeune) -> Result<(Org, Org), Unrouted> + Send + Sync>;

/// Why a record is not routed under a flow (no personal data: rules and codes).
pub type Unrouted = std::borrow::Cow<'static, str>;
