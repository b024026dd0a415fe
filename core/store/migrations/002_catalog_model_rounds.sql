-- Schema version 2: the server's item catalog, model state blobs, round participation
-- records, named key material.

CREATE TABLE catalog_header (
    -- at most one row: the catalog version
    id INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL
);

CREATE TABLE catalog_items (
    id INTEGER PRIMARY KEY,
    item_idx BLOB NOT NULL UNIQUE,
    sealed BLOB NOT NULL
);

CREATE TABLE model_blobs (
    id INTEGER PRIMARY KEY,
    name_idx BLOB NOT NULL UNIQUE,
    sealed BLOB NOT NULL
);

CREATE TABLE participations (
    id INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL
);

CREATE TABLE key_material (
    id INTEGER PRIMARY KEY,
    name_idx BLOB NOT NULL UNIQUE,
    sealed BLOB NOT NULL
);
