//! Column mappings as data: a département's list headers mapped to canonical paths,
//! loaded from `schemas/mappings/<name>.toml` (the language is described in
//! `schemas/mappings/README.md`). The default mapping (box.md's columns) is compiled in.
//!
//! A column feeds one target (`"Nom" = "etat_civil.nom_usage"`), or is described by a
//! table: `to` (the target), `split` + `into` (one cell holding several values, e.g.
//! `CP Ville` = `59402 Nice`), `formats` (date formats of the column), `normalise`
//! (`allocataire`, `telephone`), `null` (tokens that mean empty). `[join."<path>"]`
//! joins several columns into one text target. `[values."<path>"]` translates the
//! source's spellings. Everything is checked at load; an error names the mapping, the
//! line of the file and the key.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

/// The default `BRSA_LISTE` mapping of box.md, compiled into the binary.
pub const DEFAULT_MAPPING_TOML: &str = include_str!("../../../schemas/mappings/brsa_liste.toml");

/// A canonical field a column can feed, with the rule that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    CafNumero,
    CafOrganisme,
    Nir,
    Solis,
    NumeroDemandeRsa,
    FranceTravailIde,
    FranceTravailId,
    Ine,
    SourceRecordId,
    Civilite,
    NomUsage,
    NomNaissance,
    Prenoms,
    DateNaissance,
    CommuneNaissanceInsee,
    AdresseNumero,
    AdresseVoie,
    AdresseComplement,
    CodePostal,
    Commune,
    CodeInsee,
    Telephone,
    Email,
    RsaRole,
    EtatDroit,
    SoumisDroitsDevoirs,
    DateOuverture,
    OrientationType,
    OrientationDate,
    OrientationOrganisme,
    ReferentNom,
    ReferentEmail,
}

/// How many targets there are (the binding indexes its slots by target).
const TARGETS: usize = Target::ALL.len();

impl Target {
    /// Every target with the canonical path a mapping names it by, in `Target` order.
    pub const ALL: &'static [(Target, &'static str)] = &[
        (Self::CafNumero, "identifiants.caf.numero_allocataire"),
        (Self::CafOrganisme, "identifiants.caf.organisme"),
        (Self::Nir, "identifiants.nir"),
        (Self::Solis, "identifiants.solis"),
        (Self::NumeroDemandeRsa, "identifiants.numero_demande_rsa"),
        (Self::FranceTravailIde, "identifiants.france_travail_ide"),
        (Self::FranceTravailId, "identifiants.france_travail_id"),
        (Self::Ine, "identifiants.ine"),
        (Self::SourceRecordId, "sources.record_id"),
        (Self::Civilite, "etat_civil.civilite"),
        (Self::NomUsage, "etat_civil.nom_usage"),
        (Self::NomNaissance, "etat_civil.nom_naissance"),
        (Self::Prenoms, "etat_civil.prenoms"),
        (Self::DateNaissance, "etat_civil.date_naissance"),
        (
            Self::CommuneNaissanceInsee,
            "etat_civil.commune_naissance_insee",
        ),
        (Self::AdresseNumero, "contact.adresse.numero"),
        (Self::AdresseVoie, "contact.adresse.voie"),
        (Self::AdresseComplement, "contact.adresse.complement"),
        (Self::CodePostal, "contact.adresse.code_postal"),
        (Self::Commune, "contact.adresse.commune"),
        (Self::CodeInsee, "contact.adresse.code_insee"),
        (Self::Telephone, "contact.telephones"),
        (Self::Email, "contact.email"),
        (Self::RsaRole, "rsa.role"),
        (Self::EtatDroit, "rsa.etat_droit"),
        (Self::SoumisDroitsDevoirs, "rsa.soumis_droits_devoirs"),
        (Self::DateOuverture, "rsa.date_ouverture"),
        (Self::OrientationType, "orientation.type"),
        (Self::OrientationDate, "orientation.date"),
        (Self::OrientationOrganisme, "orientation.organisme"),
        (Self::ReferentNom, "orientation.referent.nom"),
        (Self::ReferentEmail, "orientation.referent.email"),
    ];

    /// The canonical path.
    pub fn path(self) -> &'static str {
        Self::ALL[self as usize].1
    }

    /// The target named by a canonical path.
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, p)| *p == path).map(|(t, _)| *t)
    }

    /// Dates: the targets `formats` applies to.
    pub fn is_date(self) -> bool {
        matches!(
            self,
            Self::DateNaissance | Self::DateOuverture | Self::OrientationDate
        )
    }

    /// Free text, kept as given: the targets a join may fill.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            Self::NomUsage
                | Self::NomNaissance
                | Self::Prenoms
                | Self::AdresseNumero
                | Self::AdresseVoie
                | Self::AdresseComplement
                | Self::Commune
                | Self::ReferentNom
                | Self::OrientationOrganisme
        )
    }

    /// A list in the record: several columns may feed it.
    pub fn is_list(self) -> bool {
        matches!(self, Self::Telephone)
    }

    /// The identifying targets: a file must bind one of them.
    pub fn identifies(self) -> bool {
        matches!(
            self,
            Self::CafNumero | Self::Nir | Self::NomUsage | Self::Solis | Self::SourceRecordId
        )
    }
}

