//! Fuzzes the streaming XML reader: both passes (counting, then building trees) over
//! any bytes must end in `Ok` or an error, never a panic, a hang or a memory blow-up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_connector::encoding::decoding_reader;
use passerelle_connector::xml::XmlStream;

fuzz_target!(|data: &[u8]| {
    for keep in [false, true] {
        let Ok((_, reader)) = decoding_reader(data) else {
            return;
        };
        let mut s = XmlStream::new(reader);
        loop {
            match s.next_child_with(|_| keep) {
                Ok(Some(c)) => s.recycle(c.element),
                Ok(None) | Err(_) => break,
            }
        }
    }
});
