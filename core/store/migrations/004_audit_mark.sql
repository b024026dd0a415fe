-- Schema version 4: the audit log's verified mark (at most one sealed row, see
-- src/audit_mark.rs): how far the log was verified, so opening resumes there instead of
-- re-reading every entry.

CREATE TABLE audit_mark (
    id INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL
);
