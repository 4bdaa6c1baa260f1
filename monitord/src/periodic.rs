//! A named thread that runs one job every so often until it is stopped: the compaction
//! timer and the host-down timer. Each such job opens its own database connection, so it
//! never runs on the writer and never stalls actix.

use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug)]
pub struct Periodic {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Periodic {
    /// Runs `job` every `every` (the first time after one period) on a thread named `name`.
    pub fn start(
        name: &str,
        every: Duration,
        mut job: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Periodic> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    job();
                }
            })?;
        Ok(Periodic { stop, thread })
    }

    /// Stops after the job in progress, if any.
    pub fn stop(self) {
        drop(self.stop);
        if self.thread.join().is_err() {
            tracing::error!("a timer thread panicked");
        }
    }
}
