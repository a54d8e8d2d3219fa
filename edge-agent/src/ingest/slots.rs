//! The hand-off between ingest threads and analysis: one slot per camera holding only the
//! newest frame. Memory is bounded by one frame per camera; a frame that is replaced before
//! analysis took it is a drop (the caller counts it). Analysis takes frames round-robin so
//! a fast camera cannot starve the others.
//!
//! Several analysis workers share the slots ([`FrameSlots::claim`]): a camera whose frame a
//! worker is analysing is claimed until that worker releases it, so one camera's frames are
//! analysed one at a time and in order (its tracker and rules see time move forwards), while
//! other cameras' frames go to the other workers.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::infer::BgrImage;

/// A decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Index of the camera in the config.
    pub camera: usize,
    /// Capture time, UTC ms: the arrival time (`clock = "wall"`), or the stream's start plus
    /// the frame's timestamp (`clock = "stream"`, files by default).
    pub capture_ms: i64,
    /// The pixels.
    pub image: BgrImage,
}

/// What [`FrameSlots::take`] found.
#[derive(Debug)]
pub enum Take {
    /// A frame.
    Frame(Frame),
    /// Nothing arrived within the timeout.
    Timeout,
    /// Every camera has finished (or the slots were closed) and every slot is empty.
    Finished,
}

#[derive(Debug)]
struct State {
    slots: Vec<Option<Frame>>,
    finished: Vec<bool>,
    /// Cameras a worker holds (see [`FrameSlots::claim`]).
    claimed: Vec<bool>,
    next: usize,
    closed: bool,
}

/// Newest-frame slots, one per camera.
#[derive(Debug)]
pub struct FrameSlots {
    state: Mutex<State>,
    ready: Condvar,
}