/// Value normalisers a column may name (`normalise = "…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normaliser {
    /// rdv-insertion's rule (box.md): organisme prefix dropped, trailing zeros after
    /// the 7th digit cut, then leading zeros; still invalid → dropped with a warning.
    Allocataire,
    /// Several numbers per cell (`,`, `;`, `/`), the leading `0` a spreadsheet
    /// removed restored (`620022002` → `0620022002`).
    Telephone,
}

impl Normaliser {
    fn parse(name: &str) -> Option<(Self, Target)> {
        match name {
            "allocataire" => Some((Self::Allocataire, Target::CafNumero)),
            "telephone" => Some((Self::Telephone, Target::Telephone)),
            _ => None,
        }
    }
}

/// `short_rows`: what to do with a row one trailing field short of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ShortRows {
    Accept,
    Reject,
}

/// A mapping file as written (see `schemas/mappings/README.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// The XLSX sheet to read (default: the first).
    #[serde(default)]
    sheet: Option<String>,
    /// Tokens that mean an empty cell in every column (`NULL`).
    #[serde(default)]
    null: Vec<String>,
    /// Rows one trailing field short of the header: `accept` (default) or `reject`.
    #[serde(default)]
    short_rows: Option<ShortRows>,
    /// Columns present in the files that carry nothing for the hub.
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    /// Header → canonical path, or a column rule.
    #[serde(default)]
    columns: BTreeMap<String, Spanned<ColumnSpec>>,
    /// Canonical path → several columns joined into it.
    #[serde(default)]
    join: BTreeMap<String, Spanned<JoinSpec>>,
    /// Canonical path → (source spelling → spelling the canonical parser reads).
    #[serde(default)]
    values: BTreeMap<String, Spanned<BTreeMap<String, String>>>,
}

/// A column as written: a path, or a table.
#[derive(Debug, Clone)]
enum ColumnSpec {
    Path(String),
    Rule(ColumnRuleFile),
}

