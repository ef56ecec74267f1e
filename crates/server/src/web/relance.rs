//! Replaying a dead-lettered transfer from "Mes envois": an `operateur` of the sending
//! organisation puts it back in its recipient's queue (the cli's [`ReplayDesk`]
//! reaches the transport's dead letters); journaled with the account and the person's
//! pseudonym.

use std::collections::HashMap;

use async_trait::async_trait;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use passerelle_hub::{DatedTransfer, Role, TransferStatus};
use uuid::Uuid;

use super::faj::DeskError;
use super::html::{self, layout};
use super::pages::{csrf_ok, csrf_refused, refuse, to_login, who};
use super::{Current, WebApp, page};
use crate::page::escape_html as esc;

/// What the replay needs from the transport (implemented by the cli).
#[async_trait]
pub trait ReplayDesk: Send + Sync {
    /// Puts the dead letter of `transfer_id` back in `recipient`'s queue; false when
    /// no such dead letter is there (replayed already).
    async fn replay(&self, recipient: &str, transfer_id: Uuid) -> Result<bool, DeskError>;
}

/// Whether this account may replay what `sender` sent.
fn may_replay(c: &Current, sender: &str) -> bool {
    c.account.role == Role::Operateur && c.account.org.as_deref() == Some(sender)
}

/// The "Que faire" cell of one envoi: the advice, and for an operateur of the sender
/// the replay button of a dead letter.
pub(super) fn what_to_do(app: &WebApp, c: &Current, t: &DatedTransfer) -> String {
    let mut out = html::what_to_do(t.row.status).to_owned();
    if t.row.status == TransferStatus::DeadLettered
        && may_replay(c, &t.row.sender)
        && app.replay_desk().is_some()
    {
        out.push_str(&format!(
            "<form method=\"post\" action=\"/envois/relancer\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"transfert\" value=\"{}\">\
             <button type=\"submit\">Relancer l'envoi {}</button></form>",
            esc(&c.csrf),
            t.row.transfer_id,
            &t.row.transfer_id.to_string()[..8],
        ));
    }
    out
}

pub(super) async fn relancer(
    State(app): State<WebApp>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(c) = app.current(&headers).await else {
        return to_login();
    };
    if !csrf_ok(&c, &form) {
        return csrf_refused(&app, &c, "/envois/relancer").await;
    }
    let row = match form.get("transfert").map(|s| Uuid::parse_str(s)) {
        Some(Ok(id)) => app.deps().store.transfer(&id).await.ok().flatten(),
        _ => None,
    };
    let Some(t) = row else {
        return refuse(
            &app,
            &c,
            StatusCode::NOT_FOUND,
            "Aucun envoi ne porte cette référence.",
            "relance : envoi inconnu",
        )
        .await;
    };
    if !may_replay(&c, &t.row.sender) {
        return refuse(
            &app,
            &c,
            StatusCode::FORBIDDEN,
            "Seul un opérateur de l'organisation qui a envoyé peut relancer un envoi.",
            "relance d'un envoi refusée",
        )
        .await;
    }
    let Some(desk) = app.replay_desk() else {
        return refuse(
            &app,
            &c,
            StatusCode::SERVICE_UNAVAILABLE,
            "La relance n'est pas disponible sur ce hub.",
            "relance : non configurée",
        )
        .await;
    };
    let short = &t.row.transfer_id.to_string()[..8];
    let message = if t.row.status != TransferStatus::DeadLettered {
        format!("L'envoi {short} n'est pas en échec : rien à relancer.")
    } else {
        match desk.replay(&t.row.recipient, t.row.transfer_id).await {
            Ok(true) => {
                let p = app.deps().pseudonyms.pseudonym(&t.row.hub_id.to_string());
                app.journal_consulted(
                    &c.account,
                    &[p],
                    &format!("relance de l'envoi non remis {short} ({})", t.row.flow),
                )
                .await;
                format!(
                    "L'envoi {short} est relancé : il repart vers {} et son accusé de réception suivra.",
                    app.org_name(&t.row.recipient)
                )
            }
            Ok(false) => {
                format!(
                    "L'envoi {short} n'est plus parmi les envois non remis : il a déjà été relancé."
                )
            }
            Err(e) => {
                tracing::warn!("replay failed: {e}");
                "La relance n'a pas pu être faite pour l'instant : réessayez dans quelques minutes."
                    .to_owned()
            }
        }
    };
    page(
        StatusCode::OK,
        layout(
            "Relance d'un envoi",
            Some(&who(&app, &c)),
            "/envois",
            &format!(
                "<p class=\"info\" role=\"status\">{}</p><p><a href=\"/envois\">Retour aux envois</a></p>",
                esc(&message)
            ),
        ),
    )
}
