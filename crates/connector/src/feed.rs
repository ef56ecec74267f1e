//! A folder of complete files served record by record as a `Source`: the generic part
//! of the file-based sources (`passerelle_solis::SolisExportSource`,
//! `passerelle_cnaf::CnafFluxSource`); each connector supplies only a `FileReader`.
//!
//! Delivery is at least once, by file: a file is moved to `traites/` only once every
//! item it yielded is acknowledged; until then nothing is written, so a crash serves
//! the file again from its start. A file the reader refuses whole (truncated, unknown
//! format) is moved to `refuses/` and reported once as `ConnectorError::FileRefused`,
//! and the next files go through.
//!
//! Only regular files of the folder are read. An entry the reader would take but that
//! is a link, a FIFO or a device, or whose name cannot be represented (bytes that are
//! not UTF-8, control characters, quotes, globs), is refused alone the same way: moved
//! to `refuses/` (the entry itself, never what a link points to; under a made-up name
//! when its own cannot be written) and reported once.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::safe_fs::{OddEntry, SafeDir};
use crate::{AckToken, ConnectorError, Source, SourceItem};
use async_trait::async_trait;

/// Where fully acknowledged files go, under the folder read.
pub const DONE_DIR: &str = "traites";
/// Where refused files go, under the folder read.
pub const REFUSED_DIR: &str = "refuses";

/// The items of one file, in file order, read lazily.
pub type Items = Box<dyn Iterator<Item = Result<SourceItem, ConnectorError>> + Send>;

/// How to read one kind of file: which names to take, and how to turn a file into items.
pub trait FileReader: Send + 'static {
    /// Whether a file of the folder is one to read (temporary `.` names never are).
    fn accepts(&self, name: &str) -> bool;

    /// Checks the file whole (refusing it with `FileRefused` otherwise) and returns
    /// its items in file order.
    fn open(&self, path: &Path) -> Result<Items, ConnectorError>;
}

/// What a folder source asks before it reads a file, when several hub instances read
/// the same folder (a share mounted on each): the file is read by the instance that
/// claims it, and said done once it is acknowledged whole (moved to `traites/`). The
/// hub's claims (`passerelle_hub::state::coord::FileClaims`) implement it; without a
/// gate every file is read. Called from the source's blocking thread.
pub trait FileGate: Send + Sync {
    /// Whether this instance may read `name` now (claims it when it may); a file
    /// another instance holds or finished is left to it.
    fn claim(&self, name: &str) -> Result<bool, ConnectorError>;

    /// `name` was acknowledged whole: no instance reads it again.
    fn done(&self, name: &str) -> Result<(), ConnectorError>;
}

/// Acknowledgement progress of a file being served.
#[derive(Debug, Default)]
struct Progress {
    /// Items handed out so far.
    served: u64,
    /// Whether the reader has no more items.
    exhausted: bool,
    /// Every index below `low` is acknowledged.
    low: u64,
    /// Acknowledged indexes at or above `low` (acks may come out of order).
    above: BTreeSet<u64>,
}

impl Progress {
    fn ack(&mut self, index: u64) {
        if index < self.low || index >= self.served {
            return;
        }
        self.above.insert(index);
        // Keeps the set small: the contiguous prefix collapses into `low`.
        while self.above.remove(&self.low) {
            self.low += 1;
        }
    }

    fn done(&self) -> bool {
        self.exhausted && self.low == self.served
    }
}

/// The file being read.
struct Current {
    name: String,
    items: Items,
}

/// The synchronous core of a folder source (see the module doc).
pub struct FolderFeed<R> {
    dir: PathBuf,
    reader: R,
    batch_size: usize,
    current: Option<Current>,
    progress: HashMap<String, Progress>,
    /// A refusal met while a batch was already filling, reported on the next call.
    pending_error: Option<ConnectorError>,
    refused: u64,
    finished: u64,
    /// Entries refused in this run that could not be moved aside (a read-only folder):
    /// skipped from then on, so that a refusal is reported once, never in a loop.
    set_aside: std::collections::HashSet<std::ffi::OsString>,
    /// Asked before a file is read (see `FileGate`); none: every file is read.
    gate: Option<Arc<dyn FileGate>>,
}

impl<R> std::fmt::Debug for FolderFeed<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderFeed")
            .field("dir", &self.dir)
            .field("batch_size", &self.batch_size)
            .field("current", &self.current.as_ref().map(|c| &c.name))
            .field("in_flight", &self.progress.len())
            .finish()
    }
}

