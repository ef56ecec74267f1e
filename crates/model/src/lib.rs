//! The canonical `passerelle.jeune/1` record: Rust types with their JSON form,
//! validated identifier and value types, and field classes for policy.
//!
//! This crate does no I/O: connectors, policy and the engine all depend on it, and it
//! must stay cheap to build and easy to test.

pub mod classes;
pub mod codes;
pub mod error;
pub mod normalise;
mod project;
pub mod record;
pub mod value;

pub use classes::{FIELDS, FieldClass, Projection, class_of, is_known_path, severity_of};
pub use codes::*;
pub use error::{FieldError, InvalidValue, Issues, Severity};
pub use record::*;
pub use value::*;
