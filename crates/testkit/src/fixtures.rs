//! The fixture harness every connector's data-driven tests share: an input file's
//! output compared with an expected file checked in next to it, and ONE variable,
//! `BLESS=1`, that rewrites the expected files from what the code gives now (review
//! the diff before committing). `import_lines` renders a file's items as
//! `passerelle import` prints them, for the file readers (CNAF, SOLIS).

use std::path::{Path, PathBuf};

use passerelle_connector::{ConnectorError, SourceItem};

/// The variable that rewrites expected files.
pub const BLESS: &str = "BLESS";

/// Whether this run rewrites expected files (`BLESS` set).
pub fn blessing() -> bool {
    std::env::var_os(BLESS).is_some()
}

/// `{manifest_dir}/tests/fixtures` (`fixtures_dir(env!("CARGO_MANIFEST_DIR"))`).
pub fn fixtures_dir(manifest_dir: &str) -> PathBuf {
    Path::new(manifest_dir).join("tests/fixtures")
}

/// The files of `dir` whose name ends with `suffix`, sorted.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// `got` must be the text of `expected` (a missing file holds nothing); under `BLESS`
/// the file is written first.
pub fn expect_text(expected: &Path, got: &str) {
    if blessing() {
        std::fs::write(expected, got).unwrap_or_else(|e| panic!("{}: {e}", expected.display()));
    }
    let want = std::fs::read_to_string(expected).unwrap_or_default();
    assert_eq!(
        got,
        want,
        "{} differs (BLESS=1 rewrites it; review the diff)",
        expected.display()
    );
}

/// `got` must equal the JSON of `expected`, which must exist; under `BLESS` the file
/// is written first, pretty, with a final newline.
pub fn expect_json(expected: &Path, got: &serde_json::Value) {
    let pretty = serde_json::to_string_pretty(got).unwrap_or_default();
    if blessing() {
        std::fs::write(expected, format!("{pretty}\n"))
            .unwrap_or_else(|e| panic!("{}: {e}", expected.display()));
    }
    let text = std::fs::read_to_string(expected)
        .unwrap_or_else(|_| panic!("missing {} (BLESS=1 writes it)", expected.display()));
    let want: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", expected.display()));
    assert_eq!(
        &want,
        got,
        "{} differs (BLESS=1 rewrites it; review the diff):\n{pretty}",
        expected.display()
    );
}

/// A file's items as `passerelle import` prints them: records as JSON Lines on the
/// first string, `warning:` / `rejected:` / `refused:` lines on the second (the
/// file's path shown as `FILE`, so that expected files do not depend on the folder).
pub fn import_lines<I>(opened: Result<I, ConnectorError>, path: &Path) -> (String, String)
where
    I: IntoIterator<Item = Result<SourceItem, ConnectorError>>,
{
    let mut out = String::new();
    let mut err = String::new();
    match opened {
        Err(e) => {
            let msg = e.to_string().replace(&path.display().to_string(), "FILE");
            err.push_str(&format!("refused: {msg}\n"));
        }
        Ok(items) => {
            for item in items {
                let item = item.unwrap();
                for w in &item.warnings {
                    err.push_str(&format!("warning: {}\n", w.to_line()));
                }
                match item.outcome {
                    Ok(j) => {
                        out.push_str(&j.to_json_line());
                        out.push('\n');
                    }
                    Err(issues) => {
                        for i in issues {
                            err.push_str(&format!("rejected: {}\n", i.to_line()));
                        }
                    }
                }
            }
        }
    }
    (out, err)
}

/// `{dir}/{name}.xml` read by `run` (usually over [`import_lines`]) must print
/// `{name}.jsonl` and `{name}.err`, and every record line must be a canonical record
/// that reads back to the same line.
pub fn check_import(dir: &Path, name: &str, run: impl Fn(&Path) -> (String, String)) {
    let (out, err) = run(&dir.join(format!("{name}.xml")));
    expect_text(&dir.join(format!("{name}.jsonl")), &out);
    expect_text(&dir.join(format!("{name}.err")), &err);
    for line in out.lines() {
        let j: passerelle_model::Jeune = serde_json::from_str(line).unwrap();
        assert_eq!(j.to_json_line(), line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_files_compare_and_a_difference_fails() {
        let dir = std::env::temp_dir().join(format!("testkit-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("a.err");
        std::fs::write(&text, "one\n").unwrap();
        expect_text(&text, "one\n");
        // A missing file holds nothing.
        expect_text(&dir.join("absent.out"), "");
        let json = dir.join("a.json");
        std::fs::write(&json, "{\"a\": [1, 2]}").unwrap();
        expect_json(&json, &serde_json::json!({"a": [1, 2]}));
        if !blessing() {
            let differs = std::panic::catch_unwind(|| expect_text(&text, "two\n"));
            assert!(differs.is_err());
            let differs =
                std::panic::catch_unwind(|| expect_json(&json, &serde_json::json!({"a": 1})));
            assert!(differs.is_err());
        }
        assert_eq!(files(&dir, ".err"), [text]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_refused_file_prints_one_line_without_its_path() {
        let path = Path::new("/tmp/x/FLUX.xml");
        let refused: Result<Vec<Result<SourceItem, ConnectorError>>, _> =
            Err(ConnectorError::FileRefused {
                file: path.display().to_string(),
                reason: "truncated".into(),
            });
        let (out, err) = import_lines(refused, path);
        assert!(out.is_empty());
        assert_eq!(err, "refused: file FILE refused: truncated\n");
    }
}
