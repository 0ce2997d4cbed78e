//! Node-id order for the last HLC tie-break (PROTOCOL.md §4).
//!
//! Upstream compares node ids with JavaScript `localeCompare`, i.e. ICU root
//! collation at tertiary strength. Without an ICU dependency this module
//! reproduces that order for ASCII and stays a total order for everything else.

use std::cmp::Ordering;

/// ASCII punctuation and symbols in ICU root (CLDR) primary order; they all
/// sort before digits, which sort before letters.
const SYMBOLS: &[u8] = b"\t\n\x0b\x0c\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";

/// Compares two node ids the way ICU root collation does for ASCII strings.
///
/// Levels, as in ICU: first the primary weights (symbols < digits < letters,
/// letters case-insensitive, so `"a" < "B"` and `"a-b" < "ab"`), then case
/// (lowercase first, so `"node-a" < "node-A"`). Control characters other than
/// whitespace are ignorable, as in ICU.
///
/// Interpretation, documented rather than hidden: characters beyond ASCII get a
/// primary weight after `z` in code-point order, where ICU would interleave them
/// (`é` next to `e`); and strings ICU calls equal are finally ordered by their
/// bytes, so that distinct node ids never compare equal. For lowercase ASCII ids
/// (UUIDs, `client-a`, `node-10`) the result equals byte order.
pub fn compare_node_ids(a: &str, b: &str) -> Ordering {
    let by_primary = a
        .chars()
        .filter_map(primary)
        .cmp(b.chars().filter_map(primary));
    let by_case = || {
        let case_a = a.chars().filter(|c| primary(*c).is_some()).map(is_upper);
        let case_b = b.chars().filter(|c| primary(*c).is_some()).map(is_upper);
        case_a.cmp(case_b)
    };

    by_primary.then_with(by_case).then_with(|| a.cmp(b))
}

/// Primary weight of one character; `None` for ignorable control characters.
fn primary(c: char) -> Option<u32> {
    const DIGITS: u32 = 0x100;
    const LETTERS: u32 = 0x200;
    const OTHER: u32 = 0x300;

    if c.is_ascii_digit() {
        return Some(DIGITS + (c as u32 - '0' as u32));
    }
    if c.is_ascii_alphabetic() {
        return Some(LETTERS + (c.to_ascii_lowercase() as u32 - 'a' as u32));
    }
    if !c.is_ascii() {
        return Some(OTHER + c as u32);
    }
    // `c` is ASCII here, so it fits in a byte.
    SYMBOLS
        .iter()
        .position(|&s| char::from(s) == c)
        .map(|index| index as u32)
}

fn is_upper(c: char) -> bool {
    c.is_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    use Ordering::{Greater, Less};

    #[test]
    fn lowercase_letter_sorts_before_a_later_uppercase_letter() {
        assert_eq!(compare_node_ids("a", "B"), Less);
    }

    #[test]
    fn lowercase_sorts_before_uppercase_of_the_same_letter() {
        assert_eq!(compare_node_ids("node-a", "node-A"), Less);
    }

    #[test]
    fn uppercase_z_sorts_after_lowercase_a() {
        assert_eq!(compare_node_ids("Z", "a"), Greater);
    }

    #[test]
    fn hyphen_sorts_before_letters() {
        assert_eq!(compare_node_ids("a-b", "ab"), Less);
    }

    #[test]
    fn digits_compare_one_by_one_not_numerically() {
        assert_eq!(compare_node_ids("node-10", "node-9"), Less);
    }

    #[test]
    fn symbols_follow_icu_root_order() {
        assert_eq!(compare_node_ids("a_b", "a-b"), Less);
        assert_eq!(compare_node_ids("a$", "a0"), Less);
        assert_eq!(compare_node_ids("a~", "a$"), Less);
    }

    #[test]
    fn lowercase_ascii_ids_order_like_bytes() {
        let ids = ["0f3a-77", "client-a", "client-b", "node-1", "node-10", "z"];

        for a in ids {
            for b in ids {
                assert_eq!(compare_node_ids(a, b), a.cmp(b), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn ids_icu_calls_equal_are_still_distinct() {
        assert_eq!(compare_node_ids("a\u{1}", "a"), Greater);
        assert_eq!(compare_node_ids("n1", "n1"), Ordering::Equal);
    }
}
