//! The hub at run time, shared by the `passerelle` binary, the end-to-end tests and the
//! night benchmark: the configuration file (`config`), the hub it opens and the night
//! it plans (`wiring`), `serve`'s assembly, and the desks the web application is given.
//! No argument parsing and no output here: the binary does those.

pub mod check;
pub mod choices;
pub mod config;
pub mod decisions;
pub mod facts;
pub mod faj_desk;
pub mod hooks;
pub mod lock;
pub mod retention;
pub mod review_desk;
mod routing;
pub mod serve;
pub mod tsa;
pub mod verified;
pub mod wiring;
