//! Streaming XML for peer files: reads the root's children one at a time as small
//! `XmlElement` trees, tracking element paths (`/ExportSolis/Individu[12]/EtatCivil`)
//! so that errors say where they are, and keeping memory flat in the file's size.
//!
//! The input must already be UTF-8 (wrap files in `encoding::decoding_reader`). Peer
//! files declare `encoding="windows-1252"`, but once decoded their bytes are UTF-8, so
//! this module never lets quick-xml decode: it reads raw bytes as UTF-8 and resolves
//! entities itself. That holds whether or not quick-xml's `encoding` feature is on
//! (another crate in the build may enable it).
//!
//! Hostile files are bounded by `ReaderConfig`: nesting depth, attributes per element,
//! distinct names, the length of every value and of every single event (a tag, a text
//! run, a CDATA section: quick-xml buffers one event whole, so the input is cut off
//! once one event passes its budget), elements per record. Both passes (the counting
//! `next_child_with(|_| false)` and the mapping one) check the same limits, so a file
//! the first pass accepts never fails halfway through the second. Nothing here
//! recurses over input: trees are built, walked and recycled with explicit stacks.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_xml::events::{BytesStart, Event};

use crate::encoding::{DecodingReader, Detected, decoding_reader_with};
use crate::error::ConnectorError;
use crate::limits::ReaderConfig;

/// How many elements one child of the root may hold by default (`ReaderConfig::
/// max_nodes_per_record`): a record is small, and a limit keeps memory flat even when
/// a file is malformed (a missing end tag near the top).
pub const MAX_NODES_PER_CHILD: usize = 100_000;

/// One element and its content: a light tree, built for one record at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlElement {
    pub name: String,
    /// Attributes in document order, entities resolved.
    pub attrs: Vec<(String, String)>,
    /// The element's own text (text nodes, CDATA and references), not trimmed;
    /// whitespace-only runs next to child elements (indentation) are left out.
    pub text: String,
    pub children: Vec<XmlElement>,
}

impl XmlElement {
    /// The value of an attribute, as written (not trimmed).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child with that name.
    pub fn child(&self, name: &str) -> Option<&XmlElement> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first child whose name is one of `names` (configured aliases).
    pub fn child_any<S: AsRef<str>>(&self, names: &[S]) -> Option<&XmlElement> {
        self.children
            .iter()
            .find(|c| names.iter().any(|n| n.as_ref() == c.name))
    }

    /// Every child whose name is one of `names`, in document order.
    pub fn children_any<'a, S: AsRef<str>>(
        &'a self,
        names: &'a [S],
    ) -> impl Iterator<Item = &'a XmlElement> + 'a {
        self.children
            .iter()
            .filter(move |c| names.iter().any(|n| n.as_ref() == c.name))
    }

    /// Every child with that name, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a XmlElement> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child with that name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The 1-based rank of `child` among its same-name siblings, for paths.
    pub fn rank_of(&self, child: &XmlElement) -> usize {
        let mut rank = 0;
        for c in &self.children {
            if c.name == child.name {
                rank += 1;
            }
            if std::ptr::eq(c, child) {
                return rank;
            }
        }
        rank.max(1)
    }
}

/// Why an XML stream could not be read. Messages carry element paths, never content.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("i/o error reading the xml: {0}")]
    Io(#[from] io::Error),
    /// The document ends before its root is closed (a cut file).
    #[error("the xml ends early, inside {path}")]
    Truncated { path: String },
    /// The document is not well-formed XML.
    #[error("malformed xml at {path}: {reason}")]
    Malformed { path: String, reason: String },
    /// One child of the root is larger than `max_nodes_per_record` elements.
    #[error("element {path} has more than {max} elements")]
    TooLarge { path: String, max: usize },
    /// A limit of `ReaderConfig` was hit (depth, attributes, names, lengths) or the
    /// decoded text is not what it must be (invalid UTF-8 at a byte offset).
    #[error("xml refused at {path}: {reason}")]
    Limit { path: String, reason: String },
}

impl XmlError {
    /// Whether the error means the file is cut short.
    pub fn is_truncated(&self) -> bool {
        matches!(self, Self::Truncated { .. })
    }

