//! SQLite persistence. One dedicated thread owns the connection: every read and write
//! is a job on its queue, jobs that queue up while it is busy run in one transaction
//! (each inside its own savepoint, so one failing job never undoes another). WAL,
//! `busy_timeout` and foreign keys are on. Because reads go through the same queue, a
//! read always sees every write queued before it.

pub mod queries;

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use thiserror::Error;

/// The schema, applied idempotently at startup.
pub const SCHEMA: &str = include_str!("../../schema.sql");
/// The `user_version` the schema above sets.
pub const SCHEMA_VERSION: i64 = 6;

/// The columns of `flow_steps` in schema version 1, copied into the version 2 table.
const FLOW_STEPS_V1_COLUMNS: &str = "id, run_id, step_id, kind, agent, label, wave, position, chat_id, status, attempt, output, error, fatal, started_at, finished_at, input_tokens, output_tokens, cache_read_tokens, total_tokens, agent_pid, agent_pid_start, meta";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "cannot create the database folder {path}: {source}. Set BOO_DB to a writable file path."
    )]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the database {path} was written by a newer boo (schema version {found}, this boo knows {known}); upgrade boo or point BOO_DB elsewhere")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("the database thread has stopped")]
    Closed,
    /// The job ran but its transaction could not be committed (e.g. the database
    /// stayed locked by another process past the busy timeout).
    #[error("the write was not saved: {0}")]
    NotSaved(String),
    #[error("{0}")]
    Data(String),
    /// A problem of the database file itself, named with its path and what to do.
    #[error("the database {} {problem}", path.display())]
    File {
        path: PathBuf,
        problem: String,
        transient: bool,
    },
}

