//! Fuzzes the XLSX reader (archive checks, then calamine behind them): any bytes give
//! rows or errors, never a panic, a hang or an allocation past the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_connector::xlsx::XlsxReader;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = XlsxReader::new(std::io::Cursor::new(data.to_vec()), None) {
        for _ in reader.take(100_000) {}
    }
});
