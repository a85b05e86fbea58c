--- Pure run state: boo notifications and `boo/getRun` results in, plain Lua
--- tables out. No Neovim API calls here (only `vim.*` helpers that are pure),
--- so tests can drive it without a server and the pane can render from it.
---
--- A store holds every run this editor has seen. Each run holds its steps in
--- roster order; each agent step holds its live stream as a list of blocks:
---   { kind = 'text' | 'thinking', parts = { ... } }
---   { kind = 'tool', id, name, input, result?, is_error? }
---   { kind = 'turn', usage }         (a model turn ended)
---
--- Stream ordering: `seq` starts at 1 per chatId and grows by exactly 1.
--- A duplicate (seq <= last applied) is dropped; a gap (seq > last + 1) is
--- buffered and flags the run for a refetch (`boo/getRun {transcript=true}`);
--- `load_run` then rebuilds the step from the transcript and replays the
--- buffered notifications with seq > lastSeq. If the missing chunk arrives
--- after all, the buffered ones are applied and the flag clears.
---
--- The same rules as the VS Code extension's reducer: both are checked
--- against the shared corpus tests/protocol-cases/ (see its README.md).
local M = {}

local TERMINAL_RUN = { completed = true, failed = true, cancelled = true }
local TERMINAL_STEP = { completed = true, failed = true, skipped = true, cancelled = true }

M.TERMINAL_RUN = TERMINAL_RUN
M.TERMINAL_STEP = TERMINAL_STEP

--- Days since 1970-01-01 for a civil date (proleptic Gregorian).
local function days_from_civil(y, m, d)
  y = (m <= 2) and (y - 1) or y
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Parse an RFC 3339 timestamp into milliseconds since the epoch.
--- Returns nil for anything it does not understand.
---@param s string?
---@return number?
function M.parse_time(s)
  if type(s) ~= 'string' then
    return nil
  end
  local y, mo, d, h, mi, sec, rest = s:match('^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$')
  if not y then
    return nil
  end
  local ms = 0
  local frac, tz = rest:match('^%.(%d+)(.*)$')
  if frac then
    ms = math.floor(tonumber('0.' .. frac) * 1000 + 0.5)
    rest = tz
  end
  local offset = 0
  if rest == 'Z' or rest == 'z' or rest == '' then
    offset = 0
  else
    local sign, oh, om = rest:match('^([%+%-])(%d%d):?(%d%d)$')
    if not sign then
      return nil
    end
    offset = (tonumber(oh) * 60 + tonumber(om)) * 60 * 1000
    if sign == '-' then
      offset = -offset
    end
  end
  local days = days_from_civil(tonumber(y), tonumber(mo), tonumber(d))
  local secs = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  return secs * 1000 + ms - offset
end

local function is_nil(v)
  return v == nil or v == vim.NIL
end

