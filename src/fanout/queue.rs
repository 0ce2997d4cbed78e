//! A session's queue of broadcasts: bounded, filled by the fan-out under its lock and
//! drained by the session's own task.
//!
//! Most sessions are idle most of the time, so an empty queue holds no buffer: a
//! channel would keep a block of slots allocated per connection whether or not
//! anything is ever sent, about 1.5 KiB of an idle connection's memory. The buffer
//! grows with a burst and is given back once the session has drained it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

/// Slots a drained queue may keep for the next burst instead of freeing them.
const KEPT_WHEN_EMPTY: usize = 16;

/// A queue that holds at most `capacity` messages.
pub fn bounded(capacity: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            messages: VecDeque::new(),
            capacity,
            sender_gone: false,
            receiver_gone: false,
        }),
        ready: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared {
    state: Mutex<State>,
    /// Woken on each message and when the sender goes; one waiter, the receiver.
    ready: Notify,
}

struct State {
    messages: VecDeque<Bytes>,
    capacity: usize,
    sender_gone: bool,
    receiver_gone: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so poison is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The queue holds `capacity` messages already.
    Full,
    /// The receiver is gone.
    Closed,
}

/// Why no message was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing is queued now.
    Empty,
    /// Nothing is queued and the sender is gone: nothing ever will be.
    Closed,
}

/// The fan-out's end of a queue. Dropping it ends the queue once it is drained.
pub struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Queues `message` unless the queue is full or its receiver is gone.
    pub fn try_send(&self, message: Bytes) -> Result<(), SendError> {
        {
            let mut state = self.shared.state();
            if state.receiver_gone {
                return Err(SendError::Closed);
            }
            if state.messages.len() >= state.capacity {
                return Err(SendError::Full);
            }
            state.messages.push_back(message);
        }
        self.shared.ready.notify_one();
        Ok(())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.state().sender_gone = true;
        self.shared.ready.notify_one();
    }
}

/// The session's end of a queue.
pub struct Receiver {
    shared: Arc<Shared>,
}

impl Receiver {
    /// The next message; `None` once the queue is drained and its sender is gone.
    /// Cancel-safe: a message is only taken when this returns it.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.try_recv() {
                Ok(message) => return Some(message),
                Err(RecvError::Closed) => return None,
                // `notify_one` leaves a permit when nobody waits, so a message queued
                // between the check and this wait is not missed.
                Err(RecvError::Empty) => self.shared.ready.notified().await,
            }
        }
    }

    /// The next message if one is queued now.
    pub fn try_recv(&mut self) -> Result<Bytes, RecvError> {
        let mut state = self.shared.state();
        match state.messages.pop_front() {
            Some(message) => {
                if state.messages.is_empty() && state.messages.capacity() > KEPT_WHEN_EMPTY {
                    state.messages = VecDeque::new();
                }
                Ok(message)
            }
            None if state.sender_gone => Err(RecvError::Closed),
            None => Err(RecvError::Empty),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.state().receiver_gone = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> Bytes {
        Bytes::from(vec![n])
    }

    #[tokio::test]
    async fn messages_arrive_in_order_and_the_queue_ends_after_its_sender() {
        let (sender, mut receiver) = bounded(4);
        for n in 0..3 {
            sender.try_send(message(n)).unwrap();
        }
        drop(sender);

        for n in 0..3 {
            assert_eq!(receiver.recv().await, Some(message(n)));
        }
        assert_eq!(receiver.recv().await, None);
        assert_eq!(receiver.try_recv(), Err(RecvError::Closed));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_drained_one_takes_again() {
        let (sender, mut receiver) = bounded(2);
        sender.try_send(message(1)).unwrap();
        sender.try_send(message(2)).unwrap();
        assert_eq!(sender.try_send(message(3)), Err(SendError::Full));

        assert_eq!(receiver.try_recv(), Ok(message(1)));
        sender.try_send(message(3)).unwrap();
        assert_eq!(receiver.try_recv(), Ok(message(2)));
        assert_eq!(receiver.try_recv(), Ok(message(3)));
        assert_eq!(receiver.try_recv(), Err(RecvError::Empty));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_message_sent_later() {
        let (sender, mut receiver) = bounded(2);
        let waiting = tokio::spawn(async move { receiver.recv().await });
        tokio::task::yield_now().await;
        sender.try_send(message(7)).unwrap();
        assert_eq!(waiting.await.unwrap(), Some(message(7)));
    }

    #[tokio::test]
    async fn a_wait_given_up_in_a_select_loses_no_message() {
        let (sender, mut receiver) = bounded(2);
        tokio::select! {
            _ = receiver.recv() => panic!("nothing was sent yet"),
            () = tokio::task::yield_now() => {}
        }
        sender.try_send(message(1)).unwrap();
        assert_eq!(receiver.recv().await, Some(message(1)));
    }

    #[test]
    fn sending_to_a_dropped_receiver_is_refused_as_closed() {
        let (sender, receiver) = bounded(2);
        drop(receiver);
        assert_eq!(sender.try_send(message(1)), Err(SendError::Closed));
    }

    #[test]
    fn a_drained_queue_gives_its_burst_buffer_back() {
        let (sender, mut receiver) = bounded(1024);
        for n in 0..100 {
            sender.try_send(message(n)).unwrap();
        }
        while receiver.try_recv().is_ok() {}
        assert_eq!(receiver.shared.state().messages.capacity(), 0);
    }
}
