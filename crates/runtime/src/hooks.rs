//! The webhooks this hub mounts in its web server, through the server's `Webhook`
//! trait (the server knows no connector): the FAJ platform's decision receiver.

use axum::Router;
use passerelle_faj::WebhookState;

/// Where the FAJ decision webhook is mounted.
pub const FAJ_HOOK_PATH: &str = "/hooks/faj";

/// The FAJ connector's signed-webhook receiver, mounted under [`FAJ_HOOK_PATH`].
#[derive(Clone)]
pub struct FajHook(pub WebhookState);

impl std::fmt::Debug for FajHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FajHook")
            .field("path", &FAJ_HOOK_PATH)
            .finish_non_exhaustive()
    }
}

impl passerelle_server::Webhook for FajHook {
    fn path(&self) -> &str {
        FAJ_HOOK_PATH
    }

    fn router(&self) -> Router {
        self.0.clone().router()
    }
}
