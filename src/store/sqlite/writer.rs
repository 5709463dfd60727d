//! Group commit: one thread owns the only writing connection. It takes every write waiting
//! in its queue, runs them in one transaction (each inside its own savepoint, so one failing
//! write does not undo the others), commits once — one fsync — and only then answers each
//! caller. Many concurrent requests therefore share one fsync instead of paying one each.
//!
//! Writes come in two kinds. Durable ones (a publish, an API change) are committed with
//! `synchronous=FULL`. Bookkeeping of the delivery engine (attempt outcomes, claims, leases)
//! is *relaxed*: a batch made only of those commits with `synchronous=NORMAL`, which in WAL
//! mode survives a process crash but may be lost with the machine's power — and then the
//! affected attempts are simply made again (at-least-once). The next FULL commit syncs the
//! log, relaxed writes before it included. Relaxed batches thus never wait on the disk, and
//! durable writes do not queue behind their fsyncs.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Result, StoreError};

use super::backend;

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 1024;
/// Writes that may wait for the writer before callers wait to enqueue (back-pressure).
const QUEUE: usize = 16 * 1024;

type Completion = Box<dyn FnOnce(Result<()>) + Send>;

struct Job {
    durable: bool,
    run: Box<dyn FnOnce(&Connection) -> Completion + Send>,
}

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

    /// Runs `f` in the next group transaction; resolves once that transaction is committed
    /// and synced to disk.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(true, f).await
    }

    /// Like `write`, but may resolve before the disk sync (see the module docs): only for
    /// writes whose loss in a power cut means repeated work, never lost work.
    pub async fn write_relaxed<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(false, f).await
    }

    async fn submit<T, F>(&self, durable: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            durable,
            run: Box::new(move |conn| {
                let result = in_savepoint(conn, f);
                Box::new(move |commit: Result<()>| {
                    let _ = tx.send(commit.and(result));
                })
            }),
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the store is shut down".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the store writer stopped".into()))?
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    // Prepared once per connection: parsing these for every write showed up in profiles.
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    run("SAVEPOINT job").map_err(backend)?;
    match f(conn) {
        Ok(v) => {
            run("RELEASE job").map_err(backend)?;
            Ok(v)
        }
        Err(e) => {
            let _ = run("ROLLBACK TO job");
            let _ = run("RELEASE job");
            Err(e)
        }
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut synced = true; // the connection opens with synchronous = FULL
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|j| j.durable);
        if durable != synced {
            let mode = if durable { "FULL" } else { "NORMAL" };
            match conn.execute_batch(&format!("PRAGMA synchronous = {mode}")) {
                Ok(()) => synced = durable,
                Err(e) => tracing::error!(error = %e, "cannot switch synchronous mode"),
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
        let completions: Vec<Completion> = batch.drain(..).map(|job| (job.run)(&conn)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(c: &Connection) -> Result<i64> {
        c.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(backend)
    }

    #[tokio::test]
    async fn durable_writes_sync_and_relaxed_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .unwrap();
        let writer = Writer::start(conn);
        const FULL: i64 = 2;
        const NORMAL: i64 = 1;
        assert_eq!(writer.write(synchronous).await.unwrap(), FULL);
        assert_eq!(writer.write_relaxed(synchronous).await.unwrap(), NORMAL);
        assert_eq!(writer.write(synchronous).await.unwrap(), FULL);
    }

    #[tokio::test]
    async fn a_failing_write_does_not_undo_the_others_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        let writer = Writer::start(conn);
        let insert = |v: i64| {
            let w = writer.clone();
            async move {
                w.write(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                        .map_err(backend)?;
                    Ok(())
                })
                .await
            }
        };
        let (a, b, c) = tokio::join!(insert(1), insert(1), insert(2));
        assert_eq!(
            [a.is_ok(), b.is_ok(), c.is_ok()]
                .iter()
                .filter(|ok| **ok)
                .count(),
            2
        );
        let n: i64 = writer
            .write(|c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .map_err(backend)
            })
            .await
            .unwrap();
        assert_eq!(n, 2);
    }
}
