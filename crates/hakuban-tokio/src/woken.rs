//! Runs a connection's activities side by side in one task, polling only those that were woken.
//!
//! `tokio::select!` polls every branch whenever the task wakes. For a connection that costs a
//! read attempt each time the writer is woken to send: tungstenite zero-fills its read buffer
//! (4 KiB) before every attempt, and the timer re-registers its wakers: in S2 a quarter of the
//! router's instructions (callgrind) were those zero-fills. Here each activity has a waker of its
//! own that marks it and wakes the task; a poll runs the marked ones.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// What the activities' wakers share: which were woken, and the task to wake.
struct Marks {
    woken: [AtomicBool; 3],
    task: AtomicWaker,
}

/// The waker of activity `index`.
struct Mark {
    marks: Arc<Marks>,
    index: usize,
}

impl Wake for Mark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(woken) = self.marks.woken.get(self.index) {
            woken.store(true, Ordering::Release);
        }
        self.marks.task.wake();
    }
}

/// Polls three activities until one ends and returns its output; the others stay where they
/// stand, for the caller to drop. Each is polled first, then only after its own waker fired. An activity that
/// wakes itself (to let other tasks run first) is polled again on the task's next turn, as
/// under `select!`.
///
/// The activities are borrowed, pinned where the caller keeps them: taken by value they would be
/// stored twice in the connection's task (as arguments and as pinned locals), 3 KB more per
/// connection.
pub(crate) async fn first<T>(
    mut a: Pin<&mut impl Future<Output = T>>,
    mut b: Pin<&mut impl Future<Output = T>>,
    mut c: Pin<&mut impl Future<Output = T>>,
) -> T {
    let marks = Arc::new(Marks { woken: std::array::from_fn(|_| AtomicBool::new(true)), task: AtomicWaker::new() });
    let wakers: [Waker; 3] = std::array::from_fn(|index| Waker::from(Arc::new(Mark { marks: marks.clone(), index })));
    poll_fn(|cx| {
        // Registered before the marks are read: a wake-up after the reading wakes the task.
        marks.task.register(cx.waker());
        for (index, (woken, waker)) in marks.woken.iter().zip(&wakers).enumerate() {
            if !woken.swap(false, Ordering::AcqRel) {
                continue;
            }
            let mut cx = Context::from_waker(waker);
            let poll = match index {
                0 => a.as_mut().poll(&mut cx),
                1 => b.as_mut().poll(&mut cx),
                _ => c.as_mut().poll(&mut cx),
            };
            if poll.is_ready() {
                return poll;
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its polls; ready once `open` is set, pending (its waker kept) until then.
    struct Gate<'a> {
        polls: &'a AtomicUsize,
        open: &'a AtomicBool,
        waker: &'a std::sync::Mutex<Option<Waker>>,
        output: u32,
    }

    impl Future for Gate<'_> {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.open.load(Ordering::SeqCst) {
                return Poll::Ready(self.output);
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn only_the_woken_activity_is_polled_and_its_output_returned() {
        let polls = [AtomicUsize::new(0), AtomicUsize::new(0)];
        let open = [AtomicBool::new(false), AtomicBool::new(false)];
        let wakers = [std::sync::Mutex::new(None), std::sync::Mutex::new(None)];
        let mut a = Gate { polls: &polls[0], open: &open[0], waker: &wakers[0], output: 1 };
        let mut b = Gate { polls: &polls[1], open: &open[1], waker: &wakers[1], output: 2 };
        let mut never = pin!(std::future::pending());
        let mut both = pin!(first(Pin::new(&mut a), Pin::new(&mut b), never.as_mut()));
        let task_woken = Arc::new(Counter::default());
        let task_waker = Waker::from(task_woken.clone());
        let mut cx = Context::from_waker(&task_waker);

        assert!(both.as_mut().poll(&mut cx).is_pending());
        assert_eq!((polls[0].load(Ordering::SeqCst), polls[1].load(Ordering::SeqCst)), (1, 1));

        // Nothing woken: a spurious poll polls neither.
        assert!(both.as_mut().poll(&mut cx).is_pending());
        assert_eq!((polls[0].load(Ordering::SeqCst), polls[1].load(Ordering::SeqCst)), (1, 1));

        // The second is woken, not ready yet: the task is woken, only the second is polled.
        wakers[1].lock().unwrap().take().unwrap().wake();
        assert_eq!(task_woken.0.load(Ordering::SeqCst), 1);
        assert!(both.as_mut().poll(&mut cx).is_pending());
        assert_eq!((polls[0].load(Ordering::SeqCst), polls[1].load(Ordering::SeqCst)), (1, 2));

        // The first becomes ready and is woken: its output ends the wait.
        open[0].store(true, Ordering::SeqCst);
        wakers[0].lock().unwrap().take().unwrap().wake();
        assert_eq!(both.as_mut().poll(&mut cx), Poll::Ready(1));
        assert_eq!((polls[0].load(Ordering::SeqCst), polls[1].load(Ordering::SeqCst)), (2, 2));
    }

    #[test]
    fn an_activity_that_wakes_itself_runs_again_on_the_next_turn() {
        let mut turns = 0;
        let mut yielder = std::future::poll_fn(|cx| {
            turns += 1;
            if turns == 3 {
                return Poll::Ready("done");
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        });
        let (mut never, mut never_either) = (pin!(std::future::pending()), pin!(std::future::pending()));
        let mut both = pin!(first(Pin::new(&mut yielder), never.as_mut(), never_either.as_mut()));
        let task_woken = Arc::new(Counter::default());
        let task_waker = Waker::from(task_woken.clone());
        let mut cx = Context::from_waker(&task_waker);
        // Each turn polls it once (it is not polled again within the turn) and wakes the task.
        assert!(both.as_mut().poll(&mut cx).is_pending());
        assert_eq!(task_woken.0.load(Ordering::SeqCst), 1);
        assert!(both.as_mut().poll(&mut cx).is_pending());
        assert_eq!(task_woken.0.load(Ordering::SeqCst), 2);
        assert_eq!(both.as_mut().poll(&mut cx), Poll::Ready("done"));
    }

    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}
