//! A named thread that runs one job every so often until it is stopped: the compaction,
//! history and host-down timers. Their jobs read on connections of their own and hand their
//! writes to the writer (see [`crate::store::background`]), so they never stall actix; and
//! the thread runs at a lower priority ([`BACKGROUND_NICE`]), so on a busy machine their
//! reading and computing waits for ingest rather than the other way round.

use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug)]
pub struct Periodic {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

/// The nice value of the timers' threads (ingest's are at 0): when the CPUs are busy, a
/// timer thread gets about a tenth of the time a request handler or the writer gets, and all
/// of it when they are idle. Not 19: at saturation the passes must still keep pace.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`] (Linux keeps a nice value per
/// thread). A failure only costs ingest some CPU time: logged, not fatal.
pub fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
        tracing::debug!("cannot lower a background thread's priority: {e}");
    }
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
                lower_priority();
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