/// The token of item `index` of file `name`.
fn token(name: &str, index: u64) -> AckToken {
    AckToken(format!("{name}#{index}"))
}

fn parse_token(token: &AckToken) -> Option<(&str, u64)> {
    let (name, index) = token.0.rsplit_once('#')?;
    Some((name, index.parse().ok()?))
}

/// Moves `name` from `dir` into its subfolder `sub`, creating it (0700) if needed,
/// and makes it 0600 there (the peer may have written it readable by all; the hub
/// keeps it until its retention, see `retention`). A link in place of `sub` is an
/// error, never followed.
pub fn move_into(dir: &Path, name: &str, sub: &str) -> Result<(), ConnectorError> {
    let here = SafeDir::open(dir).map_err(|e| ConnectorError::io(dir.display().to_string(), e))?;
    let target = here
        .sub_create(sub)
        .map_err(|e| ConnectorError::io(dir.join(sub).display().to_string(), e))?;
    here.rename(name, &target, name)
        .map_err(|e| ConnectorError::io(format!("moving {name} to {sub}/"), e))?;
    // A planted link moved aside stays a link: only regular files are restricted.
    match target.make_private(name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        Err(e) => Err(ConnectorError::io(format!("{sub}/{name}"), e)),
    }
}

/// What the folder offers next.
enum Next {
    File(String),
    Odd(OddEntry),
    Nothing,
}

impl<R: FileReader> FolderFeed<R> {
    pub fn new(dir: impl Into<PathBuf>, reader: R, batch_size: usize) -> Self {
        Self {
            dir: dir.into(),
            reader,
            batch_size: batch_size.max(1),
            current: None,
            progress: HashMap::new(),
            pending_error: None,
            refused: 0,
            finished: 0,
            set_aside: std::collections::HashSet::new(),
            gate: None,
        }
    }

