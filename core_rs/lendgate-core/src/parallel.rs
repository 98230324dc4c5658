//! Independent jobs on a few scoped threads: the sections of a snapshot being written
//! or restored.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::error::{CoreError, CoreResult};

/// Threads the jobs run on, at most (fewer on a machine with fewer cores).
pub const MAX_THREADS: usize = 8;

/// Below this many items of work in all, starting threads costs more than it saves.
pub const WORTH_THREADS: usize = 16_384;

/// [`map`] when `work` (items in all, across the jobs) is worth the threads; otherwise
/// the jobs run in turn on the caller's thread, with the same results.
pub fn map_if_worth<T: Send>(
    work: usize,
    jobs: usize,
    job: impl Fn(usize) -> CoreResult<T> + Sync,
) -> CoreResult<Vec<T>> {
    if work < WORTH_THREADS {
        return (0..jobs).map(job).collect();
    }
    map(jobs, job)
}

/// `job(i)` for every `i` in `0..jobs`, on up to [`MAX_THREADS`] threads (the caller's
/// among them), each thread taking the next index; the results in index order. The
/// first error stops the jobs not yet started and is returned.
pub fn map<T: Send>(
    jobs: usize,
    job: impl Fn(usize) -> CoreResult<T> + Sync,
) -> CoreResult<Vec<T>> {
    let slots: Vec<Mutex<Option<T>>> = (0..jobs).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<CoreError>> = Mutex::new(None);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= jobs || failed.lock().is_some() {
            return;
        }
        match job(i) {
            Ok(done) => *slots[i].lock() = Some(done),
            Err(e) => {
                failed.lock().get_or_insert(e);
                return;
            }
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .clamp(1, MAX_THREADS)
        .min(jobs.max(1));
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        work();
    });
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    slots
        .into_iter()
        .map(Mutex::into_inner)
        .collect::<Option<Vec<T>>>()
        .ok_or_else(|| CoreError::Internal {
            reason: "a parallel job did not run".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_job_order_and_the_first_error_is_returned() {
        assert_eq!(
            map(1000, |i| Ok(i * 2)).unwrap(),
            (0..1000).map(|i| i * 2).collect::<Vec<_>>()
        );
        assert!(map(0, Ok).unwrap().is_empty());
        let err = map(100, |i| {
            if i == 40 {
                Err(CoreError::invalid("snapshot", "bad section"))
            } else {
                Ok(i)
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("bad section"), "{err}");
    }

    #[test]
    fn small_work_runs_on_the_caller_s_thread_with_the_same_results() {
        let caller = std::thread::current().id();
        let on = |work| {
            map_if_worth(work, 64, |i| {
                Ok((i * 3, std::thread::current().id() == caller))
            })
            .unwrap()
        };
        let small = on(10);
        assert!(small.iter().all(|(_, here)| *here));
        let large = on(WORTH_THREADS);
        let values = |r: &[(usize, bool)]| r.iter().map(|(v, _)| *v).collect::<Vec<_>>();
        assert_eq!(values(&small), values(&large));
        assert_eq!(values(&small), (0..64).map(|i| i * 3).collect::<Vec<_>>());
    }
}
