//! Group commit: one thread owns the only writing connection. It takes every write waiting
//! in its queue, runs them in one transaction (each inside its own savepoint, so one failing
//! write does not undo the others), commits once, and answers each caller once the commit is
//! on disk. Many concurrent requests therefore share one fsync instead of paying one each.
//!
//! The commit and the fsync are pipelined. The connection runs with `synchronous=NORMAL`, so
//! a commit only appends the transaction's frames to the write-ahead log; a second thread,
//! the syncer, then `fdatasync`s the log file and only after that answers the durable writes
//! of every commit that came before the sync. Meanwhile the writer goes on running the
//! writes that arrive, in a new transaction that it commits as soon as the syncer is free
//! (or the batch is full): the writer never waits for the disk (profiles showed it blocked in
//! fsync a quarter of the time), and a batch holds everything that arrived during one sync,
//! as large as when the writer itself waited, so no more log frames are written per write. This
//! is exactly what `synchronous=FULL` guarantees, moved off the writer: a write is answered
//! only after its frames are synced. Frames of an answered write are never overwritten
//! before a checkpoint has copied them into the database file and synced that file (SQLite
//! syncs the database after each checkpoint in this mode too).
//!
//! Writes come in two kinds. Durable ones (a publish, an API change) are answered after the
//! sync. Bookkeeping of the delivery engine (attempt outcomes, claims, leases) is *relaxed*:
//! answered at commit, which survives a process crash but may be lost with the machine's
//! power — and then the affected attempts are simply made again (at-least-once). Readers
//! may see a durable write between its commit and its sync, as they would see it between
//! its commit and its answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Result, StoreError};

use super::backend;

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 1024;
/// Writes that may wait for the writer before callers wait to enqueue (back-pressure).
const QUEUE: usize = 16 * 1024;

type Completion = Box<dyn FnOnce(Result<()>) + Send>;

/// A write that ran: `Err` when it failed outside a savepoint, so that whatever it wrote is
/// still in the transaction (which must then be rolled back).
type RunOutcome = std::result::Result<Completion, Completion>;

struct Job {
    durable: bool,
    run: Box<dyn FnOnce(&Connection) -> RunOutcome + Send>,
}

/// What the writer thread waits for: a write, or word that the syncer became free.
enum Msg {
    Job(Job),
    SyncerFree,
}

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Msg>,
    /// Completed syncs of the log (also the metric `hookrelay_store_syncs_total`).
    #[cfg_attr(not(test), allow(dead_code))]
    syncs: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer on `conn`, whose write-ahead log is the file `wal` (the database
    /// path with `-wal` appended).
    pub fn start(conn: Connection, wal: PathBuf) -> Writer {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (synced_tx, synced_rx) = std::sync::mpsc::channel();
        let syncs = Arc::new(AtomicU64::new(0));
        let syncer = Syncer {
            wal,
            commits: synced_rx,
            busy: Arc::new(AtomicBool::new(false)),
            // Weak, so that the writer still ends when the last `Writer` is dropped.
            writer: jobs.downgrade(),
            syncs: syncs.clone(),
        };
        let busy = syncer.busy.clone();
        std::thread::Builder::new()
            .name("sqlite-syncer".into())
            .spawn(move || syncer.run())
            .expect("spawning the SQLite syncer thread");
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, synced_tx, busy))
            .expect("spawning the SQLite writer thread");
        Writer { jobs, syncs }
    }

    #[cfg(test)]
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Runs `f` in the next group transaction; resolves once that transaction is committed
    /// and synced to disk.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(true, true, f).await
    }

    /// Like `write`, but without the savepoint that lets the other writes of its transaction
    /// commit when it fails: if it fails, the whole transaction is rolled back and every
    /// write in it is answered `Unavailable` (to be retried). For the hot writes (publish,
    /// inbound accept) that fail only when the store itself does: a savepoint per write
    /// copies every page the write touches once more (10-20% of a publish's writer time).
    pub async fn write_unguarded<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(true, false, f).await
    }

    /// Like `write`, but may resolve before the disk sync (see the module docs): only for
    /// writes whose loss in a power cut means repeated work, never lost work.
    pub async fn write_relaxed<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(false, true, f).await
    }

    async fn submit<T, F>(&self, durable: bool, guarded: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            durable,
            run: Box::new(move |conn| {
                let result = if guarded {
                    in_savepoint(conn, f)
                } else {
                    f(conn)
                };
                let failed_unguarded = !guarded && result.is_err();
                let done: Completion = Box::new(move |commit: Result<()>| {
                    let _ = tx.send(commit.and(result));
                });
                if failed_unguarded {
                    Err(done)
                } else {
                    Ok(done)
                }
            }),
        };
        self.jobs
            .send(Msg::Job(job))
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

/// Commits whose durable writes wait for the next sync of the log.
type AwaitingSync = Vec<(Completion, Result<()>)>;

