//! Stderr with the access lines batched (see the parent module).

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::Thread;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use super::{ACCESS_TARGET, BATCH_BYTES, FLUSH_AFTER};

/// A sink with the access lines batched (see the module docs): stderr in
/// production, a buffer in the tests.
#[derive(Clone)]
pub(super) struct BatchedWriter {
    batch: Arc<Batch>,
}

struct Batch {
    state: Mutex<BatchState>,
    /// Writes the batch [`FLUSH_AFTER`] after its first line.
    flusher: OnceLock<Thread>,
}

struct BatchState {
    /// Access lines not yet written.
    lines: Vec<u8>,
    sink: Box<dyn Write + Send>,
}

impl BatchState {
    /// Writes out and empties the batch.
    fn write_out(&mut self) -> std::io::Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let result = self.sink.write_all(&self.lines);
        self.lines.clear();
        result
    }
}

impl Batch {
    fn lock(&self) -> MutexGuard<'_, BatchState> {
        // A panic while holding the lock leaves at worst a partial batch.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BatchedWriter {
    /// Starts the flusher thread for `sink`.
    pub(super) fn start(sink: Box<dyn Write + Send>) -> Self {
        let batch = Arc::new(Batch {
            state: Mutex::new(BatchState {
                lines: Vec::with_capacity(BATCH_BYTES),
                sink,
            }),
            flusher: OnceLock::new(),
        });
        let for_thread = Arc::clone(&batch);
        let flusher = std::thread::Builder::new()
            .name("wxgate-log".into())
            .spawn(move || loop {
                // Unparked by the first line of a batch.
                std::thread::park();
                std::thread::sleep(FLUSH_AFTER);
                let _ = for_thread.lock().write_out();
            });
        match flusher {
            Ok(handle) => {
                let _ = batch.flusher.set(handle.thread().clone());
            }
            // Without the thread nothing is batched: every line is written at once.
            Err(e) => eprintln!("warning: no log flusher thread ({e}); access lines unbatched"),
        }
        BatchedWriter { batch }
    }
}

/// One line's writer: into the batch, or straight to the sink.
pub(super) struct LineWriter<'a> {
    batch: &'a Batch,
    batched: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut state = self.batch.lock();
        if self.batched {
            let first = state.lines.is_empty();
            state.lines.extend_from_slice(line);
            if state.lines.len() >= BATCH_BYTES {
                state.write_out()?;
            } else if first {
                if let Some(flusher) = self.batch.flusher.get() {
                    flusher.unpark();
                }
            }
        } else {
            // Earlier access lines first, to keep the order.
            state.write_out()?;
            state.sink.write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.batched {
            Ok(())
        } else {
            self.batch.lock().sink.flush()
        }
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            batch: &self.batch,
            batched: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            batch: &self.batch,
            batched: batched(meta.target(), *meta.level()) && self.batch.flusher.get().is_some(),
        }
    }
}

/// Access lines at `info` (or more verbose) wait in the batch; warnings and
/// errors, and every other line, are written at once.
fn batched(target: &str, level: Level) -> bool {
    // More verbose levels compare greater in `tracing`.
    target == ACCESS_TARGET && level >= Level::INFO
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A sink the test can read while the writer owns it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn line(writer: &BatchedWriter, target: &str, level: Level, text: &str) {
        let mut line = LineWriter {
            batch: &writer.batch,
            batched: batched(target, level),
        };
        line.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn access_lines_wait_and_other_lines_flush_them_in_order() {
        let sink = Shared::default();
        let writer = BatchedWriter::start(Box::new(sink.clone()));
        line(&writer, ACCESS_TARGET, Level::INFO, "a1\n");
        line(&writer, ACCESS_TARGET, Level::INFO, "a2\n");
        line(&writer, ACCESS_TARGET, Level::WARN, "w\n");
        line(&writer, "wxgate::other", Level::INFO, "o\n");
        line(&writer, ACCESS_TARGET, Level::INFO, "a3\n");
        // Everything up to the last direct line is out, in order (whether or
        // not the flusher has run yet).
        assert!(sink.text().starts_with("a1\na2\nw\no\n"), "{}", sink.text());
        // The flusher writes the rest without any further line.
        for _ in 0..500 {
            if sink.text().ends_with("a3\n") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(sink.text().ends_with("o\na3\n"), "{}", sink.text());
    }
}
