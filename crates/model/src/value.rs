//! Validated value types: identifiers, contact values, dates and codes.
//!
//! Each type normalises on construction (`parse`) and refuses what the canonical
//! rules refuse. Serde goes through `parse` too, so a deserialised record is as valid
//! as a constructed one. `Debug` of a personal value is redacted, so that a stray
//! `?value` in a log line prints nothing personal.

use std::fmt;

use chrono::{Datelike, NaiveDate};

use crate::codes::CafOrganisme;
use crate::error::InvalidValue;

/// Defines a string newtype validated by `parse`, serialised as its normal form.
macro_rules! string_value {
    ($(#[$meta:meta])* $name:ident, redacted = $redacted:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The normalised value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if $redacted {
                    write!(f, concat!(stringify!($name), "(<redacted>)"))
                } else {
                    write!(f, concat!(stringify!($name), "({:?})"), self.0)
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(|e| {
                    serde::de::Error::custom(format_args!(
                        concat!("invalid ", stringify!($name), ": {}"),
                        e
                    ))
                })
            }
        }
    };
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Removes the separators people type inside numbers: spaces (also non-breaking),
/// dots and dashes.
fn strip_separators(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\t' | '.' | '-'))
        .collect()
}

string_value!(
    /// A French social security number (NIR), always 15 characters with its key.
    ///
    /// A 13-character NIR gets its key appended; a 15-character one must carry the
    /// right key. Corsican départements `2A`/`2B` count as 19/18 in the computation.
    Nir,
    redacted = true
);

impl Nir {
    /// Parses and normalises a NIR (spaces allowed, `2a`/`2b` upper-cased).
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s: String = strip_separators(input.trim()).to_ascii_uppercase();
        if s.len() != 13 && s.len() != 15 {
            return Err(InvalidValue::new(
                "nir",
                format!("must have 13 or 15 characters, found {}", s.chars().count()),
            ));
        }
        if !s.is_ascii() {
            return Err(InvalidValue::new(
                "nir",
                "must contain only digits and 2A/2B",
            ));
        }
        let body = &s[..13];
        let first = body.as_bytes()[0];
        if !matches!(first, b'1' | b'2' | b'7' | b'8') {
            return Err(InvalidValue::new("nir", "must start with 1, 2, 7 or 8"));
        }
        let dept = &body[5..7];
        let numeric_dept = match dept {
            "2A" => "19",
            "2B" => "18",
            d if all_digits(d) => d,
            _ => {
                return Err(InvalidValue::new(
                    "nir",
                    "département part must be two digits, 2A or 2B",
                ));
            }
        };
        let rest_ok = all_digits(&body[..5]) && all_digits(&body[7..]);
        if !rest_ok {
            return Err(InvalidValue::new(
                "nir",
                "must contain only digits and 2A/2B",
            ));
        }
        let numeric = format!("{}{}{}", &body[..5], numeric_dept, &body[7..]);
        let n: u64 = numeric
            .parse()
            .map_err(|_| InvalidValue::new("nir", "must contain only digits and 2A/2B"))?;
        let key = 97 - (n % 97);
        if s.len() == 15 {
            let given = &s[13..];
            if !all_digits(given) {
                return Err(InvalidValue::new("nir", "key must be two digits"));
            }
            let given: u64 = given.parse().unwrap_or(0);
            if given != key {
                return Err(InvalidValue::new("nir", "key does not match the number"));
            }
            Ok(Nir(s))
        } else {
            Ok(Nir(format!("{body}{key:02}")))
        }
    }
}

string_value!(
    /// A CAF or MSA allocataire number: 7 digits for the CAF, the matricule's digits
    /// (at most 15) for the MSA.
    NumeroAllocataire,
    redacted = true
);

