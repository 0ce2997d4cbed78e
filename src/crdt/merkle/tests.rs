use super::*;

/// The three records of the §6.2 example: `a@1000:0:n1`, `b@1000:1:n1`,
/// `c@2000:0:n2` (the last a tombstone, which the tree does not distinguish).
fn example_tree() -> MerkleTree {
    let mut tree = MerkleTree::new();
    tree.update("a", &Timestamp::new(1_000, 0, "n1"));
    tree.update("b", &Timestamp::new(1_000, 1, "n1"));
    tree.update("c", &Timestamp::new(2_000, 0, "n2"));
    tree
}

#[test]
fn item_hash_covers_key_and_timestamp_in_js_decimal_form() {
    let ts = Timestamp::new(1_796_311_503_565, 0, "client-a");

    assert_eq!(item_hash("k1", &ts), 54_204_058);
}

#[test]
fn key_path_is_eight_zero_padded_lowercase_hex_digits() {
    assert_eq!(key_path("k1"), "983d80c1");
    assert_eq!(key_path("user:42"), "2f6b7b82");
    assert_eq!(key_path("k1:1796311503565:0:client-a"), "033b169a");
}

#[test]
fn a_leaf_path_is_the_start_of_the_key_path() {
    for key in [
        "k1",
        "user:42",
        "",
        "é😀",
        "0",
        "a much longer key with spaces",
    ] {
        assert_eq!(leaf_path(key).as_str(), &key_path(key)[..DEPTH], "{key:?}");
    }
}

#[test]
fn key_lives_in_the_leaf_named_by_the_first_three_hex_digits() {
    let mut tree = MerkleTree::new();

    tree.update("k1", &Timestamp::new(1, 0, "n1"));

    assert_eq!(tree.leaf_keys("983"), ["k1"]);
    assert_eq!(
        tree.buckets(""),
        BTreeMap::from([("9".to_owned(), tree.root_hash())])
    );
    assert_eq!(
        tree.buckets("9"),
        BTreeMap::from([("8".to_owned(), tree.root_hash())])
    );
    assert_eq!(
        tree.buckets("98"),
        BTreeMap::from([("3".to_owned(), tree.root_hash())])
    );
}

#[test]
fn empty_tree_has_root_zero_and_no_buckets() {
    let tree = MerkleTree::new();

    assert_eq!(tree.root_hash(), 0);
    assert_eq!(tree.bucket(""), Bucket::Inner(BTreeMap::new()));
}

#[test]
fn example_of_the_protocol_has_the_documented_root_hash() {
    let tree = example_tree();

    assert_eq!(tree.root_hash(), 3_281_175_942);
}

#[test]
fn example_of_the_protocol_has_a_single_root_bucket_e() {
    let tree = example_tree();

    let buckets = tree.buckets("");

    assert_eq!(buckets, BTreeMap::from([("e".to_owned(), 3_281_175_942)]));
}

#[test]
fn root_hash_is_the_wrapping_sum_of_item_hashes() {
    let tree = example_tree();

    let sum = [
        ("a", 1_000, 0, "n1"),
        ("b", 1_000, 1, "n1"),
        ("c", 2_000, 0, "n2"),
    ]
    .into_iter()
    .map(|(key, millis, counter, node)| item_hash(key, &Timestamp::new(millis, counter, node)))
    .fold(0u32, u32::wrapping_add);

    assert_eq!(sum, 3_281_175_942);
    assert_eq!(tree.root_hash(), sum);
}

#[test]
fn every_bucket_hash_sums_the_records_under_its_prefix() {
    let mut tree = MerkleTree::new();
    let keys = ["a", "b", "c", "k1", "user:42", "x", "y", "z"];
    for (i, key) in keys.iter().enumerate() {
        tree.update(key, &Timestamp::new(1_000 + i as u64, 0, "n1"));
    }

    for prefix in ["", "e", "9", "98", "983"] {
        let expected = keys
            .iter()
            .enumerate()
            .filter(|(_, key)| key_path(key).starts_with(prefix))
            .map(|(i, key)| item_hash(key, &Timestamp::new(1_000 + i as u64, 0, "n1")))
            .fold(0u32, u32::wrapping_add);

        assert_eq!(
            tree.hash_at(prefix).unwrap_or(0),
            expected,
            "prefix {prefix:?}"
        );
    }
}

#[test]
fn updating_a_key_replaces_its_item_hash() {
    let mut tree = MerkleTree::new();
    tree.update("k1", &Timestamp::new(1, 0, "n1"));

    tree.update("k1", &Timestamp::new(1_796_311_503_565, 0, "client-a"));

    assert_eq!(tree.root_hash(), 54_204_058);
}

#[test]
fn non_empty_leaf_is_answered_with_its_keys() {
    let tree = example_tree();
    let leaf = &key_path("a")[..DEPTH];

    let bucket = tree.bucket(leaf);

    let mut expected: Vec<&str> = ["a", "b", "c"]
        .into_iter()
        .filter(|key| key_path(key).starts_with(leaf))
        .collect();
    expected.sort_unstable();
    assert_eq!(bucket, Bucket::Leaf(expected));
}

#[test]
fn unknown_or_malformed_paths_are_answered_with_no_buckets() {
    let tree = example_tree();

    for path in ["0", "E", "e\u{e9}", "zz", "983d", "ffffffff"] {
        assert_eq!(
            tree.bucket(path),
            Bucket::Inner(BTreeMap::new()),
            "path {path:?}"
        );
    }
}

#[test]
fn removed_key_leaves_its_bucket_behind_with_hash_zero() {
    let mut tree = MerkleTree::new();
    tree.update("k1", &Timestamp::new(1, 0, "n1"));

    tree.remove("k1");

    assert_eq!(tree.root_hash(), 0);
    assert_eq!(tree.buckets(""), BTreeMap::from([("9".to_owned(), 0)]));
    assert_eq!(tree.bucket("983"), Bucket::Inner(BTreeMap::new()));
}

#[test]
fn removing_an_unknown_key_changes_nothing() {
    let mut tree = example_tree();
    let before = tree.clone();

    tree.remove("not-there");

    assert_eq!(tree, before);
}
