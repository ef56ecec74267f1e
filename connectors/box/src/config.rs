//! `[box]` configuration: where the box is (a local path or SFTP), the partner folder,
//! the state folder and the département's column mapping. `validate` is pure; `build`
//! opens the state and returns the hub's side of the box.

use std::path::PathBuf;
use std::sync::Arc;

use passerelle_connector::{ConnectorError, PeerStore};
use passerelle_model::StructureCode;
use serde::Deserialize;

use crate::folder::{BoxFolder, LocalFolder};
use crate::mapping::Mapping;
use crate::protocol::BoxHub;
use crate::sftp::SftpConfig;
use crate::state::{JsonFileState, PeerBoxState};

/// One box as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxConfig {
    /// `file:///srv/box/cd059` or `sftp://user@host:22/cd059`.
    pub url: String,
    /// The partner's code: its folder in the box (`59350S00`).
    pub partenaire: String,
    /// Where the hub remembers the files it read (`box-{partenaire}.json`).
    pub state_dir: PathBuf,
    /// The département's column mapping; the compiled-in default when absent.
    #[serde(default)]
    pub mapping: Option<PathBuf>,
    /// Key and known hosts, for an `sftp://` URL.
    #[serde(default)]
    pub sftp: Option<SftpKeys>,
    /// How the département's files are read: encoding when named, limits
    /// (`passerelle_connector::ReaderConfig`, safe defaults).
    #[serde(default)]
    pub reading: passerelle_connector::ReaderConfig,
}

/// `[box.sftp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpKeys {
    pub identity_file: PathBuf,
    pub known_hosts_file: PathBuf,
    #[serde(default)]
    pub program: Option<PathBuf>,
}

/// Where the box is, once checked.
#[derive(Debug, Clone)]
pub enum Location {
    Local(PathBuf),
    Sftp(SftpConfig),
}