impl NumeroAllocataire {
    /// Parses a 7-digit CAF number (separators allowed).
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = strip_separators(input.trim());
        if s.len() != 7 || !all_digits(&s) {
            return Err(InvalidValue::new("numero_allocataire", "must be 7 digits"));
        }
        Ok(Self(s))
    }

    /// Parses the number as the given organisme writes it: the CAF's 7 digits, the
    /// MSA's matricule of at most 15 digits.
    pub fn parse_for(organisme: CafOrganisme, input: &str) -> Result<Self, InvalidValue> {
        match organisme {
            CafOrganisme::Caf => Self::parse(input),
            CafOrganisme::Msa => {
                let s = strip_separators(input.trim());
                if s.len() > 15 || !all_digits(&s) {
                    return Err(InvalidValue::new(
                        "numero_allocataire",
                        "an MSA matricule must be 1 to 15 digits",
                    ));
                }
                Ok(Self(s))
            }
        }
    }

    /// The number in a CNAF flux `MATRICULE` (an integer of at most 15 digits).
    ///
    /// CAF files pad the 7-digit allocataire number with zeros: it is cut to 7 digits
    /// only when what follows the 7th digit is all zeros, since cutting anything else
    /// corrupts it. MSA matricules are not padded and are never cut (cnaf.md).
    pub fn from_matricule(organisme: CafOrganisme, input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim();
        if s.is_empty() || s.len() > 15 || !all_digits(s) {
            return Err(InvalidValue::new(
                "numero_allocataire",
                "matricule must be at most 15 digits",
            ));
        }
        match organisme {
            CafOrganisme::Msa => Ok(Self(s.to_owned())),
            CafOrganisme::Caf if s.len() == 7 => Ok(Self(s.to_owned())),
            CafOrganisme::Caf if s.len() == 15 && s[7..].bytes().all(|b| b == b'0') => {
                Ok(Self(s[..7].to_owned()))
            }
            CafOrganisme::Caf => Err(InvalidValue::new(
                "numero_allocataire",
                "a CAF matricule must be 7 digits, or 15 whose last 8 are zeros",
            )),
        }
    }

    /// Cuts a CNAF 15-digit CAF `MATRICULE` (the number followed by zeros) to its 7
    /// digits; refuses one whose tail is not zeros.
    pub fn from_cnaf_matricule(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim();
        if s.len() != 15 || !all_digits(s) {
            return Err(InvalidValue::new(
                "numero_allocataire",
                "matricule must be 15 digits",
            ));
        }
        Self::from_matricule(CafOrganisme::Caf, s)
    }
}

string_value!(
    /// An RSA request number: at most 11 letters or digits (10 are seen in MSA files).
    NumeroDemandeRsa,
    redacted = true
);

impl NumeroDemandeRsa {
    /// Parses an alphanumeric request number of 1 to 11 characters (the VRSB0801
    /// schema's bound).
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim().to_ascii_uppercase();
        if s.is_empty() || s.len() > 11 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(InvalidValue::new(
                "numero_demande_rsa",
                "must be 1 to 11 letters or digits",
            ));
        }
        Ok(Self(s))
    }
}

string_value!(
    /// France Travail local job-seeker id (IDE): 7 digits and a letter.
    FranceTravailIde,
    redacted = true
);

impl FranceTravailIde {
    /// Parses `\d{7}[A-Z]` (the letter upper-cased).
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        if b.len() != 8 || !b[..7].iter().all(u8::is_ascii_digit) || !b[7].is_ascii_uppercase() {
            return Err(InvalidValue::new(
                "france_travail_ide",
                "must be 7 digits followed by a letter",
            ));
        }
        Ok(Self(s))
    }
}

string_value!(
    /// France Travail national id: 11 digits.
    FranceTravailId,
    redacted = true
);

impl FranceTravailId {
    /// Parses 11 digits.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim();
        if s.len() != 11 || !all_digits(s) {
            return Err(InvalidValue::new("france_travail_id", "must be 11 digits"));
        }
        Ok(Self(s.to_owned()))
    }
}

