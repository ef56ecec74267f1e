//! Embedded transport: the same semantics as RabbitMQ, durable in one SQLite file.
//!
//! For single-machine deployments. A publish is confirmed once its insert is committed
//! (WAL, `synchronous=FULL` by default); concurrent publishes are grouped into one
//! transaction by a writer task, so throughput does not pay one fsync per message.
//! Consumers lease messages: a leased message is invisible until its lease expires,
//! and the subscription keeps extending the leases of the deliveries it has handed
//! out. A crashed consumer stops extending, so its messages come back after one lease.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{
    Confirmed, DeadLetter, DeadLetterId, Delivery, Envelope, Header, Result, Settle, Settled,
    Subscription, Transport, TransportError, validate_name,
};

/// Configuration of the embedded transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// The SQLite file (created if missing).
    pub path: PathBuf,
    /// Recipients whose queues are declared at start.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// A message is handed to consumers at most this many times.
    #[serde(default = "default_max_deliveries")]
    pub max_deliveries: u32,
    /// How long a delivery stays invisible to other consumers without being extended.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// How often an idle subscription looks for new messages published by other processes
    /// (publishes in this process wake it at once).
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// How many messages a subscription leases at once.
    #[serde(default = "default_prefetch")]
    pub prefetch: u32,
    /// Most publishes grouped in one transaction.
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// `synchronous=FULL` (true, the default: a confirmed publish survives a power loss)
    /// or `NORMAL` (survives a process crash only).
    #[serde(default = "default_true")]
    pub fsync: bool,
}

fn default_max_deliveries() -> u32 {
    5
}
fn default_lease_ms() -> u64 {
    60_000
}
fn default_poll_ms() -> u64 {
    200
}
fn default_prefetch() -> u32 {
    64
}
fn default_batch_max() -> usize {
    1000
}
fn default_true() -> bool {
    true
}

