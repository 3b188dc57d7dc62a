//! The queues between a socket and its channels: a socket's outbox (what its channels send
//! the client), a channel's inbox (the client's events) and its info queue (`handle_info`).
//!
//! Each is a multi-producer, single-consumer queue under one lock, about 150 bytes with its
//! first few slots. tokio's `mpsc` channel is built for contended, high-rate queues: its
//! shared state is cache-padded (512 bytes) and it allocates a 32-slot block up front (up to
//! 544 bytes here), and its `send` future is 184 bytes, part of every channel's future. With
//! three queues per joined channel that was over 2 KiB of every idle connection (half of what
//! the rest of it costs). These queues are polled by one task each (the socket's) and carry a
//! message per client event: a lock that is almost never contended is enough.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Where messages go in; cloned for each producer.
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// Where messages come out, in the order they were sent.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

struct Shared<T> {
    state: Mutex<State<T>>,
    /// At most this many messages wait; `usize::MAX` for no bound.
    capacity: usize,
}

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    /// The receiver was dropped: nothing is accepted any more.
    closed: bool,
    /// The receiver, waiting for a message or for the last sender to go.
    receiver: Option<Waker>,
    /// Senders waiting for room (a bounded queue full), woken when a message is taken.
    waiting_for_room: Vec<Waker>,
    /// Senders waiting for the receiver to go ([`Sender::closed`]); only its drop wakes them.
    waiting_for_close: Vec<Waker>,
}

/// A queue of at most `capacity` messages.
pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    new(capacity.max(1))
}

/// A queue without a bound: its producers bound it themselves.
pub(crate) fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new(usize::MAX)
}

fn new<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            closed: false,
            receiver: None,
            waiting_for_room: Vec::new(),
            waiting_for_close: Vec::new(),
        }),
        capacity,
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; a poisoned lock still holds a valid queue.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Adds the waker of the task polling to `wakers`, once.
fn register(wakers: &mut Vec<Waker>, waker: &Waker) {
    if !wakers.iter().any(|w| w.will_wake(waker)) {
        wakers.push(waker.clone());
    }
}

impl<T> Sender<T> {
    /// Queues `msg` now; gives it back when the queue is full or its receiver is gone.
    pub(crate) fn try_send(&self, msg: T) -> Result<(), T> {
        let mut state = self.0.lock();
        if state.closed || state.queue.len() >= self.0.capacity {
            return Err(msg);
        }
        state.queue.push_back(msg);
        let receiver = state.receiver.take();
        drop(state);
        if let Some(receiver) = receiver {
            receiver.wake();
        }
        Ok(())
    }