string_value!(
    /// Identifiant national élève (INE): 11 letters or digits, ending with a letter or digit.
    Ine,
    redacted = true
);

impl Ine {
    /// Parses an 11-character alphanumeric INE (upper-cased).
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim().to_ascii_uppercase();
        if s.len() != 11 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(InvalidValue::new("ine", "must be 11 letters or digits"));
        }
        Ok(Self(s))
    }
}

string_value!(
    /// An I-MILO dossier id: digits.
    ImiloDossier,
    redacted = false
);

impl ImiloDossier {
    /// Parses a non-empty string of at most 19 digits.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim();
        if !all_digits(s) || s.len() > 19 {
            return Err(InvalidValue::new("imilo_dossier", "must be 1 to 19 digits"));
        }
        Ok(Self(s.to_owned()))
    }
}

/// A record id in a source system (`IND0004412`, `59012345678/1`): trimmed, non-empty,
/// printable ASCII, at most 64 characters.
fn parse_record_id(expected: &'static str, input: &str) -> Result<String, InvalidValue> {
    let s = input.trim();
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(InvalidValue::new(
            expected,
            "must be 1 to 64 printable ASCII characters",
        ));
    }
    Ok(s.to_owned())
}

string_value!(
    /// The CD software's person id (SOLIS `idSolis`).
    SolisId,
    redacted = false
);

impl SolisId {
    /// Parses a non-empty printable id.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        parse_record_id("solis", input).map(Self)
    }
}

string_value!(
    /// A record id in its source system, as carried in `sources[].record_id`.
    RecordId,
    redacted = false
);

impl RecordId {
    /// Parses a non-empty printable id.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        parse_record_id("record_id", input).map(Self)
    }
}

string_value!(
    /// A département code: 3 characters (`059`, `02A`, `02B`, `971`).
    Departement,
    redacted = false
);

impl Departement {
    /// Parses a département; `59` is accepted and padded to `059`, `2a` to `02A`.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim().to_ascii_uppercase();
        let s = match s.len() {
            2 => format!("0{s}"),
            3 => s,
            _ => {
                return Err(InvalidValue::new(
                    "departement",
                    "must have 2 or 3 characters",
                ));
            }
        };
        let ok = match s.as_str() {
            "02A" | "02B" => true,
            d if all_digits(d) => d != "000" && d != "020",
            _ => false,
        };
        if !ok {
            return Err(InvalidValue::new("departement", "must be digits, 2A or 2B"));
        }
        Ok(Self(s))
    }
}

string_value!(
    /// A Mission Locale structure code: 5 characters of commune code, `S`, 2 digits
    /// (`59350S00`, `2A004S00`).
    StructureCode,
    redacted = false
);

impl StructureCode {
    /// Parses a structure code (upper-cased).
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        let commune_ok = b.len() == 8
            && (b[..2].iter().all(u8::is_ascii_digit) || &b[..2] == b"2A" || &b[..2] == b"2B")
            && b[2..5].iter().all(u8::is_ascii_digit);
        if !commune_ok || b[5] != b'S' || !b[6..].iter().all(u8::is_ascii_digit) {
            return Err(InvalidValue::new(
                "structure",
                "must be a commune code, S and two digits (like 59350S00)",
            ));
        }
        Ok(Self(s))
    }

    /// Whether a string looks like a structure code.
    pub fn looks_like(input: &str) -> bool {
        Self::parse(input).is_ok()
    }
}

string_value!(
    /// A Conseil départemental code: `CD` and a 3-character département (`CD059`, `CD02A`).
    CdCode,
    redacted = false
);

impl CdCode {
    /// Parses `CD059` (also `cd59`).
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim().to_ascii_uppercase();
        let Some(dept) = s.strip_prefix("CD") else {
            return Err(InvalidValue::new("cd", "must start with CD"));
        };
        let dept = Departement::parse(dept).map_err(|e| InvalidValue::new("cd", e.reason))?;
        Ok(Self(format!("CD{}", dept.as_str())))
    }

    /// The CD of a département.
    pub fn of(dept: &Departement) -> Self {
        Self(format!("CD{}", dept.as_str()))
    }

    /// The département part.
    pub fn departement(&self) -> Departement {
        Departement(self.0[2..].to_owned())
    }
}

