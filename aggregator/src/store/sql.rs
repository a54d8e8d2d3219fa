//! The store's two backends behind one small trait: SQLite (rusqlite, the default) and
//! PostgreSQL (the sync `postgres` crate, which fits the writer thread).
//!
//! Every query of the store is written once, in the SQL both engines understand, with three
//! conventions that [`Backend`]s translate:
//! - parameters are `?` or `?N` (PostgreSQL gets `$N`);
//! - the scalar minimum and maximum of two values are `LEAST(a, b)` / `GREATEST(a, b)`
//!   (SQLite gets its two-argument `min` / `max`); the aggregates stay `min(x)` / `max(x)`;
//! - values are [`Value`]s: 64-bit integers (flags too), doubles, text, bytes, null.
//!
//! Upserts use `INSERT … ON CONFLICT … DO UPDATE / DO NOTHING` (both engines), never
//! SQLite's `INSERT OR …`. What truly differs (the DDL of the time-partitioned tables, the
//! schema version's home, partition maintenance, bulk loading, advisory locks) is asked of
//! the backend by [`Dialect`].

use std::collections::HashMap;
use std::fmt::Write as _;

use super::StoreError;

/// A value bound to a parameter or read from a column.
pub type Value = rusqlite::types::Value;

/// Which engine a backend talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (one file, WAL).
    Sqlite,
    /// PostgreSQL (a server shared by several aggregators).
    Postgres,
}

/// What the store needs of a database connection. Statements are written in the common
/// SQL described in the [module docs](self); the backend translates and caches them.
pub trait Backend: Send {
    /// The engine.
    fn dialect(&self) -> Dialect;
    /// Runs one statement; the rows it changed.
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError>;
    /// Runs one query; all its rows.
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// Runs statements without parameters, separated by `;` (DDL), untranslated.
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Starts a transaction (reconnecting first if the connection was lost).
    fn begin(&mut self) -> Result<(), StoreError>;
    /// Commits the transaction.
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Rolls the transaction back (errors ignored: the connection may be gone).
    fn rollback(&mut self);
    /// Bulk-loads rows into `table` (PostgreSQL: `COPY … FROM STDIN`; SQLite: multi-row
    /// prepared inserts), inside the current transaction.
    fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<(), StoreError>;
    /// Inserts `rows` into `into.table` with as few statements as the engine allows
    /// (PostgreSQL: one, each column bound as one array; SQLite: multi-row `VALUES`, at most
    /// [`ROWS_PER_STATEMENT`] rows each), followed by `into.tail`; the rows `RETURNING`
    /// gave, if the tail has it.
    fn insert_rows(&mut self, into: &Rows<'_>, rows: &[Vec<Value>])
    -> Result<Vec<Row>, StoreError>;
    /// Deletes the rows of `table` whose `key` columns equal one of `keys` (PostgreSQL: one
    /// statement; SQLite: one cached statement run per key, an index search each); how many
    /// it deleted.
    fn delete_rows(
        &mut self,
        table: &str,
        key: &[(&str, Ty)],
        keys: &[Vec<Value>],
    ) -> Result<u64, StoreError>;
    /// The `key` columns of the rows of `table` whose key equals one of `keys` (run as
    /// [`delete_rows`](Self::delete_rows) is).
    fn find_rows(
        &mut self,
        table: &str,
        key: &[(&str, Ty)],
        keys: &[Vec<Value>],
    ) -> Result<Vec<Row>, StoreError>;
    /// Whether the connection was re-established since the last call (PostgreSQL: session
    /// state such as advisory locks is gone). Clears the flag.
    fn reconnected(&mut self) -> bool {
        false
    }
}

/// A column's type in a multi-row statement ([`Rows`]): PostgreSQL binds each column as
/// one array of it (`BIGINT[]`, `DOUBLE PRECISION[]`, `TEXT[]`, `BYTEA[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// 64-bit integer (flags too).
    Int,
    /// Double.
    Real,
    /// Text.
    Text,
    /// Bytes.
    Blob,
}

impl Ty {
    fn postgres(self) -> &'static str {
        match self {
            Ty::Int => "BIGINT[]",
            Ty::Real => "DOUBLE PRECISION[]",
            Ty::Text => "TEXT[]",
            Ty::Blob => "BYTEA[]",
        }
    }
}

