//! Encoding detection and a streaming decoder to UTF-8, for files that come as UTF-8
//! with or without BOM, or windows-1252 (detected, never assumed).
//!
//! Detection looks at the first 64 KiB: a BOM means UTF-8; bytes that are not valid
//! UTF-8 mean windows-1252; an XML declaration naming a Latin encoding means
//! windows-1252. Otherwise the file is read as UTF-8, and a stray invalid byte later
//! on is read as windows-1252 rather than replaced, so that no character is lost.

use std::io::{self, Read};

/// How much of a file detection looks at.
pub const SNIFF_LEN: usize = 64 * 1024;

/// What detection decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detected {
    /// UTF-8 with a byte-order mark (the mark is skipped).
    Utf8Bom,
    /// UTF-8 without a mark.
    Utf8,
    /// windows-1252 (also declared as ISO-8859-1 or ISO-8859-15).
    Windows1252,
}

/// Decides the encoding from the first bytes of a file.
pub fn detect(prefix: &[u8]) -> Detected {
    if prefix.starts_with(b"\xEF\xBB\xBF") {
        return Detected::Utf8Bom;
    }
    match std::str::from_utf8(prefix) {
        Err(e) if e.error_len().is_some() => return Detected::Windows1252,
        _ => {}
    }
    if declares_latin(prefix) {
        return Detected::Windows1252;
    }
    Detected::Utf8
}

/// Whether an XML declaration at the start names a single-byte Latin encoding.
fn declares_latin(prefix: &[u8]) -> bool {
    if !prefix.starts_with(b"<?xml") {
        return false;
    }
    let end = prefix
        .iter()
        .position(|&b| b == b'>')
        .unwrap_or(prefix.len().min(200));
    let decl = String::from_utf8_lossy(&prefix[..end]).to_ascii_lowercase();
    [
        "windows-1252",
        "iso-8859-1",
        "iso-8859-15",
        "latin1",
        "cp1252",
    ]
    .iter()
    .any(|enc| decl.contains(enc))
}

/// Wraps a reader so that it yields UTF-8, detecting the source encoding first.
pub fn decoding_reader<R: Read>(mut inner: R) -> io::Result<(Detected, DecodingReader<R>)> {
    let mut prefix = Vec::with_capacity(SNIFF_LEN);
    (&mut inner)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut prefix)?;
    let detected = detect(&prefix);
    if detected == Detected::Utf8Bom {
        prefix.drain(..3);
    }
    let reader = DecodingReader {
        inner,
        detected,
        pending: prefix,
        out: Vec::with_capacity(SNIFF_LEN * 2),
        out_pos: 0,
        eof: false,
    };
    Ok((detected, reader))
}

/// Decodes a whole byte slice to a UTF-8 string (for small files and tests).
pub fn decode_all(bytes: &[u8]) -> (Detected, String) {
    let detected = detect(&bytes[..bytes.len().min(SNIFF_LEN)]);
    let text = match detected {
        Detected::Utf8Bom => {
            let mut out = String::new();
            decode_utf8_lenient(&bytes[3..], true, &mut out);
            out
        }
        Detected::Utf8 => {
            let mut out = String::new();
            decode_utf8_lenient(bytes, true, &mut out);
            out
        }
        Detected::Windows1252 => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
    };
    (detected, text)
}

/// A reader yielding UTF-8 bytes; see the module documentation.
#[derive(Debug)]
pub struct DecodingReader<R> {
    inner: R,
    detected: Detected,
    /// Source bytes read but not yet decoded (the sniffed prefix, a split sequence).
    pending: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
}

impl<R> DecodingReader<R> {
    /// The encoding detected at the start.
    pub fn detected(&self) -> Detected {
        self.detected
    }
}

