//! [`HakubanStreamExt`]: stream helpers for producing "until something new arrives".

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use futures::future::{Either, select};
use futures::{Stream, StreamExt};
use parking_lot::Mutex;

/// The context of [`HakubanStreamExt::for_each_till_next`], lent to one run of the work.
///
/// Dereferences to the context. When the run ends or is cancelled, dropping the `Lent` hands the
/// context back, so whatever the run changed is what the next run (or the caller) gets.
pub struct Lent<C> {
    value: Option<C>,
    home: Arc<Mutex<Option<C>>>,
}

impl<C> Deref for Lent<C> {
    type Target = C;

    fn deref(&self) -> &C {
        match &self.value {
            Some(value) => value,
            // `value` is only taken in `drop`.
            None => unreachable!("a Lent context is present until dropped"),
        }
    }
}

impl<C> DerefMut for Lent<C> {
    fn deref_mut(&mut self) -> &mut C {
        match &mut self.value {
            Some(value) => value,
            None => unreachable!("a Lent context is present until dropped"),
        }
    }
}

impl<C> Drop for Lent<C> {
    fn drop(&mut self) {
        *self.home.lock() = self.value.take();
    }
}

/// Extra combinators for streams, notably an [`ObjectStateSink`](crate::ObjectStateSink)'s params
/// stream.
pub trait HakubanStreamExt: Stream + Unpin + Sized {
    /// Runs `work` for each item, cancelling (dropping) the running `work` future as soon as the
    /// next item arrives or the stream ends. `context` is lent to each run as a [`Lent`] and
    /// handed back when the stream ends, so changes survive cancelled runs.
    ///
    /// The idiom for an exposer: split the sink, then produce until it is revoked:
    ///
    /// ```
    /// # use futures::{SinkExt, StreamExt};
    /// # use hakuban_core::{Exchange, HakubanStreamExt, ObjectState, JsonSerializeState};
    /// # futures::executor::block_on(async {
    /// # let exchange = Exchange::new();
    /// # let observe = exchange.object_observe_contract("clock").build();
    /// let mut expose = exchange.object_expose_contract("clock").build();
    /// let (states, params) = expose.next().await.unwrap().split();
    /// # drop(observe);
    /// let states = params
    ///     .for_each_till_next(states, |mut states, _params| async move {
    ///         states.send(ObjectState::new("tick").json_serialize()).await.ok();
    ///         // ... keep producing until the next params item (or the end) cancels this run.
    ///     })
    ///     .await;
    /// # drop(states);
    /// # });
    /// ```
    fn for_each_till_next<C, F, Fut>(mut self, context: C, mut work: F) -> impl Future<Output = C>
    where
        F: FnMut(Lent<C>, Self::Item) -> Fut,
        Fut: Future<Output = ()>,
    {
        async move {
            let home = Arc::new(Mutex::new(Some(context)));
            let mut item = self.next().await;
            while let Some(current) = item {
                let Some(value) = home.lock().take() else { break };
                let run = work(Lent { value: Some(value), home: home.clone() }, current);
                let run = std::pin::pin!(run);
                item = match select(run, self.next()).await {
                    Either::Left(((), next)) => next.await,
                    Either::Right((next, _cancelled)) => next,
                };
            }
            let context = home.lock().take();
            match context {
                Some(context) => context,
                // Every Lent was dropped before this point (runs are awaited or dropped in turn),
                // unless `work` leaked its Lent into a detached task: that is a caller bug.
                None => panic!("for_each_till_next: the work kept its Lent context beyond its run"),
            }
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
        let total = block_on(items.for_each_till_next(0, |mut sum, item| async move { *sum += item }));
        assert_eq!(total, 6);
    }

    #[test]
    fn next_item_cancels_the_running_work_and_keeps_its_changes() {
        let (tx, rx) = mpsc::unbounded::<u32>();
        tx.unbounded_send(1).ok();
        let result = block_on(rx.for_each_till_next(Vec::new(), |mut seen, item| {
            let tx = tx.clone();
            async move {
                seen.push(item);
                if item == 1 {
                    // Ask for the next item, then never finish: only cancellation ends this run.
                    tx.unbounded_send(2).ok();
                    tx.close_channel();
                    futures::future::pending::<()>().await;
                }
            }
        }));
        assert_eq!(result, vec![1, 2]);
    }
}
