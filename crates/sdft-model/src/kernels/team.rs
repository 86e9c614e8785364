//! A fixed team of threads for the kernels' short parallel sections.
//!
//! A decode step runs about five parallel sections per layer (the products and
//! attention), each a fraction of a millisecond. On rayon's pool an idle worker
//! falls asleep within microseconds and every section then pays a futex wake-up,
//! which profiles showed as several percent of a step. Here the workers spin on a
//! generation counter for a while after each section (about a millisecond, long
//! enough to cover the gap between two decode steps) and only then park.
//!
//! Work is handed out as chunk indices from one atomic counter, so a worker that
//! the machine deschedules never holds up a section: the caller takes every chunk
//! it does not, and waits only for chunks already started.
//!
//! The team has as many threads as rayon's global pool (`RAYON_NUM_THREADS`, or
//! one per core), the caller included.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN: Duration = Duration::from_millis(1);

/// A section's body, called once by every thread that joins it with the
/// thread's index in the team (the caller is 0).
type Body = dyn Fn(usize) + Sync;

/// The section being run: the caller's body, lifetime erased. Written only by
/// the caller, while no worker is inside a section.
struct Job {
    f: *const Body,
}

struct Shared {
    job: UnsafeCell<Job>,
    /// Bumped for every section.
    generation: AtomicUsize,
    /// Set when the caller has taken the last chunk: late workers stay out.
    closed: AtomicBool,
    /// Workers inside the current section.
    active: AtomicUsize,
    /// A worker's chunk panicked.
    panicked: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written by the caller only while no worker is inside a
// section (see `Team::run`), and read by workers only inside one.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// The process-wide team (see the module docs).
pub(crate) struct Team {
    shared: Arc<Shared>,
    threads: usize,
    /// One section at a time; a caller that finds the team busy (another thread,
    /// or a section inside a section) runs its chunks alone.
    busy: Mutex<()>,
}

// Items of one section are counted in 32 bits (see `Range`).
const _: () = assert!(usize::BITS >= 32);

impl Team {
    pub(crate) fn global() -> &'static Team {
        static TEAM: OnceLock<Team> = OnceLock::new();
        TEAM.get_or_init(|| Team::new(rayon::current_num_threads().max(1)))
    }

    /// Threads in the team (the caller's included).
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    fn new(threads: usize) -> Team {
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(Job {
                f: &nothing as &Body,
            }),
            generation: AtomicUsize::new(0),
            closed: AtomicBool::new(true),
            active: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut started = 1;
        for _ in 1..threads {
            let s = shared.clone();
            let index = started;
            let spawned = std::thread::Builder::new()
                .name(format!("sdft-kernel-{index}"))
                .spawn(move || worker(&s, index));
            if spawned.is_ok() {
                started += 1;
            }
        }
        Team {
            shared,
            threads: started,
            busy: Mutex::new(()),
        }
    }

    /// Calls `f(c)` once for every `c` in `0..chunks`, spread over the team
    /// (each thread takes the next chunk from a shared counter); returns when
    /// all calls have returned.
    pub(crate) fn run(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 || chunks <= 1 {
            (0..chunks).for_each(f);
            return;
        }
        let next = AtomicUsize::new(0);
        self.run_all(&|_| loop {
            let c = next.fetch_add(1, SeqCst);
            if c >= chunks {
                break;
            }
            f(c);
        });
    }

    /// Calls `f(i, next)` once for every `i` in `0..items`, spread over the team
    /// so that each thread works through a contiguous range: thread `t` owns the
    /// `t`-th share of `0..items` and takes its items in order from the front; a
    /// thread whose range is done takes items from the back of another's. `next`
    /// is the item the calling thread will most likely take after `i` (its
    /// following item, when still in its range), for prefetching.
    pub(crate) fn run_split(&self, items: usize, f: &(dyn Fn(usize, Option<usize>) + Sync)) {
        let t = self.threads;
        if t == 1 || items <= 1 {
            (0..items).for_each(|i| f(i, (i + 1 < items).then_some(i + 1)));
            return;
        }
        let ranges: Vec<Range> = (0..t)
            .map(|r| Range::new(r * items / t, (r + 1) * items / t))
            .collect();
        self.run_all(&|me| {
            while let Some((i, next)) = ranges[me].front() {
                f(i, next);
            }
            for other in (1..t).map(|d| (me + d) % t) {
                while let Some(i) = ranges[other].back() {
                    f(i, None);
                }
            }
        });
        // A thread that never joined left its range to the others' stealing.
        debug_assert!(ranges.iter().all(Range::is_empty));
    }

