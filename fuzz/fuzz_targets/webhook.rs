//! Fuzzes the FAJ webhook's parsing: the signature header and the body, as a client
//! sends them, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_faj::Secret;
use passerelle_faj::webhook::{WebhookBody, verify_signature};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let secret = Secret::new("fuzz");
    let _ = verify_signature(&secret, Some(header), body);
    let _ = WebhookBody::parse(body);
});