impl<'de> Deserialize<'de> for ColumnSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ColumnSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a canonical path or a table { to, split, into, formats, normalise, null }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ColumnSpec, E> {
                Ok(ColumnSpec::Path(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<ColumnSpec, A::Error> {
                ColumnRuleFile::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(ColumnSpec::Rule)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[columns."<header>"]` as a table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnRuleFile {
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    split: Option<String>,
    #[serde(default)]
    into: Vec<String>,
    #[serde(default)]
    formats: Vec<String>,
    #[serde(default)]
    normalise: Option<String>,
    #[serde(default)]
    null: Vec<String>,
}

/// `[join."<path>"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinSpec {
    columns: Vec<String>,
    #[serde(default = "default_separator")]
    separator: String,
    #[serde(default)]
    null: Vec<String>,
}

fn default_separator() -> String {
    " ".to_owned()
}

/// Why a mapping cannot be loaded or bound. Messages name the mapping, the line and
/// key in the mapping file, and the rule; never a cell value.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mapping {origin}, line {line}: not valid toml or an unknown key: {reason}")]
    Syntax {
        origin: String,
        line: usize,
        reason: String,
    },
    #[error("mapping {mapping}, line {line}, key {key}: {reason}")]
    Invalid {
        mapping: String,
        line: usize,
        key: String,
        reason: String,
    },
    /// The mapping does not fit a file's header.
    #[error("mapping {mapping}: {reason}")]
    Bind { mapping: String, reason: String },
}

/// How one column of a file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnUse {
    /// Its cell feeds one target.
    One(Target),
    /// Its cell holds several values: `sep` (`None`: spaces) cuts it into as many
    /// parts as targets, the last part keeping the rest.
    Split {
        sep: Option<String>,
        into: Vec<Target>,
    },
    /// One of the columns joined into a text target.
    Joined(Target),
}

impl ColumnUse {
    /// The targets the column feeds.
    pub fn targets(&self) -> Vec<Target> {
        match self {
            Self::One(t) | Self::Joined(t) => vec![*t],
            Self::Split { into, .. } => into.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct ColumnRule {
    header: String,
    usage: ColumnUse,
    /// Folded null tokens of this column.
    null: Vec<String>,
}

#[derive(Debug, Clone)]
struct Join {
    target: Target,
    /// Header keys, in the order the mapping gives them.
    columns: Vec<String>,
    separator: String,
}

/// A loaded, checked mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    pub description: Option<String>,
    pub sheet: Option<String>,
    /// How the département's files are read (encoding, limits): `[box.reading]` of the
    /// configuration, set by `BoxConfig::build`; the defaults otherwise.
    pub reading: passerelle_connector::ReaderConfig,
    /// Whether a row one trailing field short of the header is read as if the
    /// field were empty (box.md: real lists leave a trailing empty field out).
    pub accept_short_rows: bool,
    /// Normalised header → rule.
    columns: BTreeMap<String, ColumnRule>,
    joins: Vec<Join>,
    ignore: Vec<String>,
    /// Folded tokens meaning empty, in every column.
    null: Vec<String>,
    /// Target → (folded source spelling → replacement).
    values: BTreeMap<Target, BTreeMap<String, String>>,
    formats: BTreeMap<Target, Vec<String>>,
    normalisers: BTreeMap<Target, Normaliser>,
}

/// How headers are compared: trimmed, NFC, case and inner spaces (line breaks and
/// tabs too, as spreadsheets leave them) ignored.
pub fn header_key(header: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    header
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .nfc()
        .collect::<String>()
        .to_lowercase()
}

/// The line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |s| s.bytes().filter(|b| *b == b'\n').count())
        + 1
}

/// Checks a date format: known directives only, and it must read back the date it
/// writes (a format without day, month and year cannot).
fn check_format(format: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Err(format!(
            "date format \"{format}\" has an unknown % directive"
        ));
    }
    let sample = chrono::NaiveDate::from_ymd_opt(2004, 3, 12)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or("no sample date")?;
    let written = sample.format(format).to_string();
    match parse_with_format(&written, format) {
        Some(d) if d == sample.date() => Ok(()),
        _ => Err(format!(
            "date format \"{format}\" does not give a day, a month and a year"
        )),
    }
}

/// Reads a date with one strftime format (a time part, if the format has one, is
/// read and ignored).
pub fn parse_with_format(raw: &str, format: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(raw, format)
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(raw, format)
                .ok()
                .map(|dt| dt.date())
        })
}

impl Mapping {
    /// The compiled-in default (`schemas/mappings/brsa_liste.toml`).
    pub fn default_brsa() -> Self {
        // The default is checked by a test; a broken one cannot ship.
        Self::from_toml(DEFAULT_MAPPING_TOML, "brsa_liste.toml")
            .unwrap_or_else(|e| panic!("the compiled-in mapping is broken: {e}"))
    }

