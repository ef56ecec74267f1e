//! Reading and validating a flows file. Validation is a pure function of the parsed
//! file, so every rule is testable without touching the disk.

use std::collections::BTreeSet;
use std::path::Path;

use passerelle_model::{FieldClass, class_of, is_known_path};

use crate::error::{PolicyError, PolicyErrorKind};
use crate::flow::{Endpoint, Flow, PolicyFile, SOURCE_KINDS};

/// The only format version this build reads.
pub const SUPPORTED_VERSION: u32 = 1;

/// The GDPR Art. 6(1) points a flow may name.
const ART6_POINTS: &[&str] = &[
    "6(1)(a)", "6(1)(b)", "6(1)(c)", "6(1)(d)", "6(1)(e)", "6(1)(f)",
];

pub(crate) fn parse(source: &str) -> Result<PolicyFile, PolicyError> {
    let file: PolicyFile = toml::from_str(source).map_err(|e| {
        let position = e.span().map(|s| line_col(source, s.start));
        PolicyError {
            kind: PolicyErrorKind::Syntax,
            file: None,
            flow: None,
            key: None,
            position,
            // toml's message can quote the offending line; keep its first line only,
            // which names the rule ("unknown field `x`, expected one of …").
            reason: e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid toml")
                .trim()
                .to_owned(),
        }
    })?;
    validate(&file).map_err(|mut err| {
        if err.position.is_none()
            && let Some(flow) = &err.flow
        {
            err.position = find_flow(source, flow);
        }
        err
    })?;
    Ok(file)
}

pub(crate) fn read(path: &Path) -> Result<PolicyFile, PolicyError> {
    let source = std::fs::read_to_string(path).map_err(|e| PolicyError {
        kind: PolicyErrorKind::Io,
        file: Some(path.to_owned()),
        flow: None,
        key: None,
        position: None,
        reason: format!("cannot read the flows file: {e}"),
    })?;
    parse(&source).map_err(|mut e| {
        e.file = Some(path.to_owned());
        e
    })
}

/// 1-based line and column of a byte offset.
fn line_col(source: &str, offset: usize) -> (u32, u32) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// The position of `id = "<flow>"`, to point a validation error at its flow.
fn find_flow(source: &str, flow: &str) -> Option<(u32, u32)> {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("id")
            && let Some(value) = rest.trim_start().strip_prefix('=')
            && value.trim().trim_matches('"') == flow
        {
            return Some(line_col(
                source,
                offset + (line.len() - line.trim_start().len()),
            ));
        }
        offset += line.len();
    }
    None
}

/// Checks every rule of a parsed file; the first broken rule is returned.
pub fn validate(file: &PolicyFile) -> Result<(), PolicyError> {
    if file.version != SUPPORTED_VERSION {
        return Err(PolicyError::invalid(
            None,
            "version",
            format!(
                "unsupported version {}, expected {SUPPORTED_VERSION}",
                file.version
            ),
        ));
    }
    let r = &file.register;
    for (key, value) in [
        ("register.title", &r.title),
        ("register.controller", &r.controller),
        ("register.dpo_contact", &r.dpo_contact),
        (
            "register.third_country_transfers",
            &r.third_country_transfers,
        ),
    ] {
        non_empty(None, key, value)?;
    }
    if r.security_measures.is_empty() || r.security_measures.iter().any(|m| m.trim().is_empty()) {
        return Err(PolicyError::invalid(
            None,
            "register.security_measures",
            "must list at least one measure, none empty",
        ));
    }
    if file.flows.is_empty() {
        return Err(PolicyError::invalid(
            None,
            "flow",
            "the file declares no flow",
        ));
    }
    let mut seen = BTreeSet::new();
    for flow in &file.flows {
        if !seen.insert(flow.id.as_str()) {
            return Err(PolicyError::invalid(
                Some(&flow.id),
                "id",
                "duplicate flow id",
            ));
        }
        validate_flow(flow)?;
    }
    Ok(())
}

/// Each source kind is known, named once, and reads a system the flow's `from` names.
fn sources(flow: &Flow) -> Result<(), PolicyError> {
    let id = Some(flow.id.as_str());
    let mut seen = BTreeSet::new();
    for kind in &flow.sources {
        let Some((_, system)) = SOURCE_KINDS.iter().find(|(k, _)| k == kind) else {
            let known: Vec<&str> = SOURCE_KINDS.iter().map(|(k, _)| *k).collect();
            return Err(PolicyError::invalid(
                id,
                "sources",
                format!("unknown source kind `{kind}` (one of {})", known.join(", ")),
            ));
        };
        if !seen.insert(kind.as_str()) {
            return Err(PolicyError::invalid(
                id,
                "sources",
                format!("source kind `{kind}` listed twice"),
            ));
        }
        if !flow.from.systems.contains(system) {
            return Err(PolicyError::invalid(
                id,
                "sources",
                format!("source kind `{kind}` reads {system}, a system `from` does not name"),
            ));
        }
    }
    Ok(())
}

fn non_empty(flow: Option<&str>, key: &str, value: &str) -> Result<(), PolicyError> {
    if value.trim().is_empty() {
        Err(PolicyError::invalid(flow, key, "must not be empty"))
    } else {
        Ok(())
    }
}

