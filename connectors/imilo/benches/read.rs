//! Read benchmark (placeholder until written).
fn main() {}