impl StoreError {
    /// Worth trying again: the database was busy, locked, full or failed an I/O, or
    /// a commit did not go through. Anything else will fail the same way again.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            StoreError::NotSaved(_) => true,
            StoreError::File { transient, .. } => *transient,
            StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                DatabaseBusy | DatabaseLocked | SystemIoFailure | DiskFull
            ),
            _ => false,
        }
    }

    /// The error with the database file named, when it is about the file (locked,
    /// read-only, damaged, disk full); other errors are returned as they are.
    pub fn in_file(self, path: &Path) -> StoreError {
        use rusqlite::ErrorCode::*;
        let StoreError::Sql(rusqlite::Error::SqliteFailure(e, detail)) = &self else {
            return self;
        };
        let detail = detail.clone().unwrap_or_else(|| e.to_string());
        let (problem, transient) = match e.code {
            DatabaseBusy | DatabaseLocked => (
                format!("is locked by another process ({detail}): wait for it, or stop the other boo or tool holding it"),
                true,
            ),
            ReadOnly | CannotOpen | PermissionDenied => (
                format!("cannot be written ({detail}): set BOO_DB to a writable file path"),
                false,
            ),
            DatabaseCorrupt | NotADatabase => (
                format!("is damaged ({detail}): move it aside (boo starts a new one) or restore a backup"),
                false,
            ),
            SystemIoFailure | DiskFull => (
                format!("cannot be written ({detail}): free disk space or check the disk"),
                true,
            ),
            _ => return self,
        };
        StoreError::File {
            path: path.to_path_buf(),
            problem,
            transient,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Delivers a job's result once its transaction has been committed (or says the
/// commit failed).
type Reply = Box<dyn FnOnce(Option<String>) + Send>;
/// A job returns whether it succeeded (a failed job's savepoint is rolled back) and
/// the reply to send after the commit.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Option<Reply>) + Send>;

/// A cheap, cloneable handle to the database thread.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
    /// The database file (errors about the file name it).
    path: std::sync::Arc<PathBuf>,
}

/// Opens a connection with boo's pragmas and applies the schema.
pub fn open_connection(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    // Two boo processes opening a new database at once (a `boo run` and a `boo runs`)
    // contend for the switch to WAL and the schema; SQLite answers some of those
    // with SQLITE_BUSY at once, without its busy handler, so the set-up is retried
    // for as long as the busy timeout would have waited.
    let deadline = std::time::Instant::now() + OPEN_BUSY_WAIT;
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match set_up(path) {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// How long opening waits for another process that holds the database.
const OPEN_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn is_busy(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn set_up(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(OPEN_BUSY_WAIT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Applies `schema.sql` unless `user_version` says it is already there. A version 1
/// database is upgraded in place: `flow_steps` gains the columns of runs whose steps
/// appear at run time (`origin`, `parent_step_id`, `phase`, `cache_key`) and wider
/// `kind`/`wave` checks; SQLite cannot change a CHECK in place, so the old table is
/// renamed, the schema creates the new one, and every row is copied across. Version 2
/// only lacks tables (`trusted_roots`), which the idempotent schema adds.
pub fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let upgrade = if version == 1 {
        (
            "ALTER TABLE flow_steps RENAME TO flow_steps_v1;\nDROP INDEX IF EXISTS flow_steps_run_status;".to_string(),
            format!(
                "INSERT INTO flow_steps ({FLOW_STEPS_V1_COLUMNS}) SELECT {FLOW_STEPS_V1_COLUMNS} FROM flow_steps_v1;\nDROP TABLE flow_steps_v1;"
            ),
        )
    } else {
        (String::new(), String::new())
    };
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;\n{}\n{SCHEMA}\n{}\nCOMMIT;",
        upgrade.0, upgrade.1
    ))
    .inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK;");
    })?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database and starts its thread.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = open_connection(path).map_err(|e| e.in_file(path))?;
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("boo-store".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Data(format!("cannot start the database thread: {e}")))?;
        Ok(Store {
            tx,
            path: std::sync::Arc::new(path.to_path_buf()),
        })
    }

    /// Runs `f` on the database thread and waits for its result.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move |c| {
                let r = f(c);
                let ok = r.is_ok();
                let reply: Reply = Box::new(move |commit_error: Option<String>| {
                    let r = match commit_error {
                        Some(e) if ok => Err(StoreError::NotSaved(e)),
                        _ => r,
                    };
                    let _ = tx.send(r);
                });
                (ok, Some(reply))
            }))
            .map_err(|_| StoreError::Closed)?;
        rx.await
            .map_err(|_| StoreError::Closed)?
            .map_err(|e| e.in_file(&self.path))
    }

    /// Queues a write without waiting; a failure is logged.
    pub fn send<F>(&self, what: &'static str, f: F)
    where
        F: FnOnce(&Connection) -> Result<()> + Send + 'static,
    {
        let _ = self.tx.send(Box::new(move |c| match f(c) {
            Ok(()) => (true, None),
            Err(e) => {
                tracing::error!("database write ({what}) failed: {e}");
                (false, None)
            }
        }));
    }

    /// Waits until every job queued before this call has been committed.
    pub async fn flush(&self) -> Result<()> {
        self.call(|_| Ok(())).await
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let in_tx = conn.execute_batch("BEGIN IMMEDIATE").is_ok();
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        for job in batch {
            let sp = in_tx && conn.execute_batch("SAVEPOINT job").is_ok();
            // A panic in a job must not kill the thread (its caller sees the store closed).
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn)));
            let ok = matches!(r, Ok((true, _)));
            if let Ok((_, Some(reply))) = r {
                replies.push(reply);
            }
            if sp {
                if !ok {
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                } else {
                    let _ = conn.execute_batch("RELEASE job");
                }
            }
        }
        // Results are delivered only after the commit, so a caller that exits right
        // after a write never loses it.
        let commit_error = if in_tx {
            match conn.execute_batch("COMMIT") {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!("database commit failed: {e}");
                    let _ = conn.execute_batch("ROLLBACK");
                    Some(e.to_string())
                }
            }
        } else {
            None
        };
        for reply in replies {
            reply(commit_error.clone());
        }
    }
}

#[cfg(test)]
mod tests;
