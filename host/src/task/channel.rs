//! In-memory channels between tasks: bounded, so a slow consumer
//! back-pressures its producers, and carrying control events in-band.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, TrySendError};

use super::{JobSignals, TaskError};
use crate::checkpoint::{Barrier, Mode};

/// What flows through a channel.
#[derive(Debug, Clone)]
pub enum Event {
    /// A packed batch of records.
    Data(Vec<u8>),
    /// Event time of this channel advanced to the value (ms).
    Watermark(i64),
    /// The producer has no records for a while (an idle source): leave this
    /// channel out of the watermark minimum until it sends records or a
    /// watermark again.
    Idle,
    /// A checkpoint barrier: everything before it is in the checkpoint.
    Barrier(Barrier),
    /// The channel's producer ended.
    End,
}

/// How long a blocked send waits before looking at the cancel flag again.
pub const CANCEL_POLL: Duration = Duration::from_millis(50);

/// The queue of a task's input gate, which all its channels' senders push into:
/// task threads block on it, the TaskManager's readers of remote streams wait on
/// it asynchronously (a thread per remote channel would not scale: a job's
/// channels grow with the square of its parallelism).
#[derive(Clone)]
pub struct GateQueue {
    tx: crossbeam_channel::Sender<(u32, Event)>,
    /// Told when the gate takes an event from a full queue: room for a waiting async sender.
    room: Arc<tokio::sync::Notify>,
}

impl GateQueue {
    /// Sends, waiting without a thread while the gate is full, until the job is cancelled.
    pub async fn send_async(&self, channel: u32, event: Event, signals: &JobSignals) -> Result<(), TaskError> {
        let mut item = (channel, event);
        loop {
            // Registered before trying, so that room made between the try and the wait wakes it.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) if !signals.cancelled() => item = back,
                Err(_) => return Err(TaskError::Cancelled),
            }
            tokio::select! {
                _ = room => {}
                _ = tokio::time::sleep(CANCEL_POLL) => {}
            }
        }
    }
}

/// A channel to a gate in another process (a QUIC stream), provided by the TaskManager.
pub trait RemoteSend: Send {
    /// Sends, blocking under back-pressure, until the job is cancelled.
    fn send(&mut self, event: Event, signals: &JobSignals) -> Result<(), TaskError>;
}

/// The sending end of one channel into a task's input gate.
pub enum Sender {
    /// A gate in this process.
    Local {
        /// The gate's queue, shared by all its channels.
        tx: GateQueue,
        /// This channel's index in the gate.
        channel: u32,
    },
    /// A gate in another TaskManager.
    Remote(Box<dyn RemoteSend>),
}

impl Sender {
    /// Sends, blocking while the gate is full (back-pressure), until the job is cancelled.
    pub fn send(&mut self, event: Event, signals: &JobSignals) -> Result<(), TaskError> {
        match self {
            Sender::Local { tx, channel } => send_local(tx, *channel, event, signals),
            Sender::Remote(remote) => remote.send(event, signals),
        }
    }
}

/// Sends into a local gate, waking up now and then to notice cancellation.
pub fn send_local(
    tx: &GateQueue,
    channel: u32,
    mut event: Event,
    signals: &JobSignals,
) -> Result<(), TaskError> {
    loop {
        match tx.tx.send_timeout((channel, event), CANCEL_POLL) {
            Ok(()) => return Ok(()),
            Err(SendTimeoutError::Timeout((_, e))) if !signals.cancelled() => event = e,
            Err(_) => return Err(TaskError::Cancelled),
        }
    }
}

/// A task's inputs: every upstream subtask's channel, merged into one queue.
pub struct InputGate {
    rx: Receiver<(u32, Event)>,
    /// Wakes async senders waiting for room (`GateQueue::send_async`).
    room: Arc<tokio::sync::Notify>,
    /// Latest watermark of each channel.
    watermarks: Vec<i64>,
    /// Channels that have ended.
    ended: Vec<bool>,
    /// Channels marked idle by their producer.
    idle: Vec<bool>,
    /// Whether the task was told that every open channel is idle.
    all_idle: bool,
    /// Channels still open.
    open: usize,
    /// The watermark last reported (minimum over channels).
    current: i64,
    /// Whether channels that delivered a barrier wait for the others.
    mode: Mode,
    /// The barrier being aligned and the channels that delivered it.
    aligning: Option<(Barrier, Vec<bool>)>,
    /// Events held back from aligned channels (exactly-once), in arrival order.
    blocked: VecDeque<(u32, Event)>,
    /// Held-back events to hand out before reading the queue again.
    replay: VecDeque<(u32, Event)>,
    /// Time spent waiting on the empty queue, in nanoseconds: the task's idle time.
    waited_ns: u64,
    /// For a two-input operator, which channels feed its second input (their records are
    /// marked so; the others' marks are cleared); empty for every other task.
    second_input: Vec<bool>,
}

