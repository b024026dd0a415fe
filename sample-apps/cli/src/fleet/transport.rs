//! The network and the processor as a simulated device sees them, both at the transport,
//! so the SDK runs unmodified:
//!
//! - [`DropoutTransport`]: dropouts, a [`Transport`] that loses the network from a chosen
//!   SecAgg+ stage on (the device's upload for that stage and everything after it fail as a
//!   dead connection would), instead of any test hook inside the SDK;
//! - [`OnCore`]: the simulator's cores. Every phone has its own processor, but the
//!   simulator runs a thousand phones on a few cores: a device holds one of [`Cores`]'
//!   slots while it computes (everything between two of its requests) and gives it back for
//!   each request. Devices stay independent threads with their own connections and
//!   timing; only how many compute at the same instant is bounded, so each device's
//!   measured training, encoding and SecAgg+ times are its own work rather than a
//!   thousand-way time slice, and no device starves until its stage deadline. The time a
//!   device waits for a slot is the simulator's queue, not the network: [`OnCore::queued`]
//!   reports it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use covey_sdk::transport::{
    HttpMethod, Transport, TransportError, TransportRequest, TransportResponse,
};

/// The stages a device can drop out at, in protocol order (URL names).
pub const DROPOUT_STAGES: [&str; 4] = ["advertise_keys", "share_keys", "masked_input", "unmask"];

/// Forwards to `inner` until the device tries to upload its message for `stage`; from then
/// on every request fails with [`TransportError::Unreachable`].
#[derive(Debug)]
pub struct DropoutTransport<'a, T: Transport + ?Sized> {
    inner: &'a T,
    stage: Option<&'static str>,
    dropped: AtomicBool,
}

impl<'a, T: Transport + ?Sized> DropoutTransport<'a, T> {
    /// A transport that drops at `stage` (`None`: never).
    pub fn new(inner: &'a T, stage: Option<&'static str>) -> Self {
        DropoutTransport {
            inner,
            stage,
            dropped: AtomicBool::new(false),
        }
    }

    /// Whether the connection has been lost.
    pub fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    fn trips(&self, request: &TransportRequest) -> bool {
        self.stage.is_some_and(|stage| is_upload(request, stage))
    }
}

impl<T: Transport + ?Sized> Transport for DropoutTransport<'_, T> {
    fn send(&self, request: &TransportRequest) -> Result<TransportResponse, TransportError> {
        if self.trips(request) {
            self.dropped.store(true, Ordering::SeqCst);
        }
        if self.dropped() {
            return Err(TransportError::Unreachable(
                "simulated dropout: the device lost its connection".into(),
            ));
        }
        self.inner.send(request)
    }
}

/// Whether `request` uploads the device's message for `stage`.
fn is_upload(request: &TransportRequest, stage: &str) -> bool {
    request.method == HttpMethod::Post
        && request.path.split('?').next().is_some_and(|p| {
            p.strip_suffix(stage)
                .is_some_and(|p| p.ends_with("/stages/"))
        })
}

/// A fair (first come, first served) pool of compute slots shared by the simulated devices.
#[derive(Debug)]
pub struct Cores {
    state: Mutex<CoresState>,
}

#[derive(Debug)]
struct CoresState {
    free: usize,
    /// Devices waiting for a slot, in arrival order: a slot is handed to the first one.
    waiting: VecDeque<(Thread, Arc<AtomicBool>)>,
}

impl Cores {
    /// `slots` devices may compute at once (at least one).
    pub fn new(slots: usize) -> Self {
        Cores {
            state: Mutex::new(CoresState {
                free: slots.max(1),
                waiting: VecDeque::new(),
            }),
        }
    }

    /// One slot per core of this machine.
    pub fn of_this_machine() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Blocks until the calling thread holds a slot.
    fn acquire(&self) {
        let granted = Arc::new(AtomicBool::new(false));
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return;
            }
            state
                .waiting
                .push_back((std::thread::current(), Arc::clone(&granted)));
        }
        // `release` sets the flag before unparking; park may also wake spuriously.
        while !granted.load(Ordering::Acquire) {
            std::thread::park();
        }
    }

    /// Hands the caller's slot to the longest-waiting device, or frees it.
    fn release(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.waiting.pop_front() {
            Some((thread, granted)) => {
                granted.store(true, Ordering::Release);
                thread.unpark();
            }
            None => state.free += 1,
        }
    }
}

/// A device's transport on the simulator's [`Cores`]: created holding a slot (the device
/// starts computing), it gives the slot back for the duration of every request and takes
/// one again before returning, and gives it back when dropped.
#[derive(Debug)]
pub struct OnCore<'a, T: Transport + ?Sized> {
    inner: &'a T,
    cores: &'a Cores,
    holding: AtomicBool,
    queued_ns: AtomicU64,
    /// Of `queued_ns`: after the masked-input upload (which the SDK times as the upload).
    upload_queued_ns: AtomicU64,
}

