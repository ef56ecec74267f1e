//! FAJ platform connector: OAuth2 client, signed webhooks, reconciliation, and its simulator
