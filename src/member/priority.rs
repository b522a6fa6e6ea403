//! Signing goes first: a count, shared by every member driver in the process, of the members
//! signing an entry right now, so DKG work waits while it is above zero.
//!
//! An entry should be on chain within a few blocks of its request, while a DKG's phases last
//! many blocks; a DKG's share checks and phase ends take tens of milliseconds a member, so
//! done inline on the thread that also signs they held entries up by a second and more (many
//! members in one process, or a tab's one thread). The drivers defer DKG work while this
//! count is non-zero, at most [`MAX_DEFER`] at a time, so a signing round that never ends
//! cannot starve a DKG.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

/// How long DKG work waits for signing at most, before it runs anyway: well under a DKG
/// phase (at least 5 s), well over an entry's round.
pub const MAX_DEFER: Duration = Duration::from_secs(1);

static SIGNING: AtomicUsize = AtomicUsize::new(0);
/// Drivers waiting for the count to fall to zero.
static WAITING: Mutex<Vec<Waker>> = Mutex::new(Vec::new());

/// Whether some member in this process is signing an entry.
pub fn signing() -> bool {
    SIGNING.load(Ordering::Acquire) > 0
}

/// One driver's part of the count: set while its member signs, cleared when it stops (or the
/// driver ends).
#[derive(Default)]
pub struct Signing {
    counted: bool,
}

impl Signing {
    /// Counts this member as signing or not.
    pub fn set(&mut self, signing: bool) {
        if signing == self.counted {
            return;
        }
        self.counted = signing;
        if signing {
            SIGNING.fetch_add(1, Ordering::AcqRel);
        } else if SIGNING.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waiting = std::mem::take(&mut *WAITING.lock().unwrap_or_else(|e| e.into_inner()));
            for waker in waiting {
                waker.wake();
            }
        }
    }
}

impl Drop for Signing {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Resolves once no member in the process is signing.
pub fn done() -> impl Future<Output = ()> {
    Done
}

struct Done;

impl Future for Done {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !signing() {
            return Poll::Ready(());
        }
        let mut waiting = WAITING.lock().unwrap_or_else(|e| e.into_inner());
        // Checked again under the lock: the last signer wakes the list under it.
        if !signing() {
            return Poll::Ready(());
        }
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{atomic::AtomicUsize, Arc},
        task::{Context, Poll},
    };

    use futures::task::{waker, ArcWake};

    use super::*;

    #[derive(Default)]
    struct Woken(AtomicUsize);

    impl ArcWake for Woken {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    // One test: the count is the process's, so two tests side by side would see each other.
    #[test]
    fn dkg_waits_for_the_last_signer_and_is_woken_by_it() {
        let woken = Arc::new(Woken::default());
        let waker = waker(woken.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(!signing());
        assert_eq!(Box::pin(done()).as_mut().poll(&mut cx), Poll::Ready(()));

        let (mut first, mut second) = (Signing::default(), Signing::default());
        first.set(true);
        first.set(true);
        second.set(true);
        assert!(signing());
        let mut waiting = Box::pin(done());
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Pending);
        // Counted once however often it is set.
        first.set(false);
        assert!(signing(), "the second still signs");
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Pending);
        // A driver that ends while its member signs counts out.
        drop(second);
        assert!(!signing());
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(()));
    }
}
