//! A small pool of read-only connections. WAL lets them read while the writer commits.

use std::sync::Mutex;

use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::store::{Result, StoreError};

pub struct Readers {
    idle: Mutex<Vec<Connection>>,
    available: Semaphore,
}

impl Readers {
    pub fn new(conns: Vec<Connection>) -> Readers {
        Readers {
            available: Semaphore::new(conns.len()),
            idle: Mutex::new(conns),
        }
    }

    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .available
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the store is shut down".into()))?;
        let conn = self
            .idle
            .lock()
            .expect("reader pool lock")
            .pop()
            .expect("a permit guarantees an idle connection");
        let joined = tokio::task::spawn_blocking(move || {
            let result = f(&conn);
            (conn, result)
        })
        .await;
        match joined {
            Ok((conn, result)) => {
                self.idle.lock().expect("reader pool lock").push(conn);
                drop(permit);
                result
            }
            Err(e) => {
                // The connection went down with the task: the pool shrinks by one.
                permit.forget();
                Err(StoreError::Unavailable(format!("reader task failed: {e}")))
            }
        }
    }
}
