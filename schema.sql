-- boo's SQLite schema: THE schema, applied at startup by `store::migrate`.
-- Every statement is idempotent; `PRAGMA user_version` records what was applied, so
-- applying this file twice is a no-op. Timestamps are RFC 3339 UTC text with
-- milliseconds (sortable as text); `*_ms` columns are epoch milliseconds.

-- One row per server (or CLI) process that may own runs.
CREATE TABLE IF NOT EXISTS server_owners (
  owner_id      TEXT PRIMARY KEY,
  pid           INTEGER NOT NULL,
  pid_start     INTEGER,               -- /proc/<pid>/stat start time, guards against pid reuse
  host          TEXT NOT NULL,
  started_at    TEXT NOT NULL,
  heartbeat_ms  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS flow_runs (
  run_id        TEXT PRIMARY KEY,      -- UUID v7
  flow          TEXT NOT NULL,
  flow_title    TEXT,
  band          TEXT NOT NULL
    CONSTRAINT flow_runs_band_check CHECK (band IN ('small', 'medium', 'large')),
  status        TEXT NOT NULL DEFAULT 'running'
    CONSTRAINT flow_runs_status_check CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
  project_id    TEXT NOT NULL,         -- the canonical root path
  root          TEXT NOT NULL,
  input         TEXT NOT NULL
    CONSTRAINT flow_runs_input_check CHECK (
      json_valid(input)
      AND COALESCE(json_type(input, '$.question'), '') = 'text'
      AND length(trim(COALESCE(json_extract(input, '$.question'), ''))) > 0),
  model         TEXT,
  plan          TEXT NOT NULL
    CONSTRAINT flow_runs_plan_check CHECK (json_valid(plan)),
  report        TEXT,                  -- Markdown, once the run ended
  report_json   TEXT,
  error         TEXT,
  meta          TEXT,                  -- JSON: sandbox state, qwen version, ...
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  created_at    TEXT NOT NULL,
  finished_at   TEXT,
  CONSTRAINT flow_runs_finished_check CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX IF NOT EXISTS flow_runs_project_created ON flow_runs (project_id, created_at DESC);
CREATE INDEX IF NOT EXISTS flow_runs_status ON flow_runs (status);

-- Who runs a run right now: one owner, kept alive by its heartbeat.
CREATE TABLE IF NOT EXISTS run_leases (
  run_id        TEXT PRIMARY KEY REFERENCES flow_runs (run_id) ON DELETE CASCADE,
  owner_id      TEXT NOT NULL,
  acquired_ms   INTEGER NOT NULL,
  heartbeat_ms  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS flow_steps (
  id            INTEGER PRIMARY KEY,
  run_id        TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
  step_id       TEXT NOT NULL,
  kind          TEXT NOT NULL
    CONSTRAINT flow_steps_kind_check CHECK (kind IN ('agent', 'code', 'script')),
  agent         TEXT NOT NULL,         -- persona (agent), function (code) or workflow name (script)
  label         TEXT NOT NULL,
  wave          INTEGER NOT NULL CONSTRAINT flow_steps_wave_check CHECK (wave >= 0),  -- 0: a workflow's script step
  position      INTEGER NOT NULL,      -- order in the flow definition
  chat_id       TEXT,                  -- UUID of the current attempt's stream
  status        TEXT NOT NULL DEFAULT 'pending'
    CONSTRAINT flow_steps_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'skipped', 'cancelled')),
  attempt       INTEGER NOT NULL DEFAULT 0,
  output        TEXT,                  -- the FULL output, never truncated
  error         TEXT,
  fatal         INTEGER NOT NULL DEFAULT 0,
  started_at    TEXT,
  finished_at   TEXT,
  input_tokens      INTEGER NOT NULL DEFAULT 0,
  output_tokens     INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens INTEGER NOT NULL DEFAULT 0,
  total_tokens      INTEGER NOT NULL DEFAULT 0,
  agent_pid     INTEGER,               -- the agent's process group leader while it runs
  agent_pid_start INTEGER,             -- its /proc start time (pid reuse guard)
  meta          TEXT,                  -- JSON: qwen version, offered tools, sandbox, exit code
  origin        TEXT NOT NULL DEFAULT 'plan'  -- 'plan': in the plan at launch; 'runtime': added while the run ran
    CONSTRAINT flow_steps_origin_check CHECK (origin IN ('plan', 'runtime')),
  parent_step_id TEXT,                 -- the step that started this one (runtime steps)
  phase         TEXT,                  -- a workflow's phase label
  cache_key     TEXT,                  -- SHA-256 of what determines the result (workflow agents)
  CONSTRAINT flow_steps_run_step_unique UNIQUE (run_id, step_id)
);
CREATE INDEX IF NOT EXISTS flow_steps_run_status ON flow_steps (run_id, status);

-- Every StreamEvent of a step, in the batches the clients saw, with their seq.
CREATE TABLE IF NOT EXISTS agent_snapshots (
  chat_id       TEXT NOT NULL,
  seq           INTEGER NOT NULL CONSTRAINT agent_snapshots_seq_check CHECK (seq >= 1),
  run_id        TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
  step_id       TEXT NOT NULL,
  events        TEXT NOT NULL CONSTRAINT agent_snapshots_events_check CHECK (json_valid(events)),
  created_ms    INTEGER NOT NULL,
  PRIMARY KEY (chat_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS agent_snapshots_run ON agent_snapshots (run_id, step_id);

-- Every tool call of every agent step.
CREATE TABLE IF NOT EXISTS tool_traces (
  seq           INTEGER PRIMARY KEY,   -- insertion order: the stable pagination key
  trace_id      TEXT NOT NULL UNIQUE,
  run_id        TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
  step_id       TEXT NOT NULL,
  chat_id       TEXT NOT NULL,
  tool_call_id  TEXT NOT NULL,
  tool          TEXT NOT NULL,
  turn          INTEGER NOT NULL DEFAULT 0,
  input         TEXT NOT NULL,         -- JSON
  output        TEXT,                  -- capped; output_bytes is the full size
  output_bytes  INTEGER,
  started_at    TEXT NOT NULL,
  started_ms    INTEGER NOT NULL,
  finished_at   TEXT,
  latency_ms    INTEGER,
  outcome       TEXT CONSTRAINT tool_traces_outcome_check CHECK (outcome IN ('ok', 'error', 'denied')),
  error         TEXT,
  input_tokens      INTEGER,
  output_tokens     INTEGER,
  cache_read_tokens INTEGER,
  total_tokens      INTEGER
);
CREATE INDEX IF NOT EXISTS tool_traces_run_seq ON tool_traces (run_id, seq);
CREATE INDEX IF NOT EXISTS tool_traces_run_step_seq ON tool_traces (run_id, step_id, seq);

-- Usage of every model turn of every agent step.
CREATE TABLE IF NOT EXISTS turn_usage (
  chat_id       TEXT NOT NULL,
  turn          INTEGER NOT NULL,
  run_id        TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
  step_id       TEXT NOT NULL,
  input_tokens      INTEGER NOT NULL,
  output_tokens     INTEGER NOT NULL,
  cache_read_tokens INTEGER NOT NULL,
  total_tokens      INTEGER NOT NULL,
  PRIMARY KEY (chat_id, turn)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS turn_usage_run ON turn_usage (run_id, step_id);

-- Roots the user trusts: the project's own flows run only here (`boo trust <root>`,
-- `boo/trustRoot`). `root` is the canonical path; revoking deletes the row.
CREATE TABLE IF NOT EXISTS trusted_roots (
  root          TEXT PRIMARY KEY,
  trusted_by    TEXT NOT NULL,          -- who asked: `boo trust` or the editor's name
  trusted_at    TEXT NOT NULL
) WITHOUT ROWID;


-- Workflow runs (version 4; purely additive). A run's kind, workflow facts and result
-- live in `flow_runs.meta` (`kind`, `workflow`, `result`, `script`); a workflow agent
-- answered from the cache has `"cached": true` in its step's `meta`.

-- A workflow run's log: `log()` and `phase()` lines, numbered from 1 per run.
CREATE TABLE IF NOT EXISTS run_log (
  run_id        TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
  seq           INTEGER NOT NULL CONSTRAINT run_log_seq_check CHECK (seq >= 1),
  kind          TEXT NOT NULL CONSTRAINT run_log_kind_check CHECK (kind IN ('log', 'phase')),
  message       TEXT NOT NULL,
  at            TEXT NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- Completed workflow agents by content key, per project root (PROTOCOL.md, "Cache").
CREATE TABLE IF NOT EXISTS workflow_cache (
  root          TEXT NOT NULL,
  cache_key     TEXT NOT NULL,
  output        TEXT NOT NULL,
  input_tokens      INTEGER NOT NULL DEFAULT 0,
  output_tokens     INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens INTEGER NOT NULL DEFAULT 0,
  total_tokens      INTEGER NOT NULL DEFAULT 0,
  run_id        TEXT NOT NULL,         -- the run that produced it
  step_id       TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  PRIMARY KEY (root, cache_key)
) WITHOUT ROWID;

-- Attachments (version 5; purely additive): images handed to a run's agents. Each
-- image is stored once by SHA-256 whatever number of runs attach it; a run lists its
-- attachments by name in order. `boo gc` removes an image with its last run.
CREATE TABLE IF NOT EXISTS attachments (
  sha256        TEXT PRIMARY KEY
    CONSTRAINT attachments_sha256_check CHECK (length(sha256) = 64),
  mime_type     TEXT NOT NULL
    CONSTRAINT attachments_mime_check CHECK (mime_type IN ('image/png', 'image/jpeg', 'image/gif', 'image/webp')),
  bytes         INTEGER NOT NULL,
  width         INTEGER NOT NULL,
  height        INTEGER NOT NULL,
  data          BLOB NOT NULL,
  created_at    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS run_attachments (
  attachment_id TEXT PRIMARY KEY,      -- UUID v7: `Run.attachments[].attachmentId`
  run_id        TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
  position      INTEGER NOT NULL,      -- order given at launch, from 0
  name          TEXT NOT NULL,
  sha256        TEXT NOT NULL REFERENCES attachments (sha256),
  CONSTRAINT run_attachments_name_unique UNIQUE (run_id, name)
);
CREATE INDEX IF NOT EXISTS run_attachments_run ON run_attachments (run_id, position);
CREATE INDEX IF NOT EXISTS run_attachments_sha256 ON run_attachments (sha256);

-- Model calls (version 6; purely additive): every call an agent made through boo's model
-- proxy (src/proxy/), with its cache shape. Kept and removed with its run.
CREATE TABLE IF NOT EXISTS model_calls (
  seq           INTEGER PRIMARY KEY,   -- insertion order: the stable pagination key
  call_id       TEXT NOT NULL UNIQUE,
  run_id        TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
  step_id       TEXT NOT NULL,
  chat_id       TEXT NOT NULL,
  turn          INTEGER NOT NULL,
  started_at    TEXT NOT NULL,
  finished_at   TEXT NOT NULL,
  ttft_ms       INTEGER,
  duration_ms   INTEGER NOT NULL,
  status        INTEGER,
  error         TEXT,
  prompt_tokens     INTEGER,
  cached_tokens     INTEGER,
  completion_tokens INTEGER,
  tokens_per_second REAL,
  cache_dialect     TEXT,
  request_bytes     INTEGER NOT NULL,
  expected_cached_tokens INTEGER NOT NULL,
  miss_reason   TEXT,
  segments      TEXT NOT NULL          -- JSON [Segment]
);
CREATE INDEX IF NOT EXISTS model_calls_run_seq ON model_calls (run_id, seq);
CREATE INDEX IF NOT EXISTS model_calls_run_step_seq ON model_calls (run_id, step_id, seq);

PRAGMA user_version = 6;
