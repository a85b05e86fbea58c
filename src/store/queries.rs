//! Typed queries. Each takes a `&Connection` and runs on the store thread.

use super::{Result, StoreError};
use crate::clock;
use crate::engine::Plan;
use crate::model::{
    Band, Run, RunStatus, RunSummary, Step, StepKind, StepStatus, StreamEvent, Trace, TraceOutcome,
    Usage, WireUsage,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Everything needed to create a run and its steps in one go.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: String,
    pub flow: String,
    pub flow_title: String,
    pub band: Band,
    pub root: String,
    pub input: serde_json::Value,
    pub model: Option<String>,
    pub plan: Plan,
    pub owner_id: String,
    pub meta: serde_json::Value,
    /// The chat of each agent step's first attempt, announced with the roster.
    pub first_chats: std::collections::HashMap<String, String>,
}

pub fn insert_run(c: &Connection, r: &NewRun) -> Result<()> {
    let now = clock::now_rfc3339();
    let plan = serde_json::to_string(&r.plan).map_err(|e| StoreError::Data(e.to_string()))?;
    // Never store what cannot be read back: one such row would break every later read.
    if let Err(e) = serde_json::from_str::<Plan>(&plan) {
        return Err(StoreError::Data(format!(
            "the plan of flow {} cannot be stored: it would not read back ({e})",
            r.flow
        )));
    }
    c.execute(
        "INSERT INTO flow_runs (run_id, flow, flow_title, band, status, project_id, root, input, model, plan, meta, created_at)
         VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            r.run_id,
            r.flow,
            r.flow_title,
            r.band.as_str(),
            r.root,
            r.input.to_string(),
            r.model,
            plan,
            r.meta.to_string(),
            now
        ],
    )?;
    for (i, s) in r.plan.steps.iter().enumerate() {
        c.execute(
            "INSERT INTO flow_steps (run_id, step_id, kind, agent, label, wave, position, status, chat_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8)",
            params![
                r.run_id,
                s.id,
                s.kind.as_str(),
                s.agent,
                s.label,
                s.wave,
                i as i64,
                r.first_chats.get(&s.id),
            ],
        )?;
    }
    let ms = clock::now_ms();
    c.execute(
        "INSERT INTO run_leases (run_id, owner_id, acquired_ms, heartbeat_ms) VALUES (?1, ?2, ?3, ?3)",
        params![r.run_id, r.owner_id, ms],
    )?;
    Ok(())
}

/// A run row with the fields the runner needs beyond the wire shape.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub run: Run,
    pub plan: Plan,
    pub report: Option<String>,
    pub report_json: Option<String>,
    pub cancel_requested: bool,
    /// The run's `meta` JSON (for a workflow run: `kind`, `workflow`, `script`,
    /// `result`).
    pub meta: serde_json::Value,
}

const RUN_COLS: &str =
    "r.run_id, r.flow, r.band, r.status, r.input, r.root, r.created_at, r.finished_at,
    r.model, r.error, r.plan, r.report, r.report_json, r.cancel_requested, r.meta, r.flow_title,
    (SELECT COALESCE(SUM(input_tokens),0) FROM flow_steps s WHERE s.run_id = r.run_id),
    (SELECT COALESCE(SUM(output_tokens),0) FROM flow_steps s WHERE s.run_id = r.run_id),
    (SELECT COALESCE(SUM(cache_read_tokens),0) FROM flow_steps s WHERE s.run_id = r.run_id),
    (SELECT COALESCE(SUM(total_tokens),0) FROM flow_steps s WHERE s.run_id = r.run_id)";

fn parse<T: std::str::FromStr<Err = String>>(s: String) -> rusqlite::Result<T> {
    s.parse::<T>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

/// The summary columns of a run row (no plan: listing never depends on it).
/// The four token counts stored in consecutive columns from `first` (input, output,
/// cache read, total).
fn usage_at(row: &Row, first: usize) -> rusqlite::Result<Usage> {
    Ok(Usage {
        input_tokens: row.get::<_, i64>(first)? as u64,
        output_tokens: row.get::<_, i64>(first + 1)? as u64,
        cache_read_tokens: row.get::<_, i64>(first + 2)? as u64,
        total_tokens: row.get::<_, i64>(first + 3)? as u64,
    })
}

fn summary_from_row(row: &Row) -> rusqlite::Result<RunSummary> {
    let input: String = row.get(4)?;
    let input: serde_json::Value = serde_json::from_str(&input).unwrap_or_default();
    Ok(RunSummary {
        run_id: row.get(0)?,
        flow: row.get(1)?,
        band: match row.get::<_, String>(2)?.as_str() {
            "medium" => Band::Medium,
            "large" => Band::Large,
            _ => Band::Small,
        },
        status: parse(row.get(3)?)?,
        question: input
            .get("question")
            .and_then(|q| q.as_str())
            .unwrap_or_default()
            .to_string(),
        root: row.get(5)?,
        created_at: row.get(6)?,
        finished_at: row.get(7)?,
        kind: row
            .get::<_, Option<String>>(14)?
            .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
            .and_then(|m| m.get("kind").and_then(|k| k.as_str()).map(String::from))
            .unwrap_or_else(|| "flow".into()),
    })
}

fn run_from_row(row: &Row) -> rusqlite::Result<RunRow> {
    let input: String = row.get(4)?;
    let input: serde_json::Value = serde_json::from_str(&input).unwrap_or_default();
    let plan: String = row.get(10)?;
    let plan: Plan = serde_json::from_str(&plan).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let usage = usage_at(row, 16)?;
    let meta: serde_json::Value = row
        .get::<_, Option<String>>(14)?
        .and_then(|m| serde_json::from_str(&m).ok())
        .unwrap_or(serde_json::Value::Null);
    let kind = match meta.get("kind").and_then(|k| k.as_str()) {
        Some("workflow") => "workflow",
        Some("agent") => "agent",
        _ => "flow",
    };
    Ok(RunRow {
        run: Run {
            kind: kind.to_string(),
            summary: summary_from_row(row)?,
            model: row.get(8)?,
            error: row.get(9)?,
            usage: usage.into(),
            fast: input.get("fast").and_then(|f| f.as_bool()).unwrap_or(false),
            title: row.get(15)?,
        },
        plan,
        report: row.get(11)?,
        report_json: row.get(12)?,
        cancel_requested: row.get::<_, i64>(13)? != 0,
        meta,
    })
}

pub fn get_run(c: &Connection, run_id: &str) -> Result<Option<RunRow>> {
    Ok(c.query_row(
        &format!("SELECT {RUN_COLS} FROM flow_runs r WHERE r.run_id = ?1"),
        [run_id],
        run_from_row,
    )
    .optional()?)
}

/// Newest first; `before` is the `runId` the previous page ended with.
pub fn list_runs(
    c: &Connection,
    root: Option<&str>,
    limit: u32,
    before: Option<&str>,
) -> Result<(Vec<RunSummary>, Option<String>)> {
    let mut sql = format!("SELECT {RUN_COLS} FROM flow_runs r WHERE 1=1");
    let mut args: Vec<String> = Vec::new();
    if let Some(root) = root {
        args.push(root.to_string());
        sql.push_str(&format!(" AND r.project_id = ?{}", args.len()));
    }
    if let Some(b) = before {
        args.push(b.to_string());
        sql.push_str(&format!(" AND r.run_id < ?{}", args.len()));
    }
    sql.push_str(&format!(
        " ORDER BY r.run_id DESC LIMIT {}",
        limit as i64 + 1
    ));
    let mut stmt = c.prepare(&sql)?;
    let mut rows: Vec<RunSummary> = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), summary_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.run_id.clone())
    } else {
        None
    };
    Ok((rows, next))
}

