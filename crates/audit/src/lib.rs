//! Hash-chained audit journal on SQLite and PostgreSQL
