//! The sender's own reference of each transfer (issue 21, item 5): what a sender can
//! find a receipt by. A place in a file (`{file}:{line}`) says nothing about a person
//! and is kept as is; a sender's id for the person (an I-MILO dossier number) is an
//! identifier, kept sealed for the sender as `peer_ref` is.

use std::collections::BTreeMap;

use passerelle_transport::Header;
use tracing::debug;
use uuid::Uuid;

use super::{Engine, Result};
use crate::seal::Sealer;
use crate::state::{SENDER_REF_PLACE, SENDER_REF_SEALED};

/// A sender's reference to the record a transfer carries.
#[derive(Clone, PartialEq, Eq)]
pub enum SenderRef {
    /// Where the record was in the sender's file: not personal.
    Place(String),
    /// The sender's own id for the person: personal, stored sealed.
    Own(String),
}

impl std::fmt::Debug for SenderRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Place(p) => f.debug_tuple("Place").field(p).finish(),
            Self::Own(_) => f.write_str("Own(<redacted>)"),
        }
    }
}

/// What a sender reference is sealed under: the transfer and its sender.
fn header(transfer_id: &Uuid, sender: &str) -> Header {
    Header {
        transfer_id: *transfer_id,
        flow: "sender-ref".to_owned(),
        sender: sender.to_owned(),
        recipient: sender.to_owned(),
        ordering_key: None,
        headers: BTreeMap::new(),
    }
}

/// The reference as a sender reads it from its stored form: `None` when it is sealed
/// and this hub cannot open it (no keys for the sender here).
pub fn open_sender_ref(
    sealer: Option<&dyn Sealer>,
    transfer_id: &Uuid,
    sender: &str,
    stored: &str,
) -> Option<String> {
    if let Some(place) = stored.strip_prefix(SENDER_REF_PLACE) {
        return Some(place.to_owned());
    }
    let sealed = hex::decode(stored.strip_prefix(SENDER_REF_SEALED)?).ok()?;
    let plain = sealer?.open(&header(transfer_id, sender), &sealed).ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

impl Engine {
    /// Records the sender's reference of published transfers: (transfer, sender,
    /// reference). A sender with no keys here keeps no sealed reference (it never
    /// receives anything, hence has none to open either).
    pub async fn keep_sender_refs(&self, refs: Vec<(Uuid, String, SenderRef)>) -> Result<()> {
        let mut rows = Vec::with_capacity(refs.len());
        for (id, sender, r) in refs {
            match r {
                SenderRef::Place(p) => rows.push((id, format!("{SENDER_REF_PLACE}{p}"))),
                SenderRef::Own(own) => {
                    match self.sealer.seal(&header(&id, &sender), own.as_bytes()) {
                        Ok(sealed) => {
                            rows.push((id, format!("{SENDER_REF_SEALED}{}", hex::encode(sealed))))
                        }
                        Err(e) => debug!(org = %sender, "sender reference not kept: {e}"),
                    }
                }
            }
        }
        Ok(self.state.save_sender_refs(&rows).await?)
    }
}
