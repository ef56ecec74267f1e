//! What a night is made of: sources with the flows they feed and how each routes,
//! recipients with the sink that reaches them, cursors to store once a night went
//! through, and `SinkByFlow` for a recipient that takes its flows through several sinks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use passerelle_connector::{ConnectorError, Delivery, Receipt, Sink, Source};

use crate::org::Route;

/// A flow a source feeds, and how its records are routed.
#[derive(Clone)]
pub struct FlowRoute {
    pub flow: String,
    pub route: Route,
    /// Send only about persons the recipient sent us first (see `Routed`).
    pub known_to_recipient: bool,
}

impl std::fmt::Debug for FlowRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRoute")
            .field("flow", &self.flow)
            .field("known_to_recipient", &self.known_to_recipient)
            .finish_non_exhaustive()
    }
}

impl FlowRoute {
    pub fn new(flow: &str, route: Route) -> Self {
        Self {
            flow: flow.to_owned(),
            route,
            known_to_recipient: false,
        }
    }

    /// Only about persons the recipient sent us first.
    pub fn replies_only(mut self) -> Self {
        self.known_to_recipient = true;
        self
    }
}

/// One source, read once, feeding one or more flows (an I-MILO listing feeds
/// `brsa-suivi` and `of-signalement`).
pub struct SourcePlan {
    /// A name for progress lines and reports (`solis:RSA`, `imilo:dossiers`).
    pub name: String,
    pub source: Box<dyn Source>,
    pub flows: Vec<FlowRoute>,
    /// Where the source resumes next time, stored in the hub's state once the night
    /// went through.
    pub cursor: Option<Cursor>,
    /// The recipients whose system this source reads (an I-MILO listing reads the MLs
    /// the night writes orientations to): their deliveries start once it is read, so
    /// that a night reads its peers as they were when it started, however fast each
    /// part goes, and what it writes there is read by the next night.
    pub reads: BTreeSet<String>,
}

impl SourcePlan {
    pub fn new(name: impl Into<String>, source: Box<dyn Source>, flows: Vec<FlowRoute>) -> Self {
        Self {
            name: name.into(),
            source,
            flows,
            cursor: None,
            reads: BTreeSet::new(),
        }
    }

    /// The recipients whose system this source reads (see `reads`).
    pub fn reading(mut self, recipients: impl IntoIterator<Item = String>) -> Self {
        self.reads.extend(recipients);
        self
    }

    /// Whether a flow of this source goes only about persons its recipient sent first
    /// (see `FlowRoute::replies_only`).
    pub fn replies(&self) -> bool {
        self.flows.iter().any(|f| f.known_to_recipient)
    }

    /// The cursor stored once the night went through.
    pub fn with_cursor(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }
}

/// A source's cursor: its key in the hub's state and the value to store once the
/// night went through (known when planned, or set by the source as it reads).
#[derive(Debug, Clone)]
pub struct Cursor {
    pub key: String,
    value: Arc<Mutex<Option<String>>>,
}

impl Cursor {
    /// A cursor whose value is not known yet.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: Arc::new(Mutex::new(None)),
        }
    }

    /// A cursor whose value is known when planned.
    pub fn at(key: impl Into<String>, value: impl Into<String>) -> Self {
        let c = Self::new(key);
        c.set(value);
        c
    }

    /// Sets the value to store.
    pub fn set(&self, value: impl Into<String>) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(value.into());
    }

    /// The value to store, if any.
    pub fn value(&self) -> Option<String> {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for SourcePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flows: Vec<&str> = self.flows.iter().map(|f| f.flow.as_str()).collect();
        f.debug_struct("SourcePlan")
            .field("name", &self.name)
            .field("flows", &flows)
            .finish_non_exhaustive()
    }
}

/// A recipient whose queue the night delivers, and the sink that reaches it.
pub struct SinkPlan {
    pub recipient: String,
    pub sink: Arc<dyn Sink>,
}

impl std::fmt::Debug for SinkPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkPlan")
            .field("recipient", &self.recipient)
            .finish_non_exhaustive()
    }
}

/// A sink that hands each flow to its own sink: a CD may take `brsa-suivi` as SOLIS
/// imports and `of-signalement` through its box. Results keep the batch's order.
#[derive(Default)]
pub struct SinkByFlow {
    sinks: BTreeMap<String, Arc<dyn Sink>>,
}

impl std::fmt::Debug for SinkByFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkByFlow")
            .field("flows", &self.sinks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SinkByFlow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `flow` to `sink` (a later call for the same flow replaces it).
    pub fn with(mut self, flow: &str, sink: Arc<dyn Sink>) -> Self {
        self.sinks.insert(flow.to_owned(), sink);
        self
    }

    pub fn flows(&self) -> impl Iterator<Item = &str> {
        self.sinks.keys().map(String::as_str)
    }

    fn unrouted(flow: &str) -> ConnectorError {
        ConnectorError::Invalid {
            location: "delivery.flow".into(),
            reason: format!("no sink takes flow {flow} for this recipient"),
        }
    }
}

#[async_trait::async_trait]
impl Sink for SinkByFlow {
    async fn deliver(&self, delivery: Delivery) -> Result<Receipt, ConnectorError> {
        match self.sinks.get(&delivery.flow) {
            Some(s) => s.deliver(delivery).await,
            None => Err(Self::unrouted(&delivery.flow)),
        }
    }

    async fn deliver_batch(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Vec<Result<Receipt, ConnectorError>> {
        let n = deliveries.len();
        let mut groups: BTreeMap<String, Vec<(usize, Delivery)>> = BTreeMap::new();
        for (i, d) in deliveries.into_iter().enumerate() {
            groups.entry(d.flow.clone()).or_default().push((i, d));
        }
        let mut out: Vec<Option<Result<Receipt, ConnectorError>>> = (0..n).map(|_| None).collect();
        for (flow, items) in groups {
            let (idx, ds): (Vec<usize>, Vec<Delivery>) = items.into_iter().unzip();
            match self.sinks.get(&flow) {
                Some(s) => {
                    for (i, r) in idx.into_iter().zip(s.deliver_batch(ds).await) {
                        out[i] = Some(r);
                    }
                }
                None => {
                    for i in idx {
                        out[i] = Some(Err(Self::unrouted(&flow)));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Self::unrouted("?"))))
            .collect()
    }
}
