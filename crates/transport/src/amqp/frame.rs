//! The envelope header framed at the start of the AMQP message body.
//!
//! The header used to travel as JSON in an AMQP headers table, with a content type and
//! a timestamp: the broker and lapin then encode and decode that table on every hop,
//! which cost about 12 % of throughput. Nothing routes on those properties (routing uses
//! the routing key, the delivery limit and dead-lettering use headers the broker adds
//! itself), so the header now rides in the body, before the payload:
//!
//! ```text
//! "PSR\x01"  u32 BE header length  header  payload
//! header = transfer_id (16 bytes)
//!          flow, sender, recipient        (u8 length + UTF-8 each)
//!          ordering key                   (u8 0 = none, 1 = u16 length + UTF-8)
//!          headers count (u8), then each  (u16 length + UTF-8 key, u16 length + UTF-8 value)
//! ```
//! All lengths are big-endian. Decoding checks every length against what is left, so a
//! truncated or foreign body is refused, never read past.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes};
use uuid::Uuid;

use crate::Header;

/// Magic and format version at the start of every body.
pub(crate) const MAGIC: &[u8; 4] = b"PSR\x01";

/// Why a body could not be read or a header not written (a rule, never a value).
pub(crate) type FrameError = &'static str;

fn put_short(out: &mut Vec<u8>, s: &str, what: FrameError) -> Result<(), FrameError> {
    let n = u8::try_from(s.len()).map_err(|_| what)?;
    out.put_u8(n);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn put_long(out: &mut Vec<u8>, s: &str, what: FrameError) -> Result<(), FrameError> {
    let n = u16::try_from(s.len()).map_err(|_| what)?;
    out.put_u16(n);
    out.put_slice(s.as_bytes());
    Ok(())
}

/// Frames `header` then `payload` into one body.
pub(crate) fn encode(header: &Header, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let extra: usize = header
        .headers
        .iter()
        .map(|(k, v)| 4 + k.len() + v.len())
        .sum::<usize>()
        + header.ordering_key.as_ref().map_or(0, |k| 2 + k.len());
    let header_len =
        16 + 3 + header.flow.len() + header.sender.len() + header.recipient.len() + 1 + 1 + extra;
    let mut out = Vec::with_capacity(8 + header_len + payload.len());
    out.put_slice(MAGIC);
    out.put_u32(u32::try_from(header_len).map_err(|_| "header is too large")?);
    out.put_slice(header.transfer_id.as_bytes());
    put_short(&mut out, &header.flow, "flow is longer than 255 bytes")?;
    put_short(&mut out, &header.sender, "sender is longer than 255 bytes")?;
    put_short(
        &mut out,
        &header.recipient,
        "recipient is longer than 255 bytes",
    )?;
    match &header.ordering_key {
        None => out.put_u8(0),
        Some(k) => {
            out.put_u8(1);
            put_long(&mut out, k, "ordering key is longer than 65535 bytes")?;
        }
    }
    out.put_u8(u8::try_from(header.headers.len()).map_err(|_| "more than 255 headers")?);
    for (k, v) in &header.headers {
        put_long(&mut out, k, "a header key is longer than 65535 bytes")?;
        put_long(&mut out, v, "a header value is longer than 65535 bytes")?;
    }
    debug_assert_eq!(out.len(), 8 + header_len);
    out.put_slice(payload);
    Ok(out)
}

/// A cursor over the header bytes that refuses to read past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err("header is truncated");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, FrameError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn text(&mut self, n: usize) -> Result<String, FrameError> {
        std::str::from_utf8(self.take(n)?)
            .map(str::to_owned)
            .map_err(|_| "header text is not utf-8")
    }
    fn short(&mut self) -> Result<String, FrameError> {
        let n = usize::from(self.u8()?);
        self.text(n)
    }
    fn long(&mut self) -> Result<String, FrameError> {
        let n = self.u16()?;
        self.text(n)
    }
}

/// Splits a body into its header and its payload (a view of the same bytes, no copy).
pub(crate) fn decode(body: &Bytes) -> Result<(Header, Bytes), FrameError> {
    if body.len() < 8 || &body[..4] != MAGIC {
        return Err("body does not start with a passerelle header frame");
    }
    let len = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(8))
        .filter(|&e| e <= body.len())
        .ok_or("header is truncated")?;
    let mut r = Reader(&body[8..end]);
    let id: [u8; 16] = r.take(16)?.try_into().map_err(|_| "header is truncated")?;
    let flow = r.short()?;
    let sender = r.short()?;
    let recipient = r.short()?;
    let ordering_key = match r.u8()? {
        0 => None,
        1 => Some(r.long()?),
        _ => return Err("ordering key flag is neither 0 nor 1"),
    };
    let count = r.u8()?;
    let mut headers = BTreeMap::new();
    for _ in 0..count {
        let k = r.long()?;
        let v = r.long()?;
        headers.insert(k, v);
    }
    if !r.0.is_empty() {
        return Err("header has trailing bytes");
    }
    let header = Header {
        transfer_id: Uuid::from_bytes(id),
        flow,
        sender,
        recipient,
        ordering_key,
        headers,
    };
    Ok((header, body.slice(end..)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    fn full() -> Envelope {
        Envelope::new("flux.rsa", "cd-059", "ml-lille", b"opaque".to_vec())
            .with_ordering_key("k-\u{e9}1")
            .with_header("key-id", "2026-01")
            .with_header("schema", "jeune/1")
    }

    #[test]
    fn round_trips_with_and_without_optional_parts() {
        for e in [
            full(),
            Envelope::new("f", "s", "r", Vec::new()),
            Envelope::new("f", "s", "r", vec![0_u8; 4096]).with_ordering_key(""),
        ] {
            let body = Bytes::from(encode(&e.header, &e.payload).unwrap());
            let (header, payload) = decode(&body).unwrap();
            assert_eq!(header, e.header);
            assert_eq!(payload, e.payload);
        }
    }

    #[test]
    fn refuses_foreign_truncated_or_padded_bodies() {
        let e = full();
        let body = encode(&e.header, &e.payload).unwrap();
        let header_end = body.len() - e.payload.len();
        assert!(decode(&Bytes::from_static(b"{\"json\":1}")).is_err());
        assert!(decode(&Bytes::new()).is_err());
        // Every cut inside the header frame is refused, never read past.
        for cut in 0..header_end {
            assert!(
                decode(&Bytes::copy_from_slice(&body[..cut])).is_err(),
                "{cut}"
            );
        }
        // A header length that leaves bytes unread inside the header is refused.
        let mut padded = body.clone();
        let len = u32::from_be_bytes(padded[4..8].try_into().unwrap()) + 1;
        padded[4..8].copy_from_slice(&len.to_be_bytes());
        assert!(decode(&Bytes::from(padded)).is_err());
        // Invalid UTF-8 in a name is refused.
        let mut bad = body;
        bad[8 + 16 + 1] = 0xff;
        assert!(decode(&Bytes::from(bad)).is_err());
    }

    #[test]
    fn refuses_names_too_long_for_the_frame() {
        let mut e = full();
        e.header.flow = "x".repeat(256);
        assert!(encode(&e.header, &e.payload).is_err());
    }
}