impl EmbeddedConfig {
    /// A configuration with defaults for the given file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            recipients: Vec::new(),
            max_deliveries: default_max_deliveries(),
            lease_ms: default_lease_ms(),
            poll_ms: default_poll_ms(),
            prefetch: default_prefetch(),
            batch_max: default_batch_max(),
            fsync: true,
        }
    }

    /// Checks the values (pure).
    pub fn validate(&self) -> Result<()> {
        for r in &self.recipients {
            validate_name("recipient", r)?;
        }
        if self.max_deliveries == 0 {
            return Err(TransportError::invalid(
                "max_deliveries",
                "must be at least 1",
            ));
        }
        if self.lease_ms < 100 {
            return Err(TransportError::invalid("lease_ms", "must be at least 100"));
        }
        if self.poll_ms == 0 || self.prefetch == 0 || self.batch_max == 0 {
            return Err(TransportError::invalid(
                "poll_ms, prefetch, batch_max",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// Opens (or creates) the store and declares the configured recipients.
    pub async fn build(&self) -> Result<EmbeddedTransport> {
        self.validate()?;
        EmbeddedTransport::open(self.clone()).await
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS recipients (name TEXT PRIMARY KEY) STRICT",
    "CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        recipient TEXT NOT NULL REFERENCES recipients(name),
        header TEXT NOT NULL,
        payload BLOB NOT NULL,
        deliveries INTEGER NOT NULL DEFAULT 0,
        available_at INTEGER NOT NULL,
        lease TEXT,
        published_at INTEGER NOT NULL
    ) STRICT",
    "CREATE INDEX IF NOT EXISTS messages_ready ON messages (recipient, available_at, seq)",
    "CREATE TABLE IF NOT EXISTS dead_letters (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        recipient TEXT NOT NULL,
        header TEXT NOT NULL,
        payload BLOB NOT NULL,
        deliveries INTEGER NOT NULL,
        reason TEXT NOT NULL,
        dead_at INTEGER NOT NULL
    ) STRICT",
    "CREATE INDEX IF NOT EXISTS dead_letters_recipient ON dead_letters (recipient, seq)",
];

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

struct Insert {
    message_id: String,
    recipient: String,
    header: String,
    payload: Bytes,
    reply: oneshot::Sender<Result<()>>,
}

#[derive(Debug)]
struct Inner {
    cfg: EmbeddedConfig,
    /// Publishes and replays: `synchronous=FULL` unless configured otherwise.
    pool: SqlitePool,
    /// Leases, acks, retries, dead-lettering. `synchronous=NORMAL` (no fsync per commit
    /// in WAL mode): losing one of these to a power cut only makes a message come back,
    /// which at-least-once allows, while an fsync per ack would cap consumers at a few
    /// hundred messages per second.
    settle_pool: SqlitePool,
    writer: Mutex<Option<mpsc::Sender<Insert>>>,
    writer_task: Mutex<Option<JoinHandle<()>>>,
    /// Acks waiting for the next grouped commit: (message id, lease).
    acks: Mutex<Option<mpsc::UnboundedSender<(String, String)>>>,
    ack_task: Mutex<Option<JoinHandle<()>>>,
    recipients: Mutex<HashSet<String>>,
    /// Woken on every commit of new or returned messages, so local consumers need not poll.
    ready: Notify,
    closed: AtomicBool,
}

/// The embedded (SQLite) transport. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EmbeddedTransport {
    inner: Arc<Inner>,
}

impl EmbeddedTransport {
    async fn open(cfg: EmbeddedConfig) -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| TransportError::invalid("path", e.to_string()))?
            .filename(&cfg.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if cfg.fsync {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await?;
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&pool).await?;
        }
        let names: Vec<String> = sqlx::query("SELECT name FROM recipients")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        let settle_pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await?;
        let (tx, rx) = mpsc::channel(cfg.batch_max * 4);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            pool,
            settle_pool,
            writer: Mutex::new(Some(tx)),
            writer_task: Mutex::new(None),
            acks: Mutex::new(Some(ack_tx)),
            ack_task: Mutex::new(None),
            recipients: Mutex::new(names.into_iter().collect()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            cfg,
        });
        let task = tokio::spawn(writer_loop(Arc::downgrade(&inner), inner.pool.clone(), rx));
        *lock(&inner.writer_task) = Some(task);
        let task = tokio::spawn(ack_loop(
            inner.settle_pool.clone(),
            ack_rx,
            inner.cfg.batch_max,
        ));
        *lock(&inner.ack_task) = Some(task);
        let t = Self { inner };
        for r in t.inner.cfg.recipients.clone() {
            t.declare_recipient(&r).await?;
        }
        Ok(t)
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::SeqCst) {
            Err(TransportError::Closed)
        } else {
            Ok(())
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another task panicked; the data is still consistent
    // (every critical section here is a single insert or take).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Group commit: take every publish waiting, insert them in one transaction, then
/// confirm them all. One fsync per batch instead of one per message.
async fn writer_loop(
    inner: std::sync::Weak<Inner>,
    pool: SqlitePool,
    mut rx: mpsc::Receiver<Insert>,
) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let max = inner.upgrade().map_or(1000, |i| i.cfg.batch_max);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let result = insert_batch(&pool, &batch).await;
        match result {
            Ok(()) => {
                for i in batch.drain(..) {
                    let _ = i.reply.send(Ok(()));
                }
                if let Some(inner) = inner.upgrade() {
                    inner.ready.notify_waiters();
                }
            }
            Err(e) => {
                let text = e.to_string();
                for i in batch.drain(..) {
                    let _ = i.reply.send(Err(TransportError::Unavailable(text.clone())));
                }
            }
        }
    }
}

/// Group commit of acks. An ack is like AMQP's basic.ack: it returns once queued, and
/// the message stays leased (invisible) until the delete commits; if the process dies
/// first, the message comes back after its lease (at-least-once).
async fn ack_loop(
    pool: SqlitePool,
    mut rx: mpsc::UnboundedReceiver<(String, String)>,
    batch_max: usize,
) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let result = async {
            let mut tx = pool.begin().await?;
            for (message_id, lease) in &batch {
                sqlx::query("DELETE FROM messages WHERE message_id = ?1 AND lease = ?2")
                    .bind(message_id)
                    .bind(lease)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, count = batch.len(), "acks not committed; those messages will be delivered again");
        }
        batch.clear();
    }
}

