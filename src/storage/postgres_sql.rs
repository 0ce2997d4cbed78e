//! The SQL of the PostgreSQL backend: table layout and statements.
//!
//! Not upstream's `topgun_maps` (PROTOCOL.md §14 appendix): its `value JSONB`
//! cannot hold `bin` or `ext` values byte-exact, it drops `ttlMs`, and it keeps
//! an OR key's records and a map's tombstone set as single documents (the set
//! under the key `__tombstones__`, which collides with a user key of that
//! name), so each add or remove rewrites a whole document. Here values are
//! MessagePack in `BYTEA`, `ttl_ms` is a column, and every OR record and
//! tombstoned tag is its own row. Upstream's column names and types are kept
//! where they fit; an existing `topgun_maps` is left alone, not migrated.

/// The tables, `{p}` being the optional `"schema".` prefix.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS {p}topgun_lww (
    map_name TEXT NOT NULL, key TEXT NOT NULL, value BYTEA NOT NULL,
    ts_millis BIGINT NOT NULL, ts_counter BIGINT NOT NULL, ts_node_id TEXT NOT NULL,
    ttl_ms BIGINT, is_deleted BOOLEAN NOT NULL,
    PRIMARY KEY (map_name, key));
CREATE TABLE IF NOT EXISTS {p}topgun_or_records (
    map_name TEXT NOT NULL, key TEXT NOT NULL, tag TEXT NOT NULL, value BYTEA NOT NULL,
    ts_millis BIGINT NOT NULL, ts_counter BIGINT NOT NULL, ts_node_id TEXT NOT NULL,
    ttl_ms BIGINT,
    PRIMARY KEY (map_name, key, tag));
CREATE TABLE IF NOT EXISTS {p}topgun_or_tombstones (
    map_name TEXT NOT NULL, tag TEXT NOT NULL,
    PRIMARY KEY (map_name, tag));";

/// Statements of a commit, in `Mutation` variant order, `{p}` as in [`TABLES`].
pub(super) const WRITES: [&str; 6] = [
    "INSERT INTO {p}topgun_lww VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (map_name, key) DO UPDATE SET value = $3, ts_millis = $4, ts_counter = $5,
     ts_node_id = $6, ttl_ms = $7, is_deleted = $8",
    "INSERT INTO {p}topgun_or_records VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (map_name, key, tag) DO UPDATE SET value = $4, ts_millis = $5,
     ts_counter = $6, ts_node_id = $7, ttl_ms = $8",
    "INSERT INTO {p}topgun_or_tombstones VALUES ($1, $2) ON CONFLICT DO NOTHING",
    "DELETE FROM {p}topgun_lww WHERE map_name = $1 AND key = $2",
    "DELETE FROM {p}topgun_or_records WHERE map_name = $1 AND key = $2 AND tag = $3",
    "DELETE FROM {p}topgun_or_tombstones WHERE map_name = $1 AND tag = $2",
];

/// The table prefix for `schema` and the DDL that creates what is missing.
///
/// Nodes starting together take an advisory lock first, because concurrent
/// `CREATE TABLE IF NOT EXISTS` of one table can fail on a unique index.
pub(super) fn schema(schema: Option<&str>) -> (String, String) {
    let prefix = schema.map_or(String::new(), |name| format!("{}.", quote(name)));
    let create_schema = schema.map_or(String::new(), |name| {
        format!("CREATE SCHEMA IF NOT EXISTS {};", quote(name))
    });
    let ddl = format!("SELECT pg_advisory_xact_lock(7347010);{create_schema}{TABLES}");
    (prefix.clone(), ddl.replace("{p}", &prefix))
}

/// An SQL identifier, quoted.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
