//! Integration tests of the FAJ connector against its simulator (one test binary, so
//! that the busy machine links once).

mod batch;
mod client;
mod e2e;
mod fixtures;
mod privacy;
mod route;
mod sim;
mod support;
mod webhook;