    /// Reads only the files `gate` lets this instance claim.
    pub fn with_gate(mut self, gate: Arc<dyn FileGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Files refused since start (each also reported once by `next_batch`).
    pub fn refused_files(&self) -> u64 {
        self.refused
    }

    /// Files read and acknowledged whole since start (moved to `traites/`).
    pub fn finished_files(&self) -> u64 {
        self.finished
    }

    /// Files served (partly or wholly) whose items are not all acknowledged yet.
    pub fn in_flight(&self) -> usize {
        self.progress.len()
    }

    /// The next file to read: the first by name that is not being served already; an
    /// odd entry the reader would take comes first, to be refused.
    fn next_file(&self) -> Result<Next, ConnectorError> {
        let what = |e| ConnectorError::io(self.dir.display().to_string(), e);
        let listing = SafeDir::open(&self.dir)
            .and_then(|d| d.list())
            .map_err(what)?;
        for odd in listing.odd {
            let lossy = odd.raw.to_string_lossy();
            if !lossy.starts_with('.')
                && self.reader.accepts(&lossy)
                && !self.set_aside.contains(&odd.raw)
            {
                return Ok(Next::Odd(odd));
            }
        }
        for name in listing.files.into_iter().filter(|name| {
            !name.starts_with('.')
                && !self.progress.contains_key(name)
                && !self.set_aside.contains(std::ffi::OsStr::new(name))
                && self.reader.accepts(name)
        }) {
            // Asked last, for a file this source would read: claiming has effects.
            match &self.gate {
                Some(gate) if !gate.claim(&name)? => {
                    tracing::debug!(file = %name, "file left to another instance");
                }
                _ => return Ok(Next::File(name)),
            }
        }
        Ok(Next::Nothing)
    }

    /// Sets an odd entry aside (see the module doc) and says so once.
    fn refuse_odd(&mut self, odd: &OddEntry) -> ConnectorError {
        self.refused += 1;
        let error = ConnectorError::FileRefused {
            file: odd.shown.clone(),
            reason: format!("not read: {}", odd.reason),
        };
        tracing::warn!(file = %odd.shown, reason = %odd.reason, "entry refused, moved to {REFUSED_DIR}/");
        let moved = SafeDir::open(&self.dir).and_then(|here| {
            let aside = here.sub_create(REFUSED_DIR)?;
            here.move_aside(&odd.raw, &aside)
        });
        if let Err(e) = moved {
            tracing::error!(file = %odd.shown, error = %e, "cannot move a refused entry aside");
            self.set_aside.insert(odd.raw.clone());
        }
        error
    }

    /// Sets a refused file aside so that it is reported once and blocks nothing.
    fn refuse(&mut self, name: &str, error: &ConnectorError) {
        self.refused += 1;
        self.progress.remove(name);
        tracing::warn!(file = name, error = %error, "file refused, moved to {REFUSED_DIR}/");
        if let Err(e) = move_into(&self.dir, name, REFUSED_DIR) {
            tracing::error!(file = name, error = %e, "cannot move a refused file aside");
            self.set_aside.insert(name.into());
        }
    }

    /// Opens the next file; `Ok(false)` when the folder has nothing new.
    fn open_next(&mut self) -> Result<bool, ConnectorError> {
        let name = match self.next_file()? {
            Next::Nothing => return Ok(false),
            Next::Odd(odd) => return Err(self.refuse_odd(&odd)),
            Next::File(name) => name,
        };
        let path = self.dir.join(&name);
        match self.reader.open(&path) {
            Ok(items) => {
                tracing::info!(file = %name, "serving file");
                self.progress.insert(name.clone(), Progress::default());
                self.current = Some(Current { name, items });
                Ok(true)
            }
            Err(e @ ConnectorError::FileRefused { .. }) => {
                self.refuse(&name, &e);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The next items, up to the batch size, across files; empty when nothing is left
    /// for now. A refused file is reported as an error once, after the items already
    /// gathered.
    pub fn next_batch(&mut self) -> Result<Vec<SourceItem>, ConnectorError> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        let mut out = Vec::new();
        while out.len() < self.batch_size {
            if self.current.is_none() {
                match self.open_next() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) if out.is_empty() => return Err(e),
                    Err(e) => {
                        self.pending_error = Some(e);
                        break;
                    }
                }
            }
            let Some(cur) = self.current.as_mut() else {
                break;
            };
            let name = cur.name.clone();
            match cur.items.next() {
                Some(Ok(mut item)) => {
                    let p = self.progress.entry(name.clone()).or_default();
                    item.ack = token(&name, p.served);
                    p.served += 1;
                    out.push(item);
                }
                Some(Err(e)) => {
                    // The file changed under us after its check: refuse it whole.
                    self.current = None;
                    let e = match e {
                        e @ ConnectorError::FileRefused { .. } => {
                            self.refuse(&name, &e);
                            e
                        }
                        other => {
                            self.progress.remove(&name);
                            other
                        }
                    };
                    if out.is_empty() {
                        return Err(e);
                    }
                    self.pending_error = Some(e);
                    break;
                }
                None => {
                    self.current = None;
                    if let Some(p) = self.progress.get_mut(&name) {
                        p.exhausted = true;
                    }
                    self.finish_if_done(&name)?;
                }
            }
        }
        Ok(out)
    }

    fn finish_if_done(&mut self, name: &str) -> Result<(), ConnectorError> {
        if self.progress.get(name).is_some_and(Progress::done) {
            move_into(&self.dir, name, DONE_DIR)?;
            self.progress.remove(name);
            self.finished += 1;
            tracing::info!(file = name, "file acknowledged whole, moved to {DONE_DIR}/");
            // Not claimed again; a failure here only leaves a claim whose file is gone.
            if let Some(gate) = &self.gate
                && let Err(e) = gate.done(name)
            {
                tracing::warn!(file = name, error = %e, "file's claim not closed");
            }
        }
        Ok(())
    }

    /// Acknowledges items; a file whose items are all acknowledged is moved to
    /// `traites/`. Unknown tokens (a file refused meanwhile) are ignored.
    pub fn ack(&mut self, tokens: &[AckToken]) -> Result<(), ConnectorError> {
        let mut touched = BTreeSet::new();
        for t in tokens {
            let Some((name, index)) = parse_token(t) else {
                return Err(ConnectorError::Invalid {
                    location: "ack token".into(),
                    reason: "not a token this source gave (file#index)".into(),
                });
            };
            match self.progress.get_mut(name) {
                Some(p) => {
                    p.ack(index);
                    touched.insert(name.to_owned());
                }
                None => tracing::debug!(file = name, "ack for a file no longer served"),
            }
        }
        for name in touched {
            self.finish_if_done(&name)?;
        }
        Ok(())
    }
}

/// A `Source` over a `FolderFeed`: file work runs on tokio's blocking threads, and the
/// state stays behind a mutex so that a cancelled call loses nothing.
pub struct FolderSource<R> {
    feed: Arc<Mutex<FolderFeed<R>>>,
}

impl<R> std::fmt::Debug for FolderSource<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderSource").finish_non_exhaustive()
    }
}

