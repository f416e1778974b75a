//! The in-memory event bus every inbound dispatch goes through. The forwarder must see every item,
//! so it gets its own bounded mpsc: when it falls behind, the gateway reader waits (backpressure)
//! instead of anything being dropped. Other subscribers (metrics today, the voice tracker later) use
//! a broadcast channel, where a slow subscriber loses items and each loss is counted, never silent.

use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// One dispatch, already wrapped as the envelope the edge will receive (`d` as Discord sent it).
#[derive(Debug)]
pub struct Dispatch {
    /// The shard it came on.
    pub shard: u32,
    pub id: u64,
    /// Discord's `s`.
    pub seq: u64,
    pub session_id: Arc<str>,
    /// Discord's `t`.
    pub kind: Arc<str>,
    /// The `contracts::Envelope` as JSON (`gateway/envelope.rs`).
    pub json: Bytes,
    /// When the frame was read off the socket (for the forward latency histogram).
    pub received: std::time::Instant,
}

pub type Item = Arc<Dispatch>;

/// The publishing side, held by the gateway session.
#[derive(Clone)]
pub struct Bus {
    forward: mpsc::Sender<Item>,
    fanout: broadcast::Sender<Item>,
}

/// The forwarder's lossless subscription.
pub type ForwardRx = mpsc::Receiver<Item>;

/// The bus has no forwarder any more (it stopped): nothing can be delivered.
#[derive(Debug)]
pub struct Closed;

impl Bus {
    /// `capacity` bounds both the forwarder's queue and each broadcast subscriber's lag.
    pub fn new(capacity: usize) -> (Bus, ForwardRx) {
        let (forward, rx) = mpsc::channel(capacity.max(1));
        let (fanout, _) = broadcast::channel(capacity.max(1));
        (Bus { forward, fanout }, rx)
    }

    /// Publishes one dispatch; waits while the forwarder's queue is full.
    pub async fn publish(&self, item: Item) -> Result<(), Closed> {
        // No receivers is fine for the broadcast side.
        let _ = self.fanout.send(item.clone());
        self.forward.send(item).await.map_err(|_| Closed)
    }

    /// A lossy subscription for observers; see [`Subscriber::recv`].
    pub fn subscribe(&self) -> Subscriber {
        Subscriber(self.fanout.subscribe())
    }
}

pub struct Subscriber(broadcast::Receiver<Item>);

impl Subscriber {
    /// The next item; when this subscriber fell behind, `lagged` is called with how many it missed
    /// before the next item is returned. `None` once the bus is gone.
    pub async fn recv(&mut self, mut lagged: impl FnMut(u64)) -> Option<Item> {
        loop {
            match self.0.recv().await {
                Ok(item) => return Some(item),
                Err(broadcast::error::RecvError::Lagged(n)) => lagged(n),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seq: u64) -> Item {
        Arc::new(Dispatch {
            shard: 0,
            id: seq,
            seq,
            session_id: "s".into(),
            kind: "MESSAGE_CREATE".into(),
            json: Bytes::from_static(b"{}"),
            received: std::time::Instant::now(),
        })
    }

    #[tokio::test]
    async fn forwarder_never_misses_and_slow_observers_count_their_loss() {
        let (bus, mut rx) = Bus::new(4);
        let mut observer = bus.subscribe();
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move {
                for seq in 1..=20 {
                    bus.publish(item(seq)).await.unwrap();
                }
            })
        };
        let mut got = vec![];
        while got.len() < 20 {
            got.push(rx.recv().await.unwrap().seq);
        }
        publisher.await.unwrap();
        assert_eq!(got, (1..=20).collect::<Vec<_>>());

        let mut lost = 0;
        let first = observer.recv(|n| lost += n).await.unwrap();
        assert!(lost > 0, "observer should have lagged");
        assert_eq!(first.seq, lost + 1);
    }

    #[tokio::test]
    async fn publishing_without_a_forwarder_is_an_error() {
        let (bus, rx) = Bus::new(1);
        drop(rx);
        assert!(bus.publish(item(1)).await.is_err());
    }
}