async fn insert_batch(pool: &SqlitePool, batch: &[Insert]) -> Result<()> {
    let mut tx = pool.begin().await?;
    let now = now_ms();
    for i in batch {
        sqlx::query(
            "INSERT INTO messages (message_id, recipient, header, payload, available_at, published_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )
        .bind(&i.message_id)
        .bind(&i.recipient)
        .bind(&i.header)
        .bind(&i.payload[..])
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn decode_header(id: &str, text: &str) -> Result<Header> {
    serde_json::from_str(text).map_err(|e| TransportError::Malformed {
        id: id.to_owned(),
        rule: format!("header is not valid json: {e}"),
    })
}

fn dead_letter_from_row(row: &SqliteRow) -> Result<DeadLetter> {
    let message_id: String = row.try_get("message_id")?;
    let header = decode_header(&message_id, &row.try_get::<String, _>("header")?)?;
    let payload: Vec<u8> = row.try_get("payload")?;
    let deliveries: i64 = row.try_get("deliveries")?;
    Ok(DeadLetter {
        id: DeadLetterId {
            recipient: row.try_get("recipient")?,
            message_id,
        },
        envelope: Envelope {
            header,
            payload: payload.into(),
        },
        reason: row.try_get("reason")?,
        delivery_count: u32::try_from(deliveries).unwrap_or(u32::MAX),
    })
}

/// Moves a leased message to the dead letters, inside one transaction. Returns false
/// when the lease is no longer ours.
async fn move_to_dead(
    pool: &SqlitePool,
    message_id: &str,
    lease: &str,
    reason: &str,
    deliveries: Option<u32>,
) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let moved = sqlx::query(
        "INSERT INTO dead_letters (message_id, recipient, header, payload, deliveries, reason, dead_at)
         SELECT message_id, recipient, header, payload, COALESCE(?4, deliveries), ?3, ?5
         FROM messages WHERE message_id = ?1 AND lease = ?2",
    )
    .bind(message_id)
    .bind(lease)
    .bind(reason)
    .bind(deliveries.map(i64::from))
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM messages WHERE message_id = ?1 AND lease = ?2")
        .bind(message_id)
        .bind(lease)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

#[async_trait]
impl Transport for EmbeddedTransport {
    async fn declare_recipient(&self, recipient: &str) -> Result<()> {
        self.check_open()?;
        validate_name("recipient", recipient)?;
        if lock(&self.inner.recipients).contains(recipient) {
            return Ok(());
        }
        sqlx::query("INSERT OR IGNORE INTO recipients (name) VALUES (?1)")
            .bind(recipient)
            .execute(&self.inner.pool)
            .await?;
        lock(&self.inner.recipients).insert(recipient.to_owned());
        Ok(())
    }

    async fn publish(&self, envelope: Envelope) -> Result<Confirmed> {
        self.check_open()?;
        envelope.validate()?;
        let recipient = envelope.header.recipient.clone();
        if !lock(&self.inner.recipients).contains(&recipient) {
            return Err(TransportError::Unroutable { recipient });
        }
        let header = serde_json::to_string(&envelope.header)
            .map_err(|e| TransportError::invalid("header", e.to_string()))?;
        let message_id = Uuid::now_v7().to_string();
        let (reply, wait) = oneshot::channel();
        let sender = lock(&self.inner.writer)
            .clone()
            .ok_or(TransportError::Closed)?;
        let transfer_id = envelope.header.transfer_id;
        sender
            .send(Insert {
                message_id: message_id.clone(),
                recipient,
                header,
                payload: envelope.payload,
                reply,
            })
            .await
            .map_err(|_| TransportError::Closed)?;
        match wait.await {
            Ok(Ok(())) => Ok(Confirmed {
                message_id,
                transfer_id,
            }),
            Ok(Err(e)) => Err(TransportError::NotConfirmed {
                transfer_id,
                reason: e.to_string(),
            }),
            Err(_) => Err(TransportError::NotConfirmed {
                transfer_id,
                reason: "store closed before commit".into(),
            }),
        }
    }

    async fn subscribe(&self, recipient: &str) -> Result<Box<dyn Subscription>> {
        self.declare_recipient(recipient).await?;
        let outstanding: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let extender = tokio::spawn(extend_leases(
            Arc::downgrade(&self.inner),
            Arc::downgrade(&outstanding),
        ));
        Ok(Box::new(EmbeddedSubscription {
            inner: self.inner.clone(),
            recipient: recipient.to_owned(),
            buffer: VecDeque::new(),
            outstanding,
            extender,
            settled: Arc::new(Notify::new()),
        }))
    }

    async fn dead_letters(&self, recipient: &str) -> Result<Vec<DeadLetter>> {
        self.check_open()?;
        validate_name("recipient", recipient)?;
        let rows = sqlx::query(
            "SELECT message_id, recipient, header, payload, deliveries, reason
             FROM dead_letters WHERE recipient = ?1 ORDER BY seq",
        )
        .bind(recipient)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(dead_letter_from_row).collect()
    }

    async fn dead_letter(&self, id: &DeadLetterId) -> Result<DeadLetter> {
        self.check_open()?;
        let row = sqlx::query(
            "SELECT message_id, recipient, header, payload, deliveries, reason
             FROM dead_letters WHERE recipient = ?1 AND message_id = ?2",
        )
        .bind(&id.recipient)
        .bind(&id.message_id)
        .fetch_optional(&self.inner.pool)
        .await?
        .ok_or_else(|| TransportError::NotFound(id.to_string()))?;
        dead_letter_from_row(&row)
    }

    async fn replay(&self, id: &DeadLetterId) -> Result<Confirmed> {
        self.check_open()?;
        let dead = self.dead_letter(id).await?;
        let message_id = Uuid::now_v7().to_string();
        let mut tx = self.inner.pool.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO messages (message_id, recipient, header, payload, available_at, published_at)
             SELECT ?3, recipient, header, payload, ?4, ?4 FROM dead_letters
             WHERE recipient = ?1 AND message_id = ?2",
        )
        .bind(&id.recipient)
        .bind(&id.message_id)
        .bind(&message_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let removed =
            sqlx::query("DELETE FROM dead_letters WHERE recipient = ?1 AND message_id = ?2")
                .bind(&id.recipient)
                .bind(&id.message_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if removed == 0 {
            // Replayed concurrently by someone else: do not publish twice.
            tx.rollback().await?;
            return Err(TransportError::NotFound(id.to_string()));
        }
        tx.commit().await?;
        self.inner.ready.notify_waiters();
        Ok(Confirmed {
            message_id,
            transfer_id: dead.envelope.header.transfer_id,
        })
    }

    async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Dropping the sender lets the writer commit what it holds and stop.
        drop(lock(&self.inner.writer).take());
        let task = lock(&self.inner.writer_task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        // Likewise the acks: commit those queued, then stop.
        drop(lock(&self.inner.acks).take());
        let task = lock(&self.inner.ack_task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.inner.ready.notify_waiters();
        self.inner.settle_pool.close().await;
        self.inner.pool.close().await;
        Ok(())
    }
}

/// Keeps extending the leases of handed-out deliveries until the subscription goes
/// away. Stops by itself when either side is dropped (a crash simulates the same).
async fn extend_leases(
    inner: std::sync::Weak<Inner>,
    outstanding: std::sync::Weak<Mutex<HashMap<String, String>>>,
) {
    let period = inner.upgrade().map_or(Duration::from_secs(1), |i| {
        Duration::from_millis(i.cfg.lease_ms / 3)
    });
    loop {
        tokio::time::sleep(period).await;
        let (Some(inner), Some(outstanding)) = (inner.upgrade(), outstanding.upgrade()) else {
            return;
        };
        let held: Vec<(String, String)> = lock(&outstanding)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let until = now_ms() + i64::try_from(inner.cfg.lease_ms).unwrap_or(i64::MAX / 4);
        for (message_id, lease) in held {
            let r = sqlx::query(
                "UPDATE messages SET available_at = ?3 WHERE message_id = ?1 AND lease = ?2",
            )
            .bind(&message_id)
            .bind(&lease)
            .bind(until)
            .execute(&inner.settle_pool)
            .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not extend a lease");
            }
        }
    }
}

struct Leased {
    message_id: String,
    header: String,
    payload: Vec<u8>,
    deliveries: u32,
    lease: String,
}

/// A consumer of one recipient in the embedded store.
#[derive(Debug)]
pub struct EmbeddedSubscription {
    inner: Arc<Inner>,
    recipient: String,
    buffer: VecDeque<Leased>,
    /// Leased deliveries, buffered or handed out: message id → lease token.
    outstanding: Arc<Mutex<HashMap<String, String>>>,
    extender: JoinHandle<()>,
    settled: Arc<Notify>,
}

impl std::fmt::Debug for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leased")
            .field("message_id", &self.message_id)
            .field("deliveries", &self.deliveries)
            .finish_non_exhaustive()
    }
}

impl Drop for EmbeddedSubscription {
    fn drop(&mut self) {
        self.extender.abort();
    }
}

impl EmbeddedSubscription {
    /// Leases up to `prefetch` ready messages, oldest first.
    async fn lease_batch(&mut self) -> Result<()> {
        let now = now_ms();
        let lease = Uuid::new_v4().to_string();
        let until = now + i64::try_from(self.inner.cfg.lease_ms).unwrap_or(i64::MAX / 4);
        let rows = sqlx::query(
            "UPDATE messages SET deliveries = deliveries + 1, available_at = ?1, lease = ?2
             WHERE seq IN (SELECT seq FROM messages WHERE recipient = ?3 AND available_at <= ?4
                           ORDER BY seq LIMIT ?5)
             RETURNING seq, message_id, header, payload, deliveries",
        )
        .bind(until)
        .bind(&lease)
        .bind(&self.recipient)
        .bind(now)
        .bind(i64::from(self.inner.cfg.prefetch))
        .fetch_all(&self.inner.settle_pool)
        .await?;
        let mut leased: Vec<(i64, Leased)> = Vec::with_capacity(rows.len());
        for row in rows {
            let deliveries: i64 = row.try_get("deliveries")?;
            leased.push((
                row.try_get("seq")?,
                Leased {
                    message_id: row.try_get("message_id")?,
                    header: row.try_get("header")?,
                    payload: row.try_get("payload")?,
                    deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
                    lease: lease.clone(),
                },
            ));
        }
        // RETURNING gives no order guarantee: restore publish order.
        leased.sort_by_key(|(seq, _)| *seq);
        let max = self.inner.cfg.max_deliveries;
        for (_, l) in leased {
            if l.deliveries > max {
                // Delivered `max` times already without being settled (crashes): stop here.
                let reason = format!("delivery limit of {max} reached");
                move_to_dead(
                    &self.inner.settle_pool,
                    &l.message_id,
                    &l.lease,
                    &reason,
                    Some(max),
                )
                .await?;
                tracing::warn!(message_id = %l.message_id, "message dead-lettered after repeated unsettled deliveries");
                continue;
            }
            // Held from now on: the extender keeps buffered leases alive too, so a slow
            // consumer does not lose messages it has not even looked at yet.
            lock(&self.outstanding).insert(l.message_id.clone(), l.lease.clone());
            self.buffer.push_back(l);
        }
        Ok(())
    }

    /// Gives back leased but not handed-out messages, without counting a delivery.
    async fn release_buffer(&mut self) -> Result<()> {
        let now = now_ms();
        let buffered: Vec<Leased> = self.buffer.drain(..).collect();
        for l in buffered {
            lock(&self.outstanding).remove(&l.message_id);
            sqlx::query(
                "UPDATE messages SET available_at = ?3, lease = NULL, deliveries = deliveries - 1
                 WHERE message_id = ?1 AND lease = ?2",
            )
            .bind(&l.message_id)
            .bind(&l.lease)
            .bind(now)
            .execute(&self.inner.settle_pool)
            .await?;
        }
        self.inner.ready.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next(&mut self) -> Result<Delivery> {
        loop {
            if self.inner.closed.load(Ordering::SeqCst) {
                return Err(TransportError::Closed);
            }
            if let Some(l) = self.buffer.pop_front() {
                let header = match decode_header(&l.message_id, &l.header) {
                    Ok(h) => h,
                    Err(e) => {
                        lock(&self.outstanding).remove(&l.message_id);
                        move_to_dead(
                            &self.inner.settle_pool,
                            &l.message_id,
                            &l.lease,
                            &e.to_string(),
                            None,
                        )
                        .await?;
                        continue;
                    }
                };
                let settle = EmbeddedSettle {
                    inner: self.inner.clone(),
                    outstanding: self.outstanding.clone(),
                    settled: self.settled.clone(),
                    message_id: l.message_id.clone(),
                    lease: l.lease,
                    deliveries: l.deliveries,
                };
                return Ok(Delivery::new(
                    Envelope {
                        header,
                        payload: l.payload.into(),
                    },
                    l.message_id,
                    l.deliveries,
                    Box::new(settle),
                ));
            }
            // Register interest before looking, so a commit in between is not missed.
            let inner = self.inner.clone();
            let ready = inner.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            self.lease_batch().await?;
            if self.buffer.is_empty() {
                let _ = tokio::time::timeout(Duration::from_millis(self.inner.cfg.poll_ms), ready)
                    .await;
            }
        }
    }

    async fn close(mut self: Box<Self>, timeout: Duration) -> Result<usize> {
        if self.inner.closed.load(Ordering::SeqCst) {
            // The store is gone: leases lapse by themselves.
            for l in self.buffer.drain(..) {
                lock(&self.outstanding).remove(&l.message_id);
            }
        } else {
            self.release_buffer().await?;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let left = lock(&self.outstanding).len();
            if left == 0 {
                return Ok(0);
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return Ok(lock(&self.outstanding).len());
            }
        }
    }
}

#[derive(Debug)]
struct EmbeddedSettle {
    inner: Arc<Inner>,
    outstanding: Arc<Mutex<HashMap<String, String>>>,
    settled: Arc<Notify>,
    message_id: String,
    lease: String,
    deliveries: u32,
}

impl Drop for EmbeddedSettle {
    // Whether settled or dropped, the delivery is no longer held: stop extending its
    // lease, so an unsettled one comes back after the lease.
    fn drop(&mut self) {
        lock(&self.outstanding).remove(&self.message_id);
        self.settled.notify_waiters();
    }
}

impl EmbeddedSettle {
    fn lost(&self) -> TransportError {
        TransportError::LeaseLost(self.message_id.clone())
    }
}

#[async_trait]
impl Settle for EmbeddedSettle {
    async fn ack(self: Box<Self>) -> Result<()> {
        let sender = lock(&self.inner.acks).clone();
        match sender {
            Some(acks)
                if acks
                    .send((self.message_id.clone(), self.lease.clone()))
                    .is_ok() =>
            {
                Ok(())
            }
            _ => Err(self.lost()),
        }
    }

    async fn retry(self: Box<Self>, delay: Duration) -> Result<Settled> {
        let max = self.inner.cfg.max_deliveries;
        if self.deliveries >= max {
            let reason = format!("delivery limit of {max} reached");
            return if move_to_dead(
                &self.inner.settle_pool,
                &self.message_id,
                &self.lease,
                &reason,
                Some(self.deliveries),
            )
            .await?
            {
                Ok(Settled::DeadLettered)
            } else {
                Err(self.lost())
            };
        }
        let n = sqlx::query(
            "UPDATE messages SET available_at = ?3, lease = NULL WHERE message_id = ?1 AND lease = ?2",
        )
        .bind(&self.message_id)
        .bind(&self.lease)
        .bind(now_ms() + ms(delay))
        .execute(&self.inner.settle_pool)
        .await?
        .rows_affected();
        if n == 1 {
            Ok(Settled::Retried)
        } else {
            Err(self.lost())
        }
    }

    async fn dead_letter(self: Box<Self>, reason: &str) -> Result<()> {
        if move_to_dead(
            &self.inner.settle_pool,
            &self.message_id,
            &self.lease,
            reason,
            Some(self.deliveries),
        )
        .await?
        {
            Ok(())
        } else {
            Err(self.lost())
        }
    }
}
