//! The worker threads of a local run: one thread per core, each with a single-threaded tokio
//! runtime that the virtual users of that worker are spawned on (through its handle). A worker
//! is started by [`Worker::start`] and stopped, after its tasks, when it is dropped.

use std::thread;
use std::time::Duration;

/// A worker thread with its single-threaded runtime.
pub(super) struct Worker {
    pub(super) handle: tokio::runtime::Handle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Worker {
    pub(super) fn start(index: usize) -> std::io::Result<Worker> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name(format!("loads-vu-{index}"))
            .spawn(move || {
                runtime.block_on(async {
                    let _ = rx.await;
                });
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(Worker {
            handle,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
