//! The configuration reader fuzzed for time and allocation, not only for panics (DESIGN §10):
//! every input up to `MAX_CONF_BYTES` (1 MiB) — random text made of the characters that matter
//! to the reader and the grammar, and families built to hurt (a megabyte of unknown or repeated
//! keys, one endless line, endless continuations, escapes, nesting) — parses or fails within
//! [`TIME_BUDGET`] of this thread's CPU time, with peak live memory and total allocation bounded
//! by a constant factor of the input.
//!
//! A test binary of its own because it installs a counting global allocator; it counts only the
//! allocations of the thread that is parsing. The time is the thread's CPU time (from
//! `/proc/thread-self/stat` on Linux, wall time elsewhere), so other jobs on a busy machine do not
//! count against the budget. `UBERPOOL_FUZZ_CASES` sets the number of cases (default 24).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use uberpool::config::MAX_CONF_BYTES;
use uberpool::{PoolsConfig, Resources};

/// CPU time one parse may take: DESIGN §10's 100 ms, for optimized builds. Unoptimized builds
/// (plain `cargo test`) are allowed ten times as much.
const TIME_BUDGET: Duration = if cfg!(debug_assertions) {
    Duration::from_millis(1000)
} else {
    Duration::from_millis(100)
};

/// Peak live bytes allowed per input byte, beyond [`SLACK`].
const PEAK_PER_BYTE: usize = 8;
/// Bytes allocated in all allowed per input byte, beyond [`SLACK`].
const TOTAL_PER_BYTE: usize = 16;
/// Allocation allowed whatever the input's length (among it, suggestions for at most 32 keys).
const SLACK: usize = 256 * 1024;

thread_local! {
    /// Whether this thread's allocations are being counted.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Bytes allocated and not yet freed since counting began (freeing older memory can take
    /// it below zero).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The highest `LIVE` since counting began.
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// Bytes allocated in all since counting began.
    static TOTAL: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting the current thread's allocations while `COUNTING` is set.
struct Counting;

fn count(allocated: usize, freed: usize) {
    // `try_with`: during thread teardown the slots may be gone; nothing is counted then.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let live = LIVE.get() + allocated as isize - freed as isize;
            LIVE.set(live);
            PEAK.set(PEAK.get().max(live));
            TOTAL.set(TOTAL.get() + allocated);
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counting
// touches only const-initialized thread-local cells, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, layout.size());
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size, layout.size());
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// This thread's CPU time (user + system) where the platform tells it, else `None`.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name may hold spaces and parentheses; the fields after the last ')' are fixed:
    // state is the first, utime the 12th and stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture Rust supports.
    Some(Duration::from_millis(ticks * 10))
}

/// What one parse cost.
#[derive(Debug)]
struct Cost {
    time: Duration,
    peak: usize,
    total: usize,
}

/// Parses `text` and measures the time and allocation it took on this thread.
fn measure(text: &str, resources: &Resources) -> Cost {
    let cpu_before = thread_cpu_time();
    let wall_before = Instant::now();
    LIVE.set(0);
    PEAK.set(0);
    TOTAL.set(0);
    COUNTING.set(true);
    let result = PoolsConfig::parse(text, resources);
    drop(result);
    COUNTING.set(false);
    let time = match (cpu_before, thread_cpu_time()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => wall_before.elapsed(),
    };
    Cost {
        time,
        peak: PEAK.get().max(0) as usize,
        total: TOTAL.get(),
    }
}

const P: &str = "org.mule.runtime.scheduler.";

/// Pieces that matter to the properties reader and the expression grammar.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "\\",
            "\n",
            "\r\n",
            "\r",
            "=",
            ":",
            " ",
            "\t",
            "#",
            "!",
            "\\u",
            "\\u00e9",
            "\u{feff}",
            "(",
            ")",
            ",",
            "max",
            "MIN",
            "cores",
            "mem",
            "-",
            "/",
            "*",
            "+",
            "0",
            "1.5",
            "1e12",
            "==",
            "99999999999999999999",
            "é",
            "DEDICATED",
            "uber",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            "SchedulerPoolStrategy=",
            "uber.threadPool.maxSize=",
            "uber.threadPool.coreSize=",
            "io.workQueue.size=",
            "cpuLight.threadPool.size=",
            "gracefulShutdownTimeout=",
            "uber.threadPool.threadKeepAlive=",
            "threadPool.strategy=",
        ])
        .prop_map(|key| format!("{P}{key}")),
        any::<char>().prop_map(String::from),
    ]
}