/// Rows written together ([`Backend::insert_rows`]): the write path's one statement per
/// table per transaction.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    /// The table.
    pub table: &'a str,
    /// Its columns, in the order of each row's values.
    pub columns: &'a [(&'a str, Ty)],
    /// What follows the rows, in the common SQL, without parameters: `ON CONFLICT …`,
    /// `RETURNING …`, or nothing. `excluded.col` and `table.col` name the row proposed and
    /// the row stored, as in a one-row upsert. An `ON CONFLICT … DO UPDATE` must not meet
    /// the same key twice in one call (PostgreSQL refuses it): callers split such rows
    /// into rounds ([`rounds`]).
    pub tail: &'a str,
}

/// SQLite's most rows per multi-row statement; a call's rows are cut into statements of
/// power-of-two sizes up to it, so each table has at most eight statement shapes cached.
pub const ROWS_PER_STATEMENT: usize = 128;

/// Splits `rows` by key into rounds in which no key repeats, each in the original order: the
/// k-th row of a key goes into round k. Applying the rounds one after the other is applying
/// the rows one by one (rows of different keys do not affect each other).
pub fn rounds<K: std::hash::Hash + Eq, T>(rows: impl IntoIterator<Item = (K, T)>) -> Vec<Vec<T>> {
    let mut seen: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<Vec<T>> = Vec::new();
    for (k, row) in rows {
        let n = seen.entry(k).or_insert(0);
        if out.len() <= *n {
            out.push(Vec::new());
        }
        out[*n].push(row);
        *n += 1;
    }
    out
}

/// The sizes `n` rows are cut into: [`ROWS_PER_STATEMENT`] while that many are left, then
/// the powers of two of the rest, largest first.
fn chunk_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = if n >= ROWS_PER_STATEMENT {
            ROWS_PER_STATEMENT
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
        n -= size;
        Some(size)
    })
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as `T`.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, StoreError> {
        let v = self.0.get(i).unwrap_or(&Value::Null);
        T::from_value(v).ok_or_else(|| StoreError::Decode {
            column: i,
            value: format!("{v:?}"),
        })
    }
}

/// A column type a [`Row`] converts to.
pub trait FromValue: Sized {
    /// The conversion, `None` when the value does not fit.
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromValue for u64 {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i as u64)
    }
}
impl FromValue for u32 {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u32::try_from(i).ok())
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i != 0)
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Real(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// Something bound as a parameter ([`args!`](crate::args)).
pub trait Arg {
    /// As a value.
    fn to_value(&self) -> Value;
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn to_value(&self) -> Value {
                Value::Integer(*self as i64)
            }
        }
    )*};
}
int_arg!(i64, i32, u32, u16, u8, usize);

impl Arg for u64 {
    fn to_value(&self) -> Value {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl Arg for bool {
    fn to_value(&self) -> Value {
        Value::Integer(*self as i64)
    }
}
impl Arg for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl Arg for f32 {
    fn to_value(&self) -> Value {
        Value::Real(f64::from(*self))
    }
}
impl Arg for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl Arg for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl Arg for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl Arg for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl Arg for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl<T: Arg + ?Sized> Arg for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: Arg> Arg for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// The parameters of a statement: `args![a, b, c]`.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::store::sql::Arg::to_value(&$a)),*][..]
    };
}

