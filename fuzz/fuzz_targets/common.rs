//! What the fuzz targets share.

use std::thread;

/// Stack size of a tokio worker thread, where the node decodes what peers send.
const WORKER_STACK: usize = 2 * 1024 * 1024;

/// Runs `work` on a thread with a worker's stack, so that input nested deeply enough
/// to exhaust a worker's stack crashes here too (libFuzzer's main thread has 8 MiB).
pub fn on_worker_stack<F: FnOnce() + Send>(work: F) {
    thread::scope(|scope| {
        let worker = thread::Builder::new()
            .stack_size(WORKER_STACK)
            .spawn_scoped(scope, work)
            .expect("spawning a fuzz worker thread");
        if let Err(panic) = worker.join() {
            std::panic::resume_unwind(panic);
        }
    });
}