/// What the gate hands to its task.
#[derive(Debug)]
pub enum GateEvent {
    /// Nothing for the task before the timeout.
    Timeout,
    /// Records.
    Data(Vec<u8>),
    /// The minimum watermark over all channels advanced.
    Watermark(i64),
    /// Every open channel became idle: the task's outputs are idle too.
    Idle,
    /// Every open channel delivered this barrier.
    Barrier(Barrier),
    /// Every channel ended.
    End,
}

/// A gate with `channels` channels and room for `capacity` events, aligning
/// barriers per `mode`; returns the gate and the queue its channels' senders push into.
pub fn channel(channels: u32, capacity: usize, mode: Mode) -> (InputGate, GateQueue) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let room = Arc::new(tokio::sync::Notify::new());
    let n = channels as usize;
    let gate = InputGate {
        rx,
        room: room.clone(),
        watermarks: vec![i64::MIN; n],
        ended: vec![false; n],
        idle: vec![false; n],
        all_idle: false,
        open: n,
        current: i64::MIN,
        mode,
        aligning: None,
        blocked: VecDeque::new(),
        replay: VecDeque::new(),
        waited_ns: 0,
        second_input: Vec::new(),
    };
    (gate, GateQueue { tx, room })
}

impl InputGate {
    /// Makes this the gate of a two-input operator whose second input is `channels`.
    pub fn set_second_input(&mut self, channels: impl IntoIterator<Item = u32>) {
        self.second_input = vec![false; self.watermarks.len()];
        for c in channels {
            self.second_input[c as usize] = true;
        }
    }

    /// Time spent waiting for input so far, in nanoseconds.
    pub fn waited_ns(&self) -> u64 {
        self.waited_ns
    }

    /// Events waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// Room of the queue, in events.
    pub fn capacity(&self) -> usize {
        self.rx.capacity().unwrap_or(0)
    }

    /// The next event, waiting at most `timeout`.
    pub fn next(&mut self, timeout: Duration, signals: &JobSignals) -> Result<GateEvent, TaskError> {
        if self.open == 0 {
            return Ok(GateEvent::End);
        }
        let (channel, event) = match self.replay.pop_front() {
            Some(x) => x,
            None => {
                // Only an empty queue is waited on: taking a ready event costs no clock reads.
                let received = match self.rx.try_recv() {
                    Ok(x) => Ok(x),
                    Err(_) => {
                        let since = Instant::now();
                        let r = self.rx.recv_timeout(timeout.min(CANCEL_POLL));
                        self.waited_ns = self.waited_ns.saturating_add(since.elapsed().as_nanos() as u64);
                        r
                    }
                };
                // Taken from a full queue: a sender may be waiting for room.
                if received.is_ok() && self.rx.len() + 1 >= self.capacity() {
                    self.room.notify_waiters();
                }
                match received {
                    Ok(x) => x,
                    Err(RecvTimeoutError::Timeout) if !signals.cancelled() => return Ok(GateEvent::Timeout),
                    Err(_) => return Err(TaskError::Cancelled),
                }
            }
        };
        let c = channel as usize;
        if self.mode == Mode::ExactlyOnce && self.aligning.as_ref().is_some_and(|(_, got)| got[c]) {
            // This channel is past the barrier: its records belong to the next checkpoint.
            self.blocked.push_back((channel, event));
            return Ok(GateEvent::Timeout);
        }
        if !matches!(event, Event::Idle | Event::End | Event::Barrier(_)) {
            // Records or a watermark: the channel is active again.
            self.idle[c] = false;
            self.all_idle = false;
        }
        match event {
            Event::Data(mut batch) => {
                if let Some(&second) = self.second_input.get(c) {
                    crate::framing::mark_input(&mut batch, second);
                }
                Ok(GateEvent::Data(batch))
            }
            Event::Watermark(wm) => {
                self.watermarks[c] = self.watermarks[c].max(wm);
                Ok(self.advance())
            }
            Event::Idle => {
                self.idle[c] = true;
                Ok(self.advance())
            }
            Event::Barrier(b) => {
                let n = self.ended.len();
                let (_, got) = self.aligning.get_or_insert_with(|| (b, vec![false; n]));
                got[c] = true;
                Ok(self.aligned())
            }
            Event::End => {
                if !self.ended[c] {
                    self.ended[c] = true;
                    self.open -= 1;
                }
                if self.open == 0 {
                    return Ok(GateEvent::End);
                }
                match self.aligned() {
                    GateEvent::Timeout => Ok(self.advance()),
                    barrier => Ok(barrier),
                }
            }
        }
    }

