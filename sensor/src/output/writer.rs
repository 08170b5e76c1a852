//! The writing pass of an output on a thread of its own
//! ([`super::Output::with_writer_thread`]): the caller's thread scores a
//! batch (detector, alerts, inventory, learner), hands the records over
//! with what it found and goes on to the next batch while this thread
//! annotates and writes them.
//!
//! Batches are written in the order they are handed over, so the lines are
//! the ones the caller's thread would write. At most [`DEPTH`] batches wait
//! (the caller blocks beyond), and the emptied vectors come back to be
//! filled again. A write error stops the writing: it is reported once, by
//! the next hand-over or by [`WriterThread::join`], and every later batch is
//! refused.

use super::{Mark, RecordLog};
use crate::error::SensorError;
use crossbeam_channel::{bounded, Receiver, Sender};
use flowlib::ConnRecord;
use std::io;
use std::thread::{self, JoinHandle};

/// Batches handed over and not yet written, at most.
const DEPTH: usize = 2;

/// A batch of records and their marks.
type Batch = (Vec<ConnRecord>, Vec<Mark>);

/// A [`RecordLog`] running on its own thread.
pub(super) struct WriterThread {
    /// `None` once closed (joining).
    batches: Option<Sender<Batch>>,
    /// Emptied vectors coming back.
    spares: Receiver<Batch>,
    /// The write error that stopped the thread.
    errors: Receiver<SensorError>,
    /// `None` once joined.
    handle: Option<JoinHandle<RecordLog>>,
    /// An error was reported: every later batch is refused.
    failed: bool,
    /// Where the records go, for the errors of this end.
    dest: String,
}

impl WriterThread {
    /// Moves `log` onto a new thread.
    pub(super) fn start(log: RecordLog) -> WriterThread {
        let (batches, to_write) = bounded::<Batch>(DEPTH);
        let (give_back, spares) = bounded::<Batch>(DEPTH + 2);
        let (report, errors) = bounded::<SensorError>(1);
        let dest = log.dest.clone();
        let handle = thread::Builder::new()
            .name("writer".to_owned())
            .spawn(move || run(log, &to_write, &give_back, &report))
            .expect("spawn writer thread");
        WriterThread {
            batches: Some(batches),
            spares,
            errors,
            handle: Some(handle),
            failed: false,
            dest,
        }
    }

    /// Hands `records` and their `marks` over, leaving emptied vectors in
    /// their place; the write error of an earlier batch, if there was one.
    pub(super) fn write(
        &mut self,
        records: &mut Vec<ConnRecord>,
        marks: &mut Vec<Mark>,
    ) -> Result<(), SensorError> {
        if let Ok(e) = self.errors.try_recv() {
            self.failed = true;
            return Err(e);
        }
        if self.failed {
            return Err(self.refused("an earlier write failed"));
        }
        let (spare_records, spare_marks) = self.spares.try_recv().unwrap_or_default();
        let batch = (
            std::mem::replace(records, spare_records),
            std::mem::replace(marks, spare_marks),
        );
        match &self.batches {
            Some(tx) if tx.send(batch).is_ok() => Ok(()),
            _ => {
                self.failed = true;
                Err(self.refused("the record writer thread stopped"))
            }
        }
    }

    /// Waits until every batch handed over is written; the log back (`None`
    /// if the thread panicked) and the write error not reported yet.
    pub(super) fn join(mut self) -> (Option<RecordLog>, Option<SensorError>) {
        let log = self.close();
        let failure = match (self.errors.try_recv(), &log) {
            (Ok(e), _) => Some(e),
            (Err(_), None) => Some(self.refused("the record writer thread stopped")),
            (Err(_), Some(_)) => None,
        };
        (log, failure)
    }

    /// Closes the hand-over and waits for the thread.
    fn close(&mut self) -> Option<RecordLog> {
        drop(self.batches.take());
        self.handle.take().and_then(|h| h.join().ok())
    }

    fn refused(&self, why: &str) -> SensorError {
        SensorError::Write {
            what: "records",
            dest: self.dest.clone(),
            written: 0,
            source: io::Error::other(why.to_owned()),
        }
    }
}

impl Drop for WriterThread {
    /// An output dropped without [`super::Output::finish`] (a run ended by
    /// an error) still writes the batches it handed over as complete,
    /// flushed lines before its thread goes.
    fn drop(&mut self) {
        self.close();
    }
}

/// The thread: writes each batch, sends the emptied vectors back.
fn run(
    mut log: RecordLog,
    batches: &Receiver<Batch>,
    give_back: &Sender<Batch>,
    report: &Sender<SensorError>,
) -> RecordLog {
    let mut failed = false;
    for (mut records, mut marks) in batches {
        if !failed {
            if let Err(e) = log.write_batch(&mut records, &marks, None) {
                failed = true;
                // Keep what can be kept: the complete lines.
                if let Some(rec) = &mut log.records {
                    let _ = rec.sink().commit();
                }
                let _ = report.send(e);
            }
            log.publish_written();
        }
        records.clear();
        marks.clear();
        let _ = give_back.try_send((records, marks));
    }
    log
}