/// Translates the common SQL to PostgreSQL's: `?` / `?N` → `$N` (outside quotes).
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 1;
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                let mut n = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                if n.is_empty() {
                    let _ = write!(out, "${next}");
                    next += 1;
                } else {
                    out.push('$');
                    out.push_str(&n);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Translates the common SQL to SQLite's: `LEAST(` / `GREATEST(` → `min(` / `max(`.
pub fn to_sqlite(sql: &str) -> String {
    sql.replace("LEAST(", "min(").replace("GREATEST(", "max(")
}

/// The SQLite backend.
pub struct Sqlite {
    pub(super) conn: rusqlite::Connection,
    translated: HashMap<String, String>,
    /// Transactions begin `IMMEDIATE` (writable connections): they take the write lock at
    /// once, waiting for it under the busy timeout. A deferred transaction that reads first
    /// and writes later fails at once (`SQLITE_BUSY`, no wait) when another connection
    /// committed in between, as the writer thread does beside the API's audit appends.
    immediate: bool,
}

impl Sqlite {
    /// Wraps an open connection.
    pub fn new(conn: rusqlite::Connection) -> Self {
        let immediate = !conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true);
        // Room for every statement of the write path, the multi-row shapes included
        // (rusqlite's default keeps 16, and a statement evicted is compiled again).
        conn.set_prepared_statement_cache_capacity(256);
        Self {
            conn,
            translated: HashMap::new(),
            immediate,
        }
    }

    /// Runs `{head} {table} WHERE k1 = ? AND k2 = ? …` once per key of `keys`, one cached
    /// statement: SQLite has no round trip to save, and it answers a row-value
    /// `IN (VALUES …)` by scanning the whole table, where each equality is an index search.
    fn keyed(
        &mut self,
        head: &str,
        table: &str,
        key: &[(&str, Ty)],
        keys: &[Vec<Value>],
        mut run: impl FnMut(
            &mut rusqlite::CachedStatement<'_>,
            std::slice::Iter<'_, Value>,
        ) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        check_widths(table, key.len(), keys)?;
        if keys.is_empty() {
            return Ok(());
        }
        let on: Vec<String> = key.iter().map(|(c, _)| format!("{c} = ?")).collect();
        let sql = format!("{head} {table} WHERE {}", on.join(" AND "));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        for k in keys {
            run(&mut stmt, k.iter())?;
        }
        Ok(())
    }

    fn sql(&mut self, sql: &str) -> String {
        if let Some(s) = self.translated.get(sql) {
            return s.clone();
        }
        let t = to_sqlite(sql);
        self.translated.insert(sql.to_string(), t.clone());
        t
    }
}

impl Backend for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        let sql = self.sql(sql);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(args.iter()))? as u64)
    }

    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        let sql = self.sql(sql);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut out = Vec::new();
        sqlite_rows(&mut stmt, args.iter(), &mut out)?;
        Ok(out)
    }

    fn insert_rows(
        &mut self,
        into: &Rows<'_>,
        rows: &[Vec<Value>],
    ) -> Result<Vec<Row>, StoreError> {
        check_widths(into.table, into.columns.len(), rows)?;
        let cols: Vec<&str> = into.columns.iter().map(|c| c.0).collect();
        let one = format!("({})", vec!["?"; cols.len()].join(", "));
        let tail = to_sqlite(into.tail);
        let returning = tail.contains("RETURNING");
        let mut out = Vec::new();
        let mut at = 0;
        for size in chunk_sizes(rows.len()) {
            let chunk = &rows[at..at + size];
            at += size;
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {} {tail}",
                into.table,
                cols.join(", "),
                vec![one.as_str(); size].join(", ")
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            if returning {
                sqlite_rows(&mut stmt, chunk.iter().flatten(), &mut out)?;
            } else {
                stmt.execute(rusqlite::params_from_iter(chunk.iter().flatten()))?;
            }
        }
        Ok(out)
    }

    fn delete_rows(
        &mut self,
        table: &str,
        key: &[(&str, Ty)],
        keys: &[Vec<Value>],
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        self.keyed("DELETE FROM", table, key, keys, |stmt, args| {
            deleted += stmt.execute(rusqlite::params_from_iter(args))? as u64;
            Ok(())
        })?;
        Ok(deleted)
    }

    fn find_rows(
        &mut self,
        table: &str,
        key: &[(&str, Ty)],
        keys: &[Vec<Value>],
    ) -> Result<Vec<Row>, StoreError> {
        let cols: Vec<&str> = key.iter().map(|c| c.0).collect();
        let mut out = Vec::new();
        let head = format!("SELECT {} FROM", cols.join(", "));
        self.keyed(&head, table, key, keys, |stmt, args| {
            sqlite_rows(stmt, args, &mut out)
        })?;
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        Ok(self.conn.execute_batch(if self.immediate {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        })?)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<(), StoreError> {
        // Up to 32766 parameters per statement; 100 rows a statement is plenty.
        const PER: usize = 100;
        let one = format!("({})", vec!["?"; columns.len()].join(", "));
        let head = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let full = format!("{head}{}", vec![one.as_str(); PER].join(", "));
        for chunk in rows.chunks(PER) {
            let sql = if chunk.len() == PER {
                full.clone()
            } else {
                format!("{head}{}", vec![one.as_str(); chunk.len()].join(", "))
            };
            let mut stmt = self.conn.prepare_cached(&sql)?;
            stmt.execute(rusqlite::params_from_iter(chunk.iter().flatten()))?;
        }
        Ok(())
    }
}

