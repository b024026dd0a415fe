-- Schema version 3: the consent ledger, the terms in force, the audit log and its signed
-- checkpoints (see src/ledger.rs). All values are sealed; none is indexed, every table is
-- read whole and in row-id order (append order).

CREATE TABLE consent_events (
    id INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL
);

-- at most one row: the notice version in force and each purpose's material terms
CREATE TABLE consent_terms (
    id INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL
);

CREATE TABLE audit_checkpoints (
    id INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL
);