impl<R: FileReader> FolderSource<R> {
    pub fn new(feed: FolderFeed<R>) -> Self {
        Self {
            feed: Arc::new(Mutex::new(feed)),
        }
    }

    /// Runs `f` on the feed (callers outside a runtime, tests, counters).
    pub fn with_feed<T>(&self, f: impl FnOnce(&mut FolderFeed<R>) -> T) -> T {
        let mut feed = self.feed.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut feed)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut FolderFeed<R>) -> Result<T, ConnectorError> + Send + 'static,
    ) -> Result<T, ConnectorError> {
        let feed = Arc::clone(&self.feed);
        let task = tokio::task::spawn_blocking(move || {
            let mut feed = feed.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut feed)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(ConnectorError::Unavailable {
                peer: "folder source".into(),
                reason: "the runtime is shutting down".into(),
                retry_after: None,
            }),
        }
    }
}

#[async_trait]
impl<R: FileReader> Source for FolderSource<R> {
    async fn next_batch(&mut self) -> Result<Vec<SourceItem>, ConnectorError> {
        self.blocking(|feed| feed.next_batch()).await
    }

    async fn ack(&mut self, tokens: &[AckToken]) -> Result<(), ConnectorError> {
        let tokens = tokens.to_vec();
        self.blocking(move |feed| feed.ack(&tokens)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_collapses_out_of_order_acks() {
        let mut p = Progress {
            served: 5,
            exhausted: true,
            ..Progress::default()
        };
        for i in [4, 2, 3, 1] {
            p.ack(i);
            assert!(!p.done());
        }
        assert_eq!(p.low, 0);
        assert_eq!(p.above.len(), 4);
        p.ack(0);
        assert!(p.done());
        assert!(p.above.is_empty());
        // Duplicates and strangers change nothing.
        p.ack(0);
        p.ack(99);
        assert_eq!((p.low, p.above.len()), (5, 0));
    }

    /// One item per line.
    struct Lines;

    impl FileReader for Lines {
        fn accepts(&self, name: &str) -> bool {
            name.ends_with(".txt")
        }
        fn open(&self, path: &Path) -> Result<Items, ConnectorError> {
            let n = std::fs::read_to_string(path).unwrap().lines().count();
            Ok(Box::new((0..n).map(|_| {
                Ok(SourceItem {
                    outcome: Err(Vec::new()),
                    warnings: Vec::new(),
                    ack: AckToken(String::new()),
                })
            })))
        }
    }

    /// Lets this instance have every file but `b.txt`, and remembers what was done.
    #[derive(Default)]
    struct Gate {
        asked: Mutex<Vec<String>>,
        done: Mutex<Vec<String>>,
    }

    impl FileGate for Gate {
        fn claim(&self, name: &str) -> Result<bool, ConnectorError> {
            self.asked.lock().unwrap().push(name.to_owned());
            Ok(name != "b.txt")
        }
        fn done(&self, name: &str) -> Result<(), ConnectorError> {
            self.done.lock().unwrap().push(name.to_owned());
            Ok(())
        }
    }

    #[test]
    fn a_gate_keeps_the_files_another_instance_claimed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.txt", "b.txt", "c.txt", "skip.csv"] {
            std::fs::write(dir.path().join(name), "1\n2\n").unwrap();
        }
        let gate = Arc::new(Gate::default());
        let mut feed = FolderFeed::new(dir.path(), Lines, 10).with_gate(gate.clone());
        let batch = feed.next_batch().unwrap();
        let files: BTreeSet<&str> = batch
            .iter()
            .map(|i| parse_token(&i.ack).unwrap().0)
            .collect();
        assert_eq!(files, BTreeSet::from(["a.txt", "c.txt"]));
        let tokens: Vec<AckToken> = batch.iter().map(|i| i.ack.clone()).collect();
        feed.ack(&tokens).unwrap();
        assert!(feed.next_batch().unwrap().is_empty());
        // Only files the reader takes are asked about; b stays for its holder.
        assert!(!gate.asked.lock().unwrap().iter().any(|n| n == "skip.csv"));
        assert_eq!(*gate.done.lock().unwrap(), vec!["a.txt", "c.txt"]);
        assert!(dir.path().join("b.txt").exists());
        assert!(dir.path().join(DONE_DIR).join("a.txt").exists());
    }

    #[test]
    fn tokens_round_trip_with_hashes_in_names() {
        let t = token("a#b.xml", 42);
        assert_eq!(parse_token(&t), Some(("a#b.xml", 42)));
        assert_eq!(parse_token(&AckToken("x".into())), None);
    }
}