impl<'a, T: Transport + ?Sized> OnCore<'a, T> {
    /// Waits for a slot, then forwards requests to `inner`.
    pub fn new(inner: &'a T, cores: &'a Cores) -> Self {
        cores.acquire();
        OnCore {
            inner,
            cores,
            holding: AtomicBool::new(true),
            queued_ns: AtomicU64::new(0),
            upload_queued_ns: AtomicU64::new(0),
        }
    }

    /// Time spent waiting for a slot inside requests so far (which the SDK, timing `send`
    /// from outside, counts as network time).
    pub fn queued(&self) -> Duration {
        Duration::from_nanos(self.queued_ns.load(Ordering::Relaxed))
    }

    /// Of [`OnCore::queued`]: the wait after the masked-input upload.
    pub fn queued_after_upload(&self) -> Duration {
        Duration::from_nanos(self.upload_queued_ns.load(Ordering::Relaxed))
    }

    /// Takes a slot back after `request`; returns how long that took.
    fn take_slot(&self) -> u64 {
        let started = Instant::now();
        self.cores.acquire();
        self.holding.store(true, Ordering::Release);
        let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.queued_ns.fetch_add(waited, Ordering::Relaxed);
        waited
    }

    fn give_slot(&self) {
        if self.holding.swap(false, Ordering::AcqRel) {
            self.cores.release();
        }
    }
}

impl<T: Transport + ?Sized> Transport for OnCore<'_, T> {
    fn send(&self, request: &TransportRequest) -> Result<TransportResponse, TransportError> {
        self.give_slot();
        let response = self.inner.send(request);
        let waited = self.take_slot();
        if is_upload(request, "masked_input") {
            self.upload_queued_ns.fetch_add(waited, Ordering::Relaxed);
        }
        response
    }
}

impl<T: Transport + ?Sized> Drop for OnCore<'_, T> {
    fn drop(&mut self) {
        self.give_slot();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Echo;
    impl Transport for Echo {
        fn send(&self, _: &TransportRequest) -> Result<TransportResponse, TransportError> {
            Ok(TransportResponse {
                status: 200,
                body: Vec::new(),
                retry_after_ms: None,
            })
        }
    }

    #[test]
    fn fails_from_the_chosen_stage_upload_on() {
        let t = DropoutTransport::new(&Echo, Some("share_keys"));
        let get = TransportRequest::get("/v1/rounds/3/stages/share_keys", None);
        assert!(t.send(&get).is_ok(), "fetching the stage is still possible");
        let other = TransportRequest::post("/v1/rounds/3/stages/advertise_keys", None, vec![1]);
        assert!(t.send(&other).is_ok());
        let upload = TransportRequest::post("/v1/rounds/3/stages/share_keys", None, vec![1]);
        assert!(t.send(&upload).is_err());
        assert!(t.dropped());
        assert!(t.send(&TransportRequest::get("/v1/plan", None)).is_err());
    }

    /// Counts how many devices compute at once (between their requests).
    struct Busy<'a> {
        computing: &'a AtomicUsize,
        most: &'a AtomicUsize,
    }

    impl Busy<'_> {
        fn compute(&self) {
            let now = self.computing.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            self.computing.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn no_more_devices_compute_at_once_than_there_are_slots() {
        let cores = Cores::new(2);
        let (computing, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let busy = Busy {
            computing: &computing,
            most: &most,
        };
        std::thread::scope(|scope| {
            for _ in 0..16 {
                scope.spawn(|| {
                    let device = OnCore::new(&Echo, &cores);
                    for _ in 0..5 {
                        busy.compute();
                        device
                            .send(&TransportRequest::get("/v1/plan", None))
                            .unwrap();
                    }
                    busy.compute();
                });
            }
        });
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "bounded by the slots, and used"
        );
        // Every slot came back: a new device gets one at once.
        let started = Instant::now();
        let again = OnCore::new(&Echo, &cores);
        drop(OnCore::new(&Echo, &cores));
        drop(again);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_device_waiting_for_a_slot_is_counted_as_queued() {
        let cores = Cores::new(1);
        let first = OnCore::new(&Echo, &cores);
        std::thread::scope(|scope| {
            let second = scope.spawn(|| {
                let device = OnCore::new(&Echo, &cores);
                // The slot it got in `new` is not request time.
                assert_eq!(device.queued(), Duration::ZERO);
                device
                    .send(&TransportRequest::get("/v1/plan", None))
                    .unwrap();
                device.queued()
            });
            // `first` computes while `second` waits, then requests (freeing the slot for
            // `second`), and computes again, keeping `second` queued after its request.
            std::thread::sleep(Duration::from_millis(30));
            first
                .send(&TransportRequest::get("/v1/plan", None))
                .unwrap();
            std::thread::sleep(Duration::from_millis(30));
            drop(first);
            let queued = second.join().unwrap();
            assert!(queued >= Duration::from_millis(20), "{queued:?}");
        });
    }

    #[test]
    fn never_drops_without_a_stage() {
        let t = DropoutTransport::new(&Echo, None);
        for stage in DROPOUT_STAGES {
            let upload =
                TransportRequest::post(format!("/v1/rounds/1/stages/{stage}"), None, vec![]);
            assert!(t.send(&upload).is_ok());
        }
        assert!(!t.dropped());
    }
}
