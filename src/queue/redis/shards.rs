//! Which shards a consumer reads: the live consumers of a queue (a sorted set of heartbeats,
//! see `scripts::HEARTBEAT`) share its shards out by their sorted names — the i-th of n reads
//! every shard k with k mod n = i. Every consumer computes the same split from the same list,
//! so nobody coordinates; when one joins or its heartbeat lapses, the next heartbeat of each
//! gives the new split.
//!
//! A split only decides who *reads new entries* of a shard. Two consumers reading one shard for
//! a moment (one has seen the new list, the other not yet) is harmless — the consumer group
//! hands each entry to one of them — and a shard read by nobody for a moment only waits. A
//! consumer keeps settling the entries it holds wherever they came from, and whoever reads a
//! shard also claims its entries that a dead consumer left pending.

/// The shards that `me` reads when `members` (any order, `me` included or not) are the live
/// consumers of a queue of `shards` shards. With more consumers than shards, the extra ones
/// share a shard (`i mod shards`) rather than idle.
pub(crate) fn assign(members: &[String], me: &str, shards: u16) -> Vec<u16> {
    if shards == 0 {
        return Vec::new();
    }
    let mut names: Vec<&str> = members.iter().map(String::as_str).collect();
    if !names.contains(&me) {
        names.push(me);
    }
    names.sort_unstable();
    names.dedup();
    let n = names.len();
    let i = names.iter().position(|&name| name == me).unwrap_or(0);
    let mine: Vec<u16> = (0..shards).filter(|&k| usize::from(k) % n == i).collect();
    if mine.is_empty() {
        vec![(i % usize::from(shards)) as u16]
    } else {
        mine
    }
}

/// How `budget` reads are shared among `owned` shards, starting at `rotate` so that, over
/// rounds, no shard is always last: `(shard, count)` for each shard with a count above zero.
/// The counts add up to `budget` exactly (when any shard is owned).
pub(crate) fn shares(owned: &[u16], budget: usize, rotate: usize) -> Vec<(u16, usize)> {
    let k = owned.len();
    if k == 0 || budget == 0 {
        return Vec::new();
    }
    let (base, extra) = (budget / k, budget % k);
    (0..k)
        .map(|j| (owned[(rotate + j) % k], base + usize::from(j < extra)))
        .filter(|&(_, n)| n > 0)
        .collect()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn three_consumers_split_sixteen_shards() {
        let members = names(&["c", "a", "b"]);
        assert_eq!(assign(&members, "a", 16), vec![0, 3, 6, 9, 12, 15]);
        assert_eq!(assign(&members, "b", 16), vec![1, 4, 7, 10, 13]);
        assert_eq!(assign(&members, "c", 16), vec![2, 5, 8, 11, 14]);
    }

    #[test]
    fn a_consumer_missing_from_the_list_counts_itself_in() {
        assert_eq!(assign(&names(&["b"]), "a", 4), vec![0, 2]);
        assert_eq!(assign(&[], "a", 4), vec![0, 1, 2, 3]);
    }

    #[test]
    fn consumers_beyond_the_shard_count_share_a_shard() {
        let members = names(&["a", "b", "c"]);
        assert_eq!(assign(&members, "c", 2), vec![0]);
        assert_eq!(assign(&members, "a", 1), vec![0]);
    }

    proptest! {
        #[test]
        fn every_shard_is_read_by_exactly_one_when_shards_outnumber_consumers(
            n in 1usize..12, shards in 1u16..64,
        ) {
            let members: Vec<String> = (0..n).map(|i| format!("w{i:02}")).collect();
            let mut readers = vec![0usize; usize::from(shards)];
            for me in &members {
                for k in assign(&members, me, shards) {
                    readers[usize::from(k)] += 1;
                }
            }
            if n <= usize::from(shards) {
                prop_assert!(readers.iter().all(|&r| r == 1), "{readers:?}");
            } else {
                prop_assert!(readers.iter().all(|&r| r >= 1), "{readers:?}");
            }
        }

        #[test]
        fn shares_add_up_to_the_budget(k in 1usize..20, budget in 0usize..100, rotate in 0usize..50) {
            let owned: Vec<u16> = (0..k as u16).collect();
            let shares = shares(&owned, budget, rotate);
            prop_assert_eq!(shares.iter().map(|&(_, n)| n).sum::<usize>(), budget);
            prop_assert!(shares.len() <= k);
        }
    }
}
