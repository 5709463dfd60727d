//! Group commit: one thread owns the only writing connection. It takes every write waiting
//! in its queue, runs them in one transaction (each inside its own savepoint, so one failing
//! write does not undo the others), commits once — one fsync — and only then answers each
//! caller. Many concurrent requests therefore share one fsync instead of paying one each.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Result, StoreError};

use super::backend;

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 1024;
/// Writes that may wait for the writer before callers wait to enqueue (back-pressure).
const QUEUE: usize = 16 * 1024;

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: Connection) -> Writer {
        let (jobs, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .expect("spawning the SQLite writer thread");
        Writer { jobs }
    }

    /// Runs `f` in the next group transaction; resolves once that transaction is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit: Result<()>| {
                let _ = tx.send(commit.and(result));
            })
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the store is shut down".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the store writer stopped".into()))?
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT job").map_err(backend)?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE job").map_err(backend)?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let begun = conn.execute_batch("BEGIN IMMEDIATE").map_err(backend);
        if let Err(e) = begun {
            for job in batch.drain(..) {
                // The job never ran; its completion reports the failure.
                drop(job);
                tracing::error!(error = %e, "sqlite writer could not begin a transaction");
            }
            continue;
        }
        let completions: Vec<Completion> = batch.drain(..).map(|job| job(&conn)).collect();
        let commit = conn.execute_batch("COMMIT").map_err(backend);
        if let Err(e) = &commit {
            tracing::error!(error = %e, writes = completions.len(), "sqlite commit failed");
            let _ = conn.execute_batch("ROLLBACK");
        }
        metrics::histogram!("hookrelay_store_group_commit_size").record(completions.len() as f64);
        for done in completions {
            done(commit.clone());
        }
    }
}
