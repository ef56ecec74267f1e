//! GDPR flows: loader, minimisation, denial, Art. 30 register.
//!
//! The flows file (`schemas/policy/flows.toml`) declares every transfer Passerelle may
//! make. [`Policy::load`] reads and validates it; [`Policy::decide`] says whether a
//! record may go from a sender to a recipient and what of it; [`register`] renders the
//! Art. 30 register. Nothing here does I/O beyond reading the file.

pub mod decide;
pub mod error;
pub mod flow;
pub mod load;
pub mod register;

use std::path::Path;

use passerelle_model::Jeune;

pub use decide::{Decision, DenyReason, Party, departement_of, glob_match};
pub use error::{PolicyError, PolicyErrorKind};
pub use flow::{
    Direction, Endpoint, Fields, Flow, LegalBasis, OrgKind, PolicyFile, RegisterInfo, Retention,
    SOURCE_KINDS, Special, System,
};

/// The flows file shipped with the project, relative to the workspace root.
pub const DEFAULT_FLOWS_PATH: &str = "schemas/policy/flows.toml";

/// A validated flows file.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    file: PolicyFile,
}

impl Policy {
    /// Reads and validates a flows file.
    pub fn load(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        load::read(path.as_ref()).map(|file| Policy { file })
    }

    /// Parses and validates flows from TOML text.
    pub fn from_toml_str(source: &str) -> Result<Policy, PolicyError> {
        load::parse(source).map(|file| Policy { file })
    }

    /// Validates an already parsed file.
    pub fn from_file(file: PolicyFile) -> Result<Policy, PolicyError> {
        load::validate(&file)?;
        Ok(Policy { file })
    }

    /// The parsed file.
    pub fn file(&self) -> &PolicyFile {
        &self.file
    }

    /// Every flow, in file order.
    pub fn flows(&self) -> &[Flow] {
        &self.file.flows
    }

    /// The flow with this id.
    pub fn flow(&self, id: &str) -> Option<&Flow> {
        self.file.flows.iter().find(|f| f.id == id)
    }

    /// The flows a kind of source feeds (its `sources` name it), in file order: what
    /// the hub reads from a peer's system goes under these flows and no other.
    pub fn flows_fed_by(&self, kind: &str) -> Vec<&Flow> {
        self.file
            .flows
            .iter()
            .filter(|f| f.sources.iter().any(|k| k == kind))
            .collect()
    }

    /// The flows that join `from` to `to`.
    pub fn flows_between(&self, from: &Party<'_>, to: &Party<'_>) -> Vec<&Flow> {
        decide::flows_between(&self.file.flows, from, to)
    }

    /// Decides what of `record` may go from `from` to `to`, under the named flow or the
    /// only flow joining them (see [`decide`] for the rules).
    pub fn decide(
        &self,
        flow_id: Option<&str>,
        from: &Party<'_>,
        to: &Party<'_>,
        record: &Jeune,
    ) -> Decision<'_> {
        decide::decide(&self.file.flows, flow_id, from, to, record)
    }
}