/// The writes run in the open transaction: whether each is durable, and its completion.
type Ran = Vec<(bool, Completion)>;

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Msg>,
    syncer: std::sync::mpsc::Sender<AwaitingSync>,
    syncer_busy: Arc<AtomicBool>,
) {
    // Commits only append to the log; the syncer makes them durable (module docs).
    if let Err(e) = conn.execute_batch("PRAGMA synchronous = NORMAL") {
        tracing::error!(error = %e, "cannot set synchronous = NORMAL on the writer");
    }
    let mut ran: Ran = Vec::with_capacity(MAX_BATCH);
    loop {
        // With nothing run yet, or while the syncer is busy (a commit now would only wait
        // for it), sleep until something arrives; otherwise take what is already queued.
        let msg = if ran.is_empty() || syncer_busy.load(Ordering::Acquire) {
            match rx.blocking_recv() {
                Some(msg) => Some(msg),
                None => break,
            }
        } else {
            rx.try_recv().ok()
        };
        if let Some(Msg::Job(job)) = msg {
            if ran.is_empty()
                && let Err(e) = conn.execute_batch("BEGIN IMMEDIATE")
            {
                // The job never runs; dropping its completion reports the failure.
                tracing::error!(error = %e, "sqlite writer could not begin a transaction");
                continue;
            }
            match (job.run)(&conn) {
                Ok(done) => ran.push((job.durable, done)),
                Err(failed) => {
                    abort(&conn, &mut ran);
                    // Its own error, not the batch's: the others learn they may retry.
                    failed(Ok(()));
                    continue;
                }
            }
            if ran.len() < MAX_BATCH {
                continue;
            }
        }
        if !ran.is_empty() && (ran.len() >= MAX_BATCH || !syncer_busy.load(Ordering::Acquire)) {
            commit(&conn, &mut ran, &syncer, &syncer_busy);
        }
    }
    if !ran.is_empty() {
        commit(&conn, &mut ran, &syncer, &syncer_busy);
    }
}

/// Rolls back the open transaction after an unguarded write failed in it: the writes run
/// before it are undone with it, and told so.
fn abort(conn: &Connection, ran: &mut Ran) {
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::error!(error = %e, "sqlite rollback failed");
    }
    tracing::warn!(
        writes = ran.len(),
        "a write failed outside a savepoint; its transaction was rolled back"
    );
    for (_, done) in ran.drain(..) {
        done(Err(StoreError::Unavailable(
            "another write in the same transaction failed; nothing of this one was stored, retry it"
                .into(),
        )));
    }
}

/// Commits the open transaction: relaxed writes (and every write of a failed commit) are
/// answered now, durable ones go to the syncer.
fn commit(
    conn: &Connection,
    ran: &mut Ran,
    syncer: &std::sync::mpsc::Sender<AwaitingSync>,
    syncer_busy: &AtomicBool,
) {
    let commit = conn.execute_batch("COMMIT").map_err(backend);
    if let Err(e) = &commit {
        tracing::error!(error = %e, writes = ran.len(), "sqlite commit failed");
        let _ = conn.execute_batch("ROLLBACK");
    }
    metrics::histogram!("hookrelay_store_group_commit_size").record(ran.len() as f64);
    let mut awaiting = Vec::new();
    for (durable, done) in ran.drain(..) {
        if durable && commit.is_ok() {
            awaiting.push((done, commit.clone()));
        } else {
            done(commit.clone());
        }
    }
    if awaiting.is_empty() {
        return;
    }
    syncer_busy.store(true, Ordering::Release);
    if let Err(std::sync::mpsc::SendError(awaiting)) = syncer.send(awaiting) {
        for (done, _) in awaiting {
            done(Err(StoreError::Unavailable(
                "the store syncer stopped".into(),
            )));
        }
    }
}

/// The syncer: waits for commits, syncs the log once for all that arrived meanwhile, then
/// answers their durable writes. Ends when the writer does, after answering what it sent.
struct Syncer {
    wal: PathBuf,
    commits: std::sync::mpsc::Receiver<AwaitingSync>,
    /// Set by the writer when it hands over a commit, cleared here when all are answered.
    busy: Arc<AtomicBool>,
    writer: mpsc::WeakSender<Msg>,
    syncs: Arc<AtomicU64>,
}

impl Syncer {
    fn run(self) {
        let mut log: Option<std::fs::File> = None;
        while let Ok(first) = self.commits.recv() {
            self.busy.store(true, Ordering::Release);
            let mut waiting = first;
            while let Ok(more) = self.commits.try_recv() {
                waiting.extend(more);
            }
            let synced = sync(&self.wal, &mut log);
            if synced.is_ok() {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hookrelay_store_syncs_total").increment(1);
            }
            for (done, commit) in waiting {
                done(commit.and(synced.clone()));
            }
            // A commit handed over while this sync ran is taken on the next turn; clearing
            // `busy` meanwhile lets the writer commit early, which costs batching, not safety.
            self.busy.store(false, Ordering::Release);
            // Wake the writer if it holds an open transaction waiting for us. A full queue
            // needs no word: the writer is awake and will see `busy` cleared.
            if let Some(writer) = self.writer.upgrade() {
                let _ = writer.try_send(Msg::SyncerFree);
            }
        }
    }
}