/// A listed background agent: an agent run, or a child an agent step spawned
/// (`spawned` set: the run it is a step of, the step that spawned it, its own step).
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub summary: RunSummary,
    pub persona: String,
    pub usage: Usage,
    pub spawned: Option<SpawnedBy>,
}

/// Where a child agent lives: a step of `run_id`, spawned by `parent_step_id`.
#[derive(Debug, Clone)]
pub struct SpawnedBy {
    pub run_id: String,
    pub parent_step_id: String,
    pub step_id: String,
}

/// Background agents, newest first: agent runs (`meta.kind = "agent"`) with their
/// persona, and the children agent steps spawned (a step whose meta has `spawned`),
/// each with its own prompt, status, times and tokens.
pub fn list_agents(
    c: &Connection,
    root: Option<&str>,
    status: Option<RunStatus>,
    limit: u32,
) -> Result<Vec<AgentRow>> {
    let mut sql = format!(
        "SELECT {RUN_COLS}, json_extract(r.meta, '$.agent.persona') FROM flow_runs r
         WHERE json_valid(r.meta) AND json_extract(r.meta, '$.kind') = 'agent'"
    );
    let mut args: Vec<String> = Vec::new();
    if let Some(root) = root {
        args.push(root.to_string());
        sql.push_str(&format!(" AND r.project_id = ?{}", args.len()));
    }
    if let Some(st) = status {
        args.push(st.as_str().to_string());
        sql.push_str(&format!(" AND r.status = ?{}", args.len()));
    }
    sql.push_str(&format!(" ORDER BY r.run_id DESC LIMIT {}", limit as i64));
    let mut stmt = c.prepare(&sql)?;
    let mut rows: Vec<AgentRow> = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |row| {
            Ok(AgentRow {
                summary: summary_from_row(row)?,
                persona: row.get::<_, Option<String>>(20)?.unwrap_or_default(),
                usage: usage_at(row, 16)?,
                spawned: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.extend(spawned_children(c, root, status, limit)?);
    // Newest first by when each started (a child by its step, a run by its launch).
    rows.sort_by(|a, b| {
        b.summary
            .created_at
            .cmp(&a.summary.created_at)
            .then_with(|| b.summary.run_id.cmp(&a.summary.run_id))
    });
    rows.truncate(limit as usize);
    Ok(rows)
}

/// The children agent steps spawned, as listed agents. A child not started yet
/// counts as running (it is queued for a slot); skipped counts as cancelled.
fn spawned_children(
    c: &Connection,
    root: Option<&str>,
    status: Option<RunStatus>,
    limit: u32,
) -> Result<Vec<AgentRow>> {
    let mut sql = String::from(
        "SELECT r.run_id, r.flow, r.root, r.created_at, r.meta,
                s.step_id, s.parent_step_id, s.status, s.started_at, s.finished_at,
                s.input_tokens, s.output_tokens, s.cache_read_tokens, s.total_tokens,
                json_extract(s.meta, '$.spawned.persona'), json_extract(s.meta, '$.spawned.prompt'),
                s.agent
         FROM flow_steps s JOIN flow_runs r ON r.run_id = s.run_id
         WHERE s.parent_step_id IS NOT NULL AND json_valid(s.meta)
           AND json_extract(s.meta, '$.spawned') IS NOT NULL",
    );
    let mut args: Vec<String> = Vec::new();
    if let Some(root) = root {
        args.push(root.to_string());
        sql.push_str(&format!(" AND r.project_id = ?{}", args.len()));
    }
    if let Some(st) = status {
        let steps: &[&str] = match st {
            RunStatus::Running => &["pending", "running"],
            RunStatus::Completed => &["completed"],
            RunStatus::Failed => &["failed"],
            RunStatus::Cancelled => &["cancelled", "skipped"],
        };
        let first = args.len() + 1;
        args.extend(steps.iter().map(|s| s.to_string()));
        let marks: Vec<String> = (first..=args.len()).map(|i| format!("?{i}")).collect();
        sql.push_str(&format!(" AND s.status IN ({})", marks.join(", ")));
    }
    sql.push_str(&format!(
        " ORDER BY COALESCE(s.started_at, r.created_at) DESC LIMIT {}",
        limit as i64
    ));
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |row| {
            let run_id: String = row.get(0)?;
            let run_created: String = row.get(3)?;
            let meta: Option<String> = row.get(4)?;
            let step_status: String = row.get(7)?;
            let started: Option<String> = row.get(8)?;
            let persona = row
                .get::<_, Option<String>>(14)?
                .or(row.get::<_, Option<String>>(16)?)
                .unwrap_or_default();
            Ok(AgentRow {
                summary: RunSummary {
                    run_id: run_id.clone(),
                    flow: row.get(1)?,
                    band: Band::Small,
                    status: match step_status.as_str() {
                        "completed" => RunStatus::Completed,
                        "failed" => RunStatus::Failed,
                        "cancelled" | "skipped" => RunStatus::Cancelled,
                        _ => RunStatus::Running,
                    },
                    question: row.get::<_, Option<String>>(15)?.unwrap_or_default(),
                    root: row.get(2)?,
                    created_at: started.unwrap_or(run_created),
                    finished_at: row.get(9)?,
                    kind: meta
                        .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
                        .and_then(|m| m.get("kind").and_then(|k| k.as_str()).map(String::from))
                        .unwrap_or_else(|| "flow".into()),
                },
                persona,
                usage: usage_at(row, 10)?,
                spawned: Some(SpawnedBy {
                    run_id,
                    parent_step_id: row.get(6)?,
                    step_id: row.get(5)?,
                }),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

#[derive(Debug, Clone)]
pub struct StepRow {
    pub step: Step,
    pub fatal: bool,
}

/// Every step of a run with its full output.
pub fn get_steps(c: &Connection, run_id: &str) -> Result<Vec<StepRow>> {
    steps_of(c, run_id, true)
}

/// Every step of a run without outputs (`output` is `None`): what a driver keeps in
/// memory. Outputs load on demand with [`get_step_outputs`].
pub fn get_step_states(c: &Connection, run_id: &str) -> Result<Vec<StepRow>> {
    steps_of(c, run_id, false)
}

fn steps_of(c: &Connection, run_id: &str, with_output: bool) -> Result<Vec<StepRow>> {
    let mut stmt = c.prepare_cached(
        "SELECT step_id, agent, kind, label, wave, chat_id, status, CASE WHEN ?2 THEN output END, error, started_at, finished_at,
                input_tokens, output_tokens, cache_read_tokens, total_tokens, attempt, meta, fatal,
                parent_step_id, phase, cache_key
         FROM flow_steps WHERE run_id = ?1 ORDER BY wave, position",
    )?;
    let rows = stmt
        .query_map(params![run_id, with_output], |row| {
            let meta: Option<String> = row.get(16)?;
            Ok(StepRow {
                step: Step {
                    step_id: row.get(0)?,
                    agent: row.get(1)?,
                    kind: parse::<StepKind>(row.get(2)?)?,
                    label: row.get(3)?,
                    wave: row.get(4)?,
                    chat_id: row.get(5)?,
                    status: parse::<StepStatus>(row.get(6)?)?,
                    output: row.get(7)?,
                    error: row.get(8)?,
                    started_at: row.get(9)?,
                    finished_at: row.get(10)?,
                    usage: usage_at(row, 11)?.into(),
                    attempt: row.get(15)?,
                    meta: meta.and_then(|m| serde_json::from_str(&m).ok()),
                    transcript: None,
                    last_seq: None,
                    parent_step_id: row.get(18)?,
                    phase: row.get(19)?,
                    cache_key: row.get(20)?,
                },
                fatal: row.get::<_, i64>(17)? != 0,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The outputs of some steps of a run (`None` for a step without output).
pub fn get_step_outputs(
    c: &Connection,
    run_id: &str,
    step_ids: &[String],
) -> Result<std::collections::HashMap<String, Option<String>>> {
    let mut stmt =
        c.prepare_cached("SELECT output FROM flow_steps WHERE run_id = ?1 AND step_id = ?2")?;
    let mut out = std::collections::HashMap::new();
    for id in step_ids {
        let output: Option<Option<String>> = stmt
            .query_row(params![run_id, id], |r| r.get(0))
            .optional()?;
        out.insert(id.clone(), output.flatten());
    }
    Ok(out)
}

/// Atomically moves a pending step to running for `owner`, if `owner` still holds the
/// run's lease. The first attempt keeps the chat announced at launch; a later attempt
/// streams on `new_chat`. Returns the attempt's chat, or `None` when another server got
/// there first (or the run ended).
pub fn claim_step(
    c: &Connection,
    run_id: &str,
    step_id: &str,
    owner: &str,
    new_chat: Option<&str>,
) -> Result<Option<Option<String>>> {
    Ok(c.query_row(
        "UPDATE flow_steps SET status = 'running', attempt = attempt + 1,
                chat_id = CASE WHEN attempt = 0 AND chat_id IS NOT NULL THEN chat_id ELSE ?4 END,
                started_at = ?5, finished_at = NULL, error = NULL, output = NULL,
                agent_pid = NULL, agent_pid_start = NULL,
                input_tokens = 0, output_tokens = 0, cache_read_tokens = 0, total_tokens = 0
         WHERE run_id = ?1 AND step_id = ?2 AND status = 'pending'
           AND EXISTS (SELECT 1 FROM run_leases l WHERE l.run_id = ?1 AND l.owner_id = ?3)
           AND EXISTS (SELECT 1 FROM flow_runs r WHERE r.run_id = ?1 AND r.status = 'running')
         RETURNING chat_id",
        params![run_id, step_id, owner, new_chat, clock::now_rfc3339()],
        |r| r.get::<_, Option<String>>(0),
    )
    .optional()?)
}

/// A step that was not in the plan at launch, created while the run runs (a
/// workflow's `agent()` call, a background child).
#[derive(Debug, Clone)]
pub struct NewRuntimeStep {
    pub step_id: String,
    pub kind: StepKind,
    pub agent: String,
    pub label: String,
    pub wave: u32,
    pub chat_id: Option<String>,
    pub parent_step_id: Option<String>,
    pub phase: Option<String>,
    pub cache_key: Option<String>,
    /// What the step was started with, when it must be restartable from its row (a
    /// background child: persona, prompt, label); replaced by the end's meta.
    pub meta: Option<serde_json::Value>,
}

/// Inserts a runtime step directly as running, if `owner` still holds the run's lease
/// and the run is running. Returns false otherwise (nothing is inserted). A step id
/// that already exists is an error: runtime ids are unique by construction.
pub fn insert_runtime_step(
    c: &Connection,
    run_id: &str,
    owner: &str,
    s: &NewRuntimeStep,
) -> Result<bool> {
    let n = c.execute(
        "INSERT INTO flow_steps (run_id, step_id, kind, agent, label, wave, position, status, attempt,
                                 chat_id, started_at, origin, parent_step_id, phase, cache_key, meta)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6,
                (SELECT COALESCE(MAX(position), -1) + 1 FROM flow_steps WHERE run_id = ?1),
                'running', 1, ?7, ?8, 'runtime', ?9, ?10, ?11, ?13
         WHERE EXISTS (SELECT 1 FROM run_leases l WHERE l.run_id = ?1 AND l.owner_id = ?12)
           AND EXISTS (SELECT 1 FROM flow_runs r WHERE r.run_id = ?1 AND r.status = 'running')",
        params![
            run_id,
            s.step_id,
            s.kind.as_str(),
            s.agent,
            s.label,
            s.wave,
            s.chat_id,
            clock::now_rfc3339(),
            s.parent_step_id,
            s.phase,
            s.cache_key,
            owner,
            s.meta.as_ref().map(|m| m.to_string())
        ],
    )?;
    Ok(n == 1)
}

/// The end of a step.
#[derive(Debug, Clone, Default)]
pub struct StepEnd {
    pub status: Option<StepStatus>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub usage: Usage,
    pub fatal: bool,
    /// Merged into the step's meta (what was there at the start, such as a child's
    /// `spawned` request, stays).
    pub meta: Option<serde_json::Value>,
}

pub fn finish_step(c: &Connection, run_id: &str, step_id: &str, end: &StepEnd) -> Result<String> {
    let now = clock::now_rfc3339();
    let status = end.status.unwrap_or(StepStatus::Failed);
    c.execute(
        "UPDATE flow_steps SET status = ?3, output = ?4, error = ?5, finished_at = ?6,
                input_tokens = ?7, output_tokens = ?8, cache_read_tokens = ?9, total_tokens = ?10,
                fatal = ?11,
                meta = CASE WHEN ?12 IS NULL THEN meta
                            ELSE json_patch(CASE WHEN json_valid(meta) THEN meta ELSE '{}' END, json(?12)) END,
                agent_pid = NULL, agent_pid_start = NULL
         WHERE run_id = ?1 AND step_id = ?2 AND status IN ('pending', 'running')",
        params![
            run_id,
            step_id,
            status.as_str(),
            end.output,
            end.error,
            now,
            end.usage.input_tokens as i64,
            end.usage.output_tokens as i64,
            end.usage.cache_read_tokens as i64,
            end.usage.total_tokens as i64,
            end.fatal as i64,
            end.meta.as_ref().map(|m| m.to_string()),
        ],
    )?;
    Ok(now)
}

pub fn set_step_pid(
    c: &Connection,
    run_id: &str,
    step_id: &str,
    pid: Option<(i64, Option<i64>)>,
) -> Result<()> {
    c.execute(
        "UPDATE flow_steps SET agent_pid = ?3, agent_pid_start = ?4 WHERE run_id = ?1 AND step_id = ?2",
        params![run_id, step_id, pid.map(|p| p.0), pid.and_then(|p| p.1)],
    )?;
    Ok(())
}

/// Steps that were running go back to pending (a fresh attempt). Returns the agent
/// process groups they had recorded, for cleanup.
pub fn reset_steps(
    c: &Connection,
    run_id: &str,
    ids: &[String],
) -> Result<Vec<(i64, Option<i64>)>> {
    let mut groups = Vec::new();
    for id in ids {
        if let Some(g) = c
            .query_row(
                "SELECT agent_pid, agent_pid_start FROM flow_steps WHERE run_id = ?1 AND step_id = ?2 AND agent_pid IS NOT NULL",
                params![run_id, id],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
            )
            .optional()?
        {
            groups.push(g);
        }
        c.execute(
            "UPDATE flow_steps SET status = 'pending', started_at = NULL, agent_pid = NULL, agent_pid_start = NULL
             WHERE run_id = ?1 AND step_id = ?2 AND status = 'running'",
            params![run_id, id],
        )?;
    }
    Ok(groups)
}

pub fn finish_run(
    c: &Connection,
    run_id: &str,
    status: RunStatus,
    report: Option<&str>,
    report_json: Option<&str>,
    error: Option<&str>,
) -> Result<String> {
    let now = clock::now_rfc3339();
    c.execute(
        "UPDATE flow_runs SET status = ?2, report = ?3, report_json = ?4, error = COALESCE(?5, error), finished_at = ?6
         WHERE run_id = ?1 AND status = 'running'",
        params![run_id, status.as_str(), report, report_json, error, now],
    )?;
    c.execute("DELETE FROM run_leases WHERE run_id = ?1", [run_id])?;
    Ok(now)
}

pub fn request_cancel(c: &Connection, run_id: &str) -> Result<()> {
    c.execute(
        "UPDATE flow_runs SET cancel_requested = 1 WHERE run_id = ?1 AND status = 'running'",
        [run_id],
    )?;
    Ok(())
}

/// (run id, flow, report JSON) of the newest completed run of each flow on a root.
pub fn latest_completed_per_flow(
    c: &Connection,
    root: &str,
) -> Result<Vec<(String, String, String)>> {
    let mut stmt = c.prepare(
        "SELECT r.run_id, r.flow, r.report_json FROM flow_runs r
         WHERE r.project_id = ?1 AND r.status = 'completed' AND r.report_json IS NOT NULL
           AND r.run_id = (SELECT MAX(x.run_id) FROM flow_runs x
                           WHERE x.project_id = r.project_id AND x.flow = r.flow AND x.status = 'completed')
         ORDER BY r.flow",
    )?;
    let rows = stmt
        .query_map([root], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---- trusted roots -------------------------------------------------------------------

/// A root the user trusts, and who trusted it when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRoot {
    pub root: String,
    pub trusted_by: String,
    pub trusted_at: String,
}

/// Trusts `root` (a canonical path) or revokes that trust; returns whether it was
/// trusted before.
pub fn set_trusted(c: &Connection, root: &str, trusted: bool, by: &str) -> Result<bool> {
    let before = is_trusted(c, root)?;
    if trusted {
        if !before {
            c.execute(
                "INSERT INTO trusted_roots (root, trusted_by, trusted_at) VALUES (?1, ?2, ?3)",
                params![root, by, clock::now_rfc3339()],
            )?;
        }
    } else {
        c.execute("DELETE FROM trusted_roots WHERE root = ?1", params![root])?;
    }
    Ok(before)
}

pub fn is_trusted(c: &Connection, root: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM trusted_roots WHERE root = ?1",
        params![root],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

pub fn trusted_roots(c: &Connection) -> Result<Vec<TrustedRoot>> {
    let mut s =
        c.prepare("SELECT root, trusted_by, trusted_at FROM trusted_roots ORDER BY root")?;
    let rows = s.query_map([], |r| {
        Ok(TrustedRoot {
            root: r.get(0)?,
            trusted_by: r.get(1)?,
            trusted_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

// ---- owners and leases -------------------------------------------------------------

pub fn register_owner(
    c: &Connection,
    owner: &str,
    pid: i64,
    pid_start: Option<i64>,
    host: &str,
) -> Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO server_owners (owner_id, pid, pid_start, host, started_at, heartbeat_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![owner, pid, pid_start, host, clock::now_rfc3339(), clock::now_ms()],
    )?;
    Ok(())
}

/// Refreshes the owner's heartbeat and its leases; returns the runs it owns whose lease
/// it lost or whose cancellation was requested elsewhere.
pub fn heartbeat(
    c: &Connection,
    owner: &str,
    held: &[String],
) -> Result<(Vec<String>, Vec<String>)> {
    let now = clock::now_ms();
    c.execute(
        "UPDATE server_owners SET heartbeat_ms = ?2 WHERE owner_id = ?1",
        params![owner, now],
    )?;
    c.execute(
        "UPDATE run_leases SET heartbeat_ms = ?2 WHERE owner_id = ?1",
        params![owner, now],
    )?;
    let mut lost = Vec::new();
    let mut cancelled = Vec::new();
    for run in held {
        let mine: Option<String> = c
            .query_row(
                "SELECT owner_id FROM run_leases WHERE run_id = ?1",
                [run],
                |r| r.get(0),
            )
            .optional()?;
        if mine.as_deref() != Some(owner) {
            lost.push(run.clone());
            continue;
        }
        let cancel: i64 = c
            .query_row(
                "SELECT cancel_requested FROM flow_runs WHERE run_id = ?1",
                [run],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if cancel != 0 {
            cancelled.push(run.clone());
        }
    }
    Ok((lost, cancelled))
}

/// Another process's view of an owner, for deciding whether it is gone.
#[derive(Debug, Clone)]
pub struct OwnerInfo {
    pub owner_id: String,
    pub pid: i64,
    pub pid_start: Option<i64>,
    pub host: String,
    pub heartbeat_ms: i64,
}

/// (run id, its lease owner if known, the lease's heartbeat if there is a lease).
pub type ForeignRun = (String, Option<OwnerInfo>, Option<i64>);

/// Running runs whose lease is held by someone else (or nobody), with that owner.
pub fn foreign_running_runs(c: &Connection, me: &str) -> Result<Vec<ForeignRun>> {
    let mut stmt = c.prepare(
        "SELECT r.run_id, o.owner_id, o.pid, o.pid_start, o.host, o.heartbeat_ms, l.heartbeat_ms
         FROM flow_runs r
         LEFT JOIN run_leases l ON l.run_id = r.run_id
         LEFT JOIN server_owners o ON o.owner_id = l.owner_id
         WHERE r.status = 'running' AND (l.owner_id IS NULL OR l.owner_id != ?1)
         ORDER BY r.run_id",
    )?;
    let rows = stmt
        .query_map([me], |r| {
            let owner = match r.get::<_, Option<String>>(1)? {
                Some(id) => Some(OwnerInfo {
                    owner_id: id,
                    pid: r.get(2)?,
                    pid_start: r.get(3)?,
                    host: r.get(4)?,
                    heartbeat_ms: r.get(5)?,
                }),
                None => None,
            };
            Ok((r.get(0)?, owner, r.get(6)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Takes over a run's lease if it is still held by `expected` (None = no lease row).
pub fn take_lease(c: &Connection, run_id: &str, me: &str, expected: Option<&str>) -> Result<bool> {
    let now = clock::now_ms();
    let n = match expected {
        Some(old) => c.execute(
            "UPDATE run_leases SET owner_id = ?2, acquired_ms = ?3, heartbeat_ms = ?3 WHERE run_id = ?1 AND owner_id = ?4",
            params![run_id, me, now, old],
        )?,
        None => c.execute(
            "INSERT OR IGNORE INTO run_leases (run_id, owner_id, acquired_ms, heartbeat_ms) VALUES (?1, ?2, ?3, ?3)",
            params![run_id, me, now],
        )?,
    };
    Ok(n == 1)
}

/// Gives up every lease of `owner` (clean shutdown): the next server adopts at once.
pub fn release_owner(c: &Connection, owner: &str) -> Result<()> {
    c.execute("DELETE FROM run_leases WHERE owner_id = ?1", [owner])?;
    c.execute("DELETE FROM server_owners WHERE owner_id = ?1", [owner])?;
    Ok(())
}

// ---- stream snapshots ---------------------------------------------------------------

pub fn insert_snapshot(
    c: &Connection,
    chat_id: &str,
    seq: u64,
    run_id: &str,
    step_id: &str,
    events: &[StreamEvent],
) -> Result<()> {
    let json = serde_json::to_string(events).map_err(|e| StoreError::Data(e.to_string()))?;
    // A hot path (one row per stream notification): keep the statement prepared.
    c.prepare_cached(
        "INSERT OR REPLACE INTO agent_snapshots (chat_id, seq, run_id, step_id, events, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        chat_id,
        seq as i64,
        run_id,
        step_id,
        json,
        clock::now_ms()
    ])?;
    Ok(())
}

/// The chats of every step running now (on any server).
pub fn running_chats(c: &Connection) -> Result<std::collections::HashSet<String>> {
    let mut stmt = c.prepare(
        "SELECT chat_id FROM flow_steps WHERE status = 'running' AND chat_id IS NOT NULL",
    )?;
    let chats = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(chats)
}

/// The ids of every run still running (on any server).
pub fn running_runs(c: &Connection) -> Result<std::collections::HashSet<String>> {
    let mut stmt = c.prepare("SELECT run_id FROM flow_runs WHERE status = 'running'")?;
    let runs = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(runs)
}

/// Every event of a chat in order, and the last seq.
pub fn transcript(c: &Connection, chat_id: &str) -> Result<(Vec<StreamEvent>, u64)> {
    let mut stmt =
        c.prepare("SELECT seq, events FROM agent_snapshots WHERE chat_id = ?1 ORDER BY seq")?;
    let mut events = Vec::new();
    let mut last = 0u64;
    let rows = stmt.query_map([chat_id], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (seq, json) = row?;
        last = seq as u64;
        let batch: Vec<StreamEvent> = serde_json::from_str(&json).unwrap_or_default();
        events.extend(batch);
    }
    Ok((events, last))
}

// ---- usage per turn -----------------------------------------------------------------

pub fn insert_turn_usage(
    c: &Connection,
    run_id: &str,
    step_id: &str,
    chat_id: &str,
    turn: u32,
    u: &Usage,
) -> Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO turn_usage (chat_id, turn, run_id, step_id, input_tokens, output_tokens, cache_read_tokens, total_tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            chat_id,
            turn,
            run_id,
            step_id,
            u.input_tokens as i64,
            u.output_tokens as i64,
            u.cache_read_tokens as i64,
            u.total_tokens as i64
        ],
    )?;
    Ok(())
}

/// Per-turn usage of a run's current attempts: (step, turn, usage). A count qwen
/// reported as 0 is taken from the model proxy's record of the same chat and turn
/// (its last successful call), when there is one: qwen drops DeepSeek's and
/// llama.cpp's cached counts, and some servers send no usage qwen reads.
pub fn turn_usages(c: &Connection, run_id: &str) -> Result<Vec<(String, u32, Usage)>> {
    let mut stmt = c.prepare(
        "SELECT t.step_id, t.turn,
                CASE WHEN t.input_tokens = 0 THEN COALESCE(m.prompt_tokens, 0) ELSE t.input_tokens END,
                CASE WHEN t.output_tokens = 0 THEN COALESCE(m.completion_tokens, 0) ELSE t.output_tokens END,
                CASE WHEN t.cache_read_tokens = 0 THEN COALESCE(m.cached_tokens, 0) ELSE t.cache_read_tokens END,
                CASE WHEN t.total_tokens = 0
                     THEN COALESCE(m.prompt_tokens, 0) + COALESCE(m.completion_tokens, 0)
                     ELSE t.total_tokens END
         FROM turn_usage t JOIN flow_steps s ON s.run_id = t.run_id AND s.step_id = t.step_id AND s.chat_id = t.chat_id
         LEFT JOIN model_calls m ON m.seq = (
             SELECT MAX(seq) FROM model_calls
             WHERE chat_id = t.chat_id AND turn = t.turn AND run_id = t.run_id AND status < 400)
         WHERE t.run_id = ?1 ORDER BY s.wave, s.position, t.turn",
    )?;
    let rows = stmt
        .query_map([run_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, usage_at(r, 2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---- tool traces --------------------------------------------------------------------

pub fn insert_trace(c: &Connection, t: &Trace, started_ms: i64) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO tool_traces (trace_id, run_id, step_id, chat_id, tool_call_id, tool, turn, input, started_at, started_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            t.trace_id,
            t.run_id,
            t.step_id,
            t.chat_id,
            t.tool_call_id,
            t.tool,
            t.turn,
            t.input.to_string(),
            t.started_at,
            started_ms
        ],
    )?;
    Ok(())
}

pub fn finish_trace(c: &Connection, t: &Trace) -> Result<()> {
    let u = t.usage.unwrap_or_default();
    c.execute(
        "UPDATE tool_traces SET output = ?2, output_bytes = ?3, finished_at = ?4, latency_ms = ?5, outcome = ?6,
                error = ?7, input_tokens = ?8, output_tokens = ?9, cache_read_tokens = ?10, total_tokens = ?11
         WHERE trace_id = ?1",
        params![
            t.trace_id,
            t.output,
            t.output_bytes.map(|b| b as i64),
            t.finished_at,
            t.latency_ms.map(|l| l as i64),
            t.outcome.map(|o| o.as_str()),
            t.error,
            t.usage.map(|_| u.input_tokens as i64),
            t.usage.map(|_| u.output_tokens as i64),
            t.usage.map(|_| u.cache_read_tokens as i64),
            t.usage.map(|_| u.total_tokens as i64),
        ],
    )?;
    Ok(())
}

/// A page of traces in insertion order. The cursor is the last row's `seq`, so rows
/// added while a client pages are neither skipped nor repeated.
pub fn list_traces(
    c: &Connection,
    run_id: &str,
    step_id: Option<&str>,
    after_seq: i64,
    limit: u32,
) -> Result<(Vec<Trace>, Option<i64>)> {
    let sql = format!(
        "SELECT seq, trace_id, run_id, step_id, chat_id, tool, tool_call_id, turn, input, output, output_bytes,
                started_at, finished_at, latency_ms, outcome, error, input_tokens, output_tokens, cache_read_tokens, total_tokens
         FROM tool_traces WHERE run_id = ?1 {} AND seq > ?2 ORDER BY seq LIMIT {}",
        if step_id.is_some() { "AND step_id = ?3" } else { "" },
        limit as i64 + 1
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let map = |r: &Row| -> rusqlite::Result<(i64, Trace)> {
        let input: String = r.get(8)?;
        let outcome: Option<String> = r.get(14)?;
        let usage = match r.get::<_, Option<i64>>(16)? {
            Some(i) => Some(WireUsage::from(Usage {
                input_tokens: i as u64,
                output_tokens: r.get::<_, Option<i64>>(17)?.unwrap_or(0) as u64,
                cache_read_tokens: r.get::<_, Option<i64>>(18)?.unwrap_or(0) as u64,
                total_tokens: r.get::<_, Option<i64>>(19)?.unwrap_or(0) as u64,
            })),
            None => None,
        };
        Ok((
            r.get(0)?,
            Trace {
                trace_id: r.get(1)?,
                run_id: r.get(2)?,
                step_id: r.get(3)?,
                chat_id: r.get(4)?,
                tool: r.get(5)?,
                tool_call_id: r.get(6)?,
                turn: r.get(7)?,
                input: serde_json::from_str(&input).unwrap_or(serde_json::Value::String(input)),
                output: r.get(9)?,
                output_bytes: r.get::<_, Option<i64>>(10)?.map(|b| b as u64),
                started_at: r.get(11)?,
                finished_at: r.get(12)?,
                latency_ms: r.get::<_, Option<i64>>(13)?.map(|l| l as u64),
                outcome: outcome.and_then(|o| o.parse::<TraceOutcome>().ok()),
                error: r.get(15)?,
                usage,
            },
        ))
    };
    let mut rows: Vec<(i64, Trace)> = match step_id {
        Some(s) => stmt
            .query_map(params![run_id, after_seq, s], map)?
            .collect::<rusqlite::Result<_>>()?,
        None => stmt
            .query_map(params![run_id, after_seq], map)?
            .collect::<rusqlite::Result<_>>()?,
    };
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.0)
    } else {
        None
    };
    Ok((rows.into_iter().map(|r| r.1).collect(), next))
}

/// Stores one model call (src/proxy/record.rs).
pub fn insert_model_call(c: &Connection, m: &crate::proxy::record::ModelCall) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO model_calls (call_id, run_id, step_id, chat_id, turn, started_at, finished_at,
            ttft_ms, duration_ms, status, error, prompt_tokens, cached_tokens, completion_tokens,
            tokens_per_second, cache_dialect, request_bytes, expected_cached_tokens, miss_reason, segments)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        params![
            m.call_id,
            m.run_id,
            m.step_id,
            m.chat_id,
            m.turn as i64,
            m.started_at,
            m.finished_at,
            m.ttft_ms.map(|v| v as i64),
            m.duration_ms as i64,
            m.status.map(i64::from),
            m.error,
            m.prompt_tokens.map(|v| v as i64),
            m.cached_tokens.map(|v| v as i64),
            m.completion_tokens.map(|v| v as i64),
            m.tokens_per_second,
            m.cache_dialect,
            m.request_bytes as i64,
            m.expected_cached_tokens as i64,
            m.miss_reason,
            m.segments.to_string(),
        ],
    )?;
    Ok(())
}

/// A page of a run's model calls in insertion order (cursor: the last row's `seq`),
/// like [`list_traces`].
pub fn list_model_calls(
    c: &Connection,
    run_id: &str,
    step_id: Option<&str>,
    after_seq: i64,
    limit: u32,
) -> Result<(Vec<crate::proxy::record::ModelCall>, Option<i64>)> {
    let sql = format!(
        "SELECT seq, call_id, run_id, step_id, chat_id, turn, started_at, finished_at, ttft_ms, duration_ms,
                status, error, prompt_tokens, cached_tokens, completion_tokens, tokens_per_second,
                cache_dialect, request_bytes, expected_cached_tokens, miss_reason, segments
         FROM model_calls WHERE run_id = ?1 {} AND seq > ?2 ORDER BY seq LIMIT {}",
        if step_id.is_some() { "AND step_id = ?3" } else { "" },
        limit as i64 + 1
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let u = |v: Option<i64>| v.map(|v| v.max(0) as u64);
    let map = |r: &Row| -> rusqlite::Result<(i64, crate::proxy::record::ModelCall)> {
        let segments: String = r.get(20)?;
        Ok((
            r.get(0)?,
            crate::proxy::record::ModelCall {
                call_id: r.get(1)?,
                run_id: r.get(2)?,
                step_id: r.get(3)?,
                chat_id: r.get(4)?,
                turn: r.get::<_, i64>(5)?.max(0) as u64,
                started_at: r.get(6)?,
                finished_at: r.get(7)?,
                ttft_ms: u(r.get(8)?),
                duration_ms: r.get::<_, i64>(9)?.max(0) as u64,
                status: r.get::<_, Option<i64>>(10)?.map(|s| s as u16),
                error: r.get(11)?,
                prompt_tokens: u(r.get(12)?),
                cached_tokens: u(r.get(13)?),
                completion_tokens: u(r.get(14)?),
                tokens_per_second: r.get(15)?,
                cache_dialect: r.get(16)?,
                request_bytes: r.get::<_, i64>(17)?.max(0) as u64,
                expected_cached_tokens: r.get::<_, i64>(18)?.max(0) as u64,
                miss_reason: r.get(19)?,
                segments: serde_json::from_str(&segments).unwrap_or_default(),
            },
        ))
    };
    let mut rows: Vec<(i64, crate::proxy::record::ModelCall)> = match step_id {
        Some(s) => stmt
            .query_map(params![run_id, after_seq, s], map)?
            .collect::<rusqlite::Result<_>>()?,
        None => stmt
            .query_map(params![run_id, after_seq], map)?
            .collect::<rusqlite::Result<_>>()?,
    };
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.0)
    } else {
        None
    };
    Ok((rows.into_iter().map(|r| r.1).collect(), next))
}

// ---- retention ----------------------------------------------------------------------

/// Deletes ended runs created before `cutoff_ms` (steps, snapshots, traces cascade).
/// Running runs are never touched; an image goes with the last run that attached it.
/// Returns (runs, steps, snapshots, traces, images) removed.
pub fn gc(c: &Connection, cutoff_ms: i64) -> Result<(u64, u64, u64, u64, u64)> {
    let cutoff = clock::format_ms(cutoff_ms);
    let cond = "SELECT run_id FROM flow_runs WHERE status != 'running' AND created_at < ?1";
    let count = |table: &str| -> Result<u64> {
        Ok(c.query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE run_id IN ({cond})"),
            [&cutoff],
            |r| r.get::<_, i64>(0),
        )? as u64)
    };
    let steps = count("flow_steps")?;
    let snaps = count("agent_snapshots")?;
    let traces = count("tool_traces")?;
    c.execute(
        &format!("DELETE FROM turn_usage WHERE run_id IN ({cond})"),
        [&cutoff],
    )?;
    // model_calls cascade with their run; said here so gc does not depend on the pragma.
    c.execute(
        &format!("DELETE FROM model_calls WHERE run_id IN ({cond})"),
        [&cutoff],
    )?;
    let runs = c.execute(
        "DELETE FROM flow_runs WHERE status != 'running' AND created_at < ?1",
        [&cutoff],
    )? as u64;
    let images = collect_attachments(c)?;
    Ok((runs, steps, snaps, traces, images))
}

// ---- workflow runs ------------------------------------------------------------

/// A workflow run and its script step, created in one go.
#[derive(Debug, Clone)]
pub struct NewWorkflowRun {
    pub run_id: String,
    /// The workflow's name (stored as the run's `flow`).
    pub name: String,
    /// `meta.description`: the script step's label and the run's title.
    pub description: String,
    pub root: String,
    /// `args` as one line of text (the run's `question`).
    pub question: String,
    pub model: Option<String>,
    pub owner_id: String,
    /// `kind`, `workflow`, `script`, `fresh`.
    pub meta: serde_json::Value,
}

/// The id of a workflow run's script step.
pub const SCRIPT_STEP: &str = "script";

pub fn insert_workflow_run(c: &Connection, r: &NewWorkflowRun) -> Result<()> {
    let now = clock::now_rfc3339();
    let plan = Plan {
        flow: r.name.clone(),
        band: Band::Small,
        steps: Vec::new(),
        answer: Vec::new(),
    };
    let plan = serde_json::to_string(&plan).map_err(|e| StoreError::Data(e.to_string()))?;
    let input = serde_json::json!({ "question": r.question, "fast": false });
    c.execute(
        "INSERT INTO flow_runs (run_id, flow, flow_title, band, status, project_id, root, input, model, plan, meta, created_at)
         VALUES (?1, ?2, ?3, 'small', 'running', ?4, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            r.run_id,
            r.name,
            r.description,
            r.root,
            input.to_string(),
            r.model,
            plan,
            r.meta.to_string(),
            now
        ],
    )?;
    c.execute(
        "INSERT INTO flow_steps (run_id, step_id, kind, agent, label, wave, position, status, attempt, started_at)
         VALUES (?1, ?2, 'script', ?3, ?4, 0, 0, 'running', 1, ?5)",
        params![r.run_id, SCRIPT_STEP, r.name, r.description, now],
    )?;
    let ms = clock::now_ms();
    c.execute(
        "INSERT INTO run_leases (run_id, owner_id, acquired_ms, heartbeat_ms) VALUES (?1, ?2, ?3, ?3)",
        params![r.run_id, r.owner_id, ms],
    )?;
    Ok(())
}

/// Gets a workflow run ready to run its script again from the top (after adoption):
/// agent steps that did not complete are removed (they run again, under the same
/// ids), and the script step is running again.
pub fn restart_workflow(c: &Connection, run_id: &str) -> Result<()> {
    c.execute(
        "DELETE FROM flow_steps WHERE run_id = ?1 AND kind = 'agent' AND status <> 'completed'",
        [run_id],
    )?;
    c.execute(
        "UPDATE flow_steps SET status = 'running', attempt = attempt + 1, started_at = ?2
         WHERE run_id = ?1 AND step_id = ?3 AND status IN ('pending', 'running')",
        params![run_id, clock::now_rfc3339(), SCRIPT_STEP],
    )?;
    Ok(())
}

/// Removes one step row (a workflow agent about to be recorded again after a restart).
pub fn delete_step(c: &Connection, run_id: &str, step_id: &str) -> Result<()> {
    c.execute(
        "DELETE FROM flow_steps WHERE run_id = ?1 AND step_id = ?2",
        params![run_id, step_id],
    )?;
    Ok(())
}

/// Merges `patch` (a JSON object) into a step's `meta`.
pub fn merge_step_meta(
    c: &Connection,
    run_id: &str,
    step_id: &str,
    patch: &serde_json::Value,
) -> Result<()> {
    c.execute(
        "UPDATE flow_steps SET meta = json_patch(COALESCE(meta, '{}'), json(?3)) WHERE run_id = ?1 AND step_id = ?2",
        params![run_id, step_id, patch.to_string()],
    )?;
    Ok(())
}

/// The workflow cache's size: entries, the roots they belong to, and stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub entries: u64,
    pub roots: u64,
    pub bytes: u64,
    /// Output tokens the cached answers cost when they ran.
    pub output_tokens: u64,
}

/// The cache's size, for one root or all of them.
pub fn cache_stats(c: &Connection, root: Option<&str>) -> Result<CacheStats> {
    Ok(c.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT root), COALESCE(SUM(LENGTH(CAST(output AS BLOB))), 0),
                COALESCE(SUM(output_tokens), 0)
         FROM workflow_cache WHERE ?1 IS NULL OR root = ?1",
        params![root],
        |r| {
            Ok(CacheStats {
                entries: r.get::<_, i64>(0)? as u64,
                roots: r.get::<_, i64>(1)? as u64,
                bytes: r.get::<_, i64>(2)? as u64,
                output_tokens: r.get::<_, i64>(3)? as u64,
            })
        },
    )?)
}

/// Entries per root, most first.
pub fn cache_roots(c: &Connection) -> Result<Vec<(String, u64)>> {
    let mut st = c.prepare(
        "SELECT root, COUNT(*) FROM workflow_cache GROUP BY root ORDER BY COUNT(*) DESC, root",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Removes the cached answers of one root, or of every root; returns how many.
pub fn cache_clear(c: &Connection, root: Option<&str>) -> Result<u64> {
    Ok(c.execute(
        "DELETE FROM workflow_cache WHERE ?1 IS NULL OR root = ?1",
        params![root],
    )? as u64)
}

/// Stores the script's return value in the run's meta.
pub fn set_run_result(c: &Connection, run_id: &str, result: &serde_json::Value) -> Result<()> {
    c.execute(
        "UPDATE flow_runs SET meta = json_set(COALESCE(meta, '{}'), '$.result', json(?2)) WHERE run_id = ?1",
        params![run_id, result.to_string()],
    )?;
    Ok(())
}

/// A completed agent's result in the workflow cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedResult {
    pub output: String,
    pub usage: Usage,
}

pub fn cache_get(c: &Connection, root: &str, key: &str) -> Result<Option<CachedResult>> {
    Ok(c.query_row(
        "SELECT output, input_tokens, output_tokens, cache_read_tokens, total_tokens
         FROM workflow_cache WHERE root = ?1 AND cache_key = ?2",
        params![root, key],
        |r| {
            Ok(CachedResult {
                output: r.get(0)?,
                usage: Usage {
                    input_tokens: r.get::<_, i64>(1)? as u64,
                    output_tokens: r.get::<_, i64>(2)? as u64,
                    cache_read_tokens: r.get::<_, i64>(3)? as u64,
                    total_tokens: r.get::<_, i64>(4)? as u64,
                },
            })
        },
    )
    .optional()?)
}

/// A cached result that `run_id` itself produced (a fresh run that restarted: its
/// own finished agents still come back, nothing older does).
pub fn cache_get_from_run(
    c: &Connection,
    root: &str,
    key: &str,
    run_id: &str,
) -> Result<Option<CachedResult>> {
    Ok(cache_get(c, root, key)?.filter(|_| {
        c.query_row(
            "SELECT 1 FROM workflow_cache WHERE root = ?1 AND cache_key = ?2 AND run_id = ?3",
            params![root, key, run_id],
            |_| Ok(()),
        )
        .is_ok()
    }))
}

pub fn cache_put(
    c: &Connection,
    root: &str,
    key: &str,
    value: &CachedResult,
    run_id: &str,
    step_id: &str,
) -> Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO workflow_cache (root, cache_key, output, input_tokens, output_tokens,
                                                cache_read_tokens, total_tokens, run_id, step_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            root,
            key,
            value.output,
            value.usage.input_tokens as i64,
            value.usage.output_tokens as i64,
            value.usage.cache_read_tokens as i64,
            value.usage.total_tokens as i64,
            run_id,
            step_id,
            clock::now_rfc3339()
        ],
    )?;
    Ok(())
}

/// Records a workflow agent answered from the cache: a completed step with the stored
/// output and usage, `meta.cached = true`, and no chat. False when `owner` no longer
/// holds the run.
pub fn insert_cached_step(
    c: &Connection,
    run_id: &str,
    owner: &str,
    s: &NewRuntimeStep,
    hit: &CachedResult,
) -> Result<Option<String>> {
    let now = clock::now_rfc3339();
    let n = c.execute(
        "INSERT INTO flow_steps (run_id, step_id, kind, agent, label, wave, position, status, attempt,
                                 output, started_at, finished_at, input_tokens, output_tokens,
                                 cache_read_tokens, total_tokens, meta, origin, parent_step_id, phase, cache_key)
         SELECT ?1, ?2, 'agent', ?3, ?4, ?5,
                (SELECT COALESCE(MAX(position), -1) + 1 FROM flow_steps WHERE run_id = ?1),
                'completed', 0, ?6, ?7, ?7, ?8, ?9, ?10, ?11, '{\"cached\":true}', 'runtime', ?12, ?13, ?14
         WHERE EXISTS (SELECT 1 FROM run_leases l WHERE l.run_id = ?1 AND l.owner_id = ?15)
           AND EXISTS (SELECT 1 FROM flow_runs r WHERE r.run_id = ?1 AND r.status = 'running')",
        params![
            run_id,
            s.step_id,
            s.agent,
            s.label,
            s.wave,
            hit.output,
            now,
            hit.usage.input_tokens as i64,
            hit.usage.output_tokens as i64,
            hit.usage.cache_read_tokens as i64,
            hit.usage.total_tokens as i64,
            s.parent_step_id,
            s.phase,
            s.cache_key,
            owner
        ],
    )?;
    Ok((n == 1).then_some(now))
}

/// One line of a workflow run's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    pub seq: u64,
    /// `log` or `phase`.
    pub kind: String,
    pub message: String,
    pub at: String,
}

pub fn insert_log(c: &Connection, run_id: &str, line: &LogRow) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO run_log (run_id, seq, kind, message, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![run_id, line.seq as i64, line.kind, line.message, line.at],
    )?;
    Ok(())
}

pub fn get_log(c: &Connection, run_id: &str) -> Result<Vec<LogRow>> {
    let mut st =
        c.prepare("SELECT seq, kind, message, at FROM run_log WHERE run_id = ?1 ORDER BY seq")?;
    let rows = st.query_map([run_id], |r| {
        Ok(LogRow {
            seq: r.get::<_, i64>(0)? as u64,
            kind: r.get(1)?,
            message: r.get(2)?,
            at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The largest log seq of a run (0 without lines): a restarted script continues it.
pub fn last_log_seq(c: &Connection, run_id: &str) -> Result<u64> {
    Ok(c.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM run_log WHERE run_id = ?1",
        [run_id],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

// ---- attachments --------------------------------------------------------------

/// Records a run's attachments (each image once by SHA-256, shared with other runs).
/// Call in the job that inserts the run, so a run never exists without them.
pub fn insert_run_attachments(
    c: &Connection,
    run_id: &str,
    atts: &[crate::attach::Attachment],
) -> Result<()> {
    let now = clock::now_rfc3339();
    for (i, a) in atts.iter().enumerate() {
        c.execute(
            "INSERT INTO attachments (sha256, mime_type, bytes, width, height, data, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (sha256) DO NOTHING",
            params![
                a.sha256,
                a.kind.mime(),
                a.data.len() as i64,
                a.width,
                a.height,
                a.data,
                now
            ],
        )?;
        c.execute(
            "INSERT INTO run_attachments (attachment_id, run_id, position, name, sha256)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                uuid::Uuid::now_v7().to_string(),
                run_id,
                i as i64,
                a.name,
                a.sha256
            ],
        )?;
    }
    Ok(())
}

/// A run's attachments in launch order (without their bytes).
pub fn run_attachments(c: &Connection, run_id: &str) -> Result<Vec<crate::attach::AttachmentInfo>> {
    let mut stmt = c.prepare(
        "SELECT ra.attachment_id, ra.name, a.mime_type, a.bytes, a.sha256, a.width, a.height
         FROM run_attachments ra JOIN attachments a ON a.sha256 = ra.sha256
         WHERE ra.run_id = ?1 ORDER BY ra.position",
    )?;
    let rows = stmt
        .query_map([run_id], |r| {
            Ok(crate::attach::AttachmentInfo {
                attachment_id: r.get(0)?,
                name: r.get(1)?,
                mime_type: r.get(2)?,
                bytes: r.get::<_, i64>(3)? as u64,
                sha256: r.get(4)?,
                width: r.get(5)?,
                height: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// One attachment with its bytes.
pub fn get_attachment(
    c: &Connection,
    attachment_id: &str,
) -> Result<Option<(crate::attach::AttachmentInfo, Vec<u8>)>> {
    Ok(c
        .query_row(
            "SELECT ra.attachment_id, ra.name, a.mime_type, a.bytes, a.sha256, a.width, a.height, a.data
             FROM run_attachments ra JOIN attachments a ON a.sha256 = ra.sha256
             WHERE ra.attachment_id = ?1",
            [attachment_id],
            |r| {
                Ok((
                    crate::attach::AttachmentInfo {
                        attachment_id: r.get(0)?,
                        name: r.get(1)?,
                        mime_type: r.get(2)?,
                        bytes: r.get::<_, i64>(3)? as u64,
                        sha256: r.get(4)?,
                        width: r.get(5)?,
                        height: r.get(6)?,
                    },
                    r.get(7)?,
                ))
            },
        )
        .optional()?)
}

/// The bytes of a run's attachments, in launch order: `(name, mime type, bytes)`.
pub fn run_attachment_data(c: &Connection, run_id: &str) -> Result<Vec<(String, String, Vec<u8>)>> {
    let mut stmt = c.prepare(
        "SELECT ra.name, a.mime_type, a.data
         FROM run_attachments ra JOIN attachments a ON a.sha256 = ra.sha256
         WHERE ra.run_id = ?1 ORDER BY ra.position",
    )?;
    let rows = stmt
        .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Removes images no run attaches any more; returns how many.
pub fn collect_attachments(c: &Connection) -> Result<u64> {
    Ok(c.execute(
        "DELETE FROM attachments WHERE sha256 NOT IN (SELECT sha256 FROM run_attachments)",
        [],
    )? as u64)
}