/// Runs a prepared SQLite statement and appends its rows to `out`.
fn sqlite_rows<'a>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    args: impl Iterator<Item = &'a Value>,
    out: &mut Vec<Row>,
) -> Result<(), StoreError> {
    let n = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(r.get::<_, Value>(i)?);
        }
        out.push(Row(row));
    }
    Ok(())
}

/// Every row of a multi-row statement has one value per column (a bug otherwise).
fn check_widths(table: &str, width: usize, rows: &[Vec<Value>]) -> Result<(), StoreError> {
    match rows.iter().find(|r| r.len() != width) {
        Some(r) => Err(StoreError::Internal(format!(
            "{table}: a row of {} values for {width} columns",
            r.len()
        ))),
        None => Ok(()),
    }
}

/// The PostgreSQL backend: one session; statements prepared once and cached. A lost
/// connection is re-established at the next transaction (and [`Backend::reconnected`] says
/// so, since session state such as advisory locks went with it).
pub struct Postgres {
    config: postgres::Config,
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
    reconnected: bool,
    in_tx: bool,
}

/// Where a PostgreSQL URL points, without its password (for logs).
pub fn describe_postgres(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    format!(
        "postgres://{}@{}:{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config
            .get_ports()
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(","),
        config.get_dbname().unwrap_or("")
    )
}

impl Postgres {
    /// Connects (no TLS: loopback or a trusted network; `sslmode=require` is refused by the
    /// connector).
    pub fn connect(config: postgres::Config) -> Result<Self, StoreError> {
        let client = config.connect(postgres::NoTls)?;
        Ok(Self {
            config,
            client,
            statements: HashMap::new(),
            reconnected: false,
            in_tx: false,
        })
    }

