//! Writing SOLIS imports (`SOLIS_IMPORT_{FLUX}_{DEPT}_{STAMP}.xml`: SUIVI for
//! `brsa-suivi`, OF for `of-signalement`) from canonical records, and reading the
//! ACK files SOLIS answers with into receipts.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use passerelle_connector::xml::{attr_of, escape, open_file};
use passerelle_connector::{ConnectorError, Delivery, Receipt, ReceiptStatus};
use passerelle_model::{Departement, Jeune};

/// The import flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImportFlux {
    /// `brsa-suivi`: follow-up of young RSA beneficiaries (needs their idSolis).
    Suivi,
    /// `of-signalement`: training-obligation reports.
    Of,
}

impl ImportFlux {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Suivi => "SUIVI",
            Self::Of => "OF",
        }
    }

    /// The flux for a hub flow id.
    pub fn for_flow(flow: &str) -> Option<Self> {
        match flow {
            "brsa-suivi" => Some(Self::Suivi),
            "of-signalement" => Some(Self::Of),
            _ => None,
        }
    }
}

/// The import's file name: `SOLIS_IMPORT_{FLUX}_{DEPT}_{YYYYMMDDHHMMSS}.xml`.
pub fn import_file_name(flux: ImportFlux, dept: &Departement, at: NaiveDateTime) -> String {
    format!(
        "SOLIS_IMPORT_{}_{}_{}.xml",
        flux.as_str(),
        dept,
        at.format("%Y%m%d%H%M%S")
    )
}

/// The ACK's file name for an import file name.
pub fn ack_file_name(import_name: &str) -> String {
    format!("SOLIS_ACK_{import_name}")
}

/// Writes a file under a fresh temporary name in the same folder (`O_EXCL`,
/// `O_NOFOLLOW`, mode 0600), then renames it, so that a reader never sees a partial
/// file and a link SOLIS's side planted at either name is never written through
/// (`passerelle_connector::safe_fs`).
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), ConnectorError> {
    passerelle_connector::safe_fs::write_file_with(path, fill)
        .map_err(|e| ConnectorError::io(path.display().to_string(), e))
}

/// A delivery that cannot be written into an import, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub transfer_id: String,
    pub reason: String,
}

/// What `write_import` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    /// Transfer ids written, in file order.
    pub written: Vec<String>,
    pub skipped: Vec<Skipped>,
}

