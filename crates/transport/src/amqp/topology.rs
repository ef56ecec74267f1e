//! RabbitMQ topology as data: the code declares it, and `deploy/rabbitmq/definitions.json`
//! must describe the same thing (a test checks it).
//!
//! ```text
//! publish ──▶ {p}.work (topic) ──key=recipient──▶ {p}.q.{recipient} (quorum)
//!   retry ──▶ {p}.retry.{ms} (fanout) ──▶ {p}.retry.{ms} (quorum, TTL ms)
//!               └─ on expiry, dead-letter ──▶ {p}.requeue (direct) ──key=recipient──▶ {p}.q.{recipient}
//!   dead  ──▶ {p}.dead (direct) ──key=recipient──▶ {p}.dlq.{recipient} (quorum)
//!             ▲ also where {p}.q.{recipient} dead-letters (delivery limit, reject)
//! ```
//! Retry copies go back through `{p}.requeue`, not `{p}.work`, so that a retry reaches
//! only the queue it came from even if other queues bind wider patterns on `{p}.work`.
//! Recipient work queues are declared with `x-single-active-consumer` (unless configured
//! off): whatever the number of hub instances consuming a recipient, one at a time
//! receives, and the broker hands the queue to another when that consumer goes away.
//! Every dead-lettering is at-least-once (`x-dead-letter-strategy=at-least-once`, which
//! needs `x-overflow=reject-publish`), so a message is never lost between two queues.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::config::AmqpConfig;

/// A queue argument value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A string argument.
    Str(String),
    /// An integer argument.
    Int(i64),
    /// A boolean argument.
    Bool(bool),
}

/// An exchange to declare (always durable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeDecl {
    /// Name.
    pub name: String,
    /// `topic`, `direct` or `fanout`.
    pub kind: &'static str,
}

/// A queue to declare (always durable, quorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDecl {
    /// Name.
    pub name: String,
    /// `x-…` arguments.
    pub args: BTreeMap<String, Arg>,
}

/// A binding to declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingDecl {
    /// Source exchange.
    pub exchange: String,
    /// Destination queue.
    pub queue: String,
    /// Binding key.
    pub key: String,
}

/// Names derived from the prefix.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix`.
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }
    /// The topic exchange publishes go to.
    #[must_use]
    pub fn work(&self) -> String {
        format!("{}.work", self.prefix)
    }
    /// The direct exchange retry queues dead-letter into.
    #[must_use]
    pub fn requeue(&self) -> String {
        format!("{}.requeue", self.prefix)
    }
    /// The direct dead-letter exchange.
    #[must_use]
    pub fn dead(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    /// Exchange and queue of one retry level.
    #[must_use]
    pub fn retry(&self, ms: u64) -> String {
        format!("{}.retry.{ms}", self.prefix)
    }
    /// A recipient's work queue.
    #[must_use]
    pub fn queue(&self, recipient: &str) -> String {
        format!("{}.q.{recipient}", self.prefix)
    }
    /// Where a recipient's messages wait while its queue is declared anew
    /// ([`super::AmqpTransport::migrate_to_single_active`]).
    #[must_use]
    pub fn migration_queue(&self, recipient: &str) -> String {
        format!("{}.migrate.{recipient}", self.prefix)
    }
    /// A recipient's dead-letter queue.
    #[must_use]
    pub fn dead_queue(&self, recipient: &str) -> String {
        format!("{}.dlq.{recipient}", self.prefix)
    }
}

fn quorum_args() -> BTreeMap<String, Arg> {
    let mut a = BTreeMap::new();
    a.insert("x-queue-type".into(), Arg::Str("quorum".into()));
    a
}

fn at_least_once(a: &mut BTreeMap<String, Arg>, exchange: String) {
    a.insert("x-dead-letter-exchange".into(), Arg::Str(exchange));
    a.insert(
        "x-dead-letter-strategy".into(),
        Arg::Str("at-least-once".into()),
    );
    a.insert("x-overflow".into(), Arg::Str("reject-publish".into()));
}

