--- Pure rendering: run state (boo.state) → buffer lines + highlights.
--- No Neovim API calls, so tests can assert the exact text.
---
--- Every render returns
---   lines    string[]
---   hls      table<row, {start_col, end_col, group}[]>   (row 1-based, byte columns)
---   row_step table<row, stepId>   (roster and section rows → their step)
---   step_row table<stepId, row>   (the roster row of each step)
local state = require('boo.state')

local M = {}

local STATUS_HL = {
  pending = 'BooStatusPending',
  running = 'BooStatusRunning',
  completed = 'BooStatusDone',
  failed = 'BooStatusFailed',
  cancelled = 'BooStatusCancelled',
  skipped = 'BooStatusSkipped',
}
M.STATUS_HL = STATUS_HL

local DEFAULT_GLYPHS = require('boo.config').defaults.glyphs

function M.duration(ms)
  if type(ms) ~= 'number' or ms < 0 then
    return ''
  end
  local s = ms / 1000
  if s < 60 then
    return string.format('%.1fs', s)
  end
  local total = math.floor(s)
  if total < 3600 then
    return string.format('%dm%02ds', math.floor(total / 60), total % 60)
  end
  return string.format('%dh%02dm', math.floor(total / 3600), math.floor(total % 3600 / 60))
end

function M.tokens(n)
  if type(n) ~= 'number' then
    return ''
  end
  if n < 1000 then
    return tostring(math.floor(n))
  end
  if n < 1000000 then
    return string.format('%.1fk', n / 1000)
  end
  return string.format('%.1fM', n / 1000000)
end

function M.age(ms_then, now)
  if not ms_then or not now then
    return ''
  end
  local s = math.max(0, math.floor((now - ms_then) / 1000))
  if s < 60 then
    return s .. 's ago'
  elseif s < 3600 then
    return math.floor(s / 60) .. 'm ago'
  elseif s < 86400 then
    return math.floor(s / 3600) .. 'h ago'
  end
  return math.floor(s / 86400) .. 'd ago'
end

local function trunc(s, n)
  s = tostring(s or '')
  if #s <= n then
    return s
  end
  -- cut on a UTF-8 boundary
  local cut = n - 1
  while cut > 0 and s:byte(cut + 1) and s:byte(cut + 1) >= 0x80 and s:byte(cut + 1) < 0xC0 do
    cut = cut - 1
  end
  return s:sub(1, cut) .. '…'
end
M.trunc = trunc

local function pad(s, n)
  s = tostring(s or '')
  local w = vim.fn.strdisplaywidth(s)
  if w >= n then
    return s
  end
  return s .. string.rep(' ', n - w)
end

local function split_lines(text)
  text = (text or ''):gsub('\r\n', '\n'):gsub('\r', '\n')
  return vim.split(text, '\n', { plain = true })
end
M.split_lines = split_lines

local function one_line(v, n)
  local s
  if type(v) == 'string' then
    s = v
  elseif v == nil or v == vim.NIL then
    s = ''
  else
    local ok, enc = pcall(vim.json.encode, v)
    s = ok and enc or tostring(v)
  end
  s = s:gsub('[\r\n\t]+', ' ')
  return trunc(s, n or 160)
end
M.one_line = one_line