local function val(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

---@class boo.Store
---@field runs table<string, table>
---@field order string[]
local Store = {}
Store.__index = Store

function M.new()
  return setmetatable({ runs = {}, order = {} }, Store)
end

local set_chat

local function new_step(id)
  return {
    id = id,
    label = id,
    status = 'pending',
    last_seq = 0,
    blocks = {},
    tool_index = {},
    pending = {},
    traces = {},
    trace_order = {},
    turns = 0,
    stream_usage = nil,
    version = 0,
  }
end

local function touch(run, step)
  run.version = run.version + 1
  if step then
    step.version = step.version + 1
  end
end

--- The run with this id, or nil.
function Store:get(run_id)
  return self.runs[run_id]
end

--- The run with this id; a stub is created if it is unknown.
---@param run_id string
---@param now number? milliseconds (local clock) used for elapsed time
function Store:ensure(run_id, now)
  local run = self.runs[run_id]
  if run then
    return run, false
  end
  run = {
    id = run_id,
    status = 'running',
    steps = {},
    by_id = {},
    by_chat = {},
    version = 0,
    stub = true,
    -- false until boo/runStarted or a boo/getRun answer gave the roster;
    -- notifications that come before it are held, then replayed in order.
    rostered = false,
    held = {},
    resync = false,
    resyncing = false,
    created_ms = now,
    last_event_ms = now,
  }
  self.runs[run_id] = run
  table.insert(self.order, run_id)
  return run, true
end

local function add_step(run, id)
  local step = run.by_id[id]
  if step then
    return step, false
  end
  step = new_step(id)
  -- Order of first appearance (a workflow's agents show by phase, then by it).
  step.appear = run.next_appear or 0
  run.next_appear = step.appear + 1
  run.by_id[id] = step
  table.insert(run.steps, step)
  return step, true
end

--- Forget a step's stream and what its previous attempt ended with (a new
--- chat starts from seq 1).
local function reset_stream(step)
  step.blocks = {}
  step.tool_index = {}
  step.pending = {}
  step.last_seq = 0
  step.turns = 0
  step.stream_usage = nil
  step.usage = nil
  step.output = nil
  step.error = nil
  step.finishedAt = nil
  step.finished_ms = nil
end

local UUID_V7 = '^%x%x%x%x%x%x%x%x%-%x%x%x%x%-7%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$'

--- Whether `chat` is a newer attempt of a step than its `current` chat.
--- UUID v7 chatIds sort by creation time; other ids: any different one is newer.
local function newer_chat(current, chat)
  if type(current) ~= 'string' or type(chat) ~= 'string' or chat == current then
    return false
  end
  if current:match(UUID_V7) and chat:match(UUID_V7) then
    return chat:lower() > current:lower()
  end
  return true
end
M.newer_chat = newer_chat

--- A step gets a new chatId when it is dispatched again (e.g. a server
--- resumed the run after a restart): its stream starts over at seq 1.
function set_chat(run, step, chat_id)
  if step.chatId == chat_id then
    return
  end
  if step.chatId then
    run.by_chat[step.chatId] = nil
    reset_stream(step)
  end
  step.chatId = chat_id
  run.by_chat[chat_id] = step
end

--- An update (or getRun step) that names a chat the step does not have and
--- that is not a newer attempt of a step still running is about an earlier
--- attempt (or a finished step): nothing of it applies to the step.
local function other_attempt(step, chat_id)
  if is_nil(chat_id) or not step.chatId or chat_id == step.chatId then
    return false
  end
  return TERMINAL_STEP[step.status] == true or not newer_chat(step.chatId, chat_id)
end

--- Merge known step fields from a notification or a getRun step.
--- Returns false (and changes nothing) when `p` is about another attempt.
local function merge_step_fields(run, step, p, now)
  if other_attempt(step, p.chatId) then
    return false
  end
  if not is_nil(p.chatId) then
    set_chat(run, step, p.chatId)
  end
  for _, k in ipairs({ 'agent', 'kind', 'label', 'output', 'error' }) do
    if p[k] ~= nil then
      step[k] = val(p[k])
    end
  end
  if not is_nil(p.wave) then
    step.wave = p.wave
  end
  -- A workflow agent's phase, parent, and whether the cache answered it (a
  -- getRun step says so in its meta).
  if not is_nil(p.phase) then
    step.phase = p.phase
  end
  if not is_nil(p.parentStepId) then
    step.parentStepId = p.parentStepId
  end
  if p.cached == true or (type(p.meta) == 'table' and p.meta.cached == true) then
    step.cached = true
  end
  if not is_nil(p.usage) and type(p.usage) == 'table' then
    step.usage = p.usage
  end
  if not is_nil(p.startedAt) then
    step.startedAt = p.startedAt
    step.started_ms = M.parse_time(p.startedAt) or step.started_ms
  end
  if not is_nil(p.finishedAt) then
    step.finishedAt = p.finishedAt
    step.finished_ms = M.parse_time(p.finishedAt) or step.finished_ms
  end
  if not is_nil(p.status) and p.status ~= step.status then
    -- A terminal status never changes again.
    if not TERMINAL_STEP[step.status] then
      step.status = p.status
      if p.status == 'running' and not step.started_ms then
        step.started_ms = now
      end
      if TERMINAL_STEP[p.status] and not step.finished_ms then
        step.finished_ms = now
      end
    end
  end
  return true
end

