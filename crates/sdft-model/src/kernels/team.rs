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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN: Duration = Duration::from_millis(1);

type Chunk = dyn Fn(usize) + Sync;

/// The section being run: the caller's closure (lifetime erased) and its
/// chunks. Written only by the caller, while no worker is inside a section.
struct Job {
    f: *const Chunk,
    chunks: usize,
}

struct Shared {
    job: UnsafeCell<Job>,
    /// The next chunk index to hand out.
    next: AtomicUsize,
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

impl Team {
    pub(crate) fn global() -> &'static Team {
        static TEAM: OnceLock<Team> = OnceLock::new();
        TEAM.get_or_init(|| Team::new(rayon::current_num_threads().max(1)))
    }

    fn new(threads: usize) -> Team {
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(Job {
                f: &nothing as &Chunk,
                chunks: 0,
            }),
            next: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            closed: AtomicBool::new(true),
            active: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut started = 1;
        for i in 1..threads {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sdft-kernel-{i}"))
                .spawn(move || worker(&s));
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

    /// Threads that run sections, the caller included.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(c)` once for every `c` in `0..chunks`, spread over the team;
    /// returns when all calls have returned.
    pub(crate) fn run(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        let guard = (self.threads > 1 && chunks > 1)
            .then(|| self.busy.try_lock().ok())
            .flatten();
        let Some(_guard) = guard else {
            (0..chunks).for_each(f);
            return;
        };
        let s = &*self.shared;
        // SAFETY: no worker is inside a section (the previous `run` waited for
        // `active == 0` after closing it), so none reads `job` now; the pointer
        // is only used until this call returns.
        unsafe {
            let f: *const Chunk = std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Chunk>(f);
            *s.job.get() = Job { f, chunks };
        }
        s.next.store(0, SeqCst);
        s.closed.store(false, SeqCst);
        s.generation.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        loop {
            let c = s.next.fetch_add(1, SeqCst);
            if c >= chunks {
                break;
            }
            f(c);
        }
        s.closed.store(true, SeqCst);
        while s.active.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
        if s.panicked.swap(false, SeqCst) {
            panic!("a kernel thread panicked");
        }
    }
}

fn nothing(_: usize) {}

fn worker(s: &Shared) {
    let mut seen = s.generation.load(SeqCst);
    loop {
        let g = wait_for_section(s, seen);
        seen = g;
        s.active.fetch_add(1, SeqCst);
        // Either the caller has not closed this section yet, and then it waits
        // for `active` to drop back, or this worker sees it closed (or a later
        // section) and stays out.
        if !s.closed.load(SeqCst) && s.generation.load(SeqCst) == g {
            // SAFETY: the section is open, so `job` holds its closure, alive
            // until the caller sees `active == 0`.
            let (f, chunks) = unsafe {
                let job = &*s.job.get();
                (&*job.f, job.chunks)
            };
            let result = catch_unwind(AssertUnwindSafe(|| loop {
                let c = s.next.fetch_add(1, SeqCst);
                if c >= chunks {
                    break;
                }
                f(c);
            }));
            if result.is_err() {
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
        if spins % 256 != 0 || start.elapsed() < SPIN {
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
