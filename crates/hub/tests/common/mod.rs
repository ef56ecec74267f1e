//! What the hub's tests share: a fresh PostgreSQL database for a state store, on
//! `PASSERELLE_TEST_PG_URL` (under `CI`, a missing PostgreSQL fails the test).

#![allow(dead_code, clippy::print_stderr)] // each test binary uses part of it

use passerelle_hub::HubState;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Executor};

/// A throwaway database, dropped by `finish`.
pub struct PgDatabase {
    /// Where a `HubState::connect` finds it.
    pub url: String,
    admin: String,
    name: String,
}

impl PgDatabase {
    /// A new empty database; `None` (after saying why) when PostgreSQL is not
    /// configured outside CI.
    pub async fn new(prefix: &str) -> Option<Self> {
        let Ok(admin) = std::env::var("PASSERELLE_TEST_PG_URL") else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "PASSERELLE_TEST_PG_URL is not set and CI is: PostgreSQL tests cannot be skipped"
                );
            }
            eprintln!(
                "skipped: PASSERELLE_TEST_PG_URL is not set (start one with deploy/postgres/postgres.sh)"
            );
            return None;
        };
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut c = PgConnection::connect(&admin).await.expect("connect admin");
        c.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let _ = c.close().await;
        let (base, _) = admin.rsplit_once('/').expect("database in the url");
        Some(Self {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    pub async fn state(&self) -> HubState {
        HubState::connect(&self.url)
            .await
            .expect("open postgres state")
    }

    pub async fn finish(self) {
        self.drop_database().await;
    }

    /// `finish` for a harness that only holds a reference.
    pub async fn drop_database(&self) {
        if let Ok(mut c) = PgConnection::connect(&self.admin).await {
            let _ = c
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )))
                .await;
        }
    }
}