/// One element's XML, or why the record cannot make one.
fn element(flux: ImportFlux, transfer_id: &str, j: &Jeune) -> Result<String, String> {
    let e = |s: &str| escape(s).into_owned();
    let mut out = String::new();
    match flux {
        ImportFlux::Suivi => {
            let id = j
                .identifiants
                .solis
                .as_ref()
                .ok_or("identifiants.solis is missing, SOLIS needs its idSolis")?;
            out.push_str(&format!(
                "  <Suivi referenceExterne=\"{}\" idSolis=\"{}\">\n",
                e(transfer_id),
                e(id.as_str())
            ));
            if let Some(a) = &j.accompagnement {
                out.push_str("    <Accompagnement");
                if let Some(d) = a.dispositif {
                    out.push_str(&format!(" dispositif=\"{d}\""));
                }
                for (k, v) in [
                    ("dateDebut", a.date_debut),
                    ("dateFinPrevue", a.date_fin_prevue),
                    ("dateFinReelle", a.date_fin_reelle),
                ] {
                    if let Some(v) = v {
                        out.push_str(&format!(" {k}=\"{}\"", v.to_french()));
                    }
                }
                out.push_str("/>\n");
            }
            for s in &j.situations {
                out.push_str(&format!(
                    "    <Situation categorie=\"{}\"",
                    s.categorie.as_str().to_uppercase()
                ));
                if let Some(etat) = s.etat {
                    out.push_str(&format!(" etat=\"{}\"", etat.as_str().to_uppercase()));
                }
                for (k, v) in [("dateDebut", s.date_debut), ("dateFin", s.date_fin)] {
                    if let Some(v) = v {
                        out.push_str(&format!(" {k}=\"{}\"", v.to_french()));
                    }
                }
                out.push_str("/>\n");
            }
            out.push_str("  </Suivi>\n");
        }
        ImportFlux::Of => {
            let of = j
                .obligation_formation
                .as_ref()
                .ok_or("obligation_formation is missing")?;
            let statut = of.statut.ok_or("obligation_formation.statut is missing")?;
            let ec = &j.etat_civil;
            let nom = ec
                .nom_usage
                .as_ref()
                .or(ec.nom_naissance.as_ref())
                .ok_or("etat_civil.nom_naissance is missing")?;
            let naissance = ec
                .date_naissance
                .ok_or("etat_civil.date_naissance is missing")?;
            out.push_str(&format!(
                "  <Signalement referenceExterne=\"{}\"",
                e(transfer_id)
            ));
            if let Some(id) = &j.identifiants.solis {
                out.push_str(&format!(" idSolis=\"{}\"", e(id.as_str())));
            }
            out.push_str(&format!(
                " nom=\"{}\" prenoms=\"{}\" dateNaissance=\"{}\" statut=\"{}\"",
                e(nom),
                e(&ec.prenoms.join(" ")),
                naissance.to_french(),
                statut.as_str().to_uppercase()
            ));
            if let Some(d) = of.date_signalement {
                out.push_str(&format!(" dateSignalement=\"{}\"", d.to_french()));
            }
            out.push_str("/>\n");
        }
    }
    // SOLIS reads windows-1252 only: a character outside it cannot be sent.
    let (_, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&out);
    if unmappable {
        return Err("a value holds a character windows-1252 cannot encode".to_owned());
    }
    Ok(out)
}

/// The element of each delivery, or why it cannot be written.
pub(crate) fn elements<'a>(
    flux: ImportFlux,
    deliveries: impl IntoIterator<Item = &'a Delivery>,
) -> Vec<Result<String, String>> {
    deliveries
        .into_iter()
        .map(|d| element(flux, &d.transfer_id, &d.record))
        .collect()
}

/// Writes an import file at `path` (temporary name, then renamed) from ready elements.
pub(crate) fn write_elements(
    path: &Path,
    flux: ImportFlux,
    departement: &Departement,
    emetteur: &str,
    elements: &[&str],
    at: NaiveDateTime,
) -> Result<(), ConnectorError> {
    // Never over an import another writer (another hub process on this folder) just
    // wrote under the same name: the caller takes the next stamp.
    let write = |fill: &mut dyn FnMut(&mut BufWriter<File>) -> std::io::Result<()>| {
        passerelle_connector::safe_fs::write_new_file_with(path, fill)
            .map_err(|e| ConnectorError::io(path.display().to_string(), e))
    };
    write(&mut |w| {
        let head = format!(
            "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<ImportSolis departement=\"{departement}\" flux=\"{}\" emetteur=\"{}\" dateCreation=\"{}\" nbElements=\"{}\">\n",
            flux.as_str(),
            escape(emetteur),
            at.format("%Y-%m-%dT%H:%M:%S"),
            elements.len()
        );
        w.write_all(&encoding_rs::WINDOWS_1252.encode(&head).0)?;
        for xml in elements {
            w.write_all(&encoding_rs::WINDOWS_1252.encode(xml).0)?;
        }
        w.write_all(b"</ImportSolis>\n")
    })
}

