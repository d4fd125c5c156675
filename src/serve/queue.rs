//! The generation worker: one thread owns the model and answers queued questions in turn.
//!
//! The model is one instance using every core, so answers are generated one at a time; the
//! queue in front of it is bounded so a burst gets a quick 503 with Retry-After instead of a
//! growing wait. A request whose client went away (or timed out) is skipped, or stopped at
//! its next token.
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::answer::{ask, Answer, Defaults};
use crate::generate::Generator;
use crate::retrieve::hybrid::{Mode, Retriever};
use crate::safety::Screener;
use crate::serve::error::ApiError;

/// A validated question and its per-request settings.
#[derive(Debug, Clone)]
pub struct AskRequest {
    pub question: String,
    pub k: Option<usize>,
    pub mode: Mode,
    pub max_tokens: Option<usize>,
    /// Only evidence from articles these filters let through.
    pub filters: crate::retrieve::Filters,
}

/// What a waiting request hears from the worker.
#[derive(Debug)]
pub enum Event {
    /// A piece of the draft, as it is generated (not yet verified).
    Text(String),
    /// The verified answer.
    Done(Box<Answer>),
    /// The answer failed, with the status it means for the client.
    Failed(ApiError),
}

/// What a request's ticket and its job share: whether anyone still waits, and its place in
/// the in-flight count, given back exactly once (when the answer is done or the client leaves,
/// whichever comes first: a request nobody waits for is not "in flight").
struct Claim {
    cancel: AtomicBool,
    counted: AtomicBool,
    in_flight: Arc<AtomicUsize>,
}

impl Claim {
    fn release(&self) {
        if self.counted.swap(false, Ordering::AcqRel) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A queued request's handle: its events, and cancellation when dropped.
pub struct Ticket {
    pub events: UnboundedReceiver<Event>,
    claim: Arc<Claim>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.claim.cancel.store(true, Ordering::Relaxed);
        self.claim.release();
    }
}

/// The queue was full: come back in `retry_after_s`.
#[derive(Debug)]
pub struct QueueFull {
    pub retry_after_s: u64,
}

struct Job {
    request: AskRequest,
    events: UnboundedSender<Event>,
    claim: Arc<Claim>,
}

pub struct Queue {
    tx: mpsc::Sender<Job>,
    /// Requests admitted and not finished (waiting or being answered).
    in_flight: Arc<AtomicUsize>,
    /// Requests allowed to wait behind the one being answered.
    pub bound: usize,
    /// Answers produced (for /api/stats).
    pub answered: Arc<AtomicU64>,
    /// Duration of the last answer, for Retry-After.
    last_ms: Arc<AtomicU64>,
}

impl Queue {
    /// Starts the worker thread, which owns `generator`.
    pub fn start(
        mut generator: Box<dyn Generator + Send>,
        retriever: Arc<Retriever>,
        screener: Arc<Screener>,
        defaults: Defaults,
        bound: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicU64::new(0));
        let last_ms = Arc::new(AtomicU64::new(3000));
        let (done, last) = (answered.clone(), last_ms.clone());
        std::thread::Builder::new()
            .name("medlit-generate".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    if !job.claim.cancel.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let event =
                            answer_one(generator.as_mut(), &retriever, &screener, &defaults, &job);
                        if matches!(event, Event::Done(_)) {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        last.store(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                        // The client may be gone: nothing to do about it.
                        let _ = job.events.send(event);
                    }
                    job.claim.release();
                }
            })?;
        Ok(Queue {
            tx,
            in_flight,
            bound,
            answered,
            last_ms,
        })
    }

    /// Admits `request` unless `bound` requests already wait.
    pub fn submit(&self, request: AskRequest) -> Result<Ticket, QueueFull> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before > self.bound {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            let per = self.last_ms.load(Ordering::Relaxed).max(500);
            return Err(QueueFull {
                retry_after_s: (before as u64 * per).div_ceil(1000).max(1),
            });
        }
        let (events, rx) = unbounded_channel();
        let claim = Arc::new(Claim {
            cancel: AtomicBool::new(false),
            counted: AtomicBool::new(true),
            in_flight: self.in_flight.clone(),
        });
        let job = Job {
            request,
            events,
            claim: claim.clone(),
        };
        if self.tx.send(job).is_err() {
            // The worker is gone (it never panics out of its loop; this is shutdown).
            claim.release();
            return Err(QueueFull { retry_after_s: 60 });
        }
        Ok(Ticket { events: rx, claim })
    }

    /// Requests waiting or being answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

fn answer_one(
    generator: &mut dyn Generator,
    retriever: &Retriever,
    screener: &Screener,
    defaults: &Defaults,
    job: &Job,
) -> Event {
    let r = &job.request;
    let opts = defaults.options(r.mode, r.k, r.max_tokens, r.filters.clone());
    let cancel = &job.claim.cancel;
    let events = &job.events;
    // A panic in generation must not take the worker (and every later request) down.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        ask(
            retriever,
            generator,
            screener,
            &job.request.question,
            &opts,
            &mut |piece| {
                !cancel.load(Ordering::Relaxed)
                    && (piece.is_empty() || events.send(Event::Text(piece.into())).is_ok())
            },
        )
    }));
    match result {
        Ok(Ok(answer)) => Event::Done(Box::new(answer)),
        Ok(Err(e)) => Event::Failed(ApiError::from(&e)),
        Err(_) => {
            tracing::error!("answer generation panicked");
            Event::Failed(ApiError::internal("internal error while answering"))
        }
    }
}