    /// Queues `msg`, waiting for room; gives it back when the receiver is gone.
    pub(crate) async fn send(&self, msg: T) -> Result<(), T> {
        let mut msg = Some(msg);
        poll_fn(|cx| {
            let mut state = self.0.lock();
            if state.closed {
                return Poll::Ready(Err(msg.take().expect("polled after completion")));
            }
            if state.queue.len() >= self.0.capacity {
                register(&mut state.waiting_for_room, cx.waker());
                return Poll::Pending;
            }
            state
                .queue
                .push_back(msg.take().expect("polled after completion"));
            let receiver = state.receiver.take();
            drop(state);
            if let Some(receiver) = receiver {
                receiver.wake();
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Resolves once the receiver is gone.
    pub(crate) async fn closed(&self) {
        poll_fn(|cx| {
            let mut state = self.0.lock();
            if state.closed {
                return Poll::Ready(());
            }
            register(&mut state.waiting_for_close, cx.waker());
            Poll::Pending
        })
        .await
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Sender(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.senders -= 1;
        let receiver = if state.senders == 0 {
            state.receiver.take()
        } else {
            None
        };
        drop(state);
        if let Some(receiver) = receiver {
            receiver.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and the queue is empty.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`recv`](Self::recv) as a poll, for a stream built on the queue.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.lock();
        if let Some(msg) = state.queue.pop_front() {
            // A full queue has room again: its waiting senders try once more.
            let waiting = std::mem::take(&mut state.waiting_for_room);
            drop(state);
            waiting.into_iter().for_each(Waker::wake);
            return Poll::Ready(Some(msg));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        state.receiver = Some(cx.waker().clone());
        // A queue emptied after a burst gives its memory back.
        if state.queue.capacity() > IDLE_CAPACITY {
            state.queue.shrink_to(IDLE_CAPACITY);
        }
        Poll::Pending
    }

    /// The next message if one is queued, without waiting.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let mut state = self.0.lock();
        let msg = state.queue.pop_front()?;
        let waiting = std::mem::take(&mut state.waiting_for_room);
        drop(state);
        waiting.into_iter().for_each(Waker::wake);
        Some(msg)
    }
}

/// Slots an empty queue keeps (a burst grows it; waiting shrinks it back).
const IDLE_CAPACITY: usize = 4;

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.closed = true;
        let queued = std::mem::take(&mut state.queue);
        let mut waiting = std::mem::take(&mut state.waiting_for_room);
        waiting.append(&mut state.waiting_for_close);
        drop(state);
        // Dropped outside the lock: a message may hold a sender of this very queue.
        drop(queued);
        waiting.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn messages_come_out_in_order_until_every_sender_is_gone() {
        let (tx, mut rx) = unbounded();
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        tx2.send(2).await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), None);
        drop(tx2);
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_try_send_and_makes_send_wait_for_room() {
        let (tx, mut rx) = bounded(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(3));
        let waiting = tokio::spawn(async move { tx.send(3).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "no room yet");
        assert_eq!(rx.recv().await, Some(1));
        waiting.await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn senders_learn_that_the_receiver_is_gone() {
        let (tx, rx) = bounded(1);
        tx.try_send(1).unwrap();
        let waiting = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(2).await })
        };
        let closed = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.closed().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(2));
        closed.await.unwrap();
        assert_eq!(tx.try_send(3), Err(3));
    }

    #[test]
    fn taking_a_message_wakes_the_senders_waiting_for_room_not_those_waiting_for_the_close() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Context;

        use futures::task::{ArcWake, waker};

        struct Wakes(AtomicUsize);
        impl ArcWake for Wakes {
            fn wake_by_ref(this: &Arc<Self>) {
                this.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (tx, mut rx) = bounded(1);
        tx.try_send(1).unwrap();
        let (for_room, for_close) = (Arc::new(Wakes(0.into())), Arc::new(Wakes(0.into())));
        let mut send = std::pin::pin!(tx.send(2));
        let mut closed = std::pin::pin!(tx.closed());
        let room_waker = waker(Arc::clone(&for_room));
        let close_waker = waker(Arc::clone(&for_close));
        assert!(
            send.as_mut()
                .poll(&mut Context::from_waker(&room_waker))
                .is_pending()
        );
        assert!(
            closed
                .as_mut()
                .poll(&mut Context::from_waker(&close_waker))
                .is_pending()
        );
        assert_eq!(rx.try_recv(), Some(1));
        let wakes = |w: &Wakes| w.0.load(Ordering::Relaxed);
        assert_eq!((wakes(&for_room), wakes(&for_close)), (1, 0));
        drop(rx);
        assert_eq!(wakes(&for_close), 1);
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_message_from_another_task() {
        let (tx, mut rx) = unbounded();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.try_send("late").unwrap();
        });
        assert_eq!(rx.recv().await, Some("late"));
        sender.await.unwrap();
    }

    #[tokio::test]
    async fn an_emptied_queue_gives_back_the_room_a_burst_took() {
        let (tx, mut rx) = unbounded();
        for i in 0..1000 {
            tx.try_send(i).unwrap();
        }
        for _ in 0..1000 {
            rx.recv().await.unwrap();
        }
        // The receiver waits on an empty queue: its room shrinks back.
        let wait = tokio::time::timeout(Duration::from_millis(1), rx.recv()).await;
        assert!(wait.is_err());
        assert!(rx.0.lock().queue.capacity() <= IDLE_CAPACITY);
    }
}
