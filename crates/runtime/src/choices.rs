//! What an operator types on the command line, checked against what exists: a flow id,
//! a transfer status, an organisation code. A typo in a cron line must fail loudly with
//! the list of valid values, never run as an empty filter. Codes are taken in any case
//! (flow ids are lower-case, organisation codes upper-case, as the code lists say).

use anyhow::{Result, bail};
use passerelle_policy::Policy;

use crate::config::HubConfig;
use crate::wiring::SHIPPED_FLOWS;

/// The flow ids the configuration's flows file declares.
pub fn flow_ids(config: &HubConfig) -> Result<Vec<String>> {
    let policy = match &config.flows {
        Some(p) => {
            Policy::load(p).map_err(|e| anyhow::anyhow!("flows file {}: {e}", p.display()))?
        }
        None => Policy::from_toml_str(SHIPPED_FLOWS)
            .map_err(|e| anyhow::anyhow!("the shipped flows file: {e}"))?,
    };
    Ok(policy.flows().iter().map(|f| f.id.clone()).collect())
}

/// `given` as one of `valid` (compared without case), or an error listing them.
pub fn pick(what: &str, given: &str, valid: &[String]) -> Result<String> {
    let found = valid.iter().find(|v| v.eq_ignore_ascii_case(given.trim()));
    match found {
        Some(v) => Ok(v.clone()),
        None => bail!(
            "unknown {what} `{given}`; valid: {}",
            if valid.is_empty() {
                "(none configured)".to_owned()
            } else {
                valid.join(", ")
            }
        ),
    }
}

/// Every `given` flow id checked (see `pick`).
pub fn flows(config: &HubConfig, given: &[String]) -> Result<Vec<String>> {
    if given.is_empty() {
        return Ok(Vec::new());
    }
    let valid = flow_ids(config)?;
    given.iter().map(|g| pick("flow", g, &valid)).collect()
}

/// The transfer statuses `receipts --status` takes.
pub const STATUSES: [&str; 5] = [
    "published",
    "delivered",
    "applied",
    "rejected",
    "dead_lettered",
];

/// A status (any case, `dead-lettered` too), or an error listing them.
pub fn status(given: &str) -> Result<String> {
    let valid: Vec<String> = STATUSES.iter().map(|s| (*s).to_owned()).collect();
    pick("status", &given.replace('-', "_"), &valid)
        .map_err(|_| anyhow::anyhow!("unknown status `{given}`; valid: {}", STATUSES.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_refused_with_the_valid_values_and_case_is_free() {
        let c = HubConfig::default();
        assert_eq!(
            flows(&c, &["BRSA-Orientation".into()]).unwrap(),
            ["brsa-orientation"]
        );
        let e = flows(&c, &["nope".into()]).unwrap_err().to_string();
        assert!(e.contains("unknown flow `nope`"), "{e}");
        assert!(
            e.contains("brsa-orientation") && e.contains("faj-decision"),
            "{e}"
        );
        assert_eq!(status("Dead-Lettered").unwrap(), "dead_lettered");
        let e = status("bogus").unwrap_err().to_string();
        assert!(e.contains("valid: published, delivered"), "{e}");
        let orgs = vec!["CD059".to_owned(), "59350S00".to_owned()];
        assert_eq!(pick("organisation", "cd059", &orgs).unwrap(), "CD059");
        let e = pick("organisation", "CD062", &orgs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("valid: CD059, 59350S00"), "{e}");
    }
}
