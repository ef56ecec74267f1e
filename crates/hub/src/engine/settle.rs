//! Receipts: what the sink answered at delivery, or what a file peer answered later
//! (ACK files). Each moves its transfer forward and is journaled, once: a receipt that
//! moves nothing (read by two nights, delivered again after a crash) is not journaled.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use passerelle_audit::{Event, NewEntry, Outcome, Subject};
use passerelle_connector::{Receipt, ReceiptSource, ReceiptStatus};
use passerelle_transport::Header;
use tracing::warn;
use uuid::Uuid;

use super::journal::keep;
use super::{Engine, Result, SUBJECT_HEADER};
use crate::report::LateSummary;
use crate::state::{StatusChange, TransferRow, TransferStatus};

/// A receipt for one transfer, named by its header.
#[derive(Debug, Clone)]
pub(super) struct Receipted {
    pub header: Header,
    pub status: TransferStatus,
    /// Why (rejected, dead-lettered): codes and field paths, never values.
    pub reason: Option<String>,
}

impl Receipted {
    pub fn new(header: Header, status: TransferStatus, reason: Option<String>) -> Self {
        Self {
            header,
            status,
            reason,
        }
    }
}

impl Engine {
    /// Records receipts (one transaction, their journal entries pending in it), then
    /// journals those that moved their transfer. Returns those.
    pub(super) async fn settle(&self, receipts: Vec<Receipted>) -> Result<Vec<Receipted>> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let mut changes = Vec::with_capacity(receipts.len());
        let mut entries = Vec::with_capacity(receipts.len());
        for r in &receipts {
            entries.push(self.receipt_entry(r));
            changes.push(StatusChange {
                transfer_id: r.header.transfer_id,
                status: r.status,
                reason: r.reason.clone(),
            });
        }
        let kept: Vec<Vec<u8>> = entries.iter().map(keep).collect();
        let done = self.take_journaled();
        let (moved, pending) = match self.state.settle(&changes, &kept, &done).await {
            Ok(r) => r,
            Err(e) => {
                self.mark_journaled(done);
                return Err(e.into());
            }
        };
        let mut journal = Vec::new();
        let mut out = Vec::new();
        for ((r, e), moved) in receipts.into_iter().zip(entries).zip(moved) {
            if moved {
                journal.push(e);
                out.push(r);
            }
        }
        self.journal_kept(journal, pending).await?;
        Ok(out)
    }

    fn receipt_entry(&self, r: &Receipted) -> NewEntry {
        let (event, outcome) = match r.status {
            TransferStatus::Published => (Event::Published, Outcome::Ok),
            TransferStatus::Delivered => (Event::Delivered, Outcome::Ok),
            TransferStatus::Applied => (Event::Applied, Outcome::Ok),
            TransferStatus::Rejected => (Event::Rejected, Outcome::Refused),
            TransferStatus::DeadLettered => (Event::DeadLettered, Outcome::Failed),
        };
        let h = &r.header;
        let mut e = self.entry(event, &h.flow, &h.sender, &h.recipient, outcome);
        e.subject = h.headers.get(SUBJECT_HEADER).map(|p| Subject {
            pseudonym: p.clone(),
            identifiers: Vec::new(),
        });
        e.reason = r.reason.clone();
        e
    }

    /// Settles receipts a peer gave after the delivery (a SOLIS ACK file): each moves
    /// its transfer forward and is journaled, once. Unknown transfer ids are counted
    /// apart, and answers already settled (read before) too.
    pub async fn settle_late(&self, receipts: &[Receipt]) -> Result<BTreeMap<String, LateSummary>> {
        let mut by_flow: BTreeMap<String, LateSummary> = BTreeMap::new();
        let mut unknown = 0;
        let mut wanted = Vec::new();
        for r in receipts {
            match Uuid::from_str(&r.transfer_id) {
                Ok(id) => wanted.push((id, r)),
                Err(_) => unknown += 1,
            }
        }
        let ids: Vec<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
        let rows: HashMap<Uuid, TransferRow> = self
            .state
            .transfers(&ids)
            .await?
            .into_iter()
            .map(|r| (r.transfer_id, r))
            .collect();
        let mut settled = Vec::new();
        for (id, receipt) in wanted {
            let Some(row) = rows.get(&id) else {
                unknown += 1;
                continue;
            };
            let (status, reason) = match &receipt.status {
                ReceiptStatus::Delivered => (TransferStatus::Delivered, None),
                ReceiptStatus::Applied { .. } => (TransferStatus::Applied, None),
                ReceiptStatus::Rejected { reasons } => {
                    (TransferStatus::Rejected, Some(reasons.join("; ")))
                }
            };
            let pseudonym = Subject::new(&self.pseudonyms, &row.hub_id.to_string()).pseudonym;
            let header = Header {
                transfer_id: id,
                flow: row.flow.clone(),
                sender: row.sender.clone(),
                recipient: row.recipient.clone(),
                ordering_key: None,
                headers: [(SUBJECT_HEADER.to_owned(), pseudonym)].into(),
            };
            settled.push(Receipted::new(header, status, reason));
        }
        let offered: Vec<(String, TransferStatus)> = settled
            .iter()
            .map(|r| (r.header.flow.clone(), r.status))
            .collect();
        let moved = self.settle(settled).await?;
        let mut moved_per_flow: BTreeMap<(String, TransferStatus), u64> = BTreeMap::new();
        for r in &moved {
            *moved_per_flow
                .entry((r.header.flow.clone(), r.status))
                .or_default() += 1;
        }
        for (flow, status) in offered {
            let summary = by_flow.entry(flow.clone()).or_default();
            let left = moved_per_flow.get_mut(&(flow, status));
            match left {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    match status {
                        TransferStatus::Applied => summary.applied += 1,
                        TransferStatus::Rejected => summary.rejected += 1,
                        _ => {}
                    }
                }
                _ => summary.already += 1,
            }
        }
        if unknown > 0 {
            warn!(unknown, "receipts naming no known transfer");
            by_flow.entry(String::new()).or_default().unknown += unknown;
        }
        Ok(by_flow)
    }

    /// Settles the transfers left `delivered` for longer than `within` without their
    /// answer (an import file lost on the peer's side, an ACK never written): each is
    /// dead-lettered with the reason, journaled once, and what was last sent for it is
    /// forgotten, so that its source giving the record again sends it again. A late
    /// answer still settles it (applied comes after dead-lettered). Returns how many,
    /// per recipient.
    pub async fn settle_unanswered(
        &self,
        within: std::time::Duration,
    ) -> Result<BTreeMap<String, u64>> {
        let before = chrono::Utc::now()
            - chrono::TimeDelta::from_std(within).unwrap_or(chrono::TimeDelta::MAX);
        let rows = self.state.unanswered(before).await?;
        if rows.is_empty() {
            return Ok(BTreeMap::new());
        }
        let hours = within.as_secs() / 3600;
        let receipts: Vec<Receipted> = rows
            .iter()
            .map(|row| {
                let pseudonym = Subject::new(&self.pseudonyms, &row.hub_id.to_string()).pseudonym;
                let header = Header {
                    transfer_id: row.transfer_id,
                    flow: row.flow.clone(),
                    sender: row.sender.clone(),
                    recipient: row.recipient.clone(),
                    ordering_key: None,
                    headers: [(SUBJECT_HEADER.to_owned(), pseudonym)].into(),
                };
                Receipted::new(
                    header,
                    TransferStatus::DeadLettered,
                    Some(format!(
                        "NO_ANSWER: {} did not answer within {hours} h; sent again when its source gives it again",
                        row.recipient
                    )),
                )
            })
            .collect();
        let moved = self.settle(receipts).await?;
        let ids: Vec<Uuid> = moved.iter().map(|r| r.header.transfer_id).collect();
        self.state.forget_sent(&ids).await?;
        let mut out = BTreeMap::new();
        for r in &moved {
            *out.entry(r.header.recipient.clone()).or_default() += 1;
        }
        Ok(out)
    }

    /// Reads a late-receipt source dry: settles each answer, then acknowledges it.
    pub async fn collect_receipts(&self, source: &mut dyn ReceiptSource) -> Result<LateSummary> {
        let mut total = LateSummary::default();
        for s in self.collect_receipts_by_flow(source).await?.values() {
            total += s;
        }
        Ok(total)
    }

    /// `collect_receipts`, counted per flow (receipts naming no known transfer are
    /// counted under the empty flow id).
    pub async fn collect_receipts_by_flow(
        &self,
        source: &mut dyn ReceiptSource,
    ) -> Result<BTreeMap<String, LateSummary>> {
        let mut total: BTreeMap<String, LateSummary> = BTreeMap::new();
        for group in source.next_receipts().await? {
            for (flow, s) in self.settle_late(&group.receipts).await? {
                *total.entry(flow).or_default() += &s;
            }
            source.ack(&group.ack).await?;
        }
        Ok(total)
    }
}
