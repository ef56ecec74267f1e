//! Encoding detection and a streaming decoder to UTF-8, for files that come as UTF-8
//! with or without BOM, or windows-1252 (detected, never assumed), and never decoded
//! wrongly in silence.
//!
//! Detection looks at the first 64 KiB: a BOM means UTF-8; an XML declaration naming a
//! Latin encoding means windows-1252; a prefix that is valid UTF-8 means UTF-8; a
//! prefix with bytes that are not UTF-8 and no UTF-8 sequence at all means
//! windows-1252. A prefix that holds both (valid UTF-8 sequences and invalid bytes) is
//! refused: read either way, some of its characters would come out wrong (`FRANÇOIS`
//! as `FRANÃ‡OIS`). Once UTF-8 is decided, an invalid byte anywhere later refuses the
//! file too, naming its byte offset. The configuration can name the encoding
//! (`Declared`) when a peer is known to write otherwise: then nothing is detected.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

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

/// An encoding named in the configuration, for a peer whose files detection would
/// refuse or misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Declared {
    /// UTF-8 (a BOM is skipped); an invalid byte refuses the file.
    #[serde(rename = "utf-8")]
    Utf8,
    /// windows-1252 throughout, whatever the bytes look like.
    #[serde(rename = "windows-1252")]
    Windows1252,
    /// UTF-8 where the bytes are UTF-8, windows-1252 byte by byte elsewhere: for a
    /// peer known to concatenate both.
    #[serde(rename = "mixed")]
    Mixed,
}

/// How the bytes are turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Strict,
    Lenient,
    Latin,
}

/// Decides the encoding from the first bytes of a file (`SNIFF_LEN` of them, or the
/// whole file when shorter). A prefix mixing UTF-8 and other bytes is refused with
/// the offset of its first invalid byte.
pub fn detect_strict(prefix: &[u8], whole: bool) -> io::Result<Detected> {
    if prefix.starts_with(b"\xEF\xBB\xBF") {
        check_utf8(&prefix[3..], 3, whole)?;
        return Ok(Detected::Utf8Bom);
    }
    if declares_latin(prefix) {
        return Ok(Detected::Windows1252);
    }
    match std::str::from_utf8(prefix) {
        Ok(_) => Ok(Detected::Utf8),
        // A sequence cut by the end of the sniffed prefix is read on with the rest.
        Err(e) if e.error_len().is_none() && !whole => Ok(Detected::Utf8),
        Err(e) => {
            if declares_utf8(prefix) || has_utf8_sequence(prefix) {
                Err(invalid_at(e.valid_up_to() as u64))
            } else {
                Ok(Detected::Windows1252)
            }
        }
    }
}

/// The former, lenient decision (no refusal): kept for callers that only need a
/// guess, such as simulators checking what they wrote.
pub fn detect(prefix: &[u8]) -> Detected {
    detect_strict(prefix, false).unwrap_or(Detected::Utf8)
}

fn check_utf8(bytes: &[u8], base: u64, whole: bool) -> io::Result<()> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(()),
        Err(e) if e.error_len().is_none() && !whole => Ok(()),
        Err(e) => Err(invalid_at(base + e.valid_up_to() as u64)),
    }
}

fn invalid_at(offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "not valid utf-8 at byte {offset} (the file is utf-8 elsewhere; name its encoding in the configuration if the peer writes another)"
        ),
    )
}

/// Whether the bytes hold at least one well-formed multi-byte UTF-8 sequence.
fn has_utf8_sequence(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let len = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => {
                i += 1;
                continue;
            }
        };
        if let Some(seq) = bytes.get(i..i + len)
            && std::str::from_utf8(seq).is_ok()
        {
            return true;
        }
        i += 1;
    }
    false
}

fn xml_declaration(prefix: &[u8]) -> Option<String> {
    if !prefix.starts_with(b"<?xml") {
        return None;
    }
    let end = prefix
        .iter()
        .position(|&b| b == b'>')
        .unwrap_or(prefix.len().min(200));
    Some(String::from_utf8_lossy(&prefix[..end]).to_ascii_lowercase())
}

/// Whether an XML declaration at the start names a single-byte Latin encoding.
fn declares_latin(prefix: &[u8]) -> bool {
    xml_declaration(prefix).is_some_and(|decl| {
        [
            "windows-1252",
            "iso-8859-1",
            "iso-8859-15",
            "latin1",
            "cp1252",
        ]
        .iter()
        .any(|enc| decl.contains(enc))
    })
}