/// What is declared once per prefix: exchanges and retry queues.
#[must_use]
pub fn base(cfg: &AmqpConfig) -> (Vec<ExchangeDecl>, Vec<QueueDecl>, Vec<BindingDecl>) {
    let n = Names::new(&cfg.prefix);
    let mut exchanges = vec![
        ExchangeDecl {
            name: n.work(),
            kind: "topic",
        },
        ExchangeDecl {
            name: n.requeue(),
            kind: "direct",
        },
        ExchangeDecl {
            name: n.dead(),
            kind: "direct",
        },
    ];
    let mut queues = Vec::new();
    let mut bindings = Vec::new();
    let mut levels = cfg.retry_delays_ms.clone();
    levels.sort_unstable();
    levels.dedup();
    for ms in levels {
        let name = n.retry(ms);
        exchanges.push(ExchangeDecl {
            name: name.clone(),
            kind: "fanout",
        });
        let mut args = quorum_args();
        args.insert(
            "x-message-ttl".into(),
            Arg::Int(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
        at_least_once(&mut args, n.requeue());
        queues.push(QueueDecl {
            name: name.clone(),
            args,
        });
        bindings.push(BindingDecl {
            exchange: name.clone(),
            queue: name,
            key: String::new(),
        });
    }
    (exchanges, queues, bindings)
}

/// What is declared per recipient: its work queue and its dead-letter queue.
#[must_use]
pub fn recipient(cfg: &AmqpConfig, recipient: &str) -> (Vec<QueueDecl>, Vec<BindingDecl>) {
    let n = Names::new(&cfg.prefix);
    let mut work = quorum_args();
    at_least_once(&mut work, n.dead());
    work.insert(
        "x-dead-letter-routing-key".into(),
        Arg::Str(recipient.to_owned()),
    );
    // RabbitMQ dead-letters once a message was returned more than the limit, so a
    // limit of max-1 allows exactly max deliveries.
    work.insert(
        "x-delivery-limit".into(),
        Arg::Int(i64::from(cfg.max_deliveries.saturating_sub(1))),
    );
    if cfg.single_active_consumer {
        work.insert("x-single-active-consumer".into(), Arg::Bool(true));
    }
    let mut dead = quorum_args();
    // Refuse rather than drop when a policy caps the dead-letter queue: a full
    // dead-letter queue then keeps messages in the work queue (at-least-once).
    dead.insert("x-overflow".into(), Arg::Str("reject-publish".into()));
    let queues = vec![
        QueueDecl {
            name: n.queue(recipient),
            args: work,
        },
        QueueDecl {
            name: n.dead_queue(recipient),
            args: dead,
        },
    ];
    let bindings = vec![
        BindingDecl {
            exchange: n.work(),
            queue: n.queue(recipient),
            key: recipient.to_owned(),
        },
        BindingDecl {
            exchange: n.requeue(),
            queue: n.queue(recipient),
            key: recipient.to_owned(),
        },
        BindingDecl {
            exchange: n.dead(),
            queue: n.dead_queue(recipient),
            key: recipient.to_owned(),
        },
    ];
    (queues, bindings)
}

fn arg_json(a: &Arg) -> Value {
    match a {
        Arg::Str(s) => json!(s),
        Arg::Int(i) => json!(i),
        Arg::Bool(b) => json!(b),
    }
}

/// The topology for these recipients in RabbitMQ's definitions format (exchanges,
/// queues, bindings; vhost `/`), without users or policies.
#[must_use]
pub fn definitions(cfg: &AmqpConfig, recipients: &[&str]) -> Value {
    let (exchanges, mut queues, mut bindings) = base(cfg);
    for r in recipients {
        let (q, b) = recipient(cfg, r);
        queues.extend(q);
        bindings.extend(b);
    }
    json!({
        "exchanges": exchanges.iter().map(|e| json!({
            "name": e.name, "vhost": "/", "type": e.kind, "durable": true,
            "auto_delete": false, "internal": false, "arguments": {}
        })).collect::<Vec<_>>(),
        "queues": queues.iter().map(|q| json!({
            "name": q.name, "vhost": "/", "durable": true, "auto_delete": false,
            "arguments": q.args.iter().map(|(k, v)| (k.clone(), arg_json(v))).collect::<serde_json::Map<_, _>>()
        })).collect::<Vec<_>>(),
        "bindings": bindings.iter().map(|b| json!({
            "source": b.exchange, "vhost": "/", "destination": b.queue,
            "destination_type": "queue", "routing_key": b.key, "arguments": {}
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deployed definitions must match what the code declares, or a broker loaded
    /// from the file would refuse the code's declarations (PRECONDITION_FAILED).
    /// JSON text with object keys sorted, whatever map type serde_json was built with.
    fn canon(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let parts: Vec<String> = keys
                    .into_iter()
                    .map(|k| format!("{}:{}", Value::String(k.clone()), canon(&m[k])))
                    .collect();
                format!("{{{}}}", parts.join(","))
            }
            Value::Array(a) => format!("[{}]", a.iter().map(canon).collect::<Vec<_>>().join(",")),
            other => other.to_string(),
        }
    }

    #[test]
    fn definitions_json_matches_the_code() {
        let file: Value =
            serde_json::from_str(include_str!("../../../../deploy/rabbitmq/definitions.json"))
                .unwrap();
        let recipients: Vec<String> = file["queues"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|q| {
                q["name"]
                    .as_str()?
                    .strip_prefix("passerelle.q.")
                    .map(str::to_owned)
            })
            .collect();
        assert!(
            !recipients.is_empty(),
            "definitions.json declares no recipient queue"
        );
        let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
        let cfg = AmqpConfig::new("amqp://localhost");
        let want = definitions(&cfg, &refs);
        for key in ["exchanges", "queues", "bindings"] {
            let mut a: Vec<String> = file[key].as_array().unwrap().iter().map(canon).collect();
            let mut b: Vec<String> = want[key].as_array().unwrap().iter().map(canon).collect();
            a.sort();
            b.sort();
            assert_eq!(
                a,
                b,
                "{key} differ; expected:\n{}",
                serde_json::to_string_pretty(&want[key]).unwrap()
            );
        }
        let policies = file["policies"].as_array().unwrap();
        assert!(!policies.is_empty());
    }

    #[test]
    fn work_queue_has_at_least_once_dead_lettering() {
        let cfg = AmqpConfig::new("amqp://localhost");
        let (q, _) = recipient(&cfg, "ml-059");
        let a = &q[0].args;
        assert_eq!(
            a["x-dead-letter-strategy"],
            Arg::Str("at-least-once".into())
        );
        assert_eq!(a["x-overflow"], Arg::Str("reject-publish".into()));
        assert_eq!(a["x-delivery-limit"], Arg::Int(4));
        assert_eq!(a["x-single-active-consumer"], Arg::Bool(true));
        let mut off = cfg.clone();
        off.single_active_consumer = false;
        let (q, _) = recipient(&off, "ml-059");
        assert!(!q[0].args.contains_key("x-single-active-consumer"));
        // Only the work queue: the dead letters are read by listing, not consumed.
        let (q, _) = recipient(&cfg, "ml-059");
        assert!(!q[1].args.contains_key("x-single-active-consumer"));
    }
}