impl BoxConfig {
    /// Checks the configuration without I/O.
    pub fn validate(&self) -> Result<Location, ConnectorError> {
        let cfg = |m: String| ConnectorError::Config(m);
        StructureCode::parse(&self.partenaire)
            .map_err(|e| cfg(format!("box partenaire {}", e.reason)))?;
        if self.state_dir.as_os_str().is_empty() {
            return Err(cfg("box state_dir is empty".to_owned()));
        }
        self.reading.validate()?;
        if let Some(path) = self.url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(cfg("box url file:// needs an absolute path".to_owned()));
            }
            if self.sftp.is_some() {
                return Err(cfg("box [sftp] keys given for a file:// url".to_owned()));
            }
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if self.url.starts_with("sftp://") {
            let keys = self.sftp.as_ref().ok_or_else(|| {
                cfg(
                    "box url sftp:// needs [box.sftp] identity_file and known_hosts_file"
                        .to_owned(),
                )
            })?;
            let sftp = SftpConfig {
                url: self.url.clone(),
                identity_file: keys.identity_file.clone(),
                known_hosts_file: keys.known_hosts_file.clone(),
                program: keys
                    .program
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("sftp")),
                connect_timeout_secs: 15,
                multiplex: true,
                operation_timeout_secs: 300,
            };
            sftp.validate()?;
            return Ok(Location::Sftp(sftp));
        }
        Err(cfg("box url must start with file:// or sftp://".to_owned()))
    }

    /// The box's folder tree (local or SFTP), e.g. for `BoxOfSink::with_box`.
    pub fn folder(&self) -> Result<Arc<dyn BoxFolder>, ConnectorError> {
        Ok(match self.validate()? {
            Location::Local(root) => Arc::new(LocalFolder::new(root)),
            Location::Sftp(sftp) => Arc::new(sftp.build()?),
        })
    }

    /// The ledger `BoxOfSink` keeps under this box's `state_dir` for a CD's files.
    pub fn sent_ledger(&self, cd: &str) -> Result<crate::sent::SentLedger, ConnectorError> {
        self.validate()?;
        crate::sent::SentLedger::open(&self.state_dir, cd)
    }

    /// The ledger of a CD's files in `store` (the hub's state, shared by its
    /// instances), taking in once what this box's `state_dir` held.
    pub async fn sent_ledger_shared(
        &self,
        cd: &str,
        store: Arc<dyn PeerStore>,
    ) -> Result<crate::sent::SentLedger, ConnectorError> {
        self.validate()?;
        crate::sent::SentLedger::shared(store, &self.state_dir, cd).await
    }

    /// Loads the mapping and the state, and returns the hub's side of the box.
    pub fn build(&self) -> Result<BoxHub<JsonFileState>, ConnectorError> {
        let (folder, mapping) = self.folder_and_mapping()?;
        let state = JsonFileState::open(&self.state_dir, &self.partenaire)?;
        Ok(BoxHub::new(folder, self.partenaire.clone(), state, mapping))
    }

    /// `build` with the state in `store` (the hub's state: every instance on it sees
    /// the files the others read), taking in once the JSON state of `state_dir`.
    pub async fn build_shared(
        &self,
        store: Arc<dyn PeerStore>,
    ) -> Result<BoxHub<PeerBoxState>, ConnectorError> {
        let (folder, mapping) = self.folder_and_mapping()?;
        let state = PeerBoxState::open(store, &self.state_dir, &self.partenaire).await?;
        Ok(BoxHub::new(folder, self.partenaire.clone(), state, mapping))
    }

    fn folder_and_mapping(&self) -> Result<(Arc<dyn BoxFolder>, Mapping), ConnectorError> {
        let folder = self.folder()?;
        let mut mapping = match &self.mapping {
            Some(path) => Mapping::load(path).map_err(|e| ConnectorError::Config(e.to_string()))?,
            None => Mapping::default_brsa(),
        };
        mapping.reading = self.reading.clone();
        Ok((folder, mapping))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<BoxConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn local_and_sftp() {
        let c = parse("url = \"file:///srv/box/cd059\"\npartenaire = \"59350S00\"\nstate_dir = \"/var/lib/p\"\n").unwrap();
        assert!(
            matches!(c.validate().unwrap(), Location::Local(p) if p == Path::new("/srv/box/cd059"))
        );
        let c = parse("url = \"sftp://hub@box.example:2222/cd059\"\npartenaire = \"59350S00\"\nstate_dir = \"/s\"\n[sftp]\nidentity_file = \"/k\"\nknown_hosts_file = \"/kh\"\n").unwrap();
        assert!(matches!(c.validate().unwrap(), Location::Sftp(_)));
    }

    #[test]
    fn refusals_name_the_rule() {
        assert!(parse("url = \"file:///x\"\npartenaire = \"59350S00\"\nstate_dir = \"/s\"\npassword = \"x\"\n")
            .unwrap_err()
            .to_string()
            .contains("unknown field `password`"));
        let no_keys =
            parse("url = \"sftp://hub@h/x\"\npartenaire = \"59350S00\"\nstate_dir = \"/s\"\n")
                .unwrap();
        assert!(
            no_keys
                .validate()
                .unwrap_err()
                .to_string()
                .contains("identity_file")
        );
        let bad_partner =
            parse("url = \"file:///x\"\npartenaire = \"ML Lille\"\nstate_dir = \"/s\"\n").unwrap();
        assert!(
            bad_partner
                .validate()
                .unwrap_err()
                .to_string()
                .contains("partenaire")
        );
        let ftp =
            parse("url = \"ftp://h/x\"\npartenaire = \"59350S00\"\nstate_dir = \"/s\"\n").unwrap();
        assert!(ftp.validate().is_err());
    }

    #[test]
    fn build_reads_a_local_box() {
        let dir = tempfile::tempdir().unwrap();
        let c = BoxConfig {
            url: format!("file://{}", dir.path().display()),
            partenaire: "59350S00".into(),
            state_dir: dir.path().join("state"),
            mapping: None,
            sftp: None,
            reading: Default::default(),
        };
        let mut hub = c.build().unwrap();
        let folder = LocalFolder::new(dir.path());
        let (bytes, _, _) = crate::sim::brsa_csv(&crate::sim::population(1, 2), false);
        crate::sim::drop_file(
            &folder,
            "59350S00",
            "BRSA_LISTE_059_CD059_20261121230000.csv",
            &bytes,
            Default::default(),
        )
        .unwrap();
        let mut n = 0;
        hub.poll(&mut |_, _| n += 1).unwrap();
        assert_eq!(n, 2);
        assert!(dir.path().join("state/box-59350S00.json").exists());
        // After a restart the state remembers the file: the same content dropped
        // again under a new name is acknowledged as a duplicate and not read.
        drop(hub);
        let mut hub = c.build().unwrap();
        crate::sim::drop_file(
            &folder,
            "59350S00",
            "BRSA_LISTE_059_CD059_20261122230000.csv",
            &bytes,
            Default::default(),
        )
        .unwrap();
        let mut n = 0;
        let outcomes = hub.poll(&mut |_, _| n += 1).unwrap();
        assert_eq!(n, 0);
        assert!(
            matches!(&outcomes[..], [crate::protocol::FileOutcome::Duplicate { first, .. }] if first == "BRSA_LISTE_059_CD059_20261121230000.csv"),
            "{outcomes:?}"
        );
    }
}