    /// Re-establishes a lost connection, outside a transaction (inside one, the error is the
    /// caller's: the transaction is gone).
    fn reconnect_if_lost(&mut self) -> Result<(), StoreError> {
        if !self.in_tx && self.client.is_closed() {
            self.client = self.config.connect(postgres::NoTls)?;
            self.statements.clear();
            self.reconnected = true;
        }
        Ok(())
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(&to_postgres(sql))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

/// A [`Value`] bound to a PostgreSQL parameter of whatever type the server inferred.
#[derive(Debug)]
struct PgArg<'a>(&'a Value);

impl postgres::types::ToSql for PgArg<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        match (self.0, ty) {
            (Value::Null, _) => Ok(postgres::types::IsNull::Yes),
            (Value::Integer(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Integer(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Integer(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Integer(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Integer(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Integer(i), &Type::TEXT) => i.to_string().to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Text(s), _) => s.to_sql(ty, out),
            (Value::Blob(b), _) => b.to_sql(ty, out),
            (v, ty) => Err(format!("cannot bind {v:?} to a {ty} parameter").into()),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn pg_row(r: &postgres::Row) -> Result<Row, StoreError> {
    use postgres::types::Type;
    let mut out = Vec::with_capacity(r.len());
    for (i, c) in r.columns().iter().enumerate() {
        let v = match *c.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Integer),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Integer(v.into())),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Integer(v.into())),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Integer(v.into())),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => r
                .try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into())),
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            Type::VOID => None,
            _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

impl Backend for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        self.reconnect_if_lost()?;
        let stmt = self.statement(sql)?;
        let a: Vec<PgArg<'_>> = args.iter().map(PgArg).collect();
        let p: Vec<&(dyn postgres::types::ToSql + Sync)> = a
            .iter()
            .map(|a| a as &(dyn postgres::types::ToSql + Sync))
            .collect();
        Ok(self.client.execute(&stmt, &p)?)
    }

    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        self.reconnect_if_lost()?;
        let stmt = self.statement(sql)?;
        let a: Vec<PgArg<'_>> = args.iter().map(PgArg).collect();
        let p: Vec<&(dyn postgres::types::ToSql + Sync)> = a
            .iter()
            .map(|a| a as &(dyn postgres::types::ToSql + Sync))
            .collect();
        self.client.query(&stmt, &p)?.iter().map(pg_row).collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.client.batch_execute(sql)?)
    }

    fn insert_rows(
        &mut self,
        into: &Rows<'_>,
        rows: &[Vec<Value>],
    ) -> Result<Vec<Row>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        check_widths(into.table, into.columns.len(), rows)?;
        let cols: Vec<&str> = into.columns.iter().map(|c| c.0).collect();
        let sql = format!(
            "INSERT INTO {} ({}) SELECT * FROM unnest({}) {}",
            into.table,
            cols.join(", "),
            unnest_params(into.columns),
            into.tail
        );
        self.reconnect_if_lost()?;
        let stmt = self.statement(&sql)?;
        let arrays = PgArrays::new(into.table, into.columns, rows)?;
        self.client
            .query(&stmt, &arrays.params())?
            .iter()
            .map(pg_row)
            .collect()
    }

    fn delete_rows(
        &mut self,
        table: &str,
        key: &[(&str, Ty)],
        keys: &[Vec<Value>],
    ) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        check_widths(table, key.len(), keys)?;
        let cols: Vec<&str> = key.iter().map(|c| c.0).collect();
        let on: Vec<String> = cols.iter().map(|c| format!("t.{c} = k.{c}")).collect();
        let sql = format!(
            "DELETE FROM {table} t USING unnest({}) AS k({}) WHERE {}",
            unnest_params(key),
            cols.join(", "),
            on.join(" AND ")
        );
        self.reconnect_if_lost()?;
        let stmt = self.statement(&sql)?;
        let arrays = PgArrays::new(table, key, keys)?;
        Ok(self.client.execute(&stmt, &arrays.params())?)
    }

    fn find_rows(
        &mut self,
        table: &str,
        key: &[(&str, Ty)],
        keys: &[Vec<Value>],
    ) -> Result<Vec<Row>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        check_widths(table, key.len(), keys)?;
        let cols: Vec<&str> = key.iter().map(|c| c.0).collect();
        let on: Vec<String> = cols.iter().map(|c| format!("t.{c} = k.{c}")).collect();
        let out: Vec<String> = cols.iter().map(|c| format!("t.{c}")).collect();
        let sql = format!(
            "SELECT {} FROM {table} t JOIN unnest({}) AS k({}) ON {}",
            out.join(", "),
            unnest_params(key),
            cols.join(", "),
            on.join(" AND ")
        );
        self.reconnect_if_lost()?;
        let stmt = self.statement(&sql)?;
        let arrays = PgArrays::new(table, key, keys)?;
        self.client
            .query(&stmt, &arrays.params())?
            .iter()
            .map(pg_row)
            .collect()
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.in_tx = false;
        self.reconnect_if_lost()?;
        self.client.batch_execute("BEGIN")?;
        self.in_tx = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.in_tx = false;
        Ok(self.client.batch_execute("COMMIT")?)
    }

    fn rollback(&mut self) {
        self.in_tx = false;
        let _ = self.client.batch_execute("ROLLBACK");
    }

    fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<(), StoreError> {
        use std::io::Write as _;
        let mut w = self
            .client
            .copy_in(&format!("COPY {table} ({}) FROM STDIN", columns.join(", ")))?;
        let mut line = String::new();
        for r in rows {
            line.clear();
            for (i, v) in r.iter().enumerate() {
                if i > 0 {
                    line.push('\t');
                }
                copy_text(&mut line, v);
            }
            line.push('\n');
            w.write_all(line.as_bytes())
                .map_err(|e| StoreError::Internal(format!("COPY into {table}: {e}")))?;
        }
        w.finish()?;
        Ok(())
    }

    fn reconnected(&mut self) -> bool {
        std::mem::take(&mut self.reconnected)
    }
}