fn validate_flow(flow: &Flow) -> Result<(), PolicyError> {
    let id = Some(flow.id.as_str());
    if flow.id.is_empty()
        || !flow
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(PolicyError::invalid(
            id,
            "id",
            "must be lower-case letters, digits and dashes",
        ));
    }
    non_empty(id, "name", &flow.name)?;
    non_empty(id, "purpose", &flow.purpose)?;
    non_empty(id, "data_subjects", &flow.data_subjects)?;
    non_empty(id, "legal_basis.reference", &flow.legal_basis.reference)?;
    if !ART6_POINTS.contains(&flow.legal_basis.gdpr.as_str()) {
        return Err(PolicyError::invalid(
            id,
            "legal_basis.gdpr",
            "must be one of 6(1)(a) to 6(1)(f)",
        ));
    }
    if flow.legal_basis.gdpr == "6(1)(a)" && !flow.consent {
        return Err(PolicyError::invalid(
            id,
            "consent",
            "a flow based on consent (6(1)(a)) must set consent = true",
        ));
    }
    endpoint(id, "from", &flow.from)?;
    endpoint(id, "to", &flow.to)?;
    sources(flow)?;
    if flow.retention_days.recipient == 0 {
        return Err(PolicyError::invalid(
            id,
            "retention_days.recipient",
            "must be at least 1 day",
        ));
    }
    if flow.retention_days.audit == 0 {
        return Err(PolicyError::invalid(
            id,
            "retention_days.audit",
            "must be at least 1 day",
        ));
    }
    let mut classes = BTreeSet::new();
    for name in &flow.fields.classes {
        match FieldClass::parse(name) {
            Some(c) if classes.insert(c) => {}
            Some(_) => {
                return Err(PolicyError::invalid(
                    id,
                    "fields.classes",
                    format!("class `{name}` listed twice"),
                ));
            }
            None => {
                return Err(PolicyError::invalid(
                    id,
                    "fields.classes",
                    format!("unknown class `{name}`"),
                ));
            }
        }
    }
    let mut paths = BTreeSet::new();
    for path in &flow.fields.paths {
        if !is_known_path(path) {
            return Err(PolicyError::invalid(
                id,
                "fields.paths",
                format!("unknown path `{path}` (not a field of passerelle.jeune/1)"),
            ));
        }
        if !paths.insert(path.replace("[]", "")) {
            return Err(PolicyError::invalid(
                id,
                "fields.paths",
                format!("path `{path}` listed twice"),
            ));
        }
    }
    // Special classes: allowed (by class or by one of its paths) if and only if justified.
    let allowed_special = flow.special_classes();
    for class in [FieldClass::Nir, FieldClass::Art9, FieldClass::Art10] {
        let key = format!("special.{class}");
        let justification = flow.special.for_class(class);
        match (allowed_special.contains(&class), justification) {
            (true, None) => {
                return Err(PolicyError::invalid(
                    id,
                    &key,
                    format!("the flow allows `{class}` data but gives no justification"),
                ));
            }
            (true, Some(text)) if text.trim().is_empty() => {
                return Err(PolicyError::invalid(id, &key, "must not be empty"));
            }
            (true, Some(text)) if class == FieldClass::Art9 && !names_art9_point(text) => {
                return Err(PolicyError::invalid(
                    id,
                    &key,
                    "must name the Art. 9(2) point, as in `9(2)(b)`",
                ));
            }
            (false, Some(_)) => {
                return Err(PolicyError::invalid(
                    id,
                    &key,
                    format!("justification given for `{class}` but the flow does not allow it"),
                ));
            }
            _ => {}
        }
    }
    // A path listed under a class already listed is harmless but says the author
    // misread the file; refuse it so that the file stays minimal and readable.
    for path in &flow.fields.paths {
        if let Some(class) = class_of(path)
            && classes.contains(&class)
        {
            return Err(PolicyError::invalid(
                id,
                "fields.paths",
                format!("path `{path}` is already allowed by class `{class}`"),
            ));
        }
    }
    Ok(())
}

fn endpoint(flow: Option<&str>, key: &str, e: &Endpoint) -> Result<(), PolicyError> {
    if e.kinds.is_empty() {
        return Err(PolicyError::invalid(
            flow,
            &format!("{key}.kinds"),
            "must name at least one organisation kind",
        ));
    }
    if e.systems.is_empty() {
        return Err(PolicyError::invalid(
            flow,
            &format!("{key}.systems"),
            "must name at least one system",
        ));
    }
    if e.org.is_empty()
        || !e
            .org
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?' || c == '-' || c == '_')
    {
        return Err(PolicyError::invalid(
            flow,
            &format!("{key}.org"),
            "must be a code pattern of letters, digits, `*` and `?`",
        ));
    }
    Ok(())
}

/// Whether the text names a point of Art. 9(2): `9(2)(a)` … `9(2)(j)`.
fn names_art9_point(text: &str) -> bool {
    text.match_indices("9(2)(").any(|(i, m)| {
        let rest = &text[i + m.len()..];
        let mut chars = rest.chars();
        matches!(chars.next(), Some('a'..='j')) && chars.next() == Some(')')
    })
}
