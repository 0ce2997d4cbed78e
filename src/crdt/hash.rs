//! The string hash of PROTOCOL.md §6.1: 32-bit FNV-1a over UTF-16 code units.
//!
//! Every Merkle hash in the data plane comes from here; the wrapping sums that
//! combine them live in [`super::merkle`].

const OFFSET_BASIS: u32 = 0x811c_9dc5;
const PRIME: u32 = 0x0100_0193;

/// FNV-1a (32 bit) over the UTF-16 code units of `s`, as upstream `hashString`.
///
/// Characters outside the BMP count as two units (their surrogate pair), so the
/// result matches JavaScript's `charCodeAt` loop, not a hash of the UTF-8 bytes.
pub fn fnv1a_utf16(s: &str) -> u32 {
    let mut hasher = Fnv1aUtf16::new();
    hasher.feed(s);
    hasher.finish()
}

/// [`fnv1a_utf16`] fed piece by piece, so that `write!` can hash formatted text
/// without building the string first.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1aUtf16(u32);

impl Fnv1aUtf16 {
    pub fn new() -> Self {
        Self(OFFSET_BASIS)
    }

    pub fn feed(&mut self, s: &str) {
        self.0 = s
            .encode_utf16()
            .fold(self.0, |h, unit| (h ^ u32::from(unit)).wrapping_mul(PRIME));
    }

    pub fn finish(self) -> u32 {
        self.0
    }
}

impl Default for Fnv1aUtf16 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Write for Fnv1aUtf16 {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.feed(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_string_hashes_to_the_offset_basis() {
        assert_eq!(fnv1a_utf16(""), 2_166_136_261);
        assert_eq!(fnv1a_utf16(""), 0x811c_9dc5);
    }

    #[test]
    fn single_letter_matches_the_upstream_vector() {
        assert_eq!(fnv1a_utf16("a"), 3_826_002_220);
        assert_eq!(fnv1a_utf16("a"), 0xe40c_292c);
    }

    #[test]
    fn short_key_matches_the_upstream_vector() {
        assert_eq!(fnv1a_utf16("k1"), 2_554_167_489);
        assert_eq!(fnv1a_utf16("k1"), 0x983d_80c1);
    }

    #[test]
    fn key_with_colon_matches_the_upstream_vector() {
        assert_eq!(fnv1a_utf16("user:42"), 795_573_122);
        assert_eq!(fnv1a_utf16("user:42"), 0x2f6b_7b82);
    }

    #[test]
    fn item_string_matches_the_upstream_vector() {
        let item = "k1:1796311503565:0:client-a";

        assert_eq!(fnv1a_utf16(item), 54_204_058);
        assert_eq!(fnv1a_utf16(item), 0x033b_169a);
    }

    #[test]
    fn hashing_in_pieces_equals_hashing_the_whole_string() {
        use std::fmt::Write;
        let mut hasher = Fnv1aUtf16::new();
        let millis: u64 = 1_796_311_503_565;

        hasher.feed("k1");
        write!(hasher, ":{millis}:").unwrap();
        hasher.feed("0:client-a");

        assert_eq!(hasher.finish(), 0x033b_169a);
    }

    #[test]
    fn non_bmp_characters_are_hashed_as_surrogate_pairs() {
        let s = "é😀";

        assert_eq!(s.encode_utf16().count(), 3);
        assert_eq!(fnv1a_utf16(s), 1_154_239_905);
        assert_eq!(fnv1a_utf16(s), 0x44cc_4da1);
    }
}
