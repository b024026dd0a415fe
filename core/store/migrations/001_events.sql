-- Schema version 1: store identity, the data key, loyalty events.
-- Values of member data live only in `sealed` columns (AES-256-GCM, see src/cipher.rs);
-- `*_idx` columns hold blind indexes (truncated HMAC-SHA256 under per-table keys).

CREATE TABLE store_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- random; names this store's wrapping key in the host key store
    store_id TEXT NOT NULL,
    -- next row id of any sealed table; ids are never reused, so a deleted ciphertext can
    -- never be replayed into a new row under the same key
    next_row_id INTEGER NOT NULL
);

CREATE TABLE data_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- increments on rotation and erase; part of the key id
    generation INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    -- the data key wrapped by the host key store
    wrapped BLOB NOT NULL,
    -- a known constant sealed under the data key: detects a wrong key
    canary BLOB NOT NULL,
    -- values sealed under this key (random-nonce bound)
    seal_count INTEGER NOT NULL
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    -- blind index of the item id
    item_idx BLOB NOT NULL,
    sealed BLOB NOT NULL
);

CREATE INDEX events_item_idx ON events (item_idx);