    /// Loads a mapping file.
    pub fn load(path: &Path) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and checks a mapping; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, MappingError> {
        let file: MappingFile = toml::from_str(text).map_err(|e| MappingError::Syntax {
            origin: origin.to_owned(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            reason: e.message().to_owned(),
        })?;
        let name = file.name.clone();
        let invalid =
            |span: std::ops::Range<usize>, key: String, reason: String| MappingError::Invalid {
                mapping: name.clone(),
                line: line_of(text, span.start),
                key,
                reason,
            };
        let known = || {
            Target::ALL
                .iter()
                .map(|(_, p)| *p)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let target_of = |path: &str| Target::from_path(path);
        if file.columns.is_empty() && file.join.is_empty() {
            return Err(invalid(
                0..0,
                "columns".to_owned(),
                "maps no column".to_owned(),
            ));
        }
        let fold_all = |v: &[String]| v.iter().map(|s| fold_value(s)).collect::<Vec<_>>();

        let mut columns: BTreeMap<String, ColumnRule> = BTreeMap::new();
        // Which column feeds each target, to refuse two feeding one (lists aside).
        let mut seen: BTreeMap<Target, String> = BTreeMap::new();
        let mut formats: BTreeMap<Target, Vec<String>> = BTreeMap::new();
        let mut normalisers: BTreeMap<Target, Normaliser> = BTreeMap::new();
        let mut claim = |target: Target,
                         header: &str,
                         span: std::ops::Range<usize>,
                         key: &str|
         -> Result<(), MappingError> {
            if target.is_list() {
                return Ok(());
            }
            if let Some(other) = seen.insert(target, header.to_owned()) {
                return Err(invalid(
                    span,
                    key.to_owned(),
                    format!(
                        "columns \"{other}\" and \"{header}\" both map to {}",
                        target.path()
                    ),
                ));
            }
            Ok(())
        };
        for (header, spec) in &file.columns {
            let span = spec.span();
            let key = format!("columns.\"{header}\"");
            let unknown = |path: &str| {
                invalid(
                    span.clone(),
                    key.clone(),
                    format!(
                        "column \"{header}\" maps to unknown path {path} (known: {})",
                        known()
                    ),
                )
            };
            let rule = match spec.get_ref() {
                ColumnSpec::Path(path) => {
                    let t = target_of(path).ok_or_else(|| unknown(path))?;
                    claim(t, header, span.clone(), &key)?;
                    ColumnRule {
                        header: header.clone(),
                        usage: ColumnUse::One(t),
                        null: Vec::new(),
                    }
                }
                ColumnSpec::Rule(r) => {
                    let usage = match (&r.to, r.into.is_empty()) {
                        (Some(_), false) => {
                            return Err(invalid(
                                span,
                                key,
                                "gives both `to` and `into`: one target, or the parts of a split"
                                    .to_owned(),
                            ));
                        }
                        (None, true) => {
                            return Err(invalid(
                                span,
                                key,
                                "needs `to` (a canonical path) or `split` with `into`".to_owned(),
                            ));
                        }
                        (Some(path), true) => {
                            if r.split.is_some() {
                                return Err(invalid(
                                    span,
                                    key,
                                    "`split` needs `into`, the targets of the parts".to_owned(),
                                ));
                            }
                            let t = target_of(path).ok_or_else(|| unknown(path))?;
                            claim(t, header, span.clone(), &key)?;
                            ColumnUse::One(t)
                        }
                        (None, false) => {
                            if r.into.len() < 2 {
                                return Err(invalid(
                                    span,
                                    key,
                                    "`into` needs at least two targets".to_owned(),
                                ));
                            }
                            let mut into = Vec::new();
                            for path in &r.into {
                                let t = target_of(path).ok_or_else(|| unknown(path))?;
                                if t.is_list() {
                                    return Err(invalid(
                                        span,
                                        key,
                                        format!("{path} cannot be a part of a split"),
                                    ));
                                }
                                claim(t, header, span.clone(), &key)?;
                                into.push(t);
                            }
                            let sep = match r.split.as_deref() {
                                None | Some(" ") => None,
                                Some("") => {
                                    return Err(invalid(
                                        span,
                                        key,
                                        "`split` is empty: give the separator (\" \" for spaces)"
                                            .to_owned(),
                                    ));
                                }
                                Some(s) => Some(s.to_owned()),
                            };
                            ColumnUse::Split { sep, into }
                        }
                    };
                    let targets = usage.targets();
                    if !r.formats.is_empty() {
                        let t = targets[0];
                        if targets.len() != 1 || !t.is_date() {
                            return Err(invalid(
                                span,
                                key,
                                "`formats` applies to a date column only".to_owned(),
                            ));
                        }
                        for f in &r.formats {
                            check_format(f)
                                .map_err(|reason| invalid(span.clone(), key.clone(), reason))?;
                        }
                        formats.insert(t, r.formats.clone());
                    }
                    if let Some(n) = &r.normalise {
                        let (norm, wanted) = Normaliser::parse(n).ok_or_else(|| {
                            invalid(
                                span.clone(),
                                key.clone(),
                                format!(
                                    "unknown normaliser \"{n}\" (known: allocataire, telephone)"
                                ),
                            )
                        })?;
                        if targets != [wanted] {
                            return Err(invalid(
                                span,
                                key,
                                format!("normaliser \"{n}\" applies to {} only", wanted.path()),
                            ));
                        }
                        normalisers.insert(wanted, norm);
                    }
                    ColumnRule {
                        header: header.clone(),
                        usage,
                        null: fold_all(&r.null),
                    }
                }
            };
            if columns.insert(header_key(header), rule).is_some() {
                return Err(invalid(
                    span,
                    key,
                    format!("column \"{header}\" is listed twice"),
                ));
            }
        }
        let mut joins = Vec::new();
        for (path, spec) in &file.join {
            let span = spec.span();
            let key = format!("join.\"{path}\"");
            let j = spec.get_ref();
            let t = target_of(path).ok_or_else(|| {
                invalid(
                    span.clone(),
                    key.clone(),
                    format!("unknown path {path} (known: {})", known()),
                )
            })?;
            if !t.is_text() {
                return Err(invalid(
                    span,
                    key,
                    format!("{path} is not free text: only text targets can be joined"),
                ));
            }
            if j.columns.len() < 2 {
                return Err(invalid(
                    span,
                    key,
                    "joins fewer than two columns".to_owned(),
                ));
            }
            claim(t, &j.columns.join("+"), span.clone(), &key)?;
            let mut keys = Vec::new();
            for header in &j.columns {
                let k = header_key(header);
                if columns.contains_key(&k) {
                    return Err(invalid(
                        span,
                        key,
                        format!("column \"{header}\" is both joined and mapped in [columns]"),
                    ));
                }
                columns.insert(
                    k.clone(),
                    ColumnRule {
                        header: header.clone(),
                        usage: ColumnUse::Joined(t),
                        null: fold_all(&j.null),
                    },
                );
                keys.push(k);
            }
            joins.push(Join {
                target: t,
                columns: keys,
                separator: j.separator.clone(),
            });
        }
        let ignore: Vec<String> = file
            .ignore
            .iter()
            .map(|h| header_key(h.get_ref()))
            .collect();
        if let Some(h) = file
            .ignore
            .iter()
            .find(|h| columns.contains_key(&header_key(h.get_ref())))
        {
            return Err(invalid(
                h.span(),
                "ignore".to_owned(),
                format!("column \"{}\" is both mapped and ignored", h.get_ref()),
            ));
        }
        let fed = |t: Target| columns.values().any(|c| c.usage.targets().contains(&t));
        let mut values = BTreeMap::new();
        for (path, table) in &file.values {
            let span = table.span();
            let key = format!("values.\"{path}\"");
            let target = target_of(path).ok_or_else(|| {
                invalid(
                    span.clone(),
                    key.clone(),
                    format!("values for unknown path {path}"),
                )
            })?;
            if !fed(target) {
                return Err(invalid(
                    span,
                    key,
                    format!("values for {path}, which no column maps"),
                ));
            }
            let mut folded = BTreeMap::new();
            for (from, to) in table.get_ref() {
                // A translation must land on a spelling the canonical rule accepts.
                if let Err(reason) = crate::brsa::check_value(target, to) {
                    return Err(invalid(
                        span,
                        key,
                        format!("\"{from}\" translates to a value that {reason}"),
                    ));
                }
                folded.insert(fold_value(from), to.clone());
            }
            values.insert(target, folded);
        }
        Ok(Self {
            name: file.name,
            description: file.description,
            sheet: file.sheet,
            reading: passerelle_connector::ReaderConfig::default(),
            accept_short_rows: file.short_rows != Some(ShortRows::Reject),
            columns,
            joins,
            ignore,
            null: fold_all(&file.null),
            values,
            formats,
            normalisers,
        })
    }

    /// Binds the mapping to a file's header: which column feeds which target.
    ///
    /// A header that the mapping neither maps nor ignores refuses the file: silently
    /// dropping a column would lose data the département meant to send. A mapped
    /// column the file lacks is fine (one mapping serves a département's variants).
    pub fn bind(&self, header: &[String]) -> Result<Binding, MappingError> {
        let mut targets = Vec::with_capacity(header.len());
        let mut uses = Vec::with_capacity(header.len());
        let mut slots: Vec<Vec<Slot>> = vec![Vec::new(); TARGETS];
        let mut null: Vec<Vec<String>> = Vec::with_capacity(header.len());
        let mut position: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, h) in header.iter().enumerate() {
            let key = header_key(h);
            match self.columns.get_key_value(&key) {
                Some((k, rule)) => {
                    position.insert(k.as_str(), i);
                    let mut tokens = self.null.clone();
                    tokens.extend(rule.null.iter().cloned());
                    null.push(tokens);
                    match &rule.usage {
                        ColumnUse::One(t) => slots[*t as usize].push(Slot::Cell(i)),
                        ColumnUse::Split { sep, into } => {
                            for (part, t) in into.iter().enumerate() {
                                slots[*t as usize].push(Slot::Part {
                                    col: i,
                                    part,
                                    parts: into.len(),
                                    sep: sep.clone(),
                                });
                            }
                        }
                        // Filled below, in the mapping's order.
                        ColumnUse::Joined(_) => {}
                    }
                    targets.push(rule.usage.targets().first().copied());
                    uses.push(Some(rule.usage.clone()));
                }
                None if self.ignore.contains(&key) => {
                    targets.push(None);
                    uses.push(None);
                    null.push(Vec::new());
                }
                None => {
                    // By number, not by name: in a file without a header the first
                    // row is data (a CAF number), and errors reach the ACK file.
                    return Err(MappingError::Bind {
                        mapping: self.name.clone(),
                        reason: format!(
                            "column {} of the header (line 1) is neither mapped nor ignored by the mapping",
                            i + 1
                        ),
                    });
                }
            }
        }
        for j in &self.joins {
            let cols: Vec<usize> = j
                .columns
                .iter()
                .filter_map(|k| position.get(k.as_str()).copied())
                .collect();
            if !cols.is_empty() {
                slots[j.target as usize].push(Slot::Join {
                    cols,
                    sep: j.separator.clone(),
                });
            }
        }
        if !Target::ALL
            .iter()
            .any(|(t, _)| t.identifies() && !slots[*t as usize].is_empty())
        {
            return Err(MappingError::Bind {
                mapping: self.name.clone(),
                reason: "the file has none of the identifying columns (caf number, nir, name, the département's id)"
                    .to_owned(),
            });
        }
        let mut values: Vec<Option<BTreeMap<String, String>>> = vec![None; TARGETS];
        for (t, table) in &self.values {
            values[*t as usize] = Some(table.clone());
        }
        let mut formats: Vec<Vec<String>> = vec![Vec::new(); TARGETS];
        for (t, f) in &self.formats {
            formats[*t as usize] = f.clone();
        }
        let mut normalisers = vec![None; TARGETS];
        for (t, n) in &self.normalisers {
            normalisers[*t as usize] = Some(*n);
        }
        Ok(Binding {
            targets,
            uses,
            slots,
            null,
            values,
            formats,
            normalisers,
        })
    }

    /// The header spellings the mapping knows, with their use (for `mapping check`).
    pub fn column_headers(&self) -> impl Iterator<Item = (&str, &ColumnUse)> {
        self.columns.values().map(|c| (c.header.as_str(), &c.usage))
    }
}

/// How value translations and null tokens are matched: trimmed, upper-cased, inner
/// spaces collapsed.
pub fn fold_value(v: &str) -> String {
    v.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// Where a target's value comes from in a row.
#[derive(Debug, Clone)]
enum Slot {
    Cell(usize),
    Part {
        col: usize,
        part: usize,
        parts: usize,
        sep: Option<String>,
    },
    Join {
        cols: Vec<usize>,
        sep: String,
    },
}

/// A mapping bound to one file's header.
#[derive(Debug, Clone)]
pub struct Binding {
    /// One entry per column: the (first) target it feeds, or `None` when ignored.
    pub targets: Vec<Option<Target>>,
    /// One entry per column: how it is read, `None` when ignored.
    pub uses: Vec<Option<ColumnUse>>,
    /// Indexed by target.
    slots: Vec<Vec<Slot>>,
    /// Indexed by column: folded null tokens.
    null: Vec<Vec<String>>,
    values: Vec<Option<BTreeMap<String, String>>>,
    formats: Vec<Vec<String>>,
    normalisers: Vec<Option<Normaliser>>,
}

/// The `part`-th of `parts` pieces of `cell`, cut at `sep` (`None`: runs of spaces);
/// the last piece keeps the rest.
fn piece<'a>(cell: &'a str, sep: Option<&str>, part: usize, parts: usize) -> Option<&'a str> {
    let mut rest = cell.trim();
    for _ in 0..part {
        let cut = match sep {
            None => rest.find(char::is_whitespace).map(|i| (i, 1)),
            Some(s) => rest.find(s).map(|i| (i, s.len())),
        };
        let (i, len) = cut?;
        rest = rest[i + len..].trim_start();
    }
    if part + 1 < parts {
        let end = match sep {
            None => rest.find(char::is_whitespace),
            Some(s) => rest.find(s),
        };
        if let Some(end) = end {
            rest = &rest[..end];
        }
    }
    Some(rest.trim()).filter(|s| !s.is_empty())
}

impl Binding {
    /// A cell, trimmed; `None` when blank or a null token.
    fn cell<'a>(&self, fields: &'a [String], col: usize) -> Option<&'a str> {
        let raw = fields.get(col)?.trim();
        if raw.is_empty() {
            return None;
        }
        let tokens = &self.null[col];
        if !tokens.is_empty() && tokens.iter().any(|t| t.eq_ignore_ascii_case(raw)) {
            return None;
        }
        Some(raw)
    }

    fn slot_value<'a>(&self, fields: &'a [String], slot: &Slot) -> Option<Cow<'a, str>> {
        match slot {
            Slot::Cell(i) => self.cell(fields, *i).map(Cow::Borrowed),
            Slot::Part {
                col,
                part,
                parts,
                sep,
            } => {
                let cell = self.cell(fields, *col)?;
                piece(cell, sep.as_deref(), *part, *parts).map(Cow::Borrowed)
            }
            Slot::Join { cols, sep } => {
                let parts: Vec<&str> = cols.iter().filter_map(|c| self.cell(fields, *c)).collect();
                match parts.len() {
                    0 => None,
                    1 => Some(Cow::Borrowed(parts[0])),
                    _ => Some(Cow::Owned(parts.join(sep))),
                }
            }
        }
    }

    fn translate<'a>(&self, target: Target, raw: Cow<'a, str>) -> Cow<'a, str> {
        match self.values[target as usize]
            .as_ref()
            .and_then(|t| t.get(&fold_value(&raw)))
        {
            Some(to) => Cow::Owned(to.clone()),
            None => raw,
        }
    }

    /// The value for a target after translation, `None` when blank or unmapped.
    pub fn value<'a>(&self, fields: &'a [String], target: Target) -> Option<Cow<'a, str>> {
        let slot = self.slots[target as usize].first()?;
        let raw = self.slot_value(fields, slot)?;
        Some(self.translate(target, raw))
    }

    /// Every value for a list target (one per feeding column), after translation.
    pub fn values<'a>(&self, fields: &'a [String], target: Target) -> Vec<Cow<'a, str>> {
        self.slots[target as usize]
            .iter()
            .filter_map(|s| self.slot_value(fields, s))
            .map(|raw| self.translate(target, raw))
            .collect()
    }

    /// Whether a column of the file feeds the target.
    pub fn binds(&self, target: Target) -> bool {
        !self.slots[target as usize].is_empty()
    }

    /// The date formats of a target's column (empty: `DD/MM/YYYY` and `YYYY-MM-DD`).
    pub fn formats(&self, target: Target) -> &[String] {
        &self.formats[target as usize]
    }

    /// The normaliser of a target's column.
    pub fn normaliser(&self, target: Target) -> Option<Normaliser> {
        self.normalisers[target as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> Vec<String> {
        s.split(';').map(str::to_owned).collect()
    }

    fn row(s: &str) -> Vec<String> {
        s.split(';').map(str::to_owned).collect()
    }

    #[test]
    fn the_default_mapping_loads_and_binds_box_md_columns() {
        let m = Mapping::default_brsa();
        let header = header(
            "N° CAF;Rôle;Civilité;Nom;Nom de naissance;Prénom;Date de naissance;NIR;Adresse;Code postal;Ville;Téléphone;Email;Date ouverture droits;Etat droit;Soumis D&D;Orientation;Structure référente;Référent",
        );
        let b = m.bind(&header).unwrap();
        assert!(b.targets.iter().all(Option::is_some));
        assert_eq!(b.targets[0], Some(Target::CafNumero));
        assert_eq!(b.targets[18], Some(Target::ReferentNom));
    }

    #[test]
    fn targets_are_in_order() {
        for (i, (t, _)) in Target::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i, "{t:?}");
        }
    }

    #[test]
    fn headers_match_whatever_the_case_and_spaces() {
        let m = Mapping::default_brsa();
        let header = vec!["  n° caf ".to_owned(), "NOM".to_owned()];
        let b = m.bind(&header).unwrap();
        assert_eq!(
            b.targets,
            vec![Some(Target::CafNumero), Some(Target::NomUsage)]
        );
    }

    #[test]
    fn an_unknown_column_refuses_the_file_by_number() {
        let m = Mapping::default_brsa();
        let err = m
            .bind(&["N° CAF".to_owned(), "Couleur".to_owned()])
            .unwrap_err();
        assert!(err.to_string().contains("column 2 of the header"), "{err}");
        // A file without a header: its first row is data, never quoted (issue 16).
        let err = m
            .bind(&["0027004992".to_owned(), "DUPONT".to_owned()])
            .unwrap_err();
        assert!(!err.to_string().contains("0027004992"), "{err}");
        assert!(!err.to_string().contains("DUPONT"), "{err}");
    }

    #[test]
    fn errors_are_precise() {
        let check = |text: &str, wanted: &[&str]| {
            let e = Mapping::from_toml(text, "x.toml").unwrap_err().to_string();
            for w in wanted {
                assert!(e.contains(w), "{e} lacks {w}");
            }
        };
        check(
            "name = \"x\"\nfoo = 1\n[columns]\n\"A\" = \"etat_civil.nom_usage\"\n",
            &["unknown field `foo`", "line 2"],
        );
        check(
            "name = \"x\"\n[columns]\n\"A\" = \"etat_civil.nom\"\n",
            &["unknown path etat_civil.nom", "line 3", "columns.\"A\""],
        );
        check(
            "name = \"x\"\n[columns]\n\"A\" = \"etat_civil.nom_usage\"\n\"B\" = \"etat_civil.nom_usage\"\n",
            &["both map to etat_civil.nom_usage", "line 4"],
        );
        check(
            "name = \"x\"\n[columns]\n\"R\" = \"rsa.role\"\n[values.\"rsa.role\"]\n\"Chef\" = \"BOSS\"\n",
            &["\"Chef\" translates", "values.\"rsa.role\""],
        );
        check(
            "name = \"x\"\n[columns]\n\"R\" = \"rsa.role\"\n[values.\"orientation.type\"]\n\"a\" = \"PRO\"\n",
            &["which no column maps"],
        );
        check(
            "name = \"x\"\n[columns]\n\"N\" = \"etat_civil.nom_usage\"\n\"D\" = { to = \"etat_civil.date_naissance\", formats = [\"%d/%m/%Y%\"] }\n",
            &["unknown % directive", "line 4", "columns.\"D\""],
        );
        check(
            "name = \"x\"\n[columns]\n\"D\" = { to = \"etat_civil.date_naissance\", formats = [\"%d/%m\"] }\n",
            &["does not give a day, a month and a year"],
        );
        check(
            "name = \"x\"\n[columns]\n\"N\" = { to = \"etat_civil.nom_usage\", formats = [\"%d/%m/%Y\"] }\n",
            &["date column only"],
        );
        check(
            "name = \"x\"\n[columns]\n\"T\" = { to = \"contact.telephones\", normalise = \"phone\" }\n",
            &["unknown normaliser \"phone\""],
        );
        check(
            "name = \"x\"\n[columns]\n\"T\" = { to = \"contact.email\", normalise = \"telephone\" }\n",
            &["applies to contact.telephones only"],
        );
        check(
            "name = \"x\"\n[columns]\n\"T\" = { to = \"contact.email\", colour = 1 }\n",
            &["unknown field `colour`", "line 3"],
        );
        check(
            "name = \"x\"\n[columns]\n\"CP\" = { split = \" \", into = [\"contact.adresse.code_postal\"] }\n",
            &["at least two targets"],
        );
        check(
            "name = \"x\"\n[columns]\n\"N\" = \"etat_civil.nom_usage\"\n[join.\"rsa.role\"]\ncolumns = [\"A\", \"B\"]\n",
            &["not free text", "join.\"rsa.role\"", "line 4"],
        );
    }

    #[test]
    fn split_join_null_and_several_phones() {
        let m = Mapping::from_toml(
            r#"
name = "t"
null = ["NULL"]
[columns]
"ID" = "identifiants.solis"
"CP Ville" = { split = " ", into = ["contact.adresse.code_postal", "contact.adresse.commune"] }
"Tel" = { to = "contact.telephones", normalise = "telephone" }
"Tel 2" = "contact.telephones"
[join."contact.adresse.voie"]
columns = ["L2", "L3"]
separator = ", "
"#,
            "t.toml",
        )
        .unwrap();
        let b = m.bind(&header("ID;CP Ville;L3;Tel;L2;Tel 2")).unwrap();
        let f = row("X1;59402  Saint  Amand;NULL;0601;3 rue;0602");
        assert_eq!(b.value(&f, Target::CodePostal).as_deref(), Some("59402"));
        assert_eq!(
            b.value(&f, Target::Commune).as_deref(),
            Some("Saint  Amand")
        );
        // NULL means empty: the join keeps only the other line.
        assert_eq!(b.value(&f, Target::AdresseVoie).as_deref(), Some("3 rue"));
        let f = row("X1;59402;L3 x;0601;L2 y;");
        assert_eq!(b.value(&f, Target::CodePostal).as_deref(), Some("59402"));
        assert_eq!(b.value(&f, Target::Commune), None);
        assert_eq!(
            b.value(&f, Target::AdresseVoie).as_deref(),
            Some("L2 y, L3 x")
        );
        assert_eq!(b.values(&f, Target::Telephone).len(), 1);
        assert_eq!(b.normaliser(Target::Telephone), Some(Normaliser::Telephone));
        assert!(m.accept_short_rows);
    }

    #[test]
    fn pieces() {
        assert_eq!(piece("59402 Nice", None, 0, 2), Some("59402"));
        assert_eq!(
            piece("59402 Nice sur Mer", None, 1, 2),
            Some("Nice sur Mer")
        );
        assert_eq!(piece("59402", None, 1, 2), None);
        assert_eq!(piece("a - b - c", Some("-"), 1, 2), Some("b - c"));
        assert_eq!(piece("a - b - c", Some("-"), 1, 3), Some("b"));
    }

    #[test]
    fn date_formats() {
        for f in ["%d/%m/%Y", "%d-%m-%Y", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S%.f"] {
            check_format(f).unwrap();
        }
        let d = |s: &str, f: &str| parse_with_format(s, f).map(|d| d.to_string());
        assert_eq!(d("22-04-1997", "%d-%m-%Y").as_deref(), Some("1997-04-22"));
        assert_eq!(d("2/4/1997", "%d/%m/%Y").as_deref(), Some("1997-04-02"));
        assert_eq!(
            d("1982-02-01 00:00:00.0", "%Y-%m-%d %H:%M:%S%.f").as_deref(),
            Some("1982-02-01")
        );
        assert_eq!(d("1998-05-25", "%d-%m-%Y"), None);
    }

    #[test]
    fn shipped_variants_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/mappings");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Mapping::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 3, "the default and two variants");
    }
}