/// `$1::BIGINT[], $2::TEXT[], …`: one array parameter per column.
fn unnest_params(columns: &[(&str, Ty)]) -> String {
    let p: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::{}", i + 1, ty.postgres()))
        .collect();
    p.join(", ")
}

/// The columns of rows as PostgreSQL arrays, borrowing the rows' values.
enum PgArray<'a> {
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Text(Vec<Option<&'a str>>),
    Blob(Vec<Option<&'a [u8]>>),
}

struct PgArrays<'a>(Vec<PgArray<'a>>);

impl<'a> PgArrays<'a> {
    fn new(
        table: &str,
        columns: &[(&str, Ty)],
        rows: &'a [Vec<Value>],
    ) -> Result<Self, StoreError> {
        let mut out = Vec::with_capacity(columns.len());
        for (i, (name, ty)) in columns.iter().enumerate() {
            let bad = |v: &Value| {
                StoreError::Internal(format!("{table}.{name}: {v:?} is not of type {ty:?}"))
            };
            let values = rows.iter().map(|r| &r[i]);
            out.push(match ty {
                Ty::Int => PgArray::Int(
                    values
                        .map(|v| match v {
                            Value::Null => Ok(None),
                            Value::Integer(x) => Ok(Some(*x)),
                            v => Err(bad(v)),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Ty::Real => PgArray::Real(
                    values
                        .map(|v| match v {
                            Value::Null => Ok(None),
                            Value::Real(x) => Ok(Some(*x)),
                            Value::Integer(x) => Ok(Some(*x as f64)),
                            v => Err(bad(v)),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Ty::Text => PgArray::Text(
                    values
                        .map(|v| match v {
                            Value::Null => Ok(None),
                            Value::Text(x) => Ok(Some(x.as_str())),
                            v => Err(bad(v)),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Ty::Blob => PgArray::Blob(
                    values
                        .map(|v| match v {
                            Value::Null => Ok(None),
                            Value::Blob(x) => Ok(Some(x.as_slice())),
                            v => Err(bad(v)),
                        })
                        .collect::<Result<_, _>>()?,
                ),
            });
        }
        Ok(Self(out))
    }

    fn params(&self) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
        self.0
            .iter()
            .map(|a| match a {
                PgArray::Int(v) => v as &(dyn postgres::types::ToSql + Sync),
                PgArray::Real(v) => v as _,
                PgArray::Text(v) => v as _,
                PgArray::Blob(v) => v as _,
            })
            .collect()
    }
}

/// A value in COPY's text format.
fn copy_text(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("\\N"),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Real(f) => {
            let _ = write!(out, "{f:?}");
        }
        Value::Text(s) => {
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
        Value::Blob(b) => {
            out.push_str("\\\\x");
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_functions_translate() {
        assert_eq!(
            to_postgres("SELECT ? , ?, x = '?' , ?2, ?10"),
            "SELECT $1 , $2, x = '?' , $2, $10"
        );
        assert_eq!(
            to_sqlite("SET a = LEAST(a, excluded.a), b = GREATEST(b, 1), c = max(c)"),
            "SET a = min(a, excluded.a), b = max(b, 1), c = max(c)"
        );
    }

    #[test]
    fn rows_split_into_power_of_two_statements_and_rounds_by_key() {
        let sizes = |n| chunk_sizes(n).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(7), vec![4, 2, 1]);
        assert_eq!(sizes(300), vec![128, 128, 32, 8, 4]);
        assert_eq!(sizes(300).iter().sum::<usize>(), 300);
        let r = rounds([("a", 1), ("b", 2), ("a", 3), ("a", 4), ("c", 5)]);
        assert_eq!(r, vec![vec![1, 2, 5], vec![3], vec![4]]);
    }

    #[test]
    fn copy_text_escapes() {
        let mut s = String::new();
        for v in [
            Value::Null,
            Value::Integer(-3),
            Value::Real(0.5),
            Value::Text("a\tb\\c\n".into()),
            Value::Blob(vec![0, 255]),
        ] {
            copy_text(&mut s, &v);
            s.push('|');
        }
        assert_eq!(s, "\\N|-3|0.5|a\\tb\\\\c\\n|\\\\x00ff|");
    }
}
