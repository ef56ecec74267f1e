//! The library behind the `passerelle` command: the configuration file and the wiring
//! from it to a running hub, shared by `sync`, `serve`, `demo` and the end-to-end tests.

pub mod check;
pub mod choices;
pub mod config;
pub mod decisions;
pub mod faj_desk;
pub mod lock;
pub mod retention;
pub mod review_desk;
pub mod tsa;
pub mod verified;
pub mod wiring;
pub mod world;
