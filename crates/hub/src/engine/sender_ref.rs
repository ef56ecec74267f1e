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

/// What a sender knows a record by.
#[derive(Clone, PartialEq, Eq)]
pub enum RefKind {
    /// Where the record was in the sender's file: not personal.
    Place(String),
    /// The sender's own id for the person: personal, stored sealed.
    Own(String),
}

/// A sender's reference to the record a transfer carries, with the person's initials
/// ("Mes envois" shows them, never more of the person): both stored sealed for the
/// sender whenever either is personal.
#[derive(Clone, PartialEq, Eq)]
pub struct SenderRef {
    pub kind: RefKind,
    pub initiales: Option<String>,
}

impl SenderRef {
    pub fn place(p: impl Into<String>) -> Self {
        Self {
            kind: RefKind::Place(p.into()),
            initiales: None,
        }
    }

    pub fn own(id: impl Into<String>) -> Self {
        Self {
            kind: RefKind::Own(id.into()),
            initiales: None,
        }
    }

    pub fn with_initiales(mut self, initiales: Option<String>) -> Self {
        self.initiales = initiales;
        self
    }
}

impl std::fmt::Debug for SenderRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderRef")
            .field("kind", &self.kind)
            .field("initiales", &self.initiales.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl std::fmt::Debug for RefKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Place(p) => f.debug_tuple("Place").field(p).finish(),
            Self::Own(_) => f.write_str("Own(<redacted>)"),
        }
    }
}

/// The sealed form's plain text: a reference with initials. (A sealed reference
/// stored before initials existed is the bare id, which never reads as this.)
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    initiales: Option<String>,
}

/// A sender reference as its sender reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenedRef {
    pub reference: String,
    pub initiales: Option<String>,
}

impl std::fmt::Debug for OpenedRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenedRef(<redacted>)")
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
    open_sender_ref_full(sealer, transfer_id, sender, stored).map(|o| o.reference)
}

/// As [`open_sender_ref`], with the person's initials when they were kept.
pub fn open_sender_ref_full(
    sealer: Option<&dyn Sealer>,
    transfer_id: &Uuid,
    sender: &str,
    stored: &str,
) -> Option<OpenedRef> {
    if let Some(place) = stored.strip_prefix(SENDER_REF_PLACE) {
        return Some(OpenedRef {
            reference: place.to_owned(),
            initiales: None,
        });
    }
    let sealed = hex::decode(stored.strip_prefix(SENDER_REF_SEALED)?).ok()?;
    let plain = sealer?.open(&header(transfer_id, sender), &sealed).ok()?;
    if let Ok(s) = serde_json::from_slice::<Sealed>(&plain) {
        return Some(OpenedRef {
            reference: s.reference,
            initiales: s.initiales,
        });
    }
    Some(OpenedRef {
        reference: String::from_utf8(plain.to_vec()).ok()?,
        initiales: None,
    })
}

impl Engine {
    /// Records the sender's reference of published transfers: (transfer, sender,
    /// reference). A place without initials is kept as is; anything personal (an own
    /// id, initials) is sealed for the sender. A sender with no keys here keeps its
    /// places without initials and no own ids (it never receives anything, hence
    /// could open none either).
    pub async fn keep_sender_refs(&self, refs: Vec<(Uuid, String, SenderRef)>) -> Result<()> {
        let mut rows = Vec::with_capacity(refs.len());
        for (id, sender, r) in refs {
            let place = match &r.kind {
                RefKind::Place(p) => Some(format!("{SENDER_REF_PLACE}{p}")),
                RefKind::Own(_) => None,
            };
            if r.initiales.is_none()
                && let Some(p) = place
            {
                rows.push((id, p));
                continue;
            }
            let reference = match r.kind {
                RefKind::Place(p) | RefKind::Own(p) => p,
            };
            // Two strings: serialising cannot fail.
            let plain = serde_json::to_vec(&Sealed {
                reference,
                initiales: r.initiales,
            })
            .unwrap_or_default();
            match self.sealer.seal(&header(&id, &sender), &plain) {
                Ok(sealed) => {
                    rows.push((id, format!("{SENDER_REF_SEALED}{}", hex::encode(sealed))))
                }
                Err(e) => {
                    debug!(org = %sender, "sender reference kept without what is personal: {e}");
                    rows.extend(place.map(|p| (id, p)));
                }
            }
        }
        Ok(self.state.save_sender_refs(&rows).await?)
    }
}
