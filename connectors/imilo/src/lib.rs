//! I-MILO connector (REST client) and its axum simulator
