//! Reporters: turn the event stream into what people and tools read. They never touch Docker.
//!
//! A reporter says what it could not write and goes on with the next event; what that means
//! (a reader that went away, a run record half written) is the command line's to decide.

pub mod json;
pub mod junit;
pub mod plain;
pub mod records;
pub mod terminal;

use std::io;
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::events::Event;

pub trait Reporter: Send {
    /// Take one event; an error says what could not be written.
    fn handle(&mut self, event: &Event) -> Result<(), ReportError>;
}

/// What a reporter could not write.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The stream people or tools read (standard error, or standard output for JSON).
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
    #[error("cannot write the run record in {}: {source}", dir.display())]
    Record { dir: PathBuf, source: io::Error },
    #[error("cannot write the JUnit report {}: {source}", path.display())]
    Junit { path: PathBuf, source: io::Error },
}

impl ReportError {
    /// The reader went away (`berth run --output json | head -1`): nothing lost that anyone
    /// will read.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ReportError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// Several reporters fed the same events, in order. Each is fed every event, whatever it
/// failed to write before (a record may still be finished), and keeps its first error.
pub struct Fanout {
    reporters: Vec<Box<dyn Reporter>>,
    errors: Vec<Option<ReportError>>,
}

impl Fanout {
    pub fn new(reporters: Vec<Box<dyn Reporter>>) -> Self {
        let errors = reporters.iter().map(|_| None).collect();
        Fanout { reporters, errors }
    }

    pub fn handle(&mut self, event: &Event) {
        for (reporter, error) in self.reporters.iter_mut().zip(&mut self.errors) {
            if let Err(e) = reporter.handle(event) {
                error.get_or_insert(e);
            }
        }
    }

    /// Feed a run's events to the reporters until it ends; then what each could not write.
    pub async fn drain(mut self, mut events: mpsc::Receiver<Event>) -> Vec<ReportError> {
        while let Some(event) = events.recv().await {
            self.handle(&event);
        }
        self.finish()
    }

    /// Each reporter's first error. The reporters are dropped here (the live view leaves
    /// the terminal clean).
    pub fn finish(self) -> Vec<ReportError> {
        self.errors.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every write with `kind`, counting the events it was given.
    struct Failing(
        io::ErrorKind,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    );

    impl Reporter for Failing {
        fn handle(&mut self, _: &Event) -> Result<(), ReportError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(io::Error::from(self.0).into())
        }
    }

    #[test]
    fn every_reporter_gets_every_event_and_keeps_its_first_error() {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut fanout = Fanout::new(vec![
            Box::new(Failing(io::ErrorKind::BrokenPipe, seen.clone())),
            Box::new(Failing(io::ErrorKind::StorageFull, seen.clone())),
        ]);
        for _ in 0..3 {
            fanout.handle(&Event::Notice {
                message: "m".into(),
            });
        }
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 6);
        let errors = fanout.finish();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].is_broken_pipe());
        assert!(!errors[1].is_broken_pipe());
    }
}
