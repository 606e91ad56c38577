//! Async clients called from blocking code: object_store (checkpoints on S3)
//! and tokio-postgres (the JobManager's shared database). Their futures run on
//! a small runtime of their own and the caller waits on a channel, which works
//! from any thread: a task thread, a blocking thread, or one of the cluster's
//! runtime (where `block_on` would panic).

use std::sync::OnceLock;

/// The runtime: two threads, started on first use.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("offload")
            .enable_all()
            .build()
            .expect("a runtime for async clients")
    })
}

/// The future was dropped before it answered (its runtime shut down).
#[derive(Debug, thiserror::Error)]
#[error("an async call was dropped before it answered")]
pub struct Dropped;

/// Runs `f` on the offload runtime and waits for its answer.
pub fn run<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> Result<T, Dropped> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().map_err(|_| Dropped)
}