string_value!(
    /// A commune INSEE code: 5 characters (`59350`, `2A004`).
    CodeInsee,
    redacted = false
);

impl CodeInsee {
    /// Parses a commune code.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        let ok = b.len() == 5
            && (b[..2].iter().all(u8::is_ascii_digit) || &b[..2] == b"2A" || &b[..2] == b"2B")
            && b[2..].iter().all(u8::is_ascii_digit);
        if !ok {
            return Err(InvalidValue::new(
                "code_insee",
                "must be 5 characters (digits, 2A or 2B)",
            ));
        }
        Ok(Self(s))
    }
}

string_value!(
    /// A French postal code: 5 digits.
    CodePostal,
    redacted = false
);

impl CodePostal {
    /// Parses 5 digits.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = strip_separators(input.trim());
        if s.len() != 5 || !all_digits(&s) {
            return Err(InvalidValue::new("code_postal", "must be 5 digits"));
        }
        Ok(Self(s))
    }
}

string_value!(
    /// A French telephone number in E.164 (`+33612345678`).
    Telephone,
    redacted = true
);

impl Telephone {
    /// Accepts French numbers written with spaces, dots or dashes, in national form
    /// (`06 12 34 56 78`) or with `+33` / `0033` (with or without the trunk `(0)`).
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = strip_separators(input.trim()).replace("(0)", "");
        let national = if let Some(rest) = s.strip_prefix("+33") {
            rest
        } else if let Some(rest) = s.strip_prefix("0033") {
            rest
        } else if let Some(rest) = s.strip_prefix('0') {
            rest
        } else {
            return Err(InvalidValue::new(
                "telephone",
                "is not a French number (0X XX XX XX XX, +33 or 0033)",
            ));
        };
        let b = national.as_bytes();
        if b.len() != 9 || !all_digits(national) || b[0] == b'0' {
            return Err(InvalidValue::new(
                "telephone",
                "is not a French number (0X XX XX XX XX, +33 or 0033)",
            ));
        }
        Ok(Self(format!("+33{national}")))
    }
}

string_value!(
    /// An e-mail address, lower-cased.
    Email,
    redacted = true
);

impl Email {
    /// Checks the shape `local@domain.tld` and lower-cases the address.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim().to_lowercase();
        let bad = |why: &str| InvalidValue::new("email", why.to_owned());
        let (local, domain) = s.split_once('@').ok_or_else(|| bad("must contain one @"))?;
        if domain.contains('@') {
            return Err(bad("must contain one @"));
        }
        if local.is_empty() || local.len() > 64 {
            return Err(bad("local part must have 1 to 64 characters"));
        }
        let local_ok = local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(bad("local part has a forbidden character"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(bad("domain must have a dot"));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-');
            if !ok {
                return Err(bad("domain is malformed"));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.len() < 2 || tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(bad("domain must end with a top-level domain"));
        }
        Ok(Self(s))
    }
}

/// A calendar date, serialised `YYYY-MM-DD`.
///
/// Parsing accepts `DD/MM/YYYY` (French files) and `YYYY-MM-DD`, with real calendar
/// checks (31/02 refused, 29/02 only in leap years) and years 1900 to 2199, which
/// catches two-digit-year typos.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date(NaiveDate);

impl Date {
    /// Parses `DD/MM/YYYY` or `YYYY-MM-DD`.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let s = input.trim();
        let parts: Vec<&str> = if s.contains('/') {
            let p: Vec<&str> = s.split('/').collect();
            if p.len() != 3 || p[0].len() != 2 || p[1].len() != 2 || p[2].len() != 4 {
                return Err(InvalidValue::new(
                    "date",
                    "must be DD/MM/YYYY or YYYY-MM-DD",
                ));
            }
            vec![p[2], p[1], p[0]]
        } else {
            let p: Vec<&str> = s.split('-').collect();
            if p.len() != 3 || p[0].len() != 4 || p[1].len() != 2 || p[2].len() != 2 {
                return Err(InvalidValue::new(
                    "date",
                    "must be DD/MM/YYYY or YYYY-MM-DD",
                ));
            }
            p
        };
        if !parts.iter().all(|p| all_digits(p)) {
            return Err(InvalidValue::new(
                "date",
                "must be DD/MM/YYYY or YYYY-MM-DD",
            ));
        }
        let y: i32 = parts[0].parse().unwrap_or(0);
        let m: u32 = parts[1].parse().unwrap_or(0);
        let d: u32 = parts[2].parse().unwrap_or(0);
        Self::from_ymd(y, m, d)
    }