impl<R: Read> DecodingReader<R> {
    fn fill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.out_pos = 0;
        while self.out.is_empty() && !(self.eof && self.pending.is_empty()) {
            if !self.eof {
                let mut chunk = [0u8; 64 * 1024];
                let n = loop {
                    match self.inner.read(&mut chunk) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                if n == 0 {
                    self.eof = true;
                } else {
                    self.pending.extend_from_slice(&chunk[..n]);
                }
            }
            let mut text = String::with_capacity(self.pending.len() + 16);
            let consumed = match self.detected {
                Detected::Windows1252 => {
                    let (cow, _) =
                        encoding_rs::WINDOWS_1252.decode_without_bom_handling(&self.pending);
                    text.push_str(&cow);
                    self.pending.len()
                }
                Detected::Utf8 | Detected::Utf8Bom => {
                    decode_utf8_lenient(&self.pending, self.eof, &mut text)
                }
            };
            self.pending.drain(..consumed);
            self.out.extend_from_slice(text.as_bytes());
        }
        Ok(())
    }
}

impl<R: Read> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_pos >= self.out.len() {
            self.fill()?;
        }
        let available = &self.out[self.out_pos..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// Decodes UTF-8, reading any invalid byte as windows-1252. Returns how many bytes
/// were consumed: an incomplete sequence at the end is kept for the next call unless
/// `at_eof`.
fn decode_utf8_lenient(bytes: &[u8], at_eof: bool, out: &mut String) -> usize {
    let mut pos = 0;
    while pos < bytes.len() {
        match std::str::from_utf8(&bytes[pos..]) {
            Ok(s) => {
                out.push_str(s);
                return bytes.len();
            }
            Err(e) => {
                let valid = pos + e.valid_up_to();
                // The prefix up to `valid` was just checked to be UTF-8.
                out.push_str(std::str::from_utf8(&bytes[pos..valid]).unwrap_or_default());
                if e.error_len().is_none() && !at_eof {
                    return valid;
                }
                let (c, _) =
                    encoding_rs::WINDOWS_1252.decode_without_bom_handling(&bytes[valid..valid + 1]);
                out.push_str(&c);
                pos = valid + 1;
            }
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> (Detected, String) {
        let (det, mut r) = decoding_reader(bytes).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        (det, s)
    }

    /// A reader that hands out one byte at a time, to split every sequence.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn utf8_with_and_without_bom() {
        let text = "Nom;Prénom\nLefèvre;Œdipe’s €\n";
        assert_eq!(read_all(text.as_bytes()), (Detected::Utf8, text.to_owned()));
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(read_all(&bom), (Detected::Utf8Bom, text.to_owned()));
        assert_eq!(decode_all(&bom), (Detected::Utf8Bom, text.to_owned()));
    }

    #[test]
    fn windows_1252_specials() {
        // œ 0x9C, ’ 0x92, € 0x80, Œ 0x8C, é 0xE9.
        let bytes = b"c\x9Cur l\x92\xE9t\xE9 10\x80 \x8Cuvre";
        let (det, s) = read_all(bytes);
        assert_eq!(det, Detected::Windows1252);
        assert_eq!(s, "cœur l’été 10€ Œuvre");
    }

    #[test]
    fn xml_declaration_decides_for_ascii_prefixes() {
        let bytes = b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><a>x</a>";
        assert_eq!(detect(bytes), Detected::Windows1252);
        let bytes = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>x</a>";
        assert_eq!(detect(bytes), Detected::Utf8);
    }

    #[test]
    fn a_late_latin_byte_is_not_lost() {
        let mut bytes = vec![b'a'; SNIFF_LEN + 10];
        bytes.extend_from_slice(b"caf\xE9 et caf\xC3\xA9");
        let (det, s) = read_all(&bytes);
        assert_eq!(det, Detected::Utf8);
        assert!(s.ends_with("café et café"), "{}", &s[s.len() - 20..]);
    }

    #[test]
    fn sequences_split_across_reads() {
        let mut bytes = vec![b'x'; SNIFF_LEN - 1];
        let tail = "é€𝄞 fin";
        bytes.extend_from_slice(tail.as_bytes());
        let (det, mut r) = decoding_reader(Trickle(&bytes)).unwrap();
        assert_eq!(det, Detected::Utf8);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert!(s.ends_with(tail));
        assert_eq!(s.len(), bytes.len());
    }

    #[test]
    fn truncated_sequence_at_eof_is_kept_as_latin() {
        let (_, s) = read_all(b"abc\xC3");
        assert_eq!(s, "abcÃ");
    }
}