    /// The error as a refusal of the whole file.
    pub fn into_refusal(self, file: &str) -> ConnectorError {
        match self {
            // Bad bytes (invalid UTF-8 at an offset) are the file's fault, not the disk's.
            Self::Io(source) if source.kind() == io::ErrorKind::InvalidData => {
                ConnectorError::FileRefused {
                    file: file.to_owned(),
                    reason: source.to_string(),
                }
            }
            Self::Io(source) => ConnectorError::io(file, source),
            other => ConnectorError::FileRefused {
                file: file.to_owned(),
                reason: other.to_string(),
            },
        }
    }
}

/// A child of the root, read whole (or skipped), with its place in the document.
#[derive(Debug, Clone)]
pub struct Child {
    /// The element; when skipped, only its name and attributes are filled.
    pub element: XmlElement,
    /// Its path with its rank among same-name siblings: `/ExportSolis/Individu[12]`.
    pub path: String,
    /// Its 1-based rank among the root's children of the same name.
    pub rank: u64,
}

/// The limits one stream applies (from `ReaderConfig`).
#[derive(Debug, Clone, Copy)]
struct Limits {
    depth: usize,
    attributes: usize,
    names: usize,
    field: usize,
    nodes: usize,
    /// Decoded bytes quick-xml may pull for one event (it buffers an event whole).
    event: u64,
}

impl Limits {
    fn of(c: &ReaderConfig) -> Self {
        Self {
            depth: c.max_depth,
            attributes: c.max_attributes,
            names: c.max_distinct_names,
            field: c.max_field_len,
            nodes: c.max_nodes_per_record,
            // One event is at most a tag of max_attributes values or a text of
            // max_field_len; the reader pulls up to 64 KiB ahead.
            event: (c.max_field_len as u64).saturating_mul(4) + 128 * 1024,
        }
    }
}

/// Counts the bytes pulled since the last event and stops the input once one event
/// passes its budget, before quick-xml buffers more of it.
struct EventBudget<R> {
    inner: R,
    pulled: Arc<AtomicU64>,
    budget: u64,
}

impl<R: Read> Read for EventBudget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pulled.load(Ordering::Relaxed) > self.budget {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "one tag, text or cdata section is longer than {} bytes",
                    self.budget
                ),
            ));
        }
        let n = self.inner.read(buf)?;
        self.pulled.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads an XML document root child by root child.
pub struct XmlStream<R: Read> {
    reader: quick_xml::Reader<BufReader<EventBudget<R>>>,
    pulled: Arc<AtomicU64>,
    limits: Limits,
    buf: Vec<u8>,
    root: Option<XmlElement>,
    root_closed: bool,
    /// Counts per child name, for ranks (at most `limits.names` names).
    ranks: HashMap<String, u64>,
    pool: Pool,
    stack: Vec<XmlElement>,
    /// Text bytes of each open element, in both modes (skipping builds no text).
    lens: Vec<usize>,
    pending: String,
}

impl<R: Read> std::fmt::Debug for XmlStream<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmlStream")
            .field("root", &self.root.as_ref().map(|r| &r.name))
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

/// Opens a file for streaming: encoding detected and decoded to UTF-8, default limits.
pub fn open_file(path: &Path) -> Result<(Detected, XmlStream<DecodingReader<File>>), XmlError> {
    open_file_with(path, &ReaderConfig::default())
}

/// Opens a regular file (not a link, FIFO or device) for streaming with `config`'s
/// encoding and limits.
pub fn open_file_with(
    path: &Path,
    config: &ReaderConfig,
) -> Result<(Detected, XmlStream<DecodingReader<File>>), XmlError> {
    let file = crate::safe_fs::open_regular(path)?;
    let (detected, reader) = decoding_reader_with(file, config.encoding)?;
    Ok((detected, XmlStream::with_config(reader, config)))
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "not valid utf-8 after decoding".to_owned())
}

fn unescape(raw: &str) -> Result<Cow<'_, str>, String> {
    quick_xml::escape::unescape(raw).map_err(|e| format!("bad entity reference: {e}"))
}

/// Recycled nodes and strings, so that reading record after record allocates almost
/// nothing once warm (the tree of the previous record is handed back by `recycle`).
#[derive(Debug, Default)]
struct Pool {
    elements: Vec<XmlElement>,
    strings: Vec<String>,
}

/// How many recycled nodes and strings to keep: enough for large records, bounded.
const POOL_MAX: usize = 4096;

