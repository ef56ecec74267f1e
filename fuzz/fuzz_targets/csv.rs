//! Fuzzes the CSV reader: any bytes give a header and rows, or errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_connector::csv::CsvReader;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = CsvReader::new(data) {
        let width = reader.header().len();
        for row in reader {
            if let Ok(row) = row {
                assert_eq!(row.fields.len(), width);
            }
        }
    }
});
