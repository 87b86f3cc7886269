//! [`HakubanStreamExt`]: stream helpers for producing "until something new arrives".

use std::future::Future;

use futures::future::{Either, select};
use futures::{Stream, StreamExt};

/// Extra combinators for streams, notably an [`ObjectStateSink`](crate::ObjectStateSink)'s params
/// stream.
pub trait HakubanStreamExt: Stream + Unpin + Sized {
    /// Runs `work` for each item, cancelling (dropping) the running `work` future as soon as the
    /// next item arrives or the stream ends. `context` is lent to each run and handed back when
    /// the stream ends, so state survives cancelled runs.
    ///
    /// The idiom for an exposer: `sink_params.for_each_till_next(ctx, async |ctx, _params| {
    /// loop { produce(ctx).await } })` produces until the sink is revoked.
    fn for_each_till_next<C, F>(mut self, mut context: C, mut work: F) -> impl Future<Output = C>
    where
        F: AsyncFnMut(&mut C, Self::Item),
    {
        async move {
            let mut item = self.next().await;
            while let Some(current) = item {
                let run = work(&mut context, current);
                let run = std::pin::pin!(run);
                item = match select(run, self.next()).await {
                    Either::Left(((), next)) => next.await,
                    Either::Right((next, _cancelled)) => next,
                };
            }
            context
        }
    }
}

impl<S: Stream + Unpin> HakubanStreamExt for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc;
    use futures::executor::block_on;

    #[test]
    fn runs_each_item_and_returns_the_context() {
        let items = futures::stream::iter([1, 2, 3]);
        let total = block_on(items.for_each_till_next(0, async |sum: &mut i32, item: i32| *sum += item));
        assert_eq!(total, 6);
    }

    #[test]
    fn next_item_cancels_the_running_work() {
        let (tx, rx) = mpsc::unbounded::<u32>();
        let result = block_on(async move {
            tx.unbounded_send(1).ok();
            let worker = rx.for_each_till_next(Vec::new(), async |seen: &mut Vec<u32>, item: u32| {
                seen.push(item);
                if item == 1 {
                    // Ask for the next item and then never finish: only cancellation ends this run.
                    tx.unbounded_send(2).ok();
                    tx.close_channel();
                    futures::future::pending::<()>().await;
                }
            });
            worker.await
        });
        assert_eq!(result, vec![1, 2]);
    }
}
