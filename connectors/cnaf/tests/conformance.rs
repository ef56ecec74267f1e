//! The connector conformance suite (`passerelle_connector::conformance`) on
//! `CnafFluxSource` over a folder of simulated flux files, with a truncated file and
//! the folder lost for a while as faults.
//!
//! CNAF has no `Sink`: the hub only reads the CAF's and MSA's flux, it never writes
//! to them, so the sink checks do not apply.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::NaiveDate;
use passerelle_cnaf::CnafConfig;
use passerelle_cnaf::sim::{SimOptions, write_flux};
use passerelle_connector::conformance::{SourceHarness, folder_outage};
use passerelle_connector::{Source, connector_conformance_tests};

struct Cnaf {
    _root: tempfile::TempDir,
    dir: PathBuf,
}

async fn harness() -> Cnaf {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("flux");
    std::fs::create_dir(&dir).unwrap();
    for (day, seed) in [(30, 1), (31, 2)] {
        let mut o = SimOptions::new(12, seed);
        o.date = NaiveDate::from_ymd_opt(2026, 10, day).unwrap();
        o.invalid_share = 0.1;
        write_flux(&dir, &o).unwrap();
    }
    Cnaf { _root: root, dir }
}

#[async_trait]
impl SourceHarness for Cnaf {
    async fn source(&self) -> Box<dyn Source> {
        let config = CnafConfig {
            batch_size: 7,
            ..CnafConfig::new(&self.dir)
        };
        Box::new(config.build().unwrap())
    }

    async fn plant_refused_file(&self) {
        let mut o = SimOptions::new(20, 9);
        o.date = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        o.truncate = true;
        write_flux(&self.dir, &o).unwrap();
    }

    async fn transient_fault(&self, on: bool) {
        folder_outage(&self.dir, on);
    }
}

connector_conformance_tests!(harness(); file_source);