impl Pool {
    fn string(&mut self, s: &str) -> String {
        match self.strings.pop() {
            Some(mut owned) => {
                owned.push_str(s);
                owned
            }
            None => s.to_owned(),
        }
    }

    fn element(&mut self) -> XmlElement {
        self.elements.pop().unwrap_or_default()
    }

    /// Takes a tree apart with an explicit stack: a deep tree must not recurse (the
    /// drop of what is not kept is shallow too, children having been taken out).
    fn recycle(&mut self, el: XmlElement) {
        let mut todo = vec![el];
        while let Some(mut el) = todo.pop() {
            for (mut k, mut v) in el.attrs.drain(..) {
                if self.strings.len() + 2 <= POOL_MAX {
                    k.clear();
                    v.clear();
                    self.strings.push(k);
                    self.strings.push(v);
                }
            }
            todo.append(&mut el.children);
            if self.elements.len() < POOL_MAX {
                el.name.clear();
                el.text.clear();
                self.elements.push(el);
            }
        }
    }
}

/// Why a character may not appear in XML 1.0 text (`Char` production): C0 controls
/// other than tab, line feed and carriage return.
fn check_chars(text: &str) -> Result<(), String> {
    // No early exit: the loop vectorises, and texts are short anyway.
    let bad = text.bytes().fold(false, |bad, b| {
        bad | (b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r')
    });
    if bad {
        return Err("a control character (not allowed in xml)".to_owned());
    }
    Ok(())
}

/// The stream's size checks over one start tag.
struct Checks<'a> {
    limits: &'a Limits,
}

impl Checks<'_> {
    fn value(&self, value: &str) -> Result<(), String> {
        if value.len() > self.limits.field {
            return Err(format!("a value longer than {} bytes", self.limits.field));
        }
        check_chars(value)
    }
}

fn element_from_start(
    start: &BytesStart<'_>,
    pool: &mut Pool,
    checks: &mut Checks<'_>,
) -> Result<XmlElement, String> {
    let mut el = pool.element();
    let qname = start.name();
    el.name.push_str(utf8(qname.as_ref())?);
    for (i, attr) in start.attributes().enumerate() {
        if i >= checks.limits.attributes {
            pool.recycle(el);
            return Err(format!(
                "more than {} attributes on one element",
                checks.limits.attributes
            ));
        }
        let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
        let key = utf8(attr.key.as_ref())?;
        let value = unescape(utf8(&attr.value)?)?;
        checks.value(&value)?;
        let key = pool.string(key);
        let value = pool.string(&value);
        el.attrs.push((key, value));
    }
    Ok(el)
}

impl<R: Read> XmlStream<R> {
    /// Wraps a reader that yields UTF-8, with the default limits.
    pub fn new(inner: R) -> Self {
        Self::with_config(inner, &ReaderConfig::default())
    }