    /// Runs `body(thread index)` on every thread of the team that joins in time
    /// (the caller always does), and returns when they have all returned.
    /// `body` must hand out its work so that whichever threads join finish it.
    fn run_all(&self, body: &(dyn Fn(usize) + Sync + '_)) {
        let Ok(_guard) = self.busy.try_lock() else {
            // The team is busy (another thread's section, or this is a section
            // inside a section): this caller alone does the work.
            return body(0);
        };
        let s = &*self.shared;
        // SAFETY: no worker is inside a section (the previous `run_all` waited
        // for `active == 0` after closing it), so none reads `job` now; the
        // pointer is only used until this call returns.
        unsafe {
            let f: *const Body =
                std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Body>(body);
            *s.job.get() = Job { f };
        }
        s.closed.store(false, SeqCst);
        s.generation.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        // Closes the section and waits for the workers inside it, also when
        // `body` panics here: they borrow from this caller's frame.
        struct Close<'a>(&'a Shared);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                self.0.closed.store(true, SeqCst);
                while self.0.active.load(SeqCst) != 0 {
                    std::hint::spin_loop();
                }
            }
        }
        let close = Close(s);
        body(0);
        drop(close);
        if s.panicked.swap(false, SeqCst) {
            panic!("a kernel thread panicked");
        }
    }
}

/// A range of items `front..back` taken from both ends, packed in one atomic.
struct Range(AtomicU64);

impl Range {
    fn new(front: usize, back: usize) -> Range {
        Range(AtomicU64::new(front as u64 | (back as u64) << 32))
    }

    fn is_empty(&self) -> bool {
        let v = self.0.load(SeqCst);
        (v & 0xffff_ffff) >= v >> 32
    }

    /// The front item, and the one after it when the range still holds it.
    fn front(&self) -> Option<(usize, Option<usize>)> {
        let mut v = self.0.load(SeqCst);
        loop {
            let (f, b) = (v & 0xffff_ffff, v >> 32);
            if f >= b {
                return None;
            }
            match self.0.compare_exchange(v, v + 1, SeqCst, SeqCst) {
                Ok(_) => return Some((f as usize, (f + 1 < b).then_some(f as usize + 1))),
                Err(now) => v = now,
            }
        }
    }

    /// The back item.
    fn back(&self) -> Option<usize> {
        let mut v = self.0.load(SeqCst);
        loop {
            let (f, b) = (v & 0xffff_ffff, v >> 32);
            if f >= b {
                return None;
            }
            match self
                .0
                .compare_exchange(v, f | (b - 1) << 32, SeqCst, SeqCst)
            {
                Ok(_) => return Some(b as usize - 1),
                Err(now) => v = now,
            }
        }
    }
}

fn nothing(_: usize) {}

fn worker(s: &Shared, index: usize) {
    let mut seen = s.generation.load(SeqCst);
    loop {
        let g = wait_for_section(s, seen);
        seen = g;
        s.active.fetch_add(1, SeqCst);
        // Either the caller has not closed this section yet, and then it waits
        // for `active` to drop back, or this worker sees it closed (or a later
        // section) and stays out.
        if !s.closed.load(SeqCst) && s.generation.load(SeqCst) == g {
            // SAFETY: the section is open, so `job` holds its body, alive until
            // the caller sees `active == 0`.
            let f = unsafe { &*(*s.job.get()).f };
            if catch_unwind(AssertUnwindSafe(|| f(index))).is_err() {
                s.panicked.store(true, SeqCst);
            }
        }
        s.active.fetch_sub(1, SeqCst);
    }
}

/// Spins, then parks, until the generation moves past `seen`; returns it.
fn wait_for_section(s: &Shared, seen: usize) -> usize {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let g = s.generation.load(SeqCst);
        if g != seen {
            return g;
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(256) || start.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        let mut l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
        s.sleepers.fetch_add(1, SeqCst);
        while s.generation.load(SeqCst) == seen {
            l = s.wake.wait(l).unwrap_or_else(|e| e.into_inner());
        }
        s.sleepers.fetch_sub(1, SeqCst);
        drop(l);
        return s.generation.load(SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_runs_exactly_once_across_many_sections() {
        let team = Team::new(3);
        for chunks in [0, 1, 2, 7, 64] {
            for _ in 0..200 {
                let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
                team.run(chunks, &|c| {
                    hits[c].fetch_add(1, SeqCst);
                });
                assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "chunks={chunks}");
            }
        }
    }

    #[test]
    fn split_items_run_exactly_once_with_in_range_hints() {
        let team = Team::new(3);
        for items in [0, 1, 2, 5, 31, 200] {
            for _ in 0..100 {
                let hits: Vec<AtomicUsize> = (0..items).map(|_| AtomicUsize::new(0)).collect();
                team.run_split(items, &|i, next| {
                    hits[i].fetch_add(1, SeqCst);
                    assert!(next.is_none_or(|n| n == i + 1 && n < items));
                });
                assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "items={items}");
            }
        }
    }

    #[test]
    fn sections_after_the_workers_parked_still_run_on_them() {
        let team = Team::new(2);
        std::thread::sleep(SPIN * 5);
        let total = AtomicUsize::new(0);
        team.run(16, &|c| {
            total.fetch_add(c, SeqCst);
        });
        assert_eq!(total.load(SeqCst), (0..16).sum::<usize>());
    }
}
