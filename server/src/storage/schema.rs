//! The database schema, written once with type placeholders that each backend fills in.

/// Column types that differ between backends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Types {
    pub int: &'static str,
    pub real: &'static str,
    pub blob: &'static str,
    pub serial: &'static str,
}

/// SQLite's types.
pub(crate) const SQLITE: Types = Types {
    int: "INTEGER",
    real: "REAL",
    blob: "BLOB",
    serial: "INTEGER PRIMARY KEY AUTOINCREMENT",
};

/// PostgreSQL's types.
pub(crate) const POSTGRES: Types = Types {
    int: "BIGINT",
    real: "DOUBLE PRECISION",
    blob: "BYTEA",
    serial: "BIGSERIAL PRIMARY KEY",
};

const TEMPLATE: &str = "
CREATE TABLE IF NOT EXISTS covey_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS populations (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    catalog TEXT NOT NULL,
    created_at {INT} NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    population TEXT NOT NULL REFERENCES populations(name),
    token_hash {BLOB} NOT NULL UNIQUE,
    registered_at {INT} NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_by_population ON devices(population);
CREATE TABLE IF NOT EXISTS model_versions (
    population TEXT NOT NULL REFERENCES populations(name),
    version {INT} NOT NULL,
    round_id {INT},
    params {BLOB} NOT NULL,
    optimizer_state {BLOB} NOT NULL,
    digest {BLOB} NOT NULL,
    created_at {INT} NOT NULL,
    PRIMARY KEY (population, version)
);
CREATE TABLE IF NOT EXISTS rounds (
    id {SERIAL},
    population TEXT NOT NULL REFERENCES populations(name),
    base_version {INT} NOT NULL,
    state TEXT NOT NULL,
    stage {INT} NOT NULL,
    opened_at {INT} NOT NULL,
    deadline {INT} NOT NULL,
    session {BLOB},
    dp_plan TEXT,
    survivors {BLOB},
    reason TEXT,
    updated_at {INT} NOT NULL
);
CREATE INDEX IF NOT EXISTS rounds_by_population ON rounds(population, id);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_round_per_population
    ON rounds(population) WHERE state IN ('check_in', 'running');
CREATE TABLE IF NOT EXISTS round_members (
    round_id {INT} NOT NULL REFERENCES rounds(id),
    device_id TEXT NOT NULL REFERENCES devices(id),
    member {INT} NOT NULL,
    joined_at {INT} NOT NULL,
    PRIMARY KEY (round_id, device_id),
    UNIQUE (round_id, member)
);
CREATE TABLE IF NOT EXISTS submissions (
    round_id {INT} NOT NULL REFERENCES rounds(id),
    stage {INT} NOT NULL,
    member {INT} NOT NULL,
    digest {BLOB} NOT NULL,
    payload {BLOB},
    received_at {INT} NOT NULL,
    PRIMARY KEY (round_id, stage, member)
);
CREATE TABLE IF NOT EXISTS outbox (
    round_id {INT} NOT NULL REFERENCES rounds(id),
    stage {INT} NOT NULL,
    member {INT} NOT NULL,
    payload {BLOB} NOT NULL,
    PRIMARY KEY (round_id, stage, member)
);
CREATE TABLE IF NOT EXISTS ledger (
    population TEXT NOT NULL REFERENCES populations(name),
    seq {INT} NOT NULL,
    round_id {INT} NOT NULL UNIQUE REFERENCES rounds(id),
    survivors {INT} NOT NULL,
    event TEXT NOT NULL,
    epsilon_round {REAL} NOT NULL,
    epsilon_total {REAL} NOT NULL,
    delta {REAL} NOT NULL,
    created_at {INT} NOT NULL,
    PRIMARY KEY (population, seq)
);
CREATE TABLE IF NOT EXISTS round_profiles (
    round_id {INT} PRIMARY KEY REFERENCES rounds(id),
    profile TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at {INT} NOT NULL
);
";

/// Steps from one schema version to the next: `(from, DDL)`, applied in order to a
/// database at `from` (a new database is created at version 1 and migrated like an old one,
/// so there is one path to the current schema).
///
/// - 1 → 2: devices may register an Ed25519 signing key for signed SecAgg+ sessions; a key
///   identifies one device within its population (NULLs, devices without a key, are
///   distinct in both backends).
/// - 2 → 3: a model version carries the clip that adaptive clipping set for the rounds
///   trained on it (NULL: the population's fixed `clip_norm`), so a restarted server
///   resumes the clip where the last completed round left it.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "ALTER TABLE devices ADD COLUMN signing_key {BLOB};
         CREATE UNIQUE INDEX devices_by_signing_key ON devices(population, signing_key);",
    ),
    (2, "ALTER TABLE model_versions ADD COLUMN clip {REAL};"),
];

/// Fills a DDL template's type placeholders for a backend.
fn fill(template: &str, types: Types) -> String {
    template
        .replace("{INT}", types.int)
        .replace("{REAL}", types.real)
        .replace("{BLOB}", types.blob)
        .replace("{SERIAL}", types.serial)
}

/// The version-1 schema DDL for a backend (idempotent: `IF NOT EXISTS` throughout).
pub(crate) fn ddl(types: Types) -> String {
    fill(TEMPLATE, types)
}

/// The statements of each migration for a backend, split so a driver can run them one by
/// one inside a transaction.
pub(crate) fn migrations(types: Types) -> Vec<(i64, Vec<String>)> {
    MIGRATIONS
        .iter()
        .map(|(from, ddl)| {
            let statements = fill(ddl, types)
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            (*from, statements)
        })
        .collect()
}
