//! Peers' free text (an ACK's message, an error body, a `motif`) as the hub may keep
//! it: never as given, since a peer may write a name or a NIR there, but as its digest
//! and length, so that two answers can still be compared and a person can find the
//! original in the peer's own file. Codes (short identifiers) are kept when they look
//! like codes, and digested like free text otherwise.
//!
//! Connectors call this where a peer's answer becomes a `Receipt` or an error, so that
//! nothing downstream (journal, state, exports, logs) ever holds the text.

use sha2::{Digest, Sha256};

/// The longest code kept as given.
pub const MAX_CODE_LEN: usize = 40;

/// `text sha256:<16 hex> (<n> chars)`: what stands for a peer's free text.
pub fn free_text(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "text sha256:{} ({} chars)",
        hex::encode(&digest[..8]),
        text.chars().count()
    )
}

/// Whether a peer's value looks like a code: 1 to 40 ASCII letters, digits, `_`, `-`
/// or `.` (`CHAMP_INVALIDE`, `E-404`, `AGE_HORS_BORNES`).
pub fn is_code(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_CODE_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A peer's code kept as given when it looks like one, digested otherwise.
pub fn code(text: &str) -> String {
    let t = text.trim();
    if is_code(t) {
        t.to_owned()
    } else {
        free_text(t)
    }
}

/// `code: <digest of the message>`, or the code alone when there is no message: the
/// reason a receipt keeps for a peer's refusal.
pub fn reason(code_text: &str, message: Option<&str>) -> String {
    let c = code(code_text);
    match message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => format!("{c}: {}", free_text(m)),
        None => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_replaced_by_its_digest_and_length() {
        let t = free_text("DUPONT Jean 1 85 05 59 350 123 45");
        assert!(t.starts_with("text sha256:"), "{t}");
        assert!(t.ends_with("(33 chars)"), "{t}");
        assert!(!t.contains("DUPONT") && !t.contains("350"));
        assert_eq!(t, free_text("DUPONT Jean 1 85 05 59 350 123 45"));
        assert_ne!(t, free_text("DUPONT Jeanne"));
    }

    #[test]
    fn codes_are_kept_only_when_they_look_like_codes() {
        assert_eq!(code(" AGE_HORS_BORNES "), "AGE_HORS_BORNES");
        assert_eq!(code("E-404"), "E-404");
        assert!(code("Jean Dupont").starts_with("text sha256:"));
        assert!(code(&"A".repeat(41)).starts_with("text sha256:"));
        assert_eq!(reason("REJET", None), "REJET");
        let r = reason("REJET", Some("M. DUPONT inconnu"));
        assert!(
            r.starts_with("REJET: text sha256:") && !r.contains("DUPONT"),
            "{r}"
        );
    }
}