    /// Wraps a reader that yields UTF-8, with `config`'s limits (its encoding applies
    /// where the bytes are decoded, see `open_file_with`).
    pub fn with_config(inner: R, config: &ReaderConfig) -> Self {
        let limits = Limits::of(config);
        let pulled = Arc::new(AtomicU64::new(0));
        let guarded = EventBudget {
            inner,
            pulled: Arc::clone(&pulled),
            budget: limits.event,
        };
        let mut reader =
            quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, guarded));
        let config = reader.config_mut();
        config.trim_text(false);
        config.expand_empty_elements = false;
        config.check_end_names = true;
        Self {
            reader,
            pulled,
            limits,
            buf: Vec::with_capacity(4096),
            root: None,
            root_closed: false,
            ranks: HashMap::new(),
            pool: Pool::default(),
            stack: Vec::new(),
            lens: Vec::new(),
            pending: String::new(),
        }
    }

    /// Reads the next event into `self.buf`, with a fresh budget for it.
    fn next_event(&mut self) -> Result<Event<'_>, quick_xml::Error> {
        self.buf.clear();
        self.pulled.store(0, Ordering::Relaxed);
        self.reader.read_event_into(&mut self.buf)
    }

    /// Bytes of decoded input consumed so far (for progress displays).
    pub fn position(&self) -> u64 {
        self.reader.buffer_position()
    }

    fn root_path(&self) -> String {
        match &self.root {
            Some(r) => format!("/{}", r.name),
            None => "/".to_owned(),
        }
    }

    /// Reads up to the root element's start and returns it (name and attributes).
    pub fn root(&mut self) -> Result<&XmlElement, XmlError> {
        if self.root.is_none() {
            loop {
                self.buf.clear();
                self.pulled.store(0, Ordering::Relaxed);
                let event = match self.reader.read_event_into(&mut self.buf) {
                    Ok(ev) => ev,
                    Err(e) => return Err(error_at("/".to_owned(), e)),
                };
                let mut checks = Checks {
                    limits: &self.limits,
                };
                match event {
                    Event::Start(start) => {
                        let el = element_from_start(&start, &mut self.pool, &mut checks)
                            .map_err(|r| malformed("/".to_owned(), r))?;
                        self.root = Some(el);
                        break;
                    }
                    Event::Empty(start) => {
                        let el = element_from_start(&start, &mut self.pool, &mut checks)
                            .map_err(|r| malformed("/".to_owned(), r))?;
                        self.root = Some(el);
                        self.root_closed = true;
                        break;
                    }
                    Event::Eof => {
                        return Err(XmlError::Truncated {
                            path: "/".to_owned(),
                        });
                    }
                    Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                    Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
                    _ => {
                        return Err(malformed("/".to_owned(), "content before the root element"));
                    }
                }
            }
        }
        Ok(self.root.as_ref().expect("root was just read"))
    }

    /// Hands back a tree read from this stream once mapped, so that its nodes are
    /// reused for the next child (memory stays flat and allocation low).
    pub fn recycle(&mut self, element: XmlElement) {
        self.pool.recycle(element);
    }

    /// The rank of a new child of the root among its same-name siblings. The names of
    /// the root's children are what the stream keeps per name: at most `limits.names`
    /// of them (a record type or two in a real file); deeper names cost nothing kept.
    fn next_rank(&mut self, name: &str) -> Result<u64, XmlError> {
        if let Some(n) = self.ranks.get_mut(name) {
            *n += 1;
            return Ok(*n);
        }
        if self.ranks.len() >= self.limits.names {
            return Err(XmlError::Limit {
                path: self.root_path(),
                reason: format!("more than {} distinct element names", self.limits.names),
            });
        }
        self.ranks.insert(name.to_owned(), 1);
        Ok(1)
    }

    /// The next child of the root, read whole; `None` once the root is closed and the
    /// document ends properly.
    pub fn next_child(&mut self) -> Result<Option<Child>, XmlError> {
        self.next_child_with(|_| true)
    }

    /// The next child of the root; `collect(name)` says whether to build its subtree
    /// or only to check and skip it (a cheap counting pass).
    pub fn next_child_with(
        &mut self,
        collect: impl Fn(&str) -> bool,
    ) -> Result<Option<Child>, XmlError> {
        self.root()?;
        if self.root_closed {
            return self.finish().map(|()| None);
        }
        let root_path = self.root_path();
        loop {
            self.buf.clear();
            self.pulled.store(0, Ordering::Relaxed);
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => return Err(error_at(root_path, e)),
            };
            let mut checks = Checks {
                limits: &self.limits,
            };
            match event {
                Event::Start(start) => {
                    let el = element_from_start(&start, &mut self.pool, &mut checks)
                        .map_err(|r| malformed(root_path.clone(), r))?;
                    let rank = self.next_rank(&el.name)?;
                    let path = format!("{root_path}/{}[{rank}]", el.name);
                    let keep = collect(&el.name);
                    let element = self.read_body(el, &path, keep)?;
                    return Ok(Some(Child {
                        element,
                        path,
                        rank,
                    }));
                }
                Event::Empty(start) => {
                    let el = element_from_start(&start, &mut self.pool, &mut checks)
                        .map_err(|r| malformed(root_path.clone(), r))?;
                    let rank = self.next_rank(&el.name)?;
                    let path = format!("{root_path}/{}[{rank}]", el.name);
                    return Ok(Some(Child {
                        element: el,
                        path,
                        rank,
                    }));
                }
                Event::End(_) => {
                    self.root_closed = true;
                    return self.finish().map(|()| None);
                }
                Event::Eof => return Err(XmlError::Truncated { path: root_path }),
                Event::Text(t) => {
                    check_chars(utf8(&t).map_err(|r| malformed(root_path.clone(), r))?)
                        .map_err(|r| malformed(root_path.clone(), r))?;
                }
                // Comments and PIs carry nothing.
                _ => {}
            }
        }
    }

    /// After the root's end: only layout and comments may follow.
    fn finish(&mut self) -> Result<(), XmlError> {
        loop {
            let event = match self.next_event() {
                Ok(ev) => ev,
                Err(e) => return Err(error_at("/".to_owned(), e)),
            };
            match event {
                Event::Eof => return Ok(()),
                Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                Event::Comment(_) | Event::PI(_) => {}
                _ => {
                    return Err(malformed("/".to_owned(), "content after the root element"));
                }
            }
        }
    }

    /// Reads the body of an element whose start was just read, up to its end.
    fn read_body(
        &mut self,
        top: XmlElement,
        top_path: &str,
        keep: bool,
    ) -> Result<XmlElement, XmlError> {
        // The stack of open elements; paths are rebuilt from it only on error.
        let mut stack: Vec<XmlElement> = std::mem::take(&mut self.stack);
        stack.clear();
        stack.push(top);
        let mut lens = std::mem::take(&mut self.lens);
        lens.clear();
        lens.push(0);
        // Whitespace-only text is held back and kept only when more text follows in
        // the same element: indentation between child elements costs nothing, while
        // `a &amp; b` keeps its spaces.
        let mut pending = std::mem::take(&mut self.pending);
        pending.clear();
        let limits = self.limits;
        let mut nodes = 1usize;
        let result = loop {
            self.buf.clear();
            self.pulled.store(0, Ordering::Relaxed);
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => break Err(error_at(stack_path(top_path, &stack), e)),
            };
            let mut checks = Checks { limits: &limits };
            match event {
                Event::Start(_) | Event::Empty(_) if stack.len() + 2 > limits.depth => {
                    break Err(XmlError::Limit {
                        path: stack_path(top_path, &stack),
                        reason: format!("elements nested deeper than {}", limits.depth),
                    });
                }
                Event::Start(start) => {
                    nodes += 1;
                    if nodes > limits.nodes {
                        break Err(XmlError::TooLarge {
                            path: top_path.to_owned(),
                            max: limits.nodes,
                        });
                    }
                    pending.clear();
                    let el = if keep {
                        element_from_start(&start, &mut self.pool, &mut checks)
                    } else {
                        // Skipping: check the tag, keep a bare frame for depth and paths.
                        check_start(&start, &mut checks).map(|name| {
                            let mut el = self.pool.element();
                            el.name.push_str(name);
                            el
                        })
                    };
                    match el {
                        Ok(el) => {
                            stack.push(el);
                            lens.push(0);
                        }
                        Err(r) => break Err(malformed(stack_path(top_path, &stack), r)),
                    }
                }
                Event::Empty(start) => {
                    nodes += 1;
                    if nodes > limits.nodes {
                        break Err(XmlError::TooLarge {
                            path: top_path.to_owned(),
                            max: limits.nodes,
                        });
                    }
                    pending.clear();
                    if keep {
                        match element_from_start(&start, &mut self.pool, &mut checks) {
                            Ok(el) => {
                                if let Some(parent) = stack.last_mut() {
                                    parent.children.push(el);
                                }
                            }
                            Err(r) => break Err(malformed(stack_path(top_path, &stack), r)),
                        }
                    } else if let Err(r) = check_start(&start, &mut checks) {
                        break Err(malformed(stack_path(top_path, &stack), r));
                    }
                }
                Event::End(_) => {
                    pending.clear();
                    lens.pop();
                    let done = stack.pop().expect("stack holds the open elements");
                    match stack.last_mut() {
                        Some(parent) if keep => parent.children.push(done),
                        Some(_) => self.pool.recycle(done),
                        None => break Ok(done),
                    }
                }
                Event::Text(t) => match utf8(&t).and_then(|text| {
                    add_len(&mut lens, text.len(), limits.field)?;
                    check_chars(text).map(|()| text)
                }) {
                    Ok(text) => {
                        if keep && let Some(cur) = stack.last_mut() {
                            if text.bytes().all(|b| b.is_ascii_whitespace()) {
                                pending.push_str(text);
                            } else {
                                cur.text.push_str(&pending);
                                pending.clear();
                                cur.text.push_str(text);
                            }
                        }
                    }
                    Err(r) => break Err(malformed(stack_path(top_path, &stack), r)),
                },
                Event::CData(c) => match utf8(&c).and_then(|text| {
                    add_len(&mut lens, text.len(), limits.field)?;
                    check_chars(text).map(|()| text)
                }) {
                    Ok(text) => {
                        if keep && let Some(cur) = stack.last_mut() {
                            cur.text.push_str(&pending);
                            pending.clear();
                            cur.text.push_str(text);
                        }
                    }
                    Err(r) => break Err(malformed(stack_path(top_path, &stack), r)),
                },
                Event::GeneralRef(r) => match resolve_ref(&r)
                    .and_then(|c| add_len(&mut lens, c.len_utf8(), limits.field).map(|()| c))
                {
                    Ok(resolved) => {
                        if keep && let Some(cur) = stack.last_mut() {
                            cur.text.push_str(&pending);
                            pending.clear();
                            cur.text.push(resolved);
                        }
                    }
                    Err(reason) => break Err(malformed(stack_path(top_path, &stack), reason)),
                },
                Event::Eof => {
                    break Err(XmlError::Truncated {
                        path: stack_path(top_path, &stack),
                    });
                }
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {}
            }
        };
        for el in stack.drain(..) {
            self.pool.recycle(el);
        }
        self.stack = stack;
        self.lens = lens;
        self.pending = pending;
        result
    }
}

