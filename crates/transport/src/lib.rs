//! Transport trait with RabbitMQ (lapin) and embedded (SQLite) implementations
