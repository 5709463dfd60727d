//! WAL checkpoints off the writer thread. SQLite's automatic checkpoint runs inside the
//! commit that crosses the threshold, so one unlucky group commit (and every request in it)
//! waited for the copy of the whole log into the database file. Here a thread of its own
//! copies the log in the background with `PASSIVE` checkpoints, which never block the
//! writer; the log then restarts from its beginning at a later commit. Only if readers keep
//! a passive checkpoint from ever finishing and the log grows past `RESTART_FRAMES` does it
//! use a `RESTART` checkpoint, which waits for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is copied back: a few times a second keeps it short under load, and
/// a checkpoint with nothing new to copy costs only a look at the log's header.
const INTERVAL: Duration = Duration::from_millis(250);
/// A log this long (~256 MiB) is brought back down even if that waits for readers.
const RESTART_FRAMES: i64 = 64 * 1024;

/// The running checkpointer; it stops (within `INTERVAL`) when this is dropped.
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn start(conn: Connection) -> Checkpointer {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("sqlite-checkpointer".into())
        .spawn(move || run(conn, &flag))
        .expect("spawning the SQLite checkpointer thread");
    Checkpointer { stop }
}

/// Frames left in the log after a checkpoint of `mode`.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok(r.get::<_, i64>(1)? - r.get::<_, i64>(2)?)
    })
}

fn run(conn: Connection, stop: &AtomicBool) {
    loop {
        std::thread::sleep(INTERVAL);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match checkpoint(&conn, "PASSIVE") {
            Ok(left) if left >= RESTART_FRAMES => {
                if let Err(e) = checkpoint(&conn, "RESTART") {
                    tracing::warn!(error = %e, "WAL restart checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_copied_into_the_database_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (v BLOB);",
            )
            .unwrap();
        for _ in 0..200 {
            writer
                .execute("INSERT INTO t (v) VALUES (zeroblob(8192))", [])
                .unwrap();
        }
        let db_len = || std::fs::metadata(&path).unwrap().len();
        let before = db_len();
        assert!(before < 100_000, "nothing copied yet: {before} bytes");
        let checkpointer = start(Connection::open(&path).unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while db_len() < 1_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was not checkpointed: {} bytes",
                db_len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(checkpointer);
    }
}