local function set_run_status(run, status, now)
  if is_nil(status) or status == run.status then
    return
  end
  if TERMINAL_RUN[run.status] then
    return
  end
  run.status = status
  if TERMINAL_RUN[status] and not run.finished_ms then
    run.finished_ms = now
  end
end

local function sort_steps(run)
  for i, s in ipairs(run.steps) do
    s._order = s._order or i
  end
  table.sort(run.steps, function(a, b)
    local wa, wb = a.wave or math.huge, b.wave or math.huge
    if wa ~= wb then
      return wa < wb
    end
    return a._order < b._order
  end)
end

--- Whether some step holds stream chunks behind a missing seq.
local function has_gap(run)
  for _, s in ipairs(run.steps) do
    if next(s.pending) then
      return true
    end
  end
  return false
end

--- A refetch is wanted while the roster is unknown or a step has a gap.
local function recompute_resync(run)
  if not run.resyncing then
    run.resync = not run.rostered or has_gap(run)
  end
end

--- Hold a notification that came before the roster (it is replayed once the
--- roster is known) and ask for a refetch, which brings the roster.
local function hold(run, method, p)
  run.held[#run.held + 1] = { method = method, params = p }
  if not run.resyncing then
    run.resync = true
  end
end

--- The roster is known: replay, in arrival order, what was held before it.
function Store:_replay_held(run, now)
  local held = run.held
  run.held = {}
  for _, h in ipairs(held) do
    self:notify(h.method, h.params, now)
  end
end

--- The wave a step joins when it first shows up without one: the last wave.
local function last_wave(run)
  local w
  for _, s in ipairs(run.steps) do
    if type(s.wave) == 'number' and (not w or s.wave > w) then
      w = s.wave
    end
  end
  return w or 0
end

--- A step the roster did not list (an update or stream chunk names it): it
--- is added as an agent step labelled by its id in the last wave, unless the
--- notification says otherwise; no refetch is asked for.
local function add_unlisted_step(run, id, p)
  local wave = last_wave(run)
  local step = add_step(run, id)
  step.kind = 'agent'
  step.wave = is_nil(p.wave) and wave or p.wave
  return step
end

--- `boo/runStarted`
function Store:run_started(p, now)
  local run = self:ensure(p.runId, now)
  for _, k in ipairs({ 'flow', 'band', 'question', 'root' }) do
    if not is_nil(p[k]) then
      run[k] = p[k]
    end
  end
  set_run_status(run, p.status or 'running', now)
  if type(p.steps) == 'table' then
    for _, sp in ipairs(p.steps) do
      if sp.kind == 'script' then
        run.kind = 'workflow'
      end
    end
    for i, sp in ipairs(p.steps) do
      local step, created = add_step(run, sp.stepId)
      if created then
        step._order = i
      end
      merge_step_fields(run, step, sp, now)
    end
    sort_steps(run)
  end
  run.stub = false
  run.rostered = true
  run.last_event_ms = now
  self:_replay_held(run, now)
  recompute_resync(run)
  touch(run)
  return run
end

--- Apply the run-level fields of a `boo/stepUpdated`. The update that ends
--- the run gives its status, finish time, error (`runError`, else the
--- named step's `error` for a failed run), usage (`runUsage`) and report;
--- once the run has ended nothing of it changes again. A report on any
--- other update only fills in a run that has none.
local function apply_run_fields(run, p, now)
  local was_terminal = TERMINAL_RUN[run.status]
  if not is_nil(p.runStatus) then
    set_run_status(run, p.runStatus, now)
  end
  if not was_terminal and TERMINAL_RUN[run.status] then
    if type(p.report) == 'string' then
      run.report = p.report
    end
    if not is_nil(p.finishedAt) then
      run.finishedAt = p.finishedAt
      run.finished_ms = M.parse_time(p.finishedAt) or run.finished_ms
    end
    if type(p.runError) == 'string' and p.runError ~= '' then
      run.error = p.runError
    elseif run.status == 'failed' and type(p.error) == 'string' and p.error ~= '' then
      run.error = p.error
    end
    if type(p.runUsage) == 'table' then
      run.usage = p.runUsage
    end
    if p.result ~= nil then
      run.result = val(p.result)
    end
  elseif type(p.report) == 'string' and not run.report then
    run.report = p.report
  end
end

--- `boo/stepUpdated`. An update without a stepId (absent or "") is about the
--- run only: it never creates or changes a step row.
function Store:step_updated(p, now)
  local run = self:ensure(p.runId, now)
  run.last_event_ms = now
  if not run.rostered then
    hold(run, 'boo/stepUpdated', p)
    return run
  end
  if type(p.stepId) == 'string' and p.stepId ~= '' then
    local step = run.by_id[p.stepId]
    local new = false
    if not step then
      step, new = add_unlisted_step(run, p.stepId, p), true
    end
    if merge_step_fields(run, step, p, now) and p.status == 'running' and step.kind ~= 'code' then
      run.active_step = step.id
    end
    if new then
      sort_steps(run)
    end
    touch(run, step)
  end
  apply_run_fields(run, p, now)
  touch(run)
  return run
end

local function add_usage(acc, u)
  if type(u) ~= 'table' then
    return acc
  end
  acc = acc or { inputTokens = 0, outputTokens = 0, cacheReadTokens = 0, totalTokens = 0 }
  for _, k in ipairs({ 'inputTokens', 'outputTokens', 'cacheReadTokens', 'totalTokens' }) do
    if type(u[k]) == 'number' then
      acc[k] = acc[k] + u[k]
    end
  end
  return acc
end

--- Apply one StreamEvent to a step's blocks.
local function apply_event(step, ev)
  local blocks = step.blocks
  local last = blocks[#blocks]
  local t = ev.type
  if t == 'text' or t == 'thinking' then
    local text = val(ev.text) or ''
    if last and last.kind == t then
      last.n = last.n + 1
      last.parts[last.n] = text
    else
      blocks[#blocks + 1] = { kind = t, parts = { text }, n = 1 }
    end
  elseif t == 'toolCall' then
    local b = { kind = 'tool', id = val(ev.toolCallId), name = val(ev.name) or '?', input = val(ev.input) }
    blocks[#blocks + 1] = b
    if b.id then
      step.tool_index[b.id] = b
    end
  elseif t == 'toolResult' then
    local b = ev.toolCallId and step.tool_index[ev.toolCallId]
    if not b then
      b = { kind = 'tool', id = val(ev.toolCallId), name = '?' }
      blocks[#blocks + 1] = b
    end
    b.result = val(ev.content)
    b.is_error = ev.isError == true
    b.done = true
  elseif t == 'messageComplete' then
    step.turns = step.turns + 1
    step.stream_usage = add_usage(step.stream_usage, val(ev.usage))
    blocks[#blocks + 1] = { kind = 'turn', usage = val(ev.usage) }
  end
  -- Unknown event types are ignored (the protocol only ever adds).
end

local function apply_events(step, events)
  if type(events) ~= 'table' then
    return
  end
  for _, ev in ipairs(events) do
    if type(ev) == 'table' then
      apply_event(step, ev)
    end
  end
end

--- Apply buffered notifications that are now contiguous; drop stale ones.
--- Returns true if a gap remains.
local function drain_pending(step)
  for seq in pairs(step.pending) do
    if seq <= step.last_seq then
      step.pending[seq] = nil
    end
  end
  while step.pending[step.last_seq + 1] do
    local seq = step.last_seq + 1
    apply_events(step, step.pending[seq])
    step.pending[seq] = nil
    step.last_seq = seq
  end
  return next(step.pending) ~= nil
end

--- `boo/agentStream`. Returns one of:
---   'applied'    the events were appended
---   'duplicate'  seq already applied: dropped
---   'stale'      a chatId the step no longer has (an earlier attempt): dropped
---   'gap'        seq skipped ahead: buffered, run.resync set (refetch needed);
---                also when the run's roster is not known yet (the chunk is
---                held until it is)
---   'buffered'   a refetch is in flight: kept for replay after it
---   'ignored'    no stepId and no known chatId: nothing to show it in
function Store:agent_stream(p, now)
  local run = self:ensure(p.runId, now)
  run.last_event_ms = now
  if not run.rostered then
    hold(run, 'boo/agentStream', p)
    return 'gap'
  end
  local has_id = type(p.stepId) == 'string' and p.stepId ~= ''
  local step = (has_id and run.by_id[p.stepId]) or (not is_nil(p.chatId) and run.by_chat[p.chatId])
  if not step then
    if not has_id then
      return 'ignored'
    end
    step = add_unlisted_step(run, p.stepId, p)
    step.status = 'running'
    sort_steps(run)
  end
  if not is_nil(p.chatId) then
    if step.chatId and step.chatId ~= p.chatId then
      -- Only a step update starts a new attempt; a chunk of another chat
      -- is a late one of an earlier attempt.
      return 'stale'
    end
    set_chat(run, step, p.chatId)
  end
  local seq = tonumber(p.seq) or 0
  if seq <= step.last_seq then
    return 'duplicate'
  end
  -- A chunk of its chat proves the step runs.
  if step.status == 'pending' then
    step.status = 'running'
    step.started_ms = step.started_ms or now
  end
  if run.resyncing then
    step.pending[seq] = p.events
    return 'buffered'
  end
  if seq > step.last_seq + 1 then
    step.pending[seq] = p.events
    run.resync = true
    touch(run, step)
    return 'gap'
  end
  apply_events(step, p.events)
  step.last_seq = seq
  if next(step.pending) then
    drain_pending(step)
    -- The missing chunk came after all: no refetch needed any more.
    recompute_resync(run)
  end
  if step.kind ~= 'code' then
    run.active_step = step.id
    run.active_ms = now
  end
  touch(run, step)
  return 'applied'
end

--- `boo/trace` (start and finish phases of one tool call).
function Store:trace(p, now)
  local run = self:ensure(p.runId, now)
  if not run.rostered then
    hold(run, 'boo/trace', p)
    return
  end
  local step = (p.stepId and run.by_id[p.stepId]) or (p.chatId and run.by_chat[p.chatId])
  if not step or is_nil(p.traceId) then
    return
  end
  local tr = step.traces[p.traceId]
  if not tr then
    tr = {}
    step.traces[p.traceId] = tr
    table.insert(step.trace_order, p.traceId)
  end
  for k, v in pairs(p) do
    if v ~= vim.NIL then
      tr[k] = v
    end
  end
  run.last_event_ms = now
  touch(run, step)
end

--- Log lines by seq; a seq already there is kept (lines never change).
local function merge_log(run, lines)
  if type(lines) ~= 'table' then
    return
  end
  run.log = run.log or {}
  local have = {}
  for _, l in ipairs(run.log) do
    have[l.seq] = true
  end
  local changed = false
  for _, l in ipairs(lines) do
    local seq = type(l) == 'table' and tonumber(val(l.seq)) or nil
    if seq and seq == math.floor(seq) and not have[seq] then
      have[seq] = true
      run.log[#run.log + 1] = { seq = seq, kind = val(l.kind) or 'log', message = val(l.message) or '', at = val(l.at) or '' }
      changed = true
    end
  end
  if changed then
    table.sort(run.log, function(a, b)
      return a.seq < b.seq
    end)
  end
end

--- `Run.workflow` folded into what the pane knows of a workflow run.
local function merge_workflow(run, w)
  if type(w) ~= 'table' then
    return
  end
  local cur = run.workflow or { phases = {} }
  for _, k in ipairs({ 'name', 'source', 'path' }) do
    if type(w[k]) == 'string' then
      cur[k] = w[k]
    end
  end
  if w.args ~= nil then
    cur.args = val(w.args)
  end
  if type(w.budget) == 'table' then
    local total = val(w.budget.total)
    cur.budget_total = type(total) == 'number' and total or nil
  end
  if type(w.phases) == 'table' then
    local titles = {}
    for _, ph in ipairs(w.phases) do
      local t = type(ph) == 'table' and val(ph.title) or ph
      if type(t) == 'string' then
        titles[#titles + 1] = t
      end
    end
    cur.phases = titles
  end
  run.workflow = cur
end

--- The run-level facts of a getRun answer's `run` (kind, workflow, log, result).
local function apply_run_info(run, r)
  if r.kind == 'workflow' or r.kind == 'agent' then
    run.kind = r.kind
  end
  -- The run's images (rule 21): only a getRun answer carries them; a roster
  -- that comes later keeps them.
  if type(r.attachments) == 'table' then
    local list = {}
    for _, a in ipairs(r.attachments) do
      if type(a) == 'table' and type(val(a.attachmentId)) == 'string' then
        list[#list + 1] = {
          attachmentId = a.attachmentId,
          name = val(a.name) or a.attachmentId,
          mimeType = val(a.mimeType),
          bytes = val(a.bytes),
          sha256 = val(a.sha256),
          width = val(a.width),
          height = val(a.height),
        }
      end
    end
    run.attachments = list
  end
  merge_workflow(run, r.workflow)
  merge_log(run, r.log)
  if not is_nil(r.result) then
    run.result = r.result
  end
end

--- Only the run-level facts of a `boo/getRun` answer (the steps are left alone).
function Store:run_info(r, now)
  if type(r) ~= 'table' or not r.runId then
    return nil
  end
  local run = self:ensure(r.runId, now)
  apply_run_info(run, r)
  touch(run)
  return run
end

--- `boo/stepAdded`: a step the run created while it ran (a workflow's
--- `agent()` call), added in its place with its phase, cached mark and parent.
--- A step already known (the same stepId again, e.g. after the script re-ran
--- from the top on a restart) is updated like a stepUpdated would: a newer
--- chat starts a new attempt, a terminal status stays.
function Store:step_added(p, now)
  local run = self:ensure(p.runId, now)
  run.last_event_ms = now
  if not run.rostered then
    hold(run, 'boo/stepAdded', p)
    return run
  end
  local info = p.step
  if type(info) ~= 'table' or type(info.stepId) ~= 'string' or info.stepId == '' then
    return run
  end
  -- A child an agent spawned (its parent is a step other than a workflow's
  -- `script`) shows under its parent and leaves the run's kind alone; any
  -- other added step is a workflow's agent.
  local parent = val(info.parentStepId)
  local child = type(parent) == 'string' and parent ~= '' and parent ~= 'script'
  if not child then
    run.kind = 'workflow'
  end
  local step, created = add_step(run, info.stepId)
  if created then
    step.kind = 'agent'
    local ps = child and run.by_id[parent]
    step.wave = (ps and ps.wave) or last_wave(run)
  end
  if merge_step_fields(run, step, info, now) then
    if info.status == 'running' and step.kind ~= 'code' then
      run.active_step = step.id
    end
  end
  sort_steps(run)
  touch(run, step)
  return run
end

--- `boo/runLog`: one narrator line of a workflow run.
function Store:run_log(p, now)
  local run = self:ensure(p.runId, now)
  if not run.rostered then
    hold(run, 'boo/runLog', p)
    return run
  end
  run.kind = 'workflow'
  run.last_event_ms = now
  merge_log(run, { p })
  touch(run)
  return run
end

local NOTIFY = {
  ['boo/runStarted'] = 'run_started',
  ['boo/stepUpdated'] = 'step_updated',
  ['boo/agentStream'] = 'agent_stream',
  ['boo/trace'] = 'trace',
  ['boo/stepAdded'] = 'step_added',
  ['boo/runLog'] = 'run_log',
}

--- Apply one server notification by its method name (unknown methods are
--- ignored: the protocol only ever adds). Returns what the method returns.
function Store:notify(method, p, now)
  local fn = NOTIFY[method]
  if not fn or type(p) ~= 'table' or not p.runId then
    return nil
  end
  return self[fn](self, p, now)
end

--- Mark a refetch as started: stream notifications are buffered until
--- `load_run` (or `resync_failed`).
function Store:begin_resync(run_id, now, via)
  local run = self.runs[run_id]
  if not run then
    return
  end
  run.resync = false
  run.resyncing = true
  run.resync_started_ms = now
  run.resync_via = via
end

--- The refetch failed: stop buffering; flag it again so it is retried.
function Store:resync_failed(run_id)
  local run = self.runs[run_id]
  if not run then
    return
  end
  run.resyncing = false
  run.resync_via = nil
  run.resync = true
end

--- Load a `boo/getRun` result (with or without transcripts).
--- With transcripts, each step's stream is rebuilt and continues after lastSeq.
---@param opts? { transcript?: boolean } transcript: the request asked for transcripts
function Store:load_run(result, now, opts)
  local r = result.run or {}
  local run = self:ensure(r.runId, now)
  for _, k in ipairs({ 'flow', 'band', 'question', 'root', 'model', 'error', 'createdAt', 'finishedAt' }) do
    if r[k] ~= nil then
      run[k] = val(r[k])
    end
  end
  if type(r.usage) == 'table' then
    run.usage = r.usage
  end
  if run.createdAt then
    run.created_ms = M.parse_time(run.createdAt) or run.created_ms
  end
  if run.finishedAt then
    run.finished_ms = M.parse_time(run.finishedAt) or run.finished_ms
  end
  set_run_status(run, r.status, now)
  if not is_nil(result.report) then
    run.report = result.report
  end
  apply_run_info(run, r)
  local regap = false
  local with_transcript = (opts and opts.transcript) == true
  for _, sp in ipairs(type(result.steps) == 'table' and result.steps or {}) do
    if type(sp.transcript) == 'table' then
      with_transcript = true
    end
  end
  if type(result.steps) == 'table' then
    for i, sp in ipairs(result.steps) do
      local step, created = add_step(run, sp.stepId)
      if created or not step._order then
        step._order = i
      end
      local current = merge_step_fields(run, step, sp, now)
      if not current then
        -- A snapshot of an earlier attempt: the live stream stays.
        regap = regap or next(step.pending) ~= nil
      elseif type(sp.transcript) == 'table' then
        local last_seq = tonumber(val(sp.lastSeq)) or 0
        if last_seq >= step.last_seq then
          step.blocks = {}
          step.tool_index = {}
          step.turns = 0
          step.stream_usage = nil
          apply_events(step, sp.transcript)
          step.last_seq = last_seq
        end
        if drain_pending(step) then
          regap = true
        end
      end
      step.version = step.version + 1
    end
    sort_steps(run)
  end
  run.stub = false
  if with_transcript then
    run.resyncing = false
    run.resync_via = nil
    run.resync = regap
    run.loaded = true
  end
  if type(result.steps) == 'table' then
    run.rostered = true
    self:_replay_held(run, now)
  end
  if not run.active_step then
    for _, s in ipairs(run.steps) do
      if s.status == 'running' and s.kind ~= 'code' then
        run.active_step = s.id
      end
    end
  end
  touch(run)
  return run
end

--- Full text of a text/thinking block (concatenated lazily, cached).
function M.block_text(b)
  if b._n ~= b.n then
    b._text = table.concat(b.parts, '', 1, b.n)
    b._n = b.n
  end
  return b._text
end

--- Tokens used by a step so far (final usage if known, else the sum of turns).
function M.step_tokens(step)
  local u = step.usage or step.stream_usage
  if type(u) ~= 'table' then
    return nil
  end
  if type(u.totalTokens) == 'number' and u.totalTokens > 0 then
    return u.totalTokens
  end
  local n = (u.inputTokens or 0) + (u.outputTokens or 0)
  return n > 0 and n or nil
end

--- Tokens used by a run (the server's total once known, else the step sum).
function M.run_tokens(run)
  if type(run.usage) == 'table' and type(run.usage.totalTokens) == 'number' and run.usage.totalTokens > 0 then
    return run.usage.totalTokens
  end
  local total, any = 0, false
  for _, s in ipairs(run.steps) do
    local n = M.step_tokens(s)
    if n then
      total = total + n
      any = true
    end
  end
  return any and total or nil
end

--- The step the pane should expand when the user has not picked one:
--- the most recently streaming agent step, else a running agent step, else
--- the last agent step that produced a stream.
function M.auto_step(run)
  if run.active_step and run.by_id[run.active_step] then
    return run.active_step
  end
  local fallback
  for _, s in ipairs(run.steps) do
    if s.kind ~= 'code' then
      if s.status == 'running' then
        return s.id
      end
      if #s.blocks > 0 then
        fallback = s.id
      end
    end
  end
  return fallback
end

--- The step that spawned `step` when it is a child of another step of the
--- run (rule 20; a workflow's `script` is not such a parent), else nil.
local function parent_of(run, step)
  local pid = step.parentStepId
  if type(pid) ~= 'string' or pid == 'script' or pid == step.id then
    return nil
  end
  return run.by_id[pid]
end
M.parent_of = parent_of

--- `steps` (top-level rows in display order) with each step's children right
--- under it, in order of appearance (depth first).
local function with_children(run, steps)
  local kids = {}
  for _, s in ipairs(run.steps) do
    local p = parent_of(run, s)
    if p then
      kids[p.id] = kids[p.id] or {}
      table.insert(kids[p.id], s)
    end
  end
  if next(kids) == nil then
    return steps
  end
  for _, list in pairs(kids) do
    table.sort(list, function(a, b)
      return (a.appear or 0) < (b.appear or 0)
    end)
  end
  local out, seen = {}, {}
  local function put(s, depth)
    if seen[s] then
      return
    end
    seen[s] = true
    s.depth = depth
    out[#out + 1] = s
    for _, c in ipairs(kids[s.id] or {}) do
      put(c, depth + 1)
    end
  end
  for _, s in ipairs(steps) do
    put(s, 0)
  end
  -- Parents that name each other (bad input): still every step shows.
  for _, s in ipairs(run.steps) do
    if not seen[s] and parent_of(run, s) and (s.kind ~= 'script' or run.kind ~= 'workflow') then
      put(s, 1)
    end
  end
  return out
end

--- A workflow run's agents grouped by phase: `{ { title = string|nil, steps = {...} }, ... }`.
--- The phases of `meta.phases` first, in its order, then the others by their
--- first agent's appearance (agents outside any phase form one group like the
--- others); within a group, agents by first appearance. The script step is in
--- no group.
function M.phase_groups(run)
  local meta = (run.workflow and run.workflow.phases) or {}
  local meta_index = {}
  for i, t in ipairs(meta) do
    meta_index[t] = meta_index[t] or i
  end
  local agents = {}
  for _, s in ipairs(run.steps) do
    -- Children of agents show under their parent, in no group of their own.
    if s.kind ~= 'script' and not parent_of(run, s) then
      agents[#agents + 1] = s
    end
  end
  table.sort(agents, function(a, b)
    return (a.appear or 0) < (b.appear or 0)
  end)
  local groups, by_key = {}, {}
  local NONE = {}
  for _, s in ipairs(agents) do
    local key = s.phase or NONE
    local g = by_key[key]
    if not g then
      g = { title = s.phase, steps = {}, first = s.appear or 0 }
      by_key[key] = g
      groups[#groups + 1] = g
    end
    g.steps[#g.steps + 1] = s
  end
  table.sort(groups, function(a, b)
    local ia = a.title and meta_index[a.title]
    local ib = b.title and meta_index[b.title]
    if ia and ib then
      return ia < ib
    elseif ia or ib then
      return ia ~= nil
    end
    return a.first < b.first
  end)
  return groups
end

--- The pane's rows in display order: a flow's by wave; a workflow's script
--- step first, then its phase groups; a child an agent spawned right under
--- its parent, after the parent's earlier children (`step.depth` > 0).
function M.display_steps(run)
  local out = {}
  if run.kind ~= 'workflow' then
    for _, s in ipairs(run.steps) do
      if not parent_of(run, s) then
        out[#out + 1] = s
      end
    end
    return with_children(run, out)
  end
  for _, s in ipairs(run.steps) do
    if s.kind == 'script' then
      out[#out + 1] = s
    end
  end
  for _, g in ipairs(M.phase_groups(run)) do
    for _, s in ipairs(g.steps) do
      out[#out + 1] = s
    end
  end
  return with_children(run, out)
end

--- Output tokens a workflow run has spent against its budget: the agents that
--- ran (final usage when known, else the stream's so far); cached answers
--- cost nothing.
function M.budget_spent(run)
  local n = 0
  for _, s in ipairs(run.steps) do
    if s.kind == 'agent' and not s.cached then
      local u = s.usage or s.stream_usage
      if type(u) == 'table' and type(u.outputTokens) == 'number' then
        n = n + u.outputTokens
      end
    end
  end
  return n
end

function M.is_terminal(status)
  return TERMINAL_RUN[status] == true
end

return M