/// Adds text to the innermost open element's length, refusing past the field limit.
fn add_len(lens: &mut [usize], n: usize, max: usize) -> Result<(), String> {
    if let Some(len) = lens.last_mut() {
        *len += n;
        if *len > max {
            return Err(format!("a text longer than {max} bytes"));
        }
    }
    Ok(())
}

/// Checks a start tag without building anything: its name and attributes must be
/// well-formed UTF-8 with valid references, within the limits. Returns the name.
fn check_start<'a>(start: &'a BytesStart<'_>, checks: &mut Checks<'_>) -> Result<&'a str, String> {
    let name = utf8(start.name().into_inner())?;
    for (i, attr) in start.attributes().enumerate() {
        if i >= checks.limits.attributes {
            return Err(format!(
                "more than {} attributes on one element",
                checks.limits.attributes
            ));
        }
        let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
        utf8(attr.key.as_ref())?;
        checks.value(&unescape(utf8(&attr.value)?)?)?;
    }
    Ok(name)
}

fn malformed(path: String, e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed {
        path,
        reason: e.to_string(),
    }
}

fn error_at(path: String, e: quick_xml::Error) -> XmlError {
    // quick-xml reports a tag cut by the end of input as a syntax error.
    if let quick_xml::Error::Syntax(_) = e {
        return XmlError::Truncated { path };
    }
    if let quick_xml::Error::Io(io) = &e {
        // Bad bytes or a limit of the input: the file's fault, said where.
        if io.kind() == io::ErrorKind::InvalidData {
            return XmlError::Limit {
                path,
                reason: io.to_string(),
            };
        }
        return XmlError::Io(io::Error::new(io.kind(), io.to_string()));
    }
    malformed(path, e)
}

