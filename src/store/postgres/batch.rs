//! Group commit on PostgreSQL. One durable write per transaction costs one WAL flush each,
//! and the server coalesces only a few concurrent flushes: measured here, ~2,000
//! publishes/s with 64 clients, the connections waiting on `WALWrite`. So, as on SQLite,
//! durable writes that arrive together are committed together, then every caller gets its
//! answer. A few batches run at once, so the server's own parallelism is used and the next
//! batch forms while the previous ones commit.
//!
//! A batch fails as a whole: if it fails for a reason other than the server's
//! unavailability (say, a tenant deleted a moment ago, so one row's foreign key fails), each
//! of its writes is retried alone, and only the culprit fails.

use std::future::Future;
use std::sync::Arc;

use sqlx::postgres::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::store::{Result, StoreError};

/// Most writes committed together.
const MAX_BATCH: usize = 512;
/// Batches being written at once.
const IN_FLIGHT: usize = 4;

/// One kind of write that can be committed in batches.
pub trait BatchWrite: Send + Sync + 'static {
    type Job: Send + 'static;
    type Out: Send + 'static;

    /// Writes `jobs` in one transaction and commits it; the answers, in order. An `Err`
    /// means nothing was committed.
    fn write(
        &self,
        pool: &PgPool,
        jobs: &[Self::Job],
    ) -> impl Future<Output = Result<Vec<Result<Self::Out>>>> + Send;
}

type Queued<W> = (
    <W as BatchWrite>::Job,
    oneshot::Sender<Result<<W as BatchWrite>::Out>>,
);

pub struct Batcher<W: BatchWrite> {
    jobs: mpsc::Sender<Queued<W>>,
}

impl<W: BatchWrite> Batcher<W> {
    pub fn start(pool: PgPool, write: W) -> Batcher<W> {
        let (jobs, rx) = mpsc::channel(16 * 1024);
        tokio::spawn(run(pool, Arc::new(write), rx));
        Batcher { jobs }
    }

    /// Queues `job` for the next batch; resolves once that batch is committed.
    pub async fn submit(&self, job: W::Job) -> Result<W::Out> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send((job, done))
            .await
            .map_err(|_| StoreError::Unavailable("the store is shut down".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the store's batch writer stopped".into()))?
    }
}

async fn run<W: BatchWrite>(pool: PgPool, write: Arc<W>, mut rx: mpsc::Receiver<Queued<W>>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Wait for a free slot first: while all are busy, writes gather into the next batch.
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let (pool, write) = (pool.clone(), write.clone());
        tokio::spawn(async move {
            write_batch(&pool, &*write, batch).await;
            drop(permit);
        });
    }
}

async fn write_batch<W: BatchWrite>(pool: &PgPool, write: &W, batch: Vec<Queued<W>>) {
    let (jobs, waiting): (Vec<W::Job>, Vec<_>) = batch.into_iter().unzip();
    match write.write(pool, &jobs).await {
        Ok(answers) => {
            for (done, answer) in waiting.into_iter().zip(answers) {
                let _ = done.send(answer);
            }
        }
        Err(e @ StoreError::Unavailable(_)) => {
            for done in waiting {
                let _ = done.send(Err(e.clone()));
            }
        }
        Err(e) if jobs.len() == 1 => {
            for done in waiting {
                let _ = done.send(Err(e.clone()));
            }
        }
        Err(_) => {
            // Find the culprit: each write alone.
            for (job, done) in jobs.into_iter().zip(waiting) {
                let answer = match write.write(pool, std::slice::from_ref(&job)).await {
                    Ok(mut answers) => answers
                        .pop()
                        .unwrap_or_else(|| Err(StoreError::Corrupt("no answer".into()))),
                    Err(e) => Err(e),
                };
                let _ = done.send(answer);
            }
        }
    }
}
