//! Which node owns a key (PROTOCOL.md §9.3): 271 partitions by FNV-1a of the key, each
//! with an owner and one backup taken round-robin from the sorted member list.

use std::cmp::Ordering;

use crate::crdt::hash::fnv1a_utf16;

/// Partitions of the key space, as upstream.
pub const PARTITION_COUNT: u16 = 271;

/// The partition of `key`. The map name is not part of it, so the same key lands in
/// the same partition in every map; lock names are routed the same way.
pub fn partition_of(key: &str) -> u16 {
    (fnv1a_utf16(key) % u32::from(PARTITION_COUNT)) as u16
}

/// The members of the cluster, self included, in the order that assigns partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    members: Vec<String>,
}

impl PartitionTable {
    /// The table for `members` (order and duplicates do not matter).
    pub fn new(mut members: Vec<String>) -> Self {
        members.sort_by(|a, b| js_order(a, b));
        members.dedup();
        PartitionTable { members }
    }

    /// Members in table order.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The owner of `partition`: `members[partition mod n]`.
    pub fn owner(&self, partition: u16) -> &str {
        let n = self.members.len();
        &self.members[usize::from(partition) % n]
    }

    /// The backup of `partition`: the member after the owner, if there are two or more.
    pub fn backup(&self, partition: u16) -> Option<&str> {
        let n = self.members.len();
        (n > 1).then(|| self.members[(usize::from(partition) % n + 1) % n].as_str())
    }

    /// Whether `node` keeps a copy of `partition`, as owner or backup.
    pub fn holds(&self, node: &str, partition: u16) -> bool {
        self.owner(partition) == node || self.backup(partition) == Some(node)
    }

    /// Every partition `node` holds.
    pub fn held_by<'a>(&'a self, node: &'a str) -> impl Iterator<Item = u16> + 'a {
        (0..PARTITION_COUNT).filter(move |&p| self.holds(node, p))
    }
}

/// JavaScript's default `Array.prototype.sort` order: UTF-16 code units.
fn js_order(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(members: &[&str]) -> PartitionTable {
        PartitionTable::new(members.iter().map(|m| m.to_string()).collect())
    }

    #[test]
    fn keys_land_in_the_partitions_of_the_protocol_example() {
        assert_eq!(partition_of("k1"), 77);
        assert_eq!(partition_of("k2"), 50);
    }

    #[test]
    fn owners_and_backups_follow_the_sorted_member_list() {
        let two = table(&["node-b", "node-a"]);
        assert_eq!(two.owner(partition_of("k1")), "node-b");
        assert_eq!(two.owner(partition_of("k2")), "node-a");
        assert_eq!(two.backup(partition_of("k1")), Some("node-a"));

        let one = table(&["solo"]);
        assert_eq!(one.owner(12), "solo");
        assert_eq!(one.backup(12), None);
    }

    #[test]
    fn members_sort_by_utf16_code_units_not_by_bytes() {
        // U+FF21 is one unit above the surrogates' range; U+1F600 starts with 0xD83D.
        let t = table(&["\u{FF21}", "\u{1F600}"]);
        assert_eq!(t.members(), ["\u{1F600}", "\u{FF21}"]);
    }

    #[test]
    fn every_partition_is_held_by_two_members_of_three() {
        let t = table(&["a", "b", "c"]);
        for p in 0..PARTITION_COUNT {
            let holders = t.members().iter().filter(|m| t.holds(m, p)).count();
            assert_eq!(holders, 2);
        }
        assert_eq!(t.held_by("a").count(), 181);
    }
}