/// Whether an XML declaration at the start names UTF-8.
fn declares_utf8(prefix: &[u8]) -> bool {
    xml_declaration(prefix).is_some_and(|decl| decl.contains("utf-8") || decl.contains("utf8"))
}

/// Wraps a reader so that it yields UTF-8, detecting the source encoding first.
pub fn decoding_reader<R: Read>(inner: R) -> io::Result<(Detected, DecodingReader<R>)> {
    decoding_reader_with(inner, None)
}

/// Wraps a reader so that it yields UTF-8: in the encoding the configuration names, or
/// detected when it names none. Errors of kind `InvalidData` refuse the file.
pub fn decoding_reader_with<R: Read>(
    mut inner: R,
    declared: Option<Declared>,
) -> io::Result<(Detected, DecodingReader<R>)> {
    let mut prefix = Vec::with_capacity(SNIFF_LEN);
    (&mut inner)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut prefix)?;
    let whole = prefix.len() < SNIFF_LEN;
    let bom = prefix.starts_with(b"\xEF\xBB\xBF");
    let (detected, mode) = match declared {
        None => {
            let d = detect_strict(&prefix, whole)?;
            let mode = if d == Detected::Windows1252 {
                Mode::Latin
            } else {
                Mode::Strict
            };
            (d, mode)
        }
        Some(Declared::Windows1252) => (Detected::Windows1252, Mode::Latin),
        Some(Declared::Utf8) => (
            if bom {
                Detected::Utf8Bom
            } else {
                Detected::Utf8
            },
            Mode::Strict,
        ),
        Some(Declared::Mixed) => (
            if bom {
                Detected::Utf8Bom
            } else {
                Detected::Utf8
            },
            Mode::Lenient,
        ),
    };
    let mut offset = 0u64;
    if detected == Detected::Utf8Bom {
        prefix.drain(..3);
        offset = 3;
    }
    let reader = DecodingReader {
        inner,
        detected,
        mode,
        pending: prefix,
        offset,
        out: Vec::with_capacity(SNIFF_LEN * 2),
        out_pos: 0,
        eof: false,
    };
    Ok((detected, reader))
}

/// Decodes a whole byte slice to a UTF-8 string (for small files and tests), with the
/// same rules as `decoding_reader`.
pub fn decode_all(bytes: &[u8]) -> io::Result<(Detected, String)> {
    let (detected, mut r) = decoding_reader(bytes)?;
    let mut text = String::with_capacity(bytes.len());
    r.read_to_string(&mut text)?;
    Ok((detected, text))
}

/// A reader yielding UTF-8 bytes; see the module documentation.
#[derive(Debug)]
pub struct DecodingReader<R> {
    inner: R,
    detected: Detected,
    mode: Mode,
    /// Source bytes read but not yet decoded (the sniffed prefix, a split sequence).
    pending: Vec<u8>,
    /// The file offset of `pending[0]`, for errors.
    offset: u64,
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
            let consumed = match self.mode {
                Mode::Latin => {
                    let (cow, _) =
                        encoding_rs::WINDOWS_1252.decode_without_bom_handling(&self.pending);
                    text.push_str(&cow);
                    self.pending.len()
                }
                Mode::Lenient => decode_utf8_lenient(&self.pending, self.eof, &mut text),
                Mode::Strict => {
                    decode_utf8_strict(&self.pending, self.eof, &mut text, self.offset)?
                }
            };
            self.pending.drain(..consumed);
            self.offset += consumed as u64;
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

/// Decodes UTF-8 strictly: an invalid byte is an error naming its file offset. Returns
/// how many bytes were consumed (an incomplete sequence at the end waits for more
/// unless `at_eof`).
fn decode_utf8_strict(
    bytes: &[u8],
    at_eof: bool,
    out: &mut String,
    base: u64,
) -> io::Result<usize> {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            out.push_str(s);
            Ok(bytes.len())
        }
        Err(e) => {
            let valid = e.valid_up_to();
            if e.error_len().is_some() || at_eof {
                return Err(invalid_at(base + valid as u64));
            }
            out.push_str(std::str::from_utf8(&bytes[..valid]).unwrap_or_default());
            Ok(valid)
        }
    }
}

