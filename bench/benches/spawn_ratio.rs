//! Interleaved ratio harness for `spawn_many_remote`: 100,000 empty tasks submitted from outside
//! the pool, then wait until all ran (the contenders are in `uberpool_bench::spawn`).
//!
//! Shared machines drift by 2× within minutes, so comparing medians taken minutes apart says
//! little. This harness runs one iteration of every contender per round, round after round, and
//! reports each contender's median and its ratio to the fastest peer's median. Run:
//! `cargo bench -p uberpool-bench --bench spawn_ratio` (`-- --rounds N` to change the 31 rounds).

fn main() {
    let rounds = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(31usize);
    print!(
        "{}",
        uberpool_bench::spawn::table(rounds, num_cpus::get().max(2))
    );
}