impl FrameSlots {
    /// Slots for `cameras` cameras.
    pub fn new(cameras: usize) -> Self {
        Self {
            state: Mutex::new(State {
                slots: (0..cameras).map(|_| None).collect(),
                finished: vec![false; cameras],
                claimed: vec![false; cameras],
                next: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the newest frame of its camera; true if an unanalysed frame was replaced (a drop).
    pub fn put(&self, frame: Frame) -> bool {
        let mut s = self.lock();
        let i = frame.camera;
        let replaced = s.slots[i].replace(frame).is_some();
        drop(s);
        self.ready.notify_one();
        replaced
    }

    /// Puts a frame once its camera's slot is empty (the previous frame taken): nothing is
    /// dropped, the stream is held back to the analysis rate instead (recorded footage).
    /// False if the slots were closed meanwhile (the frame is discarded).
    pub fn put_when_free(&self, frame: Frame) -> bool {
        let i = frame.camera;
        let mut s = self.lock();
        while s.slots[i].is_some() && !s.closed {
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.closed {
            return false;
        }
        s.slots[i] = Some(frame);
        drop(s);
        self.ready.notify_all();
        true
    }

    /// Marks a camera as finished: it will put no more frames.
    pub fn finish(&self, camera: usize) {
        self.lock().finished[camera] = true;
        self.ready.notify_all();
    }

    /// Whether a camera has finished (puts no more frames).
    pub fn is_finished(&self, camera: usize) -> bool {
        self.lock().finished.get(camera).copied().unwrap_or(true)
    }

    /// Stops handing out frames; waiting takers return [`Take::Finished`].
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// The next frame, round-robin across cameras, waiting up to `timeout` (one taker: claims
    /// nothing).
    pub fn take(&self, timeout: Duration) -> Take {
        self.next_frame(timeout, false)
    }

    /// The next frame of a camera no other worker holds, round-robin across cameras, waiting
    /// up to `timeout`; the camera is then claimed by the caller until it calls
    /// [`FrameSlots::release`] (a newer frame of it waits in its slot meanwhile).
    pub fn claim(&self, timeout: Duration) -> Take {
        self.next_frame(timeout, true)
    }

    /// Claims `camera` when no worker holds it and no frame of it waits (a worker would take
    /// that frame soon): for work on a camera between frames (its tracks ageing). Release it
    /// with [`FrameSlots::release`].
    pub fn try_claim(&self, camera: usize) -> bool {
        let mut s = self.lock();
        if s.claimed[camera] || s.slots[camera].is_some() {
            return false;
        }
        s.claimed[camera] = true;
        true
    }

    /// Gives a claimed camera back: its next frame may go to any worker.
    pub fn release(&self, camera: usize) {
        self.lock().claimed[camera] = false;
        self.ready.notify_all();
    }

    fn next_frame(&self, timeout: Duration, claim: bool) -> Take {
        let mut s = self.lock();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if s.closed {
                return Take::Finished;
            }
            let n = s.slots.len();
            for k in 0..n {
                let i = (s.next + k) % n;
                if claim && s.claimed[i] {
                    continue;
                }
                if let Some(f) = s.slots[i].take() {
                    s.next = (i + 1) % n;
                    s.claimed[i] |= claim;
                    drop(s);
                    // Wakes an ingest thread waiting in `put_when_free`.
                    self.ready.notify_all();
                    return Take::Frame(f);
                }
            }
            if s.finished.iter().all(|f| *f) && s.slots.iter().all(Option::is_none) {
                return Take::Finished;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Take::Timeout;
            }
            s = self
                .ready
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_when_free_waits_for_the_taker_and_loses_nothing() {
        let slots = std::sync::Arc::new(FrameSlots::new(1));
        let producer = {
            let slots = slots.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    assert!(slots.put_when_free(frame(0, i)));
                }
                slots.finish(0);
            })
        };
        let mut seen = Vec::new();
        loop {
            match slots.take(Duration::from_secs(5)) {
                Take::Frame(f) => seen.push(f.capture_ms),
                Take::Timeout => panic!("producer stuck"),
                Take::Finished => break,
            }
        }
        producer.join().unwrap();
        assert_eq!(seen, (0..20).collect::<Vec<i64>>());
        // Closing releases a waiting producer.
        let slots = std::sync::Arc::new(FrameSlots::new(1));
        assert!(slots.put_when_free(frame(0, 1)));
        let waiting = {
            let slots = slots.clone();
            std::thread::spawn(move || slots.put_when_free(frame(0, 2)))
        };
        std::thread::sleep(Duration::from_millis(50));
        slots.close();
        assert!(!waiting.join().unwrap());
    }

    fn frame(camera: usize, t: i64) -> Frame {
        Frame {
            camera,
            capture_ms: t,
            image: BgrImage::new(1, 1, vec![0, 0, 0]).unwrap(),
        }
    }

    fn take(s: &FrameSlots) -> Option<Frame> {
        match s.take(Duration::from_millis(1)) {
            Take::Frame(f) => Some(f),
            _ => None,
        }
    }

    #[test]
    fn newest_frame_wins_and_replacement_is_reported() {
        let s = FrameSlots::new(1);
        assert!(!s.put(frame(0, 1)));
        assert!(s.put(frame(0, 2)));
        assert_eq!(take(&s).unwrap().capture_ms, 2);
        assert!(take(&s).is_none());
    }

    #[test]
    fn cameras_are_served_round_robin() {
        let s = FrameSlots::new(3);
        for round in 0..3 {
            for c in 0..3 {
                s.put(frame(c, round));
            }
            let order: Vec<usize> = (0..3).map(|_| take(&s).unwrap().camera).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2], "round {round}: {order:?}");
        }
    }

    #[test]
    fn finished_only_when_all_cameras_finished_and_drained() {
        let s = FrameSlots::new(2);
        s.put(frame(1, 5));
        s.finish(0);
        s.finish(1);
        assert!(matches!(s.take(Duration::ZERO), Take::Frame(_)));
        assert!(matches!(s.take(Duration::ZERO), Take::Finished));
    }

    #[test]
    fn a_claimed_camera_waits_for_its_release_while_other_cameras_are_served() {
        let s = FrameSlots::new(2);
        s.put(frame(0, 1));
        let claim = |s: &FrameSlots| match s.claim(Duration::ZERO) {
            Take::Frame(f) => Some((f.camera, f.capture_ms)),
            _ => None,
        };
        assert_eq!(claim(&s), Some((0, 1)));
        s.put(frame(0, 2));
        s.put(frame(1, 1));
        assert_eq!(
            claim(&s),
            Some((1, 1)),
            "camera 0 is held: camera 1 is served"
        );
        assert_eq!(claim(&s), None, "both held");
        assert!(!s.try_claim(0), "held");
        s.release(0);
        assert!(!s.try_claim(0), "a frame of it waits");
        assert_eq!(claim(&s), Some((0, 2)), "released: its newer frame comes");
        s.release(0);
        assert!(s.try_claim(0));
        assert!(!s.try_claim(0));
        s.release(0);
        s.release(1);
        s.finish(0);
        s.finish(1);
        assert!(matches!(s.claim(Duration::ZERO), Take::Finished));
    }

    #[test]
    fn a_released_camera_wakes_a_waiting_worker() {
        let s = std::sync::Arc::new(FrameSlots::new(1));
        s.put(frame(0, 1));
        assert!(matches!(s.claim(Duration::ZERO), Take::Frame(_)));
        s.put(frame(0, 2));
        let s2 = s.clone();
        let h = std::thread::spawn(move || s2.claim(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        s.release(0);
        assert!(matches!(h.join().unwrap(), Take::Frame(f) if f.capture_ms == 2));
    }

    #[test]
    fn waiting_taker_wakes_on_put_from_another_thread() {
        let s = std::sync::Arc::new(FrameSlots::new(1));
        let s2 = s.clone();
        let h = std::thread::spawn(move || s2.take(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        s.put(frame(0, 9));
        assert!(matches!(h.join().unwrap(), Take::Frame(f) if f.capture_ms == 9));
    }
}
