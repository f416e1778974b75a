//! Waiting for several futures at once (the Worker's parallel sub-requests to the hubs of one
//! ingest batch). A tiny `join_all`: no executor of its own, so it runs on whatever drives the
//! request (the Workers runtime), and results come back in the order the futures were given.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs every future to completion, concurrently; their outputs in input order.
pub async fn join_all<T>(futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut futures: Vec<Option<Pin<Box<dyn Future<Output = T> + '_>>>> =
        futures.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        let mut pending = false;
        for (slot, result) in futures.iter_mut().zip(out.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(out.iter_mut().map(|r| r.take().expect("done")).collect())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_run_and_results_keep_their_order() {
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        let late = Box::pin(async move { rx.await.unwrap() });
        let early = Box::pin(async { 1u32 });
        let sender = Box::pin(async move {
            tx.send(2).unwrap();
            3u32
        });
        let got = futures::executor::block_on(join_all(vec![late, early, sender]));
        assert_eq!(got, [2, 1, 3]);
        let none: Vec<Pin<Box<dyn Future<Output = u32>>>> = vec![];
        assert!(futures::executor::block_on(join_all(none)).is_empty());
    }
}