    /// The barrier being aligned, once every open channel delivered it;
    /// the held-back events are then handed out again.
    fn aligned(&mut self) -> GateEvent {
        let Some((barrier, got)) = &self.aligning else { return GateEvent::Timeout };
        if (0..got.len()).any(|c| !got[c] && !self.ended[c]) {
            return GateEvent::Timeout;
        }
        let barrier = *barrier;
        self.aligning = None;
        let mut replay = std::mem::take(&mut self.blocked);
        replay.append(&mut self.replay);
        self.replay = replay;
        GateEvent::Barrier(barrier)
    }

    /// The minimum watermark over the channels open and not idle, if it
    /// advanced; idleness once every open channel is idle (Flink's rule).
    fn advance(&mut self) -> GateEvent {
        let active = (0..self.watermarks.len()).filter(|&c| !self.ended[c] && !self.idle[c]);
        match active.map(|c| self.watermarks[c]).min() {
            Some(wm) if wm > self.current => {
                self.current = wm;
                GateEvent::Watermark(wm)
            }
            Some(_) => GateEvent::Timeout,
            None if self.all_idle => GateEvent::Timeout,
            None => {
                self.all_idle = true;
                GateEvent::Idle
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(gate: &mut InputGate, tx: &GateQueue, channel: u32, event: Event) -> GateEvent {
        let signals = JobSignals::default();
        send_local(tx, channel, event, &signals).unwrap();
        gate.next(Duration::from_secs(1), &signals).unwrap()
    }

    #[test]
    fn idle_channels_leave_the_minimum_until_they_send_again() {
        let (mut gate, tx) = channel(2, 8, Mode::ExactlyOnce);
        assert!(matches!(feed(&mut gate, &tx, 0, Event::Watermark(10)), GateEvent::Timeout));
        // Channel 1 goes idle: channel 0 alone holds the minimum.
        assert!(matches!(feed(&mut gate, &tx, 1, Event::Idle), GateEvent::Watermark(10)));
        assert!(matches!(feed(&mut gate, &tx, 0, Event::Watermark(20)), GateEvent::Watermark(20)));
        // Channel 1 is back, behind: the minimum waits for it again.
        assert!(matches!(feed(&mut gate, &tx, 1, Event::Watermark(15)), GateEvent::Timeout));
        assert!(matches!(feed(&mut gate, &tx, 0, Event::Watermark(30)), GateEvent::Timeout));
        assert!(matches!(feed(&mut gate, &tx, 1, Event::Watermark(25)), GateEvent::Watermark(25)));
        // Both idle: the task's output becomes idle, once.
        assert!(matches!(feed(&mut gate, &tx, 0, Event::Idle), GateEvent::Timeout));
        assert!(matches!(feed(&mut gate, &tx, 1, Event::Idle), GateEvent::Idle));
        assert!(matches!(feed(&mut gate, &tx, 1, Event::Idle), GateEvent::Timeout));
        assert!(matches!(feed(&mut gate, &tx, 0, Event::Data(vec![])), GateEvent::Data(_)));
    }

    /// Pulls events until the gate hands out something other than a timeout.
    fn next_event(gate: &mut InputGate) -> GateEvent {
        let signals = JobSignals::default();
        loop {
            match gate.next(Duration::from_millis(10), &signals).unwrap() {
                GateEvent::Timeout => continue,
                e => return e,
            }
        }
    }

    #[test]
    fn exactly_once_holds_back_channels_past_the_barrier_until_it_is_aligned() {
        let (mut gate, tx) = channel(2, 8, Mode::ExactlyOnce);
        let b = Barrier { id: 1, stop: false };
        let signals = JobSignals::default();
        for (c, e) in [(0, Event::Barrier(b)), (0, Event::Data(b"after".to_vec())), (1, Event::Data(b"before".to_vec())), (1, Event::Barrier(b))] {
            send_local(&tx, c, e, &signals).unwrap();
        }
        // Channel 0's record after the barrier must wait: channel 1's before it goes first.
        assert!(matches!(next_event(&mut gate), GateEvent::Data(d) if d == b"before"));
        assert!(matches!(next_event(&mut gate), GateEvent::Barrier(x) if x == b));
        assert!(matches!(next_event(&mut gate), GateEvent::Data(d) if d == b"after"));
    }

    #[test]
    fn at_least_once_lets_records_pass_and_an_ended_channel_counts_as_aligned() {
        let (mut gate, tx) = channel(2, 8, Mode::AtLeastOnce);
        let b = Barrier { id: 7, stop: false };
        let signals = JobSignals::default();
        for (c, e) in [(0, Event::Barrier(b)), (0, Event::Data(b"after".to_vec())), (1, Event::End)] {
            send_local(&tx, c, e, &signals).unwrap();
        }
        assert!(matches!(next_event(&mut gate), GateEvent::Data(d) if d == b"after"));
        assert!(matches!(next_event(&mut gate), GateEvent::Barrier(x) if x == b));
    }
}