/// `fdatasync` of the log file: any descriptor of the file flushes all of its written pages.
/// The log exists from the first commit until the store closes, and keeps its inode when a
/// checkpoint restarts it, so it is opened once.
fn sync(wal: &std::path::Path, log: &mut Option<std::fs::File>) -> Result<()> {
    if log.is_none() {
        let file = std::fs::File::open(wal).map_err(|e| {
            StoreError::Unavailable(format!("cannot open the write-ahead log to sync it: {e}"))
        })?;
        *log = Some(file);
    }
    let file = log.as_ref().expect("opened above");
    file.sync_data().map_err(|e| {
        tracing::error!(error = %e, "syncing the write-ahead log failed");
        *log = None;
        StoreError::Unavailable(format!("syncing the write-ahead log failed: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_wal(dir: &std::path::Path) -> (Connection, PathBuf) {
        let path = dir.join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        (conn, dir.join("t.db-wal"))
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<()> {
        move |c| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                .map_err(backend)?;
            Ok(())
        }
    }

    #[tokio::test]
    async fn durable_writes_are_answered_after_a_sync_and_relaxed_ones_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, wal) = open_wal(dir.path());
        let writer = Writer::start(conn, wal);
        writer.write(insert(1)).await.unwrap();
        assert_eq!(writer.syncs(), 1, "answered only after the log was synced");
        writer.write_relaxed(insert(2)).await.unwrap();
        assert_eq!(
            writer.syncs(),
            1,
            "a relaxed write does not wait for a sync"
        );
        let mode: i64 = writer
            .write_relaxed(|c| {
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))
                    .map_err(backend)
            })
            .await
            .unwrap();
        assert_eq!(mode, 1, "commits themselves do not sync (NORMAL)");
    }

    #[tokio::test]
    async fn concurrent_durable_writes_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, wal) = open_wal(dir.path());
        let writer = Writer::start(conn, wal);
        let writes: Vec<_> = (0..200)
            .map(|v| {
                let w = writer.clone();
                tokio::spawn(async move { w.write(insert(v)).await })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        let syncs = writer.syncs();
        assert!((1..200).contains(&syncs), "{syncs} syncs for 200 writes");
    }

    #[tokio::test]
    async fn a_failing_unguarded_write_rolls_back_its_whole_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, wal) = open_wal(dir.path());
        let writer = Writer::start(conn, wal);
        writer.write(insert(1)).await.unwrap();
        // Held up so that the next three writes share one transaction.
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let w = writer.clone();
            tokio::spawn(async move {
                w.write(move |_| {
                    let _ = held.recv();
                    Ok(())
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let before = tokio::spawn({
            let w = writer.clone();
            async move { w.write_unguarded(insert(2)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let failing = tokio::spawn({
            let w = writer.clone();
            // Inserts 3, then fails on the duplicate 1: nothing of it may stay.
            async move {
                w.write_unguarded(|c| {
                    insert(3)(c)?;
                    insert(1)(c)
                })
                .await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let after = tokio::spawn({
            let w = writer.clone();
            async move { w.write_unguarded(insert(4)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        hold.send(()).unwrap();
        let results = [
            blocker.await.unwrap(),
            before.await.unwrap(),
            failing.await.unwrap(),
            after.await.unwrap(),
        ];
        assert!(
            matches!(results[0], Err(StoreError::Unavailable(_))),
            "{results:?}"
        );
        assert!(
            matches!(results[1], Err(StoreError::Unavailable(_))),
            "{results:?}"
        );
        assert!(results[2].is_err() && !matches!(results[2], Err(StoreError::Unavailable(_))));
        assert!(
            results[3].is_ok(),
            "a later write runs in a new transaction: {results:?}"
        );
        let rows: Vec<i64> = writer
            .write(|c| {
                let mut s = c.prepare("SELECT v FROM t ORDER BY v").map_err(backend)?;
                let v = s.query_map([], |r| r.get(0)).map_err(backend)?;
                v.collect::<rusqlite::Result<_>>().map_err(backend)
            })
            .await
            .unwrap();
        assert_eq!(rows, [1, 4]);
    }

    #[tokio::test]
    async fn a_write_is_answered_with_an_error_when_the_log_cannot_be_synced() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, _) = open_wal(dir.path());
        let writer = Writer::start(conn, dir.path().join("missing-wal"));
        let e = writer.write(insert(1)).await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        writer.write_relaxed(insert(2)).await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_write_does_not_undo_the_others_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, wal) = open_wal(dir.path());
        let writer = Writer::start(conn, wal);
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
