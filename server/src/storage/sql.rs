//! [`Storage`] written once in portable SQL over a minimal backend seam ([`Database`]).
//!
//! Placeholders are `$1, $2, ...` in order of first use: PostgreSQL reads them natively and
//! SQLite treats them as named parameters numbered by first appearance, so one query text
//! serves both. Inserts that may collide use `ON CONFLICT DO NOTHING` and check the row
//! count, so a collision never poisons a PostgreSQL transaction.

use covey_protocol::secagg::Stage;

use super::{
    CheckIn, DeviceRecord, Lease, LedgerEntry, ModelMeta, ModelRecord, NewRound, PopulationRecord,
    ROUND_PROFILE_VERSION, RoundCompletion, RoundId, RoundPhase, RoundProfile, RoundRecord,
    SCHEMA_VERSION, SessionRecord, Storage, Submission, SubmitOutcome, TokenHash, Transition,
};
use crate::clock::Millis;
use crate::error::{Error, Result};

/// A typed SQL parameter or result cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// 64-bit integer.
    Int(Option<i64>),
    /// Double.
    Real(Option<f64>),
    /// UTF-8 text.
    Text(Option<String>),
    /// Bytes.
    Blob(Option<Vec<u8>>),
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

fn corrupt(reason: String) -> Error {
    Error::Corrupt {
        what: "row",
        reason,
    }
}

impl Value {
    fn is_null(&self) -> bool {
        matches!(
            self,
            Value::Int(None) | Value::Real(None) | Value::Text(None) | Value::Blob(None)
        )
    }
}

impl Row {
    fn cell(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| corrupt(format!("missing column {i}")))
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.cell(i)? {
            Value::Int(v) => Ok(*v),
            v if v.is_null() => Ok(None),
            other => Err(corrupt(format!("column {i} is {other:?}, not an integer"))),
        }
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| corrupt(format!("column {i} is NULL")))
    }
    fn uint(&self, i: usize) -> Result<u64> {
        u64::try_from(self.int(i)?).map_err(|_| corrupt(format!("column {i} is negative")))
    }
    fn real(&self, i: usize) -> Result<f64> {
        self.opt_real(i)?
            .ok_or_else(|| corrupt(format!("column {i} is NULL")))
    }
    fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        match self.cell(i)? {
            Value::Real(v) => Ok(*v),
            v if v.is_null() => Ok(None),
            other => Err(corrupt(format!("column {i} is {other:?}, not a number"))),
        }
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.cell(i)? {
            Value::Text(v) => Ok(v.clone()),
            v if v.is_null() => Ok(None),
            other => Err(corrupt(format!("column {i} is {other:?}, not text"))),
        }
    }
    fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| corrupt(format!("column {i} is NULL")))
    }
    fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        match self.cell(i)? {
            Value::Blob(v) => Ok(v.clone()),
            v if v.is_null() => Ok(None),
            other => Err(corrupt(format!("column {i} is {other:?}, not bytes"))),
        }
    }
    fn blob(&self, i: usize) -> Result<Vec<u8>> {
        self.opt_blob(i)?
            .ok_or_else(|| corrupt(format!("column {i} is NULL")))
    }
    fn digest(&self, i: usize) -> Result<[u8; 32]> {
        self.blob(i)?
            .try_into()
            .map_err(|_| corrupt(format!("column {i} is not a 32-byte digest")))
    }
}

/// One open transaction of a backend.
pub trait Tx {
    /// Runs a statement; returns the number of rows changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Runs a query; returns every row.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
}

/// What a backend provides: DDL execution and transactions.
pub trait Database: Send + Sync + std::fmt::Debug {
    /// Backend name.
    const NAME: &'static str;
    /// Runs the schema script (several statements).
    fn execute_batch(&self, ddl: &str) -> Result<()>;
    /// Runs `f` in one transaction: committed if it returns `Ok`, rolled back otherwise.
    fn transaction<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T>;
}