    /// Builds a date from its parts, with the same checks as `parse`.
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Result<Self, InvalidValue> {
        if !(1900..=2199).contains(&y) {
            return Err(InvalidValue::new(
                "date",
                "year must be between 1900 and 2199",
            ));
        }
        if !(1..=12).contains(&m) {
            return Err(InvalidValue::new("date", "month must be between 01 and 12"));
        }
        NaiveDate::from_ymd_opt(y, m, d)
            .map(Self)
            .ok_or_else(|| InvalidValue::new("date", "day does not exist in that month"))
    }

    /// The chrono date.
    pub fn naive(&self) -> NaiveDate {
        self.0
    }

    /// Whole years between this date (a birth date) and `on`.
    pub fn age_on(&self, on: Date) -> i32 {
        let mut age = on.0.year() - self.0.year();
        if (on.0.month(), on.0.day()) < (self.0.month(), self.0.day()) {
            age -= 1;
        }
        age
    }

    /// `DD/MM/YYYY`, the form French files use.
    pub fn to_french(&self) -> String {
        self.0.format("%d/%m/%Y").to_string()
    }
}

impl From<NaiveDate> for Date {
    fn from(d: NaiveDate) -> Self {
        Self(d)
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Date({})", self.0.format("%Y-%m-%d"))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl std::str::FromStr for Date {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        // The JSON form is strict: only YYYY-MM-DD.
        if s.contains('/') {
            return Err(serde::de::Error::custom("invalid Date: must be YYYY-MM-DD"));
        }
        Self::parse(&s).map_err(|e| serde::de::Error::custom(format_args!("invalid Date: {e}")))
    }
}

/// Trims a name or free text and puts it in Unicode NFC; `None` when nothing is left.
///
/// Names are kept as given otherwise: the hub never changes their case.
pub fn clean_text(input: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let t = input.trim();
    if t.is_empty() {
        None
    } else {
        Some(t.nfc().collect())
    }
}