/// `unit` repeated up to `len` bytes (cut at a character boundary).
fn fill(unit: &str, len: usize) -> String {
    if unit.is_empty() {
        return String::new();
    }
    let mut text = unit.repeat(len / unit.len() + 1);
    let mut cut = len.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

/// Inputs up to `MAX_CONF_BYTES`: random pieces repeated, and families built to be expensive.
fn input() -> impl Strategy<Value = String> {
    let len = 0..=MAX_CONF_BYTES;
    let header = prop::sample::select(vec![
        String::new(),
        format!("{P}SchedulerPoolStrategy=UBER\n"),
        format!("{P}SchedulerPoolStrategy=DEDICATED\n"),
    ]);
    let body = prop_oneof![
        // Random pieces, repeated to the length.
        (prop::collection::vec(piece(), 1..60), len.clone())
            .prop_map(|(pieces, len)| fill(&pieces.concat(), len)),
        // Distinct unknown keys.
        len.clone().prop_map(|len| {
            let mut text = String::new();
            let mut n = 0;
            while text.len() < len {
                text.push_str(&format!("{P}uber.threadPool.coreSise{n}=cores\n"));
                n += 1;
            }
            text
        }),
        // One key repeated with a valid expression.
        len.clone().prop_map(|len| fill(
            &format!("{P}uber.threadPool.maxSize=max(2, cores * 4)\n"),
            len
        )),
        // One endless line: a key, then a long value.
        (
            prop::sample::select(vec!["1+", "(", "-", " ", "max(1,", "\\u0041", "é"]),
            len.clone()
        )
            .prop_map(|(unit, len)| format!("{P}uber.workQueue.size={}", fill(unit, len))),
        // Endless continuations and one endless key.
        len.clone().prop_map(|len| fill("a=\\\n", len)),
        len.prop_map(|len| fill("k", len)),
    ];
    (header, body).prop_map(|(header, body)| {
        let mut text = header;
        text.push_str(&body);
        let mut cut = text.len().min(MAX_CONF_BYTES);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text
    })
}

fn cases() -> u32 {
    std::env::var("UBERPOOL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_input_up_to_a_megabyte_parses_or_fails_in_bounded_time_and_memory(
        text in input(),
        cores in 0usize..256,
        mem_kib in 0u64..(1 << 40),
    ) {
        let resources = Resources::new(cores, mem_kib);
        let cost = measure(&text, &resources);
        let len = text.len();
        prop_assert!(cost.time <= TIME_BUDGET, "{len} bytes took {:?} of CPU", cost.time);
        prop_assert!(
            cost.peak <= PEAK_PER_BYTE * len + SLACK,
            "{len} bytes: peak {} bytes live", cost.peak
        );
        prop_assert!(
            cost.total <= TOTAL_PER_BYTE * len + SLACK,
            "{len} bytes: {} bytes allocated in all", cost.total
        );
    }
}

#[test]
fn the_allocation_counter_sees_this_threads_allocations() {
    let cost = {
        LIVE.set(0);
        PEAK.set(0);
        TOTAL.set(0);
        COUNTING.set(true);
        let kept = vec![0u8; 100_000];
        drop(std::hint::black_box(kept));
        COUNTING.set(false);
        (PEAK.get(), TOTAL.get(), LIVE.get())
    };
    assert_eq!(cost, (100_000, 100_000, 0));
}

#[test]
fn the_worst_families_at_the_full_size_stay_within_the_bounds() {
    let resources = Resources::new(4, 1_048_576);
    let mut unknown = format!("{P}SchedulerPoolStrategy=UBER\n");
    let mut n = 0;
    while unknown.len() < MAX_CONF_BYTES - 64 {
        unknown.push_str(&format!("{P}uber.threadPool.coreSise{n}=cores\n"));
        n += 1;
    }
    let inputs = [
        unknown,
        fill(
            &format!("{P}uber.threadPool.maxSize=max(2, cores * 4)\n"),
            MAX_CONF_BYTES,
        ),
        format!("{P}uber.workQueue.size={}", fill("(", MAX_CONF_BYTES - 64)),
        format!("{P}uber.workQueue.size={}", fill("1+", MAX_CONF_BYTES - 64)),
        format!(
            "{P}uber.workQueue.size={}",
            fill("\\u0041", MAX_CONF_BYTES - 64)
        ),
        fill("a=\\\n", MAX_CONF_BYTES),
        fill("k", MAX_CONF_BYTES),
        fill("é", MAX_CONF_BYTES),
    ];
    for text in inputs {
        let cost = measure(&text, &resources);
        let len = text.len();
        eprintln!(
            "{len} bytes starting {:?}: {cost:?}",
            &text[..text.len().min(40)]
        );
        assert!(cost.time <= TIME_BUDGET, "{len} bytes took {:?}", cost.time);
        assert!(cost.peak <= PEAK_PER_BYTE * len + SLACK, "{cost:?}");
        assert!(cost.total <= TOTAL_PER_BYTE * len + SLACK, "{cost:?}");
    }
}