/// The storage implementation shared by every backend.
#[derive(Debug)]
pub struct SqlStorage<D> {
    db: D,
}

fn int(v: i64) -> Value {
    Value::Int(Some(v))
}
fn uint(v: u64) -> Result<Value> {
    i64::try_from(v)
        .map(int)
        .map_err(|_| Error::Storage(format!("{v} does not fit a 64-bit signed column")))
}
fn text(v: &str) -> Value {
    Value::Text(Some(v.to_owned()))
}
fn blob(v: &[u8]) -> Value {
    Value::Blob(Some(v.to_vec()))
}
fn real(v: f64) -> Value {
    Value::Real(Some(v))
}
fn stage(s: Stage) -> Value {
    int(s as i64)
}

/// Survivor lists are stored as little-endian u32s.
fn encode_members(members: &[u32]) -> Vec<u8> {
    members.iter().flat_map(|m| m.to_le_bytes()).collect()
}

fn decode_members(bytes: &[u8]) -> Result<Vec<u32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(corrupt(
            "survivor list length is not a multiple of 4".into(),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

const ROUND_COLUMNS: &str = "id, population, base_version, state, stage, opened_at, deadline, \
                             session, survivors, reason, updated_at, dp_plan";
const MODEL_META_COLUMNS: &str = "version, round_id, length(params), digest, created_at, clip";
const LEDGER_COLUMNS: &str = "population, seq, round_id, survivors, event, epsilon_round, \
                              epsilon_total, delta, created_at";

fn round_from_row(row: &Row) -> Result<RoundRecord> {
    Ok(RoundRecord {
        id: row.int(0)?,
        population: row.text(1)?,
        base_version: row.uint(2)?,
        phase: RoundPhase::from_columns(&row.text(3)?, row.int(4)?)?,
        opened_at: row.int(5)?,
        deadline: row.int(6)?,
        session: match (row.opt_blob(7)?, row.opt_text(11)?) {
            (Some(secagg), Some(dp_plan)) => Some(SessionRecord { secagg, dp_plan }),
            _ => None,
        },
        survivors: decode_members(&row.opt_blob(8)?.unwrap_or_default())?,
        reason: row.opt_text(9)?,
        updated_at: row.int(10)?,
    })
}

/// A device's optional 32-byte signing key.
fn signing_key(row: &Row, i: usize) -> Result<Option<[u8; 32]>> {
    row.opt_blob(i)?
        .map(|k| {
            k.try_into()
                .map_err(|_| corrupt(format!("column {i} is not a 32-byte signing key")))
        })
        .transpose()
}

fn model_meta_from_row(row: &Row) -> Result<ModelMeta> {
    Ok(ModelMeta {
        version: row.uint(0)?,
        round_id: row.opt_int(1)?,
        bytes: row.uint(2)?,
        digest: row.digest(3)?,
        created_at: row.int(4)?,
        clip: row.opt_real(5)?,
    })
}

fn ledger_from_row(row: &Row) -> Result<LedgerEntry> {
    Ok(LedgerEntry {
        population: row.text(0)?,
        seq: row.uint(1)?,
        round_id: row.int(2)?,
        survivors: row.uint(3)?,
        event: row.text(4)?,
        epsilon_round: row.real(5)?,
        epsilon_total: row.real(6)?,
        delta: row.real(7)?,
        created_at: row.int(8)?,
    })
}

impl<D: Database> SqlStorage<D> {
    /// Wraps a backend: runs `ddl` (the version-1 schema, idempotent), applies the
    /// `migrations` the database has not had yet, then checks it is at [`SCHEMA_VERSION`].
    pub(crate) fn new(db: D, ddl: &str, migrations: &[(i64, Vec<String>)]) -> Result<Self> {
        db.execute_batch(ddl)?;
        let storage = SqlStorage { db };
        storage.tx(|tx| {
            tx.execute(
                "INSERT INTO covey_meta (key, value) VALUES ('schema_version', '1') \
                 ON CONFLICT DO NOTHING",
                &[],
            )
        })?;
        for (from, statements) in migrations {
            storage.tx(|tx| migrate(tx, *from, statements))?;
        }
        storage.tx(|tx| {
            let rows = tx.query(
                "SELECT value FROM covey_meta WHERE key = 'schema_version'",
                &[],
            )?;
            let found = rows.first().map(|r| r.text(0)).transpose()?;
            if found.as_deref() != Some(SCHEMA_VERSION.to_string().as_str()) {
                return Err(Error::Corrupt {
                    what: "schema version",
                    reason: format!("database has {found:?}, this build uses {SCHEMA_VERSION}"),
                });
            }
            Ok(())
        })?;
        Ok(storage)
    }

    /// The backend.
    pub fn database(&self) -> &D {
        &self.db
    }

    fn tx<T>(&self, mut f: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.db.transaction(&mut f)
    }

    fn query_one<T>(
        &self,
        sql: &str,
        params: &[Value],
        map: impl Fn(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        self.tx(|tx| tx.query(sql, params)?.first().map(&map).transpose())
    }

    fn query_all<T>(
        &self,
        sql: &str,
        params: &[Value],
        map: impl Fn(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.tx(|tx| tx.query(sql, params)?.iter().map(&map).collect())
    }
}

/// Applies one migration step if the database is at version `from`. The version row is
/// claimed first, so a second process migrating at the same time waits on that row and then
/// finds the step done (PostgreSQL); SQLite's write lock serialises the two anyway.
fn migrate(tx: &mut dyn Tx, from: i64, statements: &[String]) -> Result<()> {
    let claimed = tx.execute(
        "UPDATE covey_meta SET value = $1 WHERE key = 'schema_version' AND value = $2",
        &[text(&(from + 1).to_string()), text(&from.to_string())],
    )?;
    if claimed == 1 {
        for statement in statements {
            tx.execute(statement, &[])?;
        }
    }
    Ok(())
}

/// Fails with [`Error::Conflict`] unless exactly one row changed.
fn expect_one(changed: u64, what: &'static str, expected: impl std::fmt::Display) -> Result<()> {
    if changed == 1 {
        Ok(())
    } else {
        Err(Error::Conflict {
            what,
            expected: expected.to_string(),
        })
    }
}

/// Runs an `INSERT ... ON CONFLICT DO NOTHING`; [`Error::AlreadyExists`] if it inserted
/// nothing.
fn insert_new(tx: &mut dyn Tx, sql: &str, params: &[Value], what: &'static str) -> Result<()> {
    if tx.execute(sql, params)? == 0 {
        return Err(Error::AlreadyExists(what));
    }
    Ok(())
}

fn insert_model(tx: &mut dyn Tx, m: &ModelRecord) -> Result<()> {
    insert_new(
        tx,
        "INSERT INTO model_versions \
         (population, version, round_id, params, optimizer_state, digest, created_at, clip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        &[
            text(&m.population),
            uint(m.version)?,
            Value::Int(m.round_id),
            blob(&m.params),
            blob(&m.optimizer_state),
            blob(&m.digest),
            int(m.created_at),
            Value::Real(m.clip),
        ],
        "model version",
    )
}

/// Removes from round `id` every checked-in device whose member id is not in `cohort`.
fn dismiss_unselected(tx: &mut dyn Tx, id: RoundId, cohort: &[u32]) -> Result<()> {
    let members = tx.query(
        "SELECT member FROM round_members WHERE round_id = $1",
        &[int(id)],
    )?;
    for row in members {
        let member = member_id(row.int(0)?)?;
        if cohort.binary_search(&member).is_err() {
            tx.execute(
                "DELETE FROM round_members WHERE round_id = $1 AND member = $2",
                &[int(id), int(i64::from(member))],
            )?;
        }
    }
    Ok(())
}

/// Drops a finished round's queued payloads and server messages (they are masked, but
/// nothing needs them any more).
fn drop_round_payloads(tx: &mut dyn Tx, id: RoundId) -> Result<()> {
    tx.execute(
        "UPDATE submissions SET payload = NULL WHERE round_id = $1",
        &[int(id)],
    )?;
    tx.execute("DELETE FROM outbox WHERE round_id = $1", &[int(id)])?;
    Ok(())
}

impl<D: Database> Storage for SqlStorage<D> {
    fn backend(&self) -> &'static str {
        D::NAME
    }

    fn create_population(&self, p: &PopulationRecord) -> Result<()> {
        self.tx(|tx| {
            insert_new(
                tx,
                "INSERT INTO populations (name, config, catalog, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[
                    text(&p.name),
                    text(&p.config_toml),
                    text(&p.catalog),
                    int(p.created_at),
                ],
                "population",
            )
        })
    }

    fn population(&self, name: &str) -> Result<Option<PopulationRecord>> {
        self.query_one(
            "SELECT name, config, catalog, created_at FROM populations WHERE name = $1",
            &[text(name)],
            population_from_row,
        )
    }

    fn populations(&self) -> Result<Vec<PopulationRecord>> {
        self.query_all(
            "SELECT name, config, catalog, created_at FROM populations ORDER BY name",
            &[],
            population_from_row,
        )
    }

    fn register_device(&self, d: &DeviceRecord, token: &TokenHash) -> Result<()> {
        self.tx(|tx| {
            if let Some(key) = &d.signing_key {
                // Checked first for a precise error; the unique index still decides races.
                let taken = tx.query(
                    "SELECT 1 FROM devices WHERE population = $1 AND signing_key = $2",
                    &[text(&d.population), blob(key)],
                )?;
                if !taken.is_empty() {
                    return Err(Error::AlreadyExists("signing key"));
                }
            }
            insert_new(
                tx,
                "INSERT INTO devices (id, population, token_hash, registered_at, signing_key) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    text(&d.id),
                    text(&d.population),
                    blob(&token.0),
                    int(d.registered_at),
                    Value::Blob(d.signing_key.map(|k| k.to_vec())),
                ],
                "device",
            )
        })
    }

    fn device_by_token(&self, token: &TokenHash) -> Result<Option<DeviceRecord>> {
        self.query_one(
            "SELECT id, population, registered_at, signing_key FROM devices \
             WHERE token_hash = $1",
            &[blob(&token.0)],
            |row| {
                Ok(DeviceRecord {
                    id: row.text(0)?,
                    population: row.text(1)?,
                    registered_at: row.int(2)?,
                    signing_key: signing_key(row, 3)?,
                })
            },
        )
    }

    fn device_count(&self, population: &str) -> Result<u64> {
        self.query_one(
            "SELECT COUNT(*) FROM devices WHERE population = $1",
            &[text(population)],
            |row| row.uint(0),
        )
        .map(Option::unwrap_or_default)
    }

    fn put_model(&self, model: &ModelRecord) -> Result<()> {
        self.tx(|tx| insert_model(tx, model))
    }

    fn model(&self, population: &str, version: u64) -> Result<Option<ModelRecord>> {
        self.query_one(
            "SELECT population, version, round_id, params, optimizer_state, digest, created_at, \
             clip FROM model_versions WHERE population = $1 AND version = $2",
            &[text(population), uint(version)?],
            |row| {
                Ok(ModelRecord {
                    population: row.text(0)?,
                    version: row.uint(1)?,
                    round_id: row.opt_int(2)?,
                    params: row.blob(3)?,
                    optimizer_state: row.blob(4)?,
                    digest: row.digest(5)?,
                    created_at: row.int(6)?,
                    clip: row.opt_real(7)?,
                })
            },
        )
    }

    fn latest_model(&self, population: &str) -> Result<Option<ModelMeta>> {
        self.query_one(
            &format!(
                "SELECT {MODEL_META_COLUMNS} FROM model_versions WHERE population = $1 \
                 ORDER BY version DESC LIMIT 1"
            ),
            &[text(population)],
            model_meta_from_row,
        )
    }

    fn models(&self, population: &str) -> Result<Vec<ModelMeta>> {
        self.query_all(
            &format!(
                "SELECT {MODEL_META_COLUMNS} FROM model_versions WHERE population = $1 \
                 ORDER BY version"
            ),
            &[text(population)],
            model_meta_from_row,
        )
    }

    fn open_round(&self, r: &NewRound) -> Result<RoundId> {
        let (state, stage) = RoundPhase::CheckIn.to_columns();
        let rows = self.tx(|tx| {
            tx.query(
                "INSERT INTO rounds (population, base_version, state, stage, opened_at, \
                 deadline, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT DO NOTHING RETURNING id",
                &[
                    text(&r.population),
                    uint(r.base_version)?,
                    text(state),
                    int(stage),
                    int(r.opened_at),
                    int(r.deadline),
                    int(r.opened_at),
                ],
            )
        })?;
        match rows.first() {
            Some(row) => row.int(0),
            None => Err(Error::AlreadyExists("active round of this population")),
        }
    }

    fn round(&self, id: RoundId) -> Result<Option<RoundRecord>> {
        self.query_one(
            &format!("SELECT {ROUND_COLUMNS} FROM rounds WHERE id = $1"),
            &[int(id)],
            round_from_row,
        )
    }

    fn rounds(&self, population: &str, limit: u32) -> Result<Vec<RoundRecord>> {
        self.query_all(
            &format!(
                "SELECT {ROUND_COLUMNS} FROM rounds WHERE population = $1 \
                 ORDER BY id DESC LIMIT $2"
            ),
            &[text(population), int(i64::from(limit))],
            round_from_row,
        )
    }

    fn active_rounds(&self) -> Result<Vec<RoundRecord>> {
        self.query_all(
            &format!(
                "SELECT {ROUND_COLUMNS} FROM rounds WHERE state IN ('check_in', 'running') \
                 ORDER BY id"
            ),
            &[],
            round_from_row,
        )
    }

    fn advance_round(&self, t: &Transition<'_>) -> Result<()> {
        let opened = match t.to {
            RoundPhase::Stage(s) => Some(s),
            RoundPhase::CheckIn => None,
            RoundPhase::Completed | RoundPhase::Aborted => {
                return Err(Error::Storage(format!(
                    "advance_round cannot end a round (to {})",
                    t.to.name()
                )));
            }
        };
        if opened.is_none() && !t.messages.is_empty() {
            return Err(Error::Storage("messages need a stage to open".into()));
        }
        let (from_state, from_stage) = t.from.to_columns();
        let (to_state, to_stage) = t.to.to_columns();
        self.tx(|tx| {
            let changed = tx.execute(
                "UPDATE rounds SET state = $1, stage = $2, deadline = $3, \
                 session = COALESCE($4, session), dp_plan = COALESCE($5, dp_plan), \
                 updated_at = $6 WHERE id = $7 AND state = $8 AND stage = $9",
                &[
                    text(to_state),
                    int(to_stage),
                    int(t.deadline),
                    Value::Blob(t.session.map(|s| s.secagg.clone())),
                    Value::Text(t.session.map(|s| s.dp_plan.clone())),
                    int(t.now),
                    int(t.id),
                    text(from_state),
                    int(from_stage),
                ],
            )?;
            expect_one(changed, "round", t.from.name())?;
            if let Some(cohort) = t.cohort {
                dismiss_unselected(tx, t.id, cohort)?;
            }
            for (member, payload) in t.messages {
                insert_new(
                    tx,
                    "INSERT INTO outbox (round_id, stage, member, payload) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        int(t.id),
                        int(to_stage),
                        int(i64::from(*member)),
                        blob(payload),
                    ],
                    "stage message",
                )?;
            }
            Ok(())
        })
    }

    fn check_in(&self, id: RoundId, device: &str, cohort_max: u32, now: Millis) -> Result<CheckIn> {
        self.tx(|tx| {
            let rows = tx.query("SELECT state FROM rounds WHERE id = $1", &[int(id)])?;
            let state = rows.first().ok_or(Error::NotFound("round"))?.text(0)?;
            let existing = tx.query(
                "SELECT member FROM round_members WHERE round_id = $1 AND device_id = $2",
                &[int(id), text(device)],
            )?;
            if let Some(row) = existing.first() {
                return member_id(row.int(0)?).map(CheckIn::Admitted);
            }
            if state != "check_in" {
                return Ok(CheckIn::Closed);
            }
            // Concurrent check-ins race for the same next member id; the UNIQUE
            // (round_id, member) constraint lets exactly one of them win, and cohort_max
            // is enforced by the same statement.
            let rows = tx.query(
                "INSERT INTO round_members (round_id, device_id, member, joined_at) \
                 SELECT CAST($1 AS BIGINT), CAST($2 AS TEXT), COALESCE(MAX(member) + 1, 0), \
                 CAST($3 AS BIGINT) FROM round_members \
                 WHERE round_id = $1 HAVING COUNT(*) < $4 \
                 ON CONFLICT DO NOTHING RETURNING member",
                &[int(id), text(device), int(now), int(i64::from(cohort_max))],
            )?;
            match rows.first() {
                Some(row) => member_id(row.int(0)?).map(CheckIn::Admitted),
                None => {
                    let count = tx.query(
                        "SELECT COUNT(*) FROM round_members WHERE round_id = $1",
                        &[int(id)],
                    )?;
                    let count = count.first().map(|r| r.int(0)).transpose()?.unwrap_or(0);
                    if count >= i64::from(cohort_max) {
                        Ok(CheckIn::Full)
                    } else {
                        Err(Error::Conflict {
                            what: "check-in",
                            expected: "a free member id (retry)".into(),
                        })
                    }
                }
            }
        })
    }

    fn members(&self, id: RoundId) -> Result<Vec<(String, u32)>> {
        self.query_all(
            "SELECT device_id, member FROM round_members WHERE round_id = $1 ORDER BY member",
            &[int(id)],
            |row| Ok((row.text(0)?, member_id(row.int(1)?)?)),
        )
    }

    fn member_signing_keys(&self, id: RoundId) -> Result<Vec<(u32, Option<[u8; 32]>)>> {
        self.query_all(
            "SELECT m.member, d.signing_key FROM round_members m \
             JOIN devices d ON d.id = m.device_id WHERE m.round_id = $1 ORDER BY m.member",
            &[int(id)],
            |row| Ok((member_id(row.int(0)?)?, signing_key(row, 1)?)),
        )
    }

    fn check_ins_since(&self, device: &str, since: Millis) -> Result<Vec<Millis>> {
        self.query_all(
            "SELECT joined_at FROM round_members WHERE device_id = $1 AND joined_at >= $2 \
             ORDER BY joined_at",
            &[text(device), int(since)],
            |row| row.int(0),
        )
    }

    fn member_of(&self, id: RoundId, device: &str) -> Result<Option<u32>> {
        self.query_one(
            "SELECT member FROM round_members WHERE round_id = $1 AND device_id = $2",
            &[int(id), text(device)],
            |row| member_id(row.int(0)?),
        )
    }

    fn complete_round(&self, c: &RoundCompletion) -> Result<()> {
        let (from_state, from_stage) = c.from.to_columns();
        let (to_state, to_stage) = RoundPhase::Completed.to_columns();
        self.tx(|tx| {
            let changed = tx.execute(
                "UPDATE rounds SET state = $1, stage = $2, survivors = $3, updated_at = $4 \
                 WHERE id = $5 AND state = $6 AND stage = $7",
                &[
                    text(to_state),
                    int(to_stage),
                    blob(&encode_members(&c.survivors)),
                    int(c.now),
                    int(c.round_id),
                    text(from_state),
                    int(from_stage),
                ],
            )?;
            expect_one(changed, "round", c.from.name())?;
            insert_model(tx, &c.model)?;
            let e = &c.charge;
            // The ledger is append-only and gap-free: seq must be the next number.
            let next = tx.query(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM ledger WHERE population = $1",
                &[text(&e.population)],
            )?;
            let next = next.first().map(|r| r.uint(0)).transpose()?.unwrap_or(1);
            if e.seq != next {
                return Err(Error::Conflict {
                    what: "privacy ledger",
                    expected: format!("sequence number {next}, got {}", e.seq),
                });
            }
            let changed = tx.execute(
                &format!(
                    "INSERT INTO ledger ({LEDGER_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
                ),
                &[
                    text(&e.population),
                    uint(e.seq)?,
                    int(e.round_id),
                    uint(e.survivors)?,
                    text(&e.event),
                    real(e.epsilon_round),
                    real(e.epsilon_total),
                    real(e.delta),
                    int(e.created_at),
                ],
            )?;
            expect_one(changed, "privacy ledger", "an uncharged round")?;
            let profile = serde_json::to_string(&c.profile)
                .map_err(|e| Error::Storage(format!("encoding the round profile: {e}")))?;
            insert_new(
                tx,
                "INSERT INTO round_profiles (round_id, profile) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &[int(c.round_id), text(&profile)],
                "round profile",
            )?;
            drop_round_payloads(tx, c.round_id)
        })
    }

    fn round_profile(&self, id: RoundId) -> Result<Option<RoundProfile>> {
        let text = self.query_one(
            "SELECT profile FROM round_profiles WHERE round_id = $1",
            &[int(id)],
            |row| row.text(0),
        )?;
        let Some(text) = text else { return Ok(None) };
        let profile: RoundProfile = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
            what: "round profile",
            reason: e.to_string(),
        })?;
        if profile.version != ROUND_PROFILE_VERSION {
            return Err(Error::Corrupt {
                what: "round profile",
                reason: format!(
                    "format version {}, expected {ROUND_PROFILE_VERSION}",
                    profile.version
                ),
            });
        }
        Ok(Some(profile))
    }

    fn abort_round(&self, id: RoundId, from: RoundPhase, reason: &str, now: Millis) -> Result<()> {
        let (from_state, from_stage) = from.to_columns();
        let (to_state, to_stage) = RoundPhase::Aborted.to_columns();
        self.tx(|tx| {
            let changed = tx.execute(
                "UPDATE rounds SET state = $1, stage = $2, reason = $3, updated_at = $4 \
                 WHERE id = $5 AND state = $6 AND stage = $7",
                &[
                    text(to_state),
                    int(to_stage),
                    text(reason),
                    int(now),
                    int(id),
                    text(from_state),
                    int(from_stage),
                ],
            )?;
            expect_one(changed, "round", from.name())?;
            drop_round_payloads(tx, id)
        })
    }

    fn acquire_lease(&self, key: &str, owner: &str, now: Millis, ttl: Millis) -> Result<bool> {
        let changed = self.tx(|tx| {
            tx.execute(
                "INSERT INTO leases (key, owner, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, \
                 expires_at = excluded.expires_at \
                 WHERE leases.owner = excluded.owner OR leases.expires_at <= $4",
                &[
                    text(key),
                    text(owner),
                    int(now.saturating_add(ttl)),
                    int(now),
                ],
            )
        })?;
        Ok(changed == 1)
    }

    fn release_lease(&self, key: &str, owner: &str) -> Result<()> {
        self.tx(|tx| {
            tx.execute(
                "DELETE FROM leases WHERE key = $1 AND owner = $2",
                &[text(key), text(owner)],
            )
        })
        .map(drop)
    }

    fn lease(&self, key: &str) -> Result<Option<Lease>> {
        self.query_one(
            "SELECT key, owner, expires_at FROM leases WHERE key = $1",
            &[text(key)],
            |row| {
                Ok(Lease {
                    key: row.text(0)?,
                    owner: row.text(1)?,
                    expires_at: row.int(2)?,
                })
            },
        )
    }

    fn submit(&self, s: &Submission) -> Result<SubmitOutcome> {
        self.tx(|tx| {
            let changed = tx.execute(
                "INSERT INTO submissions (round_id, stage, member, digest, payload, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    int(s.round_id),
                    stage(s.stage),
                    int(i64::from(s.member)),
                    blob(&s.digest),
                    blob(&s.payload),
                    int(s.received_at),
                ],
            )?;
            if changed == 1 {
                return Ok(SubmitOutcome::Accepted);
            }
            let rows = tx.query(
                "SELECT digest FROM submissions WHERE round_id = $1 AND stage = $2 AND member = $3",
                &[int(s.round_id), stage(s.stage), int(i64::from(s.member))],
            )?;
            let earlier = rows.first().map(|r| r.digest(0)).transpose()?;
            Ok(SubmitOutcome::Replay {
                same_payload: earlier == Some(s.digest),
            })
        })
    }

    fn take_submissions(&self, id: RoundId, s: Stage) -> Result<Vec<(u32, Vec<u8>)>> {
        self.tx(|tx| {
            let rows = tx.query(
                "SELECT member, payload FROM submissions \
                 WHERE round_id = $1 AND stage = $2 AND payload IS NOT NULL ORDER BY member",
                &[int(id), stage(s)],
            )?;
            let taken = rows
                .iter()
                .map(|r| Ok((member_id(r.int(0)?)?, r.blob(1)?)))
                .collect::<Result<Vec<_>>>()?;
            for (member, _) in &taken {
                tx.execute(
                    "UPDATE submissions SET payload = NULL \
                     WHERE round_id = $1 AND stage = $2 AND member = $3",
                    &[int(id), stage(s), int(i64::from(*member))],
                )?;
            }
            Ok(taken)
        })
    }

    fn submission_count(&self, id: RoundId, s: Stage) -> Result<u64> {
        self.query_one(
            "SELECT COUNT(*) FROM submissions WHERE round_id = $1 AND stage = $2",
            &[int(id), stage(s)],
            |row| row.uint(0),
        )
        .map(Option::unwrap_or_default)
    }

    fn message(&self, id: RoundId, s: Stage, member: u32) -> Result<Option<Vec<u8>>> {
        self.query_one(
            "SELECT payload FROM outbox WHERE round_id = $1 AND stage = $2 AND member = $3",
            &[int(id), stage(s), int(i64::from(member))],
            |row| row.blob(0),
        )
    }

    fn ledger(&self, population: &str) -> Result<Vec<LedgerEntry>> {
        self.query_all(
            &format!("SELECT {LEDGER_COLUMNS} FROM ledger WHERE population = $1 ORDER BY seq"),
            &[text(population)],
            ledger_from_row,
        )
    }

    fn epsilon_spent(&self, population: &str) -> Result<f64> {
        self.query_one(
            "SELECT epsilon_total FROM ledger WHERE population = $1 ORDER BY seq DESC LIMIT 1",
            &[text(population)],
            |row| row.real(0),
        )
        .map(|e| e.unwrap_or(0.0))
    }
}

fn member_id(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(format!("member id {v} out of range")))
}

fn population_from_row(row: &Row) -> Result<PopulationRecord> {
    Ok(PopulationRecord {
        name: row.text(0)?,
        config_toml: row.text(1)?,
        catalog: row.text(2)?,
        created_at: row.int(3)?,
    })
}
