//! What the engine and a night did, counted: per send, per delivery, per late answer,
//! then per flow for the whole night. Plain counters that add up (`+=`), shared by the
//! engine and the night without either importing the other.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use serde::Serialize;

use crate::state::TransferStatus;

/// What one `send` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SendSummary {
    /// Records offered.
    pub read: u64,
    /// Published (new or changed content).
    pub sent: u64,
    /// Same content as last sent: nothing to do.
    pub unchanged: u64,
    /// Refused by policy (no flow, or outside the flow).
    pub denied: u64,
    /// Sent to identity review instead of being guessed.
    pub review: u64,
    /// Special-category fields (nir, art9, art10) projected away from what was sent,
    /// and journaled with it.
    pub special_dropped: u64,
    /// Replies not sent: the recipient never sent us this person.
    pub not_known: u64,
}

impl AddAssign<&SendSummary> for SendSummary {
    fn add_assign(&mut self, s: &SendSummary) {
        self.read += s.read;
        self.sent += s.sent;
        self.unchanged += s.unchanged;
        self.denied += s.denied;
        self.review += s.review;
        self.special_dropped += s.special_dropped;
        self.not_known += s.not_known;
    }
}

/// What one `deliver` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliverSummary {
    /// Handed to a file peer, its answer still to come.
    pub delivered: u64,
    pub applied: u64,
    pub rejected: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    /// Delivered again after a crash although their receipt was already recorded:
    /// acknowledged without calling the peer or journaling anything.
    pub redelivered: u64,
}

impl DeliverSummary {
    /// Counts one receipt.
    pub fn count(&mut self, status: TransferStatus) {
        match status {
            TransferStatus::Applied => self.applied += 1,
            TransferStatus::Rejected => self.rejected += 1,
            TransferStatus::DeadLettered => self.dead_lettered += 1,
            TransferStatus::Published | TransferStatus::Delivered => self.delivered += 1,
        }
    }

    /// Transfers that reached the peer (or were refused on the way) this time.
    pub fn settled(&self) -> u64 {
        self.delivered + self.applied + self.rejected
    }
}

impl AddAssign<&DeliverSummary> for DeliverSummary {
    fn add_assign(&mut self, d: &DeliverSummary) {
        self.delivered += d.delivered;
        self.applied += d.applied;
        self.rejected += d.rejected;
        self.retried += d.retried;
        self.dead_lettered += d.dead_lettered;
        self.redelivered += d.redelivered;
    }
}

/// What `settle_late` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LateSummary {
    pub applied: u64,
    pub rejected: u64,
    /// Receipts naming a transfer this hub does not know.
    pub unknown: u64,
    /// Answers already settled (read twice, by two nights or after a crash): not
    /// journaled again.
    pub already: u64,
}

impl AddAssign<&LateSummary> for LateSummary {
    fn add_assign(&mut self, s: &LateSummary) {
        self.applied += s.applied;
        self.rejected += s.rejected;
        self.unknown += s.unknown;
        self.already += s.already;
    }
}

/// What moved under one flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowReport {
    /// Records read from the sources.
    pub read: u64,
    /// Records the sources refused (bad input, reported by the connector).
    pub refused_at_source: u64,
    /// Records read that the flow does not carry (no route).
    pub unrouted: u64,
    /// `unrouted` by reason (rules and codes, no personal data).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unrouted_reasons: BTreeMap<String, u64>,
    pub sent: SendSummary,
    pub delivered: DeliverSummary,
    pub late: LateSummary,
}

impl FlowReport {
    /// Transfers of this night that have no final answer yet (delivered to a file
    /// peer, its ACK still to come).
    pub fn awaiting(&self) -> u64 {
        self.delivered
            .delivered
            .saturating_sub(self.late.applied + self.late.rejected)
    }

    /// Applied by the target, now or through a late answer.
    pub fn applied(&self) -> u64 {
        self.delivered.applied + self.late.applied
    }

    /// Rejected by the target, now or through a late answer.
    pub fn rejected(&self) -> u64 {
        self.delivered.rejected + self.late.rejected
    }
}

/// How long each phase of a night took, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Phases {
    /// Late answers read before the sources (ACK files of the previous night).
    pub answers_before: f64,
    /// Sources read, sent and delivered (delivery runs while the sources read).
    pub sources: f64,
    /// Sources that answer what was just delivered (FAJ decisions), and their delivery.
    pub replies: f64,
    /// Late answers read at the end.
    pub answers_after: f64,
}

/// What a night did, per flow.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NightReport {
    pub flows: BTreeMap<String, FlowReport>,
    pub seconds: f64,
    pub phases: Phases,
    /// The peers that failed this night (a source, a recipient), with why: the rest
    /// of the night went on, and what they did not take waits in its queue.
    #[serde(default)]
    pub failed: BTreeMap<String, String>,
    /// Files a folder source's name patterns do not take, by source (`cnaf:CD059`):
    /// never read until renamed or a pattern takes them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_read: BTreeMap<String, Vec<String>>,
}

impl NightReport {
    /// The report of one flow, created empty when missing.
    pub fn flow(&mut self, flow: &str) -> &mut FlowReport {
        self.flows.entry(flow.to_owned()).or_default()
    }

    /// Whether every peer was reached, every transfer the night sent has an answer and
    /// none was dead-lettered.
    pub fn completed(&self) -> bool {
        self.failed.is_empty()
            && self.flows.values().all(|r| {
                r.delivered.dead_lettered == 0
                    && r.sent.sent
                        <= r.delivered.applied + r.delivered.rejected + r.delivered.delivered
            })
    }

    /// Records that `peer` failed this night, and why (the first reason is kept).
    pub fn fail(&mut self, peer: &str, reason: impl Into<String>) {
        self.failed
            .entry(peer.to_owned())
            .or_insert_with(|| reason.into());
    }

    /// Every transfer sent, all flows together.
    pub fn sent(&self) -> u64 {
        self.flows.values().map(|r| r.sent.sent).sum()
    }
}

/// `total += s` (kept for callers written before the `+=` form).
pub fn add_sent(total: &mut SendSummary, s: &SendSummary) {
    *total += s;
}

/// `total += d`.
pub fn add_delivered(total: &mut DeliverSummary, d: &DeliverSummary) {
    *total += d;
}

/// `total += s`.
pub fn add_late(total: &mut LateSummary, s: &LateSummary) {
    *total += s;
}