/// Decodes UTF-8, reading any invalid byte as windows-1252 (`Declared::Mixed`).
/// Returns how many bytes were consumed: an incomplete sequence at the end is kept for
/// the next call unless `at_eof`.
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

    fn read_all(bytes: &[u8]) -> io::Result<(Detected, String)> {
        read_with(bytes, None)
    }

    fn read_with(bytes: &[u8], declared: Option<Declared>) -> io::Result<(Detected, String)> {
        let (det, mut r) = decoding_reader_with(bytes, declared)?;
        let mut s = String::new();
        r.read_to_string(&mut s)?;
        Ok((det, s))
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
        assert_eq!(
            read_all(text.as_bytes()).unwrap(),
            (Detected::Utf8, text.to_owned())
        );
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(
            read_all(&bom).unwrap(),
            (Detected::Utf8Bom, text.to_owned())
        );
        assert_eq!(
            decode_all(&bom).unwrap(),
            (Detected::Utf8Bom, text.to_owned())
        );
    }

    #[test]
    fn windows_1252_specials() {
        // œ 0x9C, ’ 0x92, € 0x80, Œ 0x8C, é 0xE9.
        let bytes = b"c\x9Cur l\x92\xE9t\xE9 10\x80 \x8Cuvre";
        let (det, s) = read_all(bytes).unwrap();
        assert_eq!(det, Detected::Windows1252);
        assert_eq!(s, "cœur l’été 10€ Œuvre");
    }

    #[test]
    fn xml_declaration_decides_for_ascii_prefixes() {
        let bytes = b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><a>x</a>";
        assert_eq!(detect(bytes), Detected::Windows1252);
        let bytes = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>x</a>";
        assert_eq!(detect(bytes), Detected::Utf8);
        // Declared UTF-8 but holding a Latin byte: refused, not guessed.
        let bytes = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>caf\xE9</a>";
        let e = read_all(bytes).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("byte 44"), "{e}");
    }

    /// Hostile case 7: a UTF-8 file with one stray byte in its first 64 KiB was read
    /// whole as windows-1252 (`FRANÇOIS` → `FRANÃ‡OIS`, exit 0). Now refused, naming
    /// the byte.
    #[test]
    fn a_mixed_prefix_is_refused_with_its_offset() {
        let bytes = b"NOM;PRENOM\nFRAN\xC3\x87OIS;L\xE9a\n";
        let e = read_all(bytes).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("byte 22"), "{e}");
        assert!(!e.to_string().contains("FRAN"), "{e}");
        // Named in the configuration, it is read as told.
        let (_, s) = read_with(bytes, Some(Declared::Mixed)).unwrap();
        assert_eq!(s, "NOM;PRENOM\nFRANÇOIS;Léa\n");
        let (_, s) = read_with(bytes, Some(Declared::Windows1252)).unwrap();
        assert_eq!(s, "NOM;PRENOM\nFRANÃ‡OIS;Léa\n");
        assert!(read_with(bytes, Some(Declared::Utf8)).is_err());
    }

    #[test]
    fn a_late_invalid_byte_refuses_the_file_at_its_offset() {
        let mut bytes = vec![b'a'; SNIFF_LEN + 10];
        bytes.extend_from_slice(b"caf\xE9 et caf\xC3\xA9");
        let e = read_all(&bytes).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let at = format!("byte {}", SNIFF_LEN + 13);
        assert!(e.to_string().contains(&at), "{e}");
        let (det, s) = read_with(&bytes, Some(Declared::Mixed)).unwrap();
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
    fn truncated_sequence_at_eof() {
        // No other UTF-8 sequence: a Latin file ending in Ã.
        assert_eq!(read_all(b"abc\xC3").unwrap().1, "abcÃ");
        // In a UTF-8 file, a cut sequence at the end is refused.
        assert!(read_all("é abc\u{0}".as_bytes()).is_ok());
        let mut cut = "é".repeat(40_000).into_bytes();
        cut.push(0xC3);
        assert!(read_all(&cut).is_err());
        assert_eq!(
            read_with(&cut, Some(Declared::Mixed))
                .unwrap()
                .1
                .chars()
                .last(),
            Some('Ã')
        );
    }

    #[test]
    fn declared_encodings_parse_from_toml() {
        #[derive(Deserialize)]
        struct C {
            encoding: Declared,
        }
        let c: C = toml::from_str("encoding = \"windows-1252\"").unwrap();
        assert_eq!(c.encoding, Declared::Windows1252);
        assert!(toml::from_str::<C>("encoding = \"latin9\"").is_err());
    }
}