local function content_text(v)
  if type(v) == 'string' then
    return v
  end
  if type(v) == 'table' then
    local parts = {}
    for _, item in ipairs(v) do
      if type(item) == 'table' and type(item.text) == 'string' then
        parts[#parts + 1] = item.text
      elseif type(item) == 'string' then
        parts[#parts + 1] = item
      end
    end
    if #parts > 0 then
      return table.concat(parts, '\n')
    end
    local ok, enc = pcall(vim.json.encode, v)
    return ok and enc or ''
  end
  if v == nil or v == vim.NIL then
    return ''
  end
  return tostring(v)
end
M.content_text = content_text

--- A small line builder that tracks highlights by row.
local function builder()
  local b = { lines = {}, hls = {}, row_step = {}, step_row = {}, row_attachment = {} }
  function b.add(text, group)
    b.lines[#b.lines + 1] = text
    if group and #text > 0 then
      b.hls[#b.lines] = { { 0, #text, group } }
    end
    return #b.lines
  end
  --- Add a line made of {text, group?} chunks.
  function b.chunks(chunks)
    local parts, hl, col = {}, {}, 0
    for _, c in ipairs(chunks) do
      local text = c[1] or ''
      parts[#parts + 1] = text
      if c[2] and #text > 0 then
        hl[#hl + 1] = { col, col + #text, c[2] }
      end
      col = col + #text
    end
    b.lines[#b.lines + 1] = table.concat(parts)
    if #hl > 0 then
      b.hls[#b.lines] = hl
    end
    return #b.lines
  end
  return b
end
M.builder = builder

local function rule(title, width)
  width = width or 60
  local head = '── ' .. title .. ' '
  local fill = width - vim.fn.strdisplaywidth(head)
  return head .. string.rep('─', math.max(3, fill))
end
M.rule = rule

local function step_elapsed(step, now)
  if step.started_ms then
    local stop = step.finished_ms or ((step.status == 'running') and now) or nil
    if stop then
      return stop - step.started_ms
    end
  end
  return nil
end

--- Lines of one step's live stream (text, thinking, tool calls).
function M.stream_lines(b, step, opts)
  local max_result = opts.tool_result_lines or 4
  local any = false
  -- turn_row[k]: the first row of model turn k (boo.pane jumps there from the timeline).
  b.turn_row = { [1] = #b.lines + 1 }
  local turn = 1
  for _, blk in ipairs(step.blocks) do
    if blk.kind == 'turn' then
      turn = turn + 1
      b.turn_row[turn] = #b.lines + 1
    end
    if blk.kind == 'text' then
      local text = state.block_text(blk)
      if text ~= '' then
        any = true
        for _, l in ipairs(split_lines(text)) do
          b.add(l, 'BooText')
        end
      end
    elseif blk.kind == 'thinking' then
      local text = state.block_text(blk)
      if text:match('%S') then
        any = true
        for _, l in ipairs(split_lines(text)) do
          b.add('┆ ' .. l, 'BooThinking')
        end
      end
    elseif blk.kind == 'tool' then
      any = true
      local status = blk.done and (blk.is_error and 'error' or '') or 'running…'
      b.chunks({
        { '⚙ ', 'BooToolCall' },
        { blk.name or '?', 'BooToolName' },
        { ' ' .. one_line(blk.input, 120), 'BooToolCall' },
        { status ~= '' and ('  ' .. status) or '', blk.is_error and 'BooToolError' or 'BooMuted' },
      })
      if blk.done then
        local rl = split_lines(content_text(blk.result))
        while #rl > 0 and rl[#rl] == '' do
          rl[#rl] = nil
        end
        local group = blk.is_error and 'BooToolError' or 'BooToolResult'
        for i = 1, math.min(#rl, max_result) do
          b.add((i == 1 and '  ↳ ' or '    ') .. trunc(rl[i], 200), group)
        end
        if #rl > max_result then
          b.add(string.format('    … %d more lines', #rl - max_result), 'BooMuted')
        elseif #rl == 0 then
          b.add('  ↳ (empty)', 'BooMuted')
        end
      end
    end
  end
  if (step.kind == 'code' or step.kind == 'script' or step.cached) and type(step.output) == 'string' and step.output ~= '' then
    if step.cached then
      b.add('(answered from the cache: no agent ran)', 'BooCached')
    end
    any = true
    for _, l in ipairs(split_lines(step.output)) do
      b.add(l, 'BooText')
    end
  end
  if step.error and step.error ~= '' then
    any = true
    b.add('Error: ' .. one_line(step.error, 400), 'BooStatusFailed')
  end
  if not any then
    if step.status == 'pending' then
      b.add('(waiting for earlier steps)', 'BooMuted')
    elseif step.status == 'skipped' then
      b.add('(skipped)', 'BooMuted')
    elseif step.status == 'running' then
      b.add('(starting…)', 'BooMuted')
    else
      b.add('(no stream)', 'BooMuted')
    end
  end
end

--- Render the orchestrator pane.
---@param run table  a run from boo.state
---@param view table { expanded = stepId|nil, now = ms, glyphs?, tool_result_lines?, width?, disconnected? }
function M.pane(run, view)
  view = view or {}
  local now = view.now or run.last_event_ms or 0
  local g = view.glyphs or DEFAULT_GLYPHS
  local width = view.width or 72
  local b = builder()

  local st = run.status or 'running'
  local elapsed = run.created_ms and ((run.finished_ms or now) - run.created_ms) or nil
  local toks = state.run_tokens(run)
  local wf = run.kind == 'workflow'
  b.chunks({
    { 'boo', 'BooHeader' },
    { ' · ', 'BooMuted' },
    { run.flow or '…', 'BooTitle' },
    { ' · ' .. (wf and 'workflow' or (run.band or '')) .. ' · ', 'BooMuted' },
    { (g[st] or '') .. ' ' .. st, STATUS_HL[st] or 'BooStatusRunning' },
    { elapsed and (' · ' .. M.duration(elapsed)) or '', 'BooMuted' },
    { toks and (' · ' .. M.tokens(toks) .. ' tok') or '', 'BooMuted' },
  })
  b.chunks({ { wf and 'Args:  ' or 'Focus: ', 'BooLabel' }, { one_line(run.question or '', 400), 'BooQuestion' } })
  if wf then
    -- Output tokens of the agents that ran, against the budget (cached answers cost nothing).
    local spent = state.budget_spent(run)
    local total = run.workflow and run.workflow.budget_total
    b.chunks({
      { 'Budget: ', 'BooLabel' },
      { total and string.format('%s / %s output tokens', M.tokens(spent), M.tokens(total))
        or string.format('%s output tokens (no budget)', M.tokens(spent)),
        (total and spent >= total) and 'BooStatusFailed' or 'BooMuted' },
    })
  end
  b.chunks({
    { 'Root:  ', 'BooLabel' },
    { run.root or '', 'BooMuted' },
    { '   run ' .. (run.id or ''), 'BooMuted' },
  })
  -- The run's images (Run.attachments): <CR> or gx on one opens it.
  if type(run.attachments) == 'table' and #run.attachments > 0 then
    b.chunks({ { 'Images: ', 'BooLabel' }, { string.format('%d (gx or <CR> opens one)', #run.attachments), 'BooMuted' } })
    local attach = require('boo.attach')
    for i, a in ipairs(run.attachments) do
      local row = b.chunks({ { '  ▣ ', 'BooMuted' }, { attach.describe(a), 'BooAttachment' } })
      b.row_attachment[row] = i
    end
  end
  if view.disconnected then
    b.add('Server disconnected: reopen with :Boo runs', 'BooStatusFailed')
  end
  if run.stub and not run.loaded then
    b.add('(loading…)', 'BooMuted')
  end
  if run.error and st ~= 'completed' then
    b.add('Error: ' .. one_line(run.error, 400), 'BooStatusFailed')
  end

  if run.report and run.report ~= '' then
    b.add('')
    b.add(rule('Report', width), 'BooSection')
    -- The report's own Markdown highlighting is laid under these lines by the
    -- pane (boo.markdown); tables are aligned here so their columns line up.
    local report = require('boo.markdown').align_tables(split_lines(run.report))
    b.report = { first = #b.lines + 1, lines = report }
    for _, l in ipairs(report) do
      local group
      if l:match('^#+%s') then
        group = 'BooReportHeading'
      end
      b.add(l, group)
    end
  end

  -- A workflow's narrator lines (log() and phase()).
  if wf and type(run.log) == 'table' and #run.log > 0 then
    b.add('')
    b.add(rule('Log', width), 'BooSection')
    for _, l in ipairs(run.log) do
      if l.kind == 'phase' then
        b.add('▸ ' .. one_line(l.message, 200), 'BooPhase')
      else
        b.add('  ' .. one_line(l.message, 400), 'BooLog')
      end
    end
  end

  -- Roster
  local done, total = 0, #run.steps
  local idw, agw = 4, 4
  for _, s in ipairs(run.steps) do
    if state.TERMINAL_STEP[s.status] then
      done = done + 1
    end
    -- A child's row is indented: its id column is that much narrower.
    local indent = state.parent_of(run, s) and 2 * math.max(1, s.depth or 1) + 2 or 0
    idw = math.max(idw, math.min(#(s.id or ''), 28) + indent)
    agw = math.max(agw, math.min(#(s.agent or s.kind or ''), 30))
  end
  b.add('')
  b.add(rule(string.format('Steps %d/%d', done, total), width), 'BooSection')
  -- A workflow's agents show under their phase (meta.phases order first).
  local heading = {}
  if wf then
    for _, s in ipairs(run.steps) do
      if s.kind == 'script' then
        heading[s.id] = 'Script'
      end
    end
    for _, g in ipairs(state.phase_groups(run)) do
      heading[g.steps[1].id] = g.title and ('Phase: ' .. g.title) or 'No phase'
    end
  end
  for _, s in ipairs(state.display_steps(run)) do
    if heading[s.id] then
      b.add('  ' .. heading[s.id], 'BooPhase')
    end
    local mark = (view.expanded == s.id) and g.expanded or ((s.kind == 'code') and ' ' or g.collapsed)
    -- A child an agent spawned sits under its parent, indented.
    local depth = state.parent_of(run, s) and math.max(1, s.depth or 1) or 0
    if depth > 0 then
      mark = string.rep('  ', depth) .. '└ ' .. mark
    end
    local sg = g[s.status] or '?'
    local who = s.kind == 'code' and 'code' or (s.agent or '')
    local el = step_elapsed(s, now)
    local tk = state.step_tokens(s)
    local row = b.chunks({
      { mark .. ' ', 'BooMuted' },
      { sg, STATUS_HL[s.status] or 'BooMuted' },
      { ' ' .. pad(trunc(s.id, 28), math.max(0, idw - (depth > 0 and 2 * depth + 2 or 0))), view.expanded == s.id and 'BooStepExpanded' or 'BooStepName' },
      { '  ' .. pad(trunc(who, 30), agw), 'BooAgent' },
      { (s.wave and not wf) and string.format('  w%d', s.wave) or '', 'BooMuted' },
      { '  ' .. s.status, STATUS_HL[s.status] or 'BooMuted' },
      { s.cached and '  cached' or '', 'BooCached' },
      { el and ('  ' .. M.duration(el)) or '', 'BooMuted' },
      { tk and ('  ' .. M.tokens(tk) .. ' tok') or '', 'BooMuted' },
    })
    b.row_step[row] = s.id
    b.step_row[s.id] = row
  end

  -- The expanded step
  local s = view.expanded and run.by_id[view.expanded]
  if s then
    b.add('')
    local title = s.id .. ((s.agent and s.agent ~= '') and (' · ' .. s.agent) or '')
    if s.label and s.label ~= '' and s.label ~= s.id then
      title = title .. ' · ' .. s.label
    end
    if state.parent_of(run, s) then
      title = title .. ' · spawned by ' .. s.parentStepId
    end
    local row = b.add(rule(title, width), 'BooSection')
    b.row_step[row] = s.id
    M.stream_lines(b, s, view)
  end
  return b
end

--- One history line for a RunSummary.
function M.run_summary(r, now)
  local created = state.parse_time(r.createdAt)
  return string.format(
    '%-10s %-22s %-6s %-9s %s',
    M.age(created, now),
    trunc(r.flow or '?', 22),
    -- A workflow run has no band (RunSummary.kind says so, or the band is absent).
    (r.kind == 'workflow' or r.kind == 'agent') and r.kind or (r.band or 'workflow'),
    r.status or '',
    one_line(r.question or '', 70)
  )
end

--- The trace view: per step, one line per tool call with a timing bar scaled
--- to the step's duration, latency and outcome; token breakdown with the
--- cache hit rate (cache read / input).
---@param run table a run from boo.state (loaded with boo/getRun)
---@param traces table[] Trace objects from boo/getTraces
function M.traces(run, traces, opts)
  opts = opts or {}
  local now = opts.now or 0
  local barw = opts.bar_width or 40
  local width = opts.width or 72
  local b = builder()
  b.chunks({
    { 'boo traces', 'BooHeader' },
    { ' · ', 'BooMuted' },
    { run.flow or '?', 'BooTitle' },
    { ' · ' .. (run.band or '') .. ' · ' .. (run.status or '') .. ' · run ' .. (run.id or ''), 'BooMuted' },
  })
  -- Extra sections (the model calls' run totals and per-step cache bars, boo.traces).
  if opts.on_head then
    opts.on_head(b)
  end
  local by_step, order = {}, {}
  for _, s in ipairs(run.steps or {}) do
    if s.kind ~= 'code' then
      by_step[s.id] = {}
      order[#order + 1] = s.id
    end
  end
  for _, t in ipairs(traces or {}) do
    local sid = t.stepId or '?'
    if not by_step[sid] then
      by_step[sid] = {}
      order[#order + 1] = sid
    end
    table.insert(by_step[sid], t)
  end
  local total_in, total_cache = 0, 0
  for _, sid in ipairs(order) do
    local s = run.by_id and run.by_id[sid] or { id = sid }
    local list = by_step[sid]
    table.sort(list, function(x, y)
      return (state.parse_time(x.startedAt) or 0) < (state.parse_time(y.startedAt) or 0)
    end)
    local s0 = s.started_ms
    local s1 = s.finished_ms or (s.status == 'running' and now) or nil
    -- Fall back to the span of the traces when the step times are unknown.
    for _, t in ipairs(list) do
      local ts = state.parse_time(t.startedAt)
      local tf = state.parse_time(t.finishedAt) or (ts and t.latencyMs and ts + t.latencyMs)
      if ts and (not s0 or ts < s0) then
        s0 = ts
      end
      if tf and (not s1 or tf > s1) then
        s1 = tf
      end
    end
    local dur = (s0 and s1 and s1 > s0) and (s1 - s0) or nil
    b.add('')
    local title = sid .. ((s.agent and s.agent ~= '') and (' · ' .. s.agent) or '')
      .. (dur and (' · ' .. M.duration(dur)) or '')
      .. string.format(' · %d tool call%s', #list, #list == 1 and '' or 's')
    b.add(rule(title, width), 'BooSection')
    local u = s.usage or s.stream_usage
    if type(u) == 'table' then
      local inp, out, cr = u.inputTokens or 0, u.outputTokens or 0, u.cacheReadTokens or 0
      total_in, total_cache = total_in + inp, total_cache + cr
      local rate = inp > 0 and string.format('%d%%', math.floor(cr / inp * 100 + 0.5)) or 'n/a'
      b.chunks({
        { '  tokens ', 'BooLabel' },
        { string.format('in %s · out %s · cache read %s', M.tokens(inp), M.tokens(out), M.tokens(cr)), 'BooText' },
        { ' · cache hit ' .. rate, 'BooCacheHit' },
      })
    else
      b.add('  tokens (not reported)', 'BooMuted')
    end
    if opts.on_step then
      opts.on_step(b, sid)
    end
    if #list == 0 then
      b.add('  (no tool calls)', 'BooMuted')
    end
    local namew = 10
    for _, t in ipairs(list) do
      namew = math.max(namew, math.min(#(t.tool or ''), 20))
    end
    for _, t in ipairs(list) do
      local ts = state.parse_time(t.startedAt)
      local lat = tonumber(t.latencyMs)
      if not lat then
        local tf = state.parse_time(t.finishedAt)
        lat = (ts and tf) and (tf - ts) or nil
      end
      local off, len = 0, 1
      if dur and ts and s0 then
        off = math.floor((ts - s0) / dur * barw)
        len = math.max(1, math.floor((lat or 0) / dur * barw + 0.5))
      end
      off = math.max(0, math.min(barw - 1, off))
      len = math.max(1, math.min(barw - off, len))
      local bar = string.rep('·', off) .. string.rep('█', len) .. string.rep('·', barw - off - len)
      local outcome = t.outcome or (t.finishedAt and 'ok' or 'running')
      local og = outcome == 'ok' and 'BooStatusDone' or (outcome == 'running' and 'BooStatusRunning')
        or (outcome == 'denied' and 'BooStatusCancelled') or 'BooStatusFailed'
      b.chunks({
        { '  ' .. pad(trunc(t.tool or '?', 20), namew) .. ' ', 'BooToolName' },
        { bar, outcome == 'ok' and 'BooTraceBar' or 'BooTraceBarError' },
        { string.format(' %8s ', lat and (math.floor(lat + 0.5) .. ' ms') or '…'), 'BooMuted' },
        { outcome, og },
        { (t.error and t.error ~= vim.NIL and t.error ~= '') and ('  ' .. one_line(t.error, 80)) or '', 'BooToolError' },
      })
    end
  end
  if total_in > 0 then
    b.add('')
    b.chunks({
      { 'Run cache hit rate: ', 'BooLabel' },
      { string.format('%d%% (%s of %s input tokens read from cache)', math.floor(total_cache / total_in * 100 + 0.5),
        M.tokens(total_cache), M.tokens(total_in)), 'BooCacheHit' },
    })
  end
  return b
end

return M