/// Splits given names on whitespace, each cleaned; first given name first.
pub fn split_prenoms(input: &str) -> Vec<String> {
    input.split_whitespace().filter_map(clean_text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computes a valid key, to build fixtures without trusting the code under test.
    fn key_of(body13_numeric: u64) -> u64 {
        97 - body13_numeric % 97
    }

    #[test]
    fn nir_13_digits_gets_its_key() {
        let nir = Nir::parse("2040359350123").unwrap();
        assert_eq!(
            nir.as_str(),
            format!("2040359350123{:02}", key_of(2040359350123))
        );
        assert_eq!(nir.as_str().len(), 15);
    }

    #[test]
    fn nir_15_digits_needs_the_right_key() {
        let key = key_of(1850775123456);
        let good = format!("1850775123456{key:02}");
        assert_eq!(Nir::parse(&good).unwrap().as_str(), good);
        let bad = format!("1850775123456{:02}", (key % 97) + 1);
        let err = Nir::parse(&bad).unwrap_err();
        assert_eq!(err.reason, "key does not match the number");
        assert!(
            !err.to_string().contains("1850775"),
            "error must not echo the value"
        );
    }

    #[test]
    fn nir_accepts_spaces() {
        let key = key_of(1850775123456);
        let spaced = format!("1 85 07 75 123 456 {key:02}");
        assert_eq!(
            Nir::parse(&spaced).unwrap().as_str(),
            format!("1850775123456{key:02}")
        );
    }

    #[test]
    fn nir_corsica_uses_19_and_18() {
        // 2A counts as 19, 2B as 18.
        let key_a = key_of(1_850_719_004_123);
        let nir_a = Nir::parse("185072A004123").unwrap();
        assert_eq!(nir_a.as_str(), format!("185072A004123{key_a:02}"));
        let key_b = key_of(2_900_518_033_007);
        let nir_b = Nir::parse(&format!("290052b033007{key_b:02}")).unwrap();
        assert_eq!(nir_b.as_str(), format!("290052B033007{key_b:02}"));
        // The 2A key is not the one of the raw digits 20.
        let key_20 = key_of(1_850_720_004_123);
        assert_ne!(key_a, key_20);
        assert!(Nir::parse(&format!("185072A004123{key_20:02}")).is_err());
        assert!(Nir::parse("185072C004123").is_err());
    }

    #[test]
    fn nir_first_digit_is_1_2_7_or_8() {
        for first in ['1', '2', '7', '8'] {
            assert!(
                Nir::parse(&format!("{first}850775123456")).is_ok(),
                "{first}"
            );
        }
        for first in ['0', '3', '4', '5', '6', '9'] {
            let err = Nir::parse(&format!("{first}850775123456")).unwrap_err();
            assert_eq!(err.reason, "must start with 1, 2, 7 or 8");
        }
    }

    #[test]
    fn nir_length_and_characters() {
        assert!(Nir::parse("12345").is_err());
        assert!(Nir::parse("18507751234567").is_err());
        assert!(Nir::parse("1850775X23456").is_err());
        assert!(Nir::parse("").is_err());
        assert!(Nir::parse("1850775123456é").is_err());
    }

    #[test]
    fn nir_debug_is_redacted() {
        let nir = Nir::parse("2040359350123").unwrap();
        assert_eq!(format!("{nir:?}"), "Nir(<redacted>)");
    }

    #[test]
    fn numero_allocataire_rules() {
        assert_eq!(
            NumeroAllocataire::parse("1234567").unwrap().as_str(),
            "1234567"
        );
        assert_eq!(
            NumeroAllocataire::parse(" 123 4567 ").unwrap().as_str(),
            "1234567"
        );
        assert!(NumeroAllocataire::parse("123456").is_err());
        assert!(NumeroAllocataire::parse("12345678").is_err());
        assert!(NumeroAllocataire::parse("12345a7").is_err());
        let cut = NumeroAllocataire::from_cnaf_matricule("123456700000000").unwrap();
        assert_eq!(cut.as_str(), "1234567");
        assert!(NumeroAllocataire::from_cnaf_matricule("1234567").is_err());
        assert!(NumeroAllocataire::from_cnaf_matricule("12345670000000X").is_err());
        // A tail that is not zeros is not padding: cutting it would corrupt the number.
        assert!(NumeroAllocataire::from_cnaf_matricule("922016057501584").is_err());
        let msa = NumeroAllocataire::from_matricule(CafOrganisme::Msa, "922016057501584").unwrap();
        assert_eq!(msa.as_str(), "922016057501584");
        let msa = NumeroAllocataire::from_matricule(CafOrganisme::Msa, "922016000000000").unwrap();
        assert_eq!(msa.as_str(), "922016000000000");
        let caf = NumeroAllocataire::from_matricule(CafOrganisme::Caf, "034614500000000").unwrap();
        assert_eq!(caf.as_str(), "0346145");
        assert!(NumeroAllocataire::from_matricule(CafOrganisme::Caf, "0346145").is_ok());
        assert!(NumeroAllocataire::from_matricule(CafOrganisme::Caf, "034614500000001").is_err());
        assert!(NumeroAllocataire::from_matricule(CafOrganisme::Msa, "1234567890123456").is_err());
        assert!(NumeroAllocataire::parse_for(CafOrganisme::Msa, "922016057501584").is_ok());
        assert!(NumeroAllocataire::parse_for(CafOrganisme::Caf, "922016057501584").is_err());
    }

    #[test]
    fn france_travail_ids() {
        assert_eq!(
            FranceTravailIde::parse("4053956z").unwrap().as_str(),
            "4053956Z"
        );
        assert!(FranceTravailIde::parse("4053956").is_err());
        assert!(FranceTravailIde::parse("40539561").is_err());
        assert!(FranceTravailIde::parse("A053956Z").is_err());
        assert_eq!(
            FranceTravailId::parse("12345678901").unwrap().as_str(),
            "12345678901"
        );
        assert!(FranceTravailId::parse("1234567890").is_err());
        assert!(FranceTravailId::parse("1234567890A").is_err());
    }

    #[test]
    fn ine_numero_demande_and_dossier() {
        assert_eq!(Ine::parse("1234567890a").unwrap().as_str(), "1234567890A");
        assert!(Ine::parse("123456789").is_err());
        assert!(Ine::parse("1234567890-").is_err());
        assert!(NumeroDemandeRsa::parse("59012345678").is_ok());
        assert!(NumeroDemandeRsa::parse("1235068092").is_ok());
        assert!(NumeroDemandeRsa::parse("590123456789").is_err());
        assert!(NumeroDemandeRsa::parse(" ").is_err());
        assert!(ImiloDossier::parse("6282").is_ok());
        assert!(ImiloDossier::parse("62a2").is_err());
        assert!(ImiloDossier::parse("").is_err());
        assert!(SolisId::parse("IND0004412").is_ok());
        assert!(SolisId::parse("  ").is_err());
        assert!(SolisId::parse("IND 0004412").is_err());
    }

    #[test]
    fn structure_and_cd_codes() {
        assert_eq!(
            StructureCode::parse("59350s00").unwrap().as_str(),
            "59350S00"
        );
        assert!(StructureCode::parse("2A004S00").is_ok());
        assert!(StructureCode::parse("5935S00").is_err());
        assert!(StructureCode::parse("59350X00").is_err());
        assert!(StructureCode::parse("59350S0A").is_err());
        assert_eq!(CdCode::parse("CD059").unwrap().as_str(), "CD059");
        assert_eq!(CdCode::parse("cd59").unwrap().as_str(), "CD059");
        assert_eq!(CdCode::parse("CD02A").unwrap().as_str(), "CD02A");
        assert_eq!(CdCode::parse("CD2b").unwrap().as_str(), "CD02B");
        assert_eq!(CdCode::parse("CD971").unwrap().as_str(), "CD971");
        assert!(CdCode::parse("CD0599").is_err());
        assert!(CdCode::parse("059").is_err());
        assert!(CdCode::parse("CD02C").is_err());
        assert_eq!(
            CdCode::parse("CD059").unwrap().departement().as_str(),
            "059"
        );
    }

    #[test]
    fn insee_and_postal_codes() {
        assert!(CodeInsee::parse("59350").is_ok());
        assert!(CodeInsee::parse("2a004").is_ok());
        assert!(CodeInsee::parse("5935").is_err());
        assert!(CodePostal::parse("59000").is_ok());
        assert!(CodePostal::parse("5900").is_err());
        assert!(CodePostal::parse("2A000").is_err());
    }

    #[test]
    fn telephone_to_e164() {
        for input in [
            "06 12 34 56 78",
            "06.12.34.56.78",
            "06-12-34-56-78",
            "0612345678",
            "+33 6 12 34 56 78",
            "+33612345678",
            "0033 6 12 34 56 78",
            "+33 (0)6 12 34 56 78",
            "\u{a0}06\u{a0}12 34 56 78 ",
        ] {
            assert_eq!(
                Telephone::parse(input).unwrap().as_str(),
                "+33612345678",
                "{input:?}"
            );
        }
        assert_eq!(
            Telephone::parse("01 23 45 67 89").unwrap().as_str(),
            "+33123456789"
        );
        for bad in [
            "612345678",
            "06 12 34 56 7",
            "06 12 34 56 789",
            "00 12 34 56 78",
            "+32 6 12 34 56 78",
            "+44 20 7946 0958",
            "06 12 34 56 7a",
            "",
            "inconnu",
        ] {
            let err = Telephone::parse(bad).unwrap_err();
            assert_eq!(err.expected, "telephone", "{bad:?}");
        }
    }

    #[test]
    fn email_is_lowercased_and_checked() {
        assert_eq!(
            Email::parse(" Lea.Lefevre@Example.ORG ").unwrap().as_str(),
            "lea.lefevre@example.org"
        );
        assert!(Email::parse("c.durand@ml-lille.example.org").is_ok());
        for bad in [
            "lea.lefevre",
            "@example.org",
            "lea@",
            "lea@example",
            "lea@@example.org",
            "lea@exa mple.org",
            "le a@example.org",
            "lea@example..org",
            "lea@-example.org",
            ".lea@example.org",
            "lea@example.1",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates_in_both_forms_with_calendar_checks() {
        let d = Date::parse("12/03/2004").unwrap();
        assert_eq!(d.to_string(), "2004-03-12");
        assert_eq!(Date::parse("2004-03-12").unwrap(), d);
        assert_eq!(d.to_french(), "12/03/2004");
        assert!(Date::parse("29/02/2024").is_ok());
        assert!(Date::parse("2000-02-29").is_ok());
        assert_eq!(
            Date::parse("29/02/2023").unwrap_err().reason,
            "day does not exist in that month"
        );
        assert!(Date::parse("1900-02-29").is_err());
        assert!(Date::parse("31/02/2004").is_err());
        assert!(Date::parse("31/04/2004").is_err());
        assert!(Date::parse("00/01/2004").is_err());
        assert!(Date::parse("01/13/2004").is_err());
        assert!(Date::parse("1/3/2004").is_err());
        assert!(Date::parse("12/03/04").is_err());
        assert!(Date::parse("2004/03/12").is_err());
        assert!(Date::parse("12-03-2004").is_err());
        assert!(Date::parse("0204-03-12").is_err());
        assert!(Date::parse("2004-3-12").is_err());
        assert!(Date::parse("").is_err());
    }

    #[test]
    fn age_on_counts_birthdays() {
        let born = Date::parse("2004-03-12").unwrap();
        assert_eq!(born.age_on(Date::parse("2022-03-11").unwrap()), 17);
        assert_eq!(born.age_on(Date::parse("2022-03-12").unwrap()), 18);
    }

    #[test]
    fn clean_text_trims_and_composes() {
        // "e" + combining acute becomes the single character é.
        assert_eq!(clean_text("  Le\u{301}a ").as_deref(), Some("Léa"));
        assert_eq!(clean_text("   "), None);
        assert_eq!(clean_text("LEFÈVRE").as_deref(), Some("LEFÈVRE"));
        assert_eq!(split_prenoms(" Léa  Marie "), vec!["Léa", "Marie"]);
    }

    #[test]
    fn serde_goes_through_parse() {
        let t: Telephone = serde_json::from_str("\"06 12 34 56 78\"").unwrap();
        assert_eq!(t.as_str(), "+33612345678");
        assert!(serde_json::from_str::<Nir>("\"185077512345600\"").is_err());
        assert!(serde_json::from_str::<Date>("\"12/03/2004\"").is_err());
        let d: Date = serde_json::from_str("\"2004-03-12\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2004-03-12\"");
    }
}