fn resolve_ref(r: &quick_xml::events::BytesRef<'_>) -> Result<char, String> {
    let name = utf8(r)?;
    if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            u32::from_str_radix(hex, 16)
        } else {
            num.parse::<u32>()
        };
        // XML 1.0 `Char`: no C0 control other than tab, line feed, carriage return.
        return code
            .ok()
            .and_then(char::from_u32)
            .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r') || *c as u32 >= 0x7f)
            .ok_or_else(|| "bad character reference".to_owned());
    }
    match quick_xml::escape::resolve_predefined_entity(name) {
        Some(s) => s.chars().next().ok_or_else(|| "empty entity".to_owned()),
        None => Err("unknown entity reference".to_owned()),
    }
}

/// The path of the innermost open element: the child's ranked path, then names,
/// ranked among same-name siblings when there are several.
fn stack_path(top_path: &str, stack: &[XmlElement]) -> String {
    let mut path = top_path.to_owned();
    for i in 1..stack.len() {
        let name = &stack[i].name;
        let before = stack[i - 1]
            .children
            .iter()
            .filter(|c| &c.name == name)
            .count();
        path.push('/');
        path.push_str(name);
        if before > 0 {
            path.push_str(&format!("[{}]", before + 1));
        }
    }
    path
}

/// Escapes text for an XML attribute or element (`& < > " '`).
pub fn escape(text: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// Collects the outcome of mapping one XML record: each refused field becomes a
/// `RecordIssue` naming the canonical path, the rule and the element path (never the
/// value); contact values are dropped with a warning, anything else rejects the record.
#[derive(Debug, Clone)]
pub struct RecordMapper {
    /// The record's reference in reports (`IND0004412`, an element path).
    pub reference: String,
    /// The record's element path, prefixed to the relative paths given to `take`.
    pub base: String,
    pub rejects: Vec<crate::report::RecordIssue>,
    pub warnings: Vec<crate::report::RecordIssue>,
}

impl RecordMapper {
    pub fn new(reference: impl Into<String>, base: impl Into<String>) -> Self {
        Self {
            reference: reference.into(),
            base: base.into(),
            rejects: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn issue(
        &self,
        canon: &str,
        at: impl std::fmt::Display,
        reason: &str,
    ) -> crate::report::RecordIssue {
        // `../X` names a sibling of the record (household data shared by persons).
        // Paths are formatted only here, when a field fails: mapping stays cheap.
        let at = at.to_string();
        let mut base = self.base.as_str();
        let mut at = at.as_str();
        while let Some(rest) = at.strip_prefix("../") {
            at = rest;
            base = base.rsplit_once('/').map_or("", |(head, _)| head);
        }
        let location = if at.is_empty() {
            base.to_owned()
        } else {
            format!("{base}/{at}")
        };
        crate::report::RecordIssue {
            reference: self.reference.clone(),
            line: None,
            field: canon.to_owned(),
            reason: format!("{reason} (at {location})"),
        }
    }

    /// Records a field error by the severity canonical.md gives its path.
    pub fn push(&mut self, e: passerelle_model::FieldError, at: impl std::fmt::Display) {
        let issue = self.issue(&e.path, at, &e.reason);
        match e.severity {
            passerelle_model::Severity::Reject => self.rejects.push(issue),
            passerelle_model::Severity::Drop => self.warnings.push(issue),
        }
    }

    /// Keeps the value if it parsed, otherwise records why at `canon` (`at` is the
    /// element path relative to the record, `EtatCivil/Nir` or `DossierRSA/@role`).
    pub fn take<T>(
        &mut self,
        canon: &str,
        at: impl std::fmt::Display,
        result: Result<T, passerelle_model::InvalidValue>,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(passerelle_model::FieldError::at(canon, e), at);
                None
            }
        }
    }

    /// Parses an optional raw value; absent or blank stays `None` without an issue.
    pub fn opt<T>(
        &mut self,
        canon: &str,
        at: impl std::fmt::Display,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, passerelle_model::InvalidValue>,
    ) -> Option<T> {
        match raw.map(str::trim) {
            None | Some("") => None,
            Some(s) => self.take(canon, at, parse(s)),
        }
    }

    /// Like `opt`, but a failure only drops the value with a warning, whatever the
    /// path's class (professional contacts' e-mails).
    pub fn opt_drop<T>(
        &mut self,
        canon: &str,
        at: impl std::fmt::Display,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, passerelle_model::InvalidValue>,
    ) -> Option<T> {
        match raw.map(str::trim) {
            None | Some("") => None,
            Some(s) => match parse(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    let issue = self.issue(canon, at, &e.reason);
                    self.warnings.push(issue);
                    None
                }
            },
        }
    }

    /// Records a rejection that no parser produced (a missing required value).
    pub fn reject(&mut self, canon: &str, at: impl std::fmt::Display, reason: &str) {
        let issue = self.issue(canon, at, reason);
        self.rejects.push(issue);
    }

    /// The item for a `Source`: the record, or its rejections; warnings either way.
    pub fn finish(
        self,
        record: passerelle_model::Jeune,
        ack: crate::traits::AckToken,
    ) -> crate::traits::SourceItem {
        let outcome = if self.rejects.is_empty() {
            Ok(record)
        } else {
            Err(self.rejects)
        };
        crate::traits::SourceItem {
            outcome,
            warnings: self.warnings,
            ack,
        }
    }
}

/// The trimmed text of an element, `None` when blank.
pub fn text_of(el: Option<&XmlElement>) -> Option<&str> {
    el.map(|e| e.text.trim()).filter(|t| !t.is_empty())
}

/// The trimmed value of an attribute, `None` when absent or blank.
pub fn attr_of<'a>(el: Option<&'a XmlElement>, name: &str) -> Option<&'a str> {
    el.and_then(|e| e.attr(name))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}