/// Writes one import file into `dir` (temporary name, then renamed) with every
/// delivery that can be written; `referenceExterne` is the transfer id.
#[tracing::instrument(skip(deliveries), fields(n = deliveries.len()))]
pub fn write_import(
    dir: &Path,
    flux: ImportFlux,
    departement: &Departement,
    emetteur: &str,
    deliveries: &[Delivery],
    at: NaiveDateTime,
) -> Result<Written, ConnectorError> {
    let mut ready = Vec::with_capacity(deliveries.len());
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    for (d, xml) in deliveries.iter().zip(elements(flux, deliveries)) {
        match xml {
            Ok(xml) => {
                ready.push(xml);
                written.push(d.transfer_id.clone());
            }
            Err(reason) => skipped.push(Skipped {
                transfer_id: d.transfer_id.clone(),
                reason,
            }),
        }
    }
    let path = dir.join(import_file_name(flux, departement, at));
    let refs: Vec<&str> = ready.iter().map(String::as_str).collect();
    write_elements(&path, flux, departement, emetteur, &refs, at)?;
    Ok(Written {
        path,
        written,
        skipped,
    })
}

/// The `referenceExterne` of every element of an import file, in file order (what a
/// file-level KO rejects).
pub fn read_import_refs(path: &Path) -> Result<Vec<String>, ConnectorError> {
    let file = path.display().to_string();
    let (_, mut stream) = open_file(path).map_err(|e| e.into_refusal(&file))?;
    let root = stream.root().map_err(|e| e.into_refusal(&file))?;
    if root.name != "ImportSolis" {
        return Err(ConnectorError::FileRefused {
            file,
            reason: format!(
                "unknown format: root element is {}, expected ImportSolis",
                root.name
            ),
        });
    }
    let mut refs = Vec::new();
    while let Some(child) = stream
        .next_child_with(|_| false)
        .map_err(|e| e.into_refusal(&file))?
    {
        if let Some(r) = child.element.attr("referenceExterne") {
            refs.push(r.to_owned());
        }
        stream.recycle(child.element);
    }
    Ok(refs)
}

/// An ACK file read: the import it answers, its status, one receipt per element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub fichier: String,
    pub ok: bool,
    pub receipts: Vec<Receipt>,
}

/// Reads an ACK file: OK elements become `Applied`, KO ones `Rejected` with their
/// code and message.
pub fn read_ack(path: &Path) -> Result<Ack, ConnectorError> {
    let file = path.display().to_string();
    let (_, mut stream) = open_file(path).map_err(|e| e.into_refusal(&file))?;
    let root = stream.root().map_err(|e| e.into_refusal(&file))?.clone();
    if root.name != "AckSolis" {
        return Err(ConnectorError::FileRefused {
            file,
            reason: format!(
                "unknown format: root element is {}, expected AckSolis",
                root.name
            ),
        });
    }
    let ok = match attr_of(Some(&root), "statut") {
        Some("OK") => true,
        Some("KO") => false,
        _ => {
            return Err(ConnectorError::Protocol {
                peer: "solis".into(),
                reason: "AckSolis/@statut must be OK or KO".into(),
            });
        }
    };
    let mut receipts = Vec::new();
    while let Some(child) = stream.next_child().map_err(|e| e.into_refusal(&file))? {
        let el = &child.element;
        if el.name != "Element" {
            continue;
        }
        let transfer_id = attr_of(Some(el), "referenceExterne")
            .ok_or_else(|| ConnectorError::Protocol {
                peer: "solis".into(),
                reason: format!("{} has no referenceExterne", child.path),
            })?
            .to_owned();
        let status = match attr_of(Some(el), "statut") {
            Some("OK") => ReceiptStatus::Applied { peer_ref: None },
            Some("KO") => {
                // SOLIS's message is free text (it may name the person): the receipt,
                // hence the journal, keeps its code and the message's digest only.
                let code = attr_of(Some(el), "code").unwrap_or("KO");
                let reason =
                    passerelle_connector::redact::reason(code, attr_of(Some(el), "message"));
                ReceiptStatus::Rejected {
                    reasons: vec![reason],
                }
            }
            _ => {
                return Err(ConnectorError::Protocol {
                    peer: "solis".into(),
                    reason: format!("{}/@statut must be OK or KO", child.path),
                });
            }
        };
        receipts.push(Receipt {
            transfer_id,
            status,
        });
    }
    Ok(Ack {
        fichier: attr_of(Some(&root), "fichier").unwrap_or("").to_owned(),
        ok,
        receipts,
    })
}
