//! API keys: one per endpoint family, read from the environment or a secret file
//! (the kit's `SecretSource`), never printed (`Debug` is redacted and there is no `Display`).

use std::fmt;

use passerelle_connector::ConnectorError;
use passerelle_connector::http::Secret;
use serde::{Deserialize, Serialize};

/// Where a key comes from: the config names the source, never the key (the kit's
/// `SecretSource`: `{ env = "NAME" }` or `{ file = "/path" }`).
pub use passerelle_connector::http::SecretSource as KeySource;

/// The endpoint families of the I-MILO API; each has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Dossiers,
    Events,
    Situations,
    Partenaires,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::Dossiers,
        Family::Events,
        Family::Situations,
        Family::Partenaires,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Dossiers => "dossiers",
            Family::Events => "events",
            Family::Situations => "situations",
            Family::Partenaires => "partenaires",
        }
    }

    /// Position in per-family arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API key: a `Secret` that is also a valid header value. Its only way out is
/// `expose`, used when building the request header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Secret);

impl ApiKey {
    /// Wraps a key (trimmed; a trailing newline in a secret file is not part of it).
    pub fn new(key: impl AsRef<str>) -> Result<Self, ConnectorError> {
        let k = key.as_ref().trim();
        if k.is_empty() {
            return Err(ConnectorError::Config("api key is empty".into()));
        }
        if !k.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConnectorError::Config(
                "api key must be printable ascii without spaces".into(),
            ));
        }
        Ok(Self(Secret::new(k)))
    }

    /// Reads a family's key from its source. Errors name the variable or file, never
    /// the content.
    pub fn load(source: &KeySource, family: Family) -> Result<Self, ConnectorError> {
        let what = format!("keys.{family}");
        let raw = source.resolve(&what)?;
        Self::new(raw.expose()).map_err(|e| match e {
            ConnectorError::Config(reason) => ConnectorError::Config(format!("{what}: {reason}")),
            other => other,
        })
    }

    /// The key itself, for the `X-Gravitee-Api-Key` header only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The four key sources of the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySources {
    pub dossiers: KeySource,
    pub events: KeySource,
    pub situations: KeySource,
    pub partenaires: KeySource,
}

impl KeySources {
    pub fn get(&self, family: Family) -> &KeySource {
        match family {
            Family::Dossiers => &self.dossiers,
            Family::Events => &self.events,
            Family::Situations => &self.situations,
            Family::Partenaires => &self.partenaires,
        }
    }
}

/// The four loaded keys.
#[derive(Clone)]
pub struct FamilyKeys([ApiKey; 4]);

impl FamilyKeys {
    /// Loads every key from its source.
    pub fn load(sources: &KeySources) -> Result<Self, ConnectorError> {
        Ok(Self([
            ApiKey::load(&sources.dossiers, Family::Dossiers)?,
            ApiKey::load(&sources.events, Family::Events)?,
            ApiKey::load(&sources.situations, Family::Situations)?,
            ApiKey::load(&sources.partenaires, Family::Partenaires)?,
        ]))
    }

    /// Keys given directly (tests, embedding).
    pub fn from_keys(
        dossiers: ApiKey,
        events: ApiKey,
        situations: ApiKey,
        partenaires: ApiKey,
    ) -> Self {
        Self([dossiers, events, situations, partenaires])
    }

    pub fn get(&self, family: Family) -> &ApiKey {
        &self.0[family.index()]
    }
}

impl fmt::Debug for FamilyKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FamilyKeys(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_redacted_and_trimmed() {
        let k = ApiKey::new("  s3cret-key\n").unwrap();
        assert_eq!(k.expose(), "s3cret-key");
        assert!(!format!("{k:?}").contains("s3cret"));
        assert!(ApiKey::new(" \n").is_err());
        assert!(ApiKey::new("a b").is_err());
    }

    #[test]
    fn file_source_and_errors_without_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "file-key-123\n").unwrap();
        let src = KeySource::File(path);
        assert_eq!(
            ApiKey::load(&src, Family::Events).unwrap().expose(),
            "file-key-123"
        );
        let missing = KeySource::Env("PASSERELLE_IMILO_TEST_SURELY_UNSET".into());
        let err = ApiKey::load(&missing, Family::Dossiers)
            .unwrap_err()
            .to_string();
        assert!(err.contains("PASSERELLE_IMILO_TEST_SURELY_UNSET"), "{err}");
        assert!(
            KeySource::Env("1BAD".into())
                .validate("keys.dossiers")
                .is_err()
        );
        assert!(
            KeySource::Env("BAD-NAME".into())
                .validate("keys.dossiers")
                .is_err()
        );
        assert!(
            KeySource::Env("GOOD_NAME".into())
                .validate("keys.dossiers")
                .is_ok()
        );
    }
}
