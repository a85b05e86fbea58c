--- Model calls (boo/getModelCalls, boo/modelCall): the cache shape of every model turn
--- and the run timeline's layout. Pure functions (no buffers) except `fetch`, which asks
--- the server; the trace view (boo.traces) and the timeline (boo.timeline) draw them.
local state = require('boo.state')

local M = {}

--- Highlight groups of the cache bars and the timeline (linked by default; a colour
--- scheme may set them).
M.highlights = {
  BooCallCached = 'DiagnosticOk',
  BooCallPartial = 'DiagnosticWarn',
  BooCallUncached = 'DiagnosticError',
  BooCallUnknown = 'Comment',
  BooCallMiss = 'DiagnosticWarn',
  BooTlModel = 'DiagnosticInfo',
  BooTlMiss = 'DiagnosticWarn',
  BooTlTool = 'DiagnosticOk',
  BooTlToolError = 'DiagnosticError',
  BooTlStep = 'Comment',
  BooTlRunning = 'DiagnosticHint',
}

function M.define_highlights()
  for group, link in pairs(M.highlights) do
    vim.api.nvim_set_hl(0, group, { link = link, default = true })
  end
end
M.define_highlights()
vim.api.nvim_create_autocmd('ColorScheme', {
  group = vim.api.nvim_create_augroup('boo.calls.hl', { clear = true }),
  callback = M.define_highlights,
})

local function num(v)
  if v == nil or v == vim.NIL then
    return nil
  end
  return tonumber(v)
end
M.num = num

local function str(v)
  if v == nil or v == vim.NIL then
    return nil
  end
  return v
end

--- Replace the call with the same callId (a finish replaces its start), else append.
--- A late start never replaces a finish. Returns the list (changed in place).
function M.merge(calls, call)
  local c = vim.deepcopy(call)
  c.phase = nil
  for i, x in ipairs(calls) do
    if x.callId == c.callId then
      if str(x.finishedAt) and not str(c.finishedAt) then
        return calls
      end
      if type(c.segments) ~= 'table' or #c.segments == 0 then
        c.segments = x.segments
      end
      calls[i] = c
      return calls
    end
  end
  calls[#calls + 1] = c
  return calls
end

--- The same index rule as `boo calls`: round((n - 1) * p) of the sorted list.
function M.percentile(sorted, p)
  if #sorted == 0 then
    return nil
  end
  return sorted[math.floor((#sorted - 1) * p + 0.5) + 1]
end

--- The run's totals, as the last line of `boo calls`.
function M.stats(calls)
  local s = { calls = #calls, running = 0, prompt = 0, reused = 0, expected = 0, misses = 0 }
  local ttft = {}
  for _, c in ipairs(calls) do
    if not str(c.finishedAt) then
      s.running = s.running + 1
    end
    s.prompt = s.prompt + (num(c.promptTokens) or 0)
    s.reused = s.reused + (num(c.cachedTokens) or 0)
    s.expected = s.expected + (num(c.expectedCachedTokens) or 0)
    if str(c.missReason) then
      s.misses = s.misses + 1
    end
    if num(c.ttftMs) then
      ttft[#ttft + 1] = num(c.ttftMs)
    end
  end
  table.sort(ttft)
  s.computed = math.max(0, s.prompt - s.reused)
  s.hit_rate = s.prompt > 0 and (s.reused / s.prompt) or nil
  s.ttft_p50 = M.percentile(ttft, 0.5)
  s.ttft_p90 = M.percentile(ttft, 0.9)
  return s
end

--- Calls of one step in turn order.
function M.of_step(calls, sid)
  local out = {}
  for _, c in ipairs(calls) do
    if c.stepId == sid then
      out[#out + 1] = c
    end
  end
  table.sort(out, function(a, b)
    if a.turn ~= b.turn then
      return (num(a.turn) or 0) < (num(b.turn) or 0)
    end
    return (state.parse_time(a.startedAt) or 0) < (state.parse_time(b.startedAt) or 0)
  end)
  return out
end

local KIND_LETTER = { system = 'S', tools = 'T', history = 'H', toolResult = 'R', new = 'N', image = 'I' }
M.KIND_LETTER = KIND_LETTER

--- The segments of a call with their real token share (estimates scaled to promptTokens)
--- and what the server reused of each: 'cached' | 'partial' | 'uncached' | 'unknown'.
function M.parts(call)
  local segs = type(call.segments) == 'table' and call.segments or {}
  local est = 0
  for _, s in ipairs(segs) do
    est = est + math.max(0, num(s.estTokens) or 0)
  end
  local total = num(call.promptTokens) or est
  local scale = est > 0 and total / est or 0
  local known = num(call.cachedTokens) ~= nil
  local cached = known and math.min(num(call.cachedTokens), total) or 0
  local at, out = 0, {}
  for _, s in ipairs(segs) do
    local t = math.max(0, num(s.estTokens) or 0) * scale
    local reused = math.max(0, math.min(t, cached - at))
    at = at + t
    local share = t > 0 and reused / t or 0
    local reuse = not known and 'unknown' or (share >= 0.999 and 'cached' or (share > 0 and 'partial' or 'uncached'))
    out[#out + 1] = { kind = s.kind, label = s.label, bytes = num(s.bytes) or 0, tokens = t, reuse = reuse, share = share, expected = s.cached }
  end
  return out, total, known and cached or nil
end

local REUSE_HL = { cached = 'BooCallCached', partial = 'BooCallPartial', uncached = 'BooCallUncached', unknown = 'BooCallUnknown' }

--- A text bar of `width` cells: each cell is cached ('█') or computed ('░') by where the
--- server's reported cached prefix ends ('?' when it reported none); each segment starts
--- with its kind's letter (S system, T tools, H history, R tool result, N new, I image).
--- Returns the text and highlight chunks { {text, group}, ... }.
function M.bar(call, width)
  local parts, total, cached = M.parts(call)
  local chunks = {}
  if #parts == 0 or total <= 0 then
    local fill = str(call.finishedAt) and '·' or '…'
    return { { string.rep(fill, width), 'BooCallUnknown' } }
  end
  -- Cell boundaries of each segment (at least one cell per segment that has tokens).
  local cells, at = {}, 0
  for i, p in ipairs(parts) do
    local s = math.floor(at / total * width + 0.5)
    at = at + p.tokens
    local e = math.floor(at / total * width + 0.5)
    cells[i] = { s, e }
  end
  for i = 1, #cells do
    local c = cells[i]
    if c[2] <= c[1] and parts[i].tokens > 0 and c[1] < width then
      c[2] = c[1] + 1
      if cells[i + 1] and cells[i + 1][1] < c[2] then
        cells[i + 1][1] = c[2]
        cells[i + 1][2] = math.max(cells[i + 1][2], c[2])
      end
    end
  end
  local prev_text, prev_hl = nil, nil
  local function put(text, hl)
    if prev_hl == hl then
      prev_text = prev_text .. text
    else
      if prev_text then
        chunks[#chunks + 1] = { prev_text, prev_hl }
      end
      prev_text, prev_hl = text, hl
    end
  end
  for i, p in ipairs(parts) do
    local s, e = cells[i][1], math.min(cells[i][2], width)
    for cell = s, e - 1 do
      local mid = (cell + 0.5) / width * total
      local reuse
      if cached == nil then
        reuse = 'unknown'
      else
        reuse = mid < cached and 'cached' or 'uncached'
      end
      local ch
      if cell == s then
        ch = KIND_LETTER[p.kind] or '?'
      else
        ch = reuse == 'cached' and '█' or (reuse == 'unknown' and '?' or '░')
      end
      put(ch, REUSE_HL[reuse])
    end
  end
  if prev_text then
    chunks[#chunks + 1] = { prev_text, prev_hl }
  end
  return chunks
end

function M.fmt_ms(ms)
  ms = num(ms)
  if not ms then
    return '–'
  end
  if ms < 1000 then
    return string.format('%d ms', math.floor(ms + 0.5))
  end
  return string.format('%.1f s', ms / 1000)
end

function M.fmt_count(n)
  n = num(n) or 0
  if n < 1000 then
    return tostring(math.floor(n + 0.5))
  elseif n < 10000 then
    return string.format('%.1fk', n / 1000)
  end
  return string.format('%dk', math.floor(n / 1000 + 0.5))
end

function M.fmt_bytes(n)
  n = num(n) or 0
  if n < 1024 then
    return string.format('%d B', n)
  elseif n < 1024 * 1024 then
    return string.format('%.1f KiB', n / 1024)
  end
  return string.format('%.1f MiB', n / 1024 / 1024)
end

--- What to do about a miss reason (the server's words come first, this follows).
function M.advice(reason)
  reason = reason or ''
  local function starts(p)
    return reason:sub(1, #p) == p
  end
  if starts('first request') then
    return 'nothing earlier started the same way; the next call can reuse this one'
  elseif starts('system prompt changed') then
    return 'something in the system prompt varies between requests: keep it out of the system prompt'
  elseif starts('tool list changed') then
    return 'the tool schemas differ: keep the same tools for every agent of a run'
  elseif starts('history rewritten') then
    return 'an earlier message was changed rather than appended to (expected after compaction)'
  elseif starts('the server evicted') then
    return "the server's cache is too small for the parallel agents, or prefix caching is off"
  elseif starts('the server reports no cache fields') then
    return 'the server cannot tell what it reused; the expected prefix is shown'
  end
  return ''
end

--- The segments of a call, one line each, with tokens and bytes (the detail view).
function M.detail_lines(call)
  local parts = M.parts(call)
  local lines = {
    string.format('step %s · turn %s · %s request · prompt %s · cached %s (expected ≈ %s) · ttft %s · %s tok/s%s',
      call.stepId or '?', tostring(call.turn), M.fmt_bytes(call.requestBytes), tostring(num(call.promptTokens) or '–'),
      tostring(num(call.cachedTokens) or '?'), tostring(num(call.expectedCachedTokens) or 0), M.fmt_ms(call.ttftMs),
      num(call.tokensPerSecond) and string.format('%.1f', num(call.tokensPerSecond)) or '–',
      str(call.cacheDialect) and (' · dialect ' .. call.cacheDialect) or ''),
  }
  for _, p in ipairs(parts) do
    lines[#lines + 1] = string.format('  %-10s %-28s ≈%6s tok %10s  %s%s', p.kind or '?', (p.label or ''):sub(1, 28),
      M.fmt_count(p.tokens), M.fmt_bytes(p.bytes), p.reuse,
      p.reuse == 'partial' and string.format(' (%d%% reused)', math.floor(p.share * 100 + 0.5)) or '')
  end
  if str(call.missReason) then
    lines[#lines + 1] = 'miss: ' .. call.missReason
    lines[#lines + 1] = '      ' .. M.advice(call.missReason)
  end
  if str(call.error) then
    lines[#lines + 1] = 'error: ' .. call.error
  end
  return lines
end

--- Fetch every model call of a run (follows nextCursor), then cb(err, calls, note).
--- A server without the "modelCalls" feature answers "method not found": cb(nil, nil, note).
function M.fetch(run_id, cb, max_pages)
  local client = require('boo.client')
  local all, pages = {}, 0
  max_pages = max_pages or 50
  local function page(cursor)
    pages = pages + 1
    local params = { runId = run_id, limit = 500 }
    if cursor then
      params.cursor = cursor
    end
    client.run_request(run_id, 'boo/getModelCalls', params, function(err, res)
      if err then
        if err.code == -32601 then
          return cb(nil, nil, 'this boo server does not record model calls (no model proxy): update boo to see the cache shape of each turn')
        end
        return cb(err)
      end
      if type(res) ~= 'table' then
        return cb({ message = 'empty answer to boo/getModelCalls' })
      end
      for _, c in ipairs(res.calls or {}) do
        all[#all + 1] = c
      end
      local nxt = res.nextCursor
      if nxt and nxt ~= vim.NIL and pages < max_pages then
        return page(nxt)
      end
      cb(nil, all)
    end)
  end
  page(nil)
end

-- ---- the run timeline -----------------------------------------------------------

--- Tick spacing: the first of 1, 2, 5 × 10ⁿ ms that gives at most `max` ticks.
function M.tick_step(span, max)
  max = max or 8
  for _, s in ipairs({ 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 1800000, 3600000 }) do
    if span / s <= max then
      return s
    end
  end
  return math.ceil(span / max)
end

function M.fmt_offset(ms)
  if ms < 60000 then
    local s = math.floor(ms / 100 + 0.5) / 10
    if s == math.floor(s) then
      return string.format('%ds', s)
    end
    return string.format('%.1fs', s)
  end
  return string.format('%dm%02ds', math.floor(ms / 60000), math.floor((ms % 60000) / 1000 + 0.5))
end

--- Lanes of a run: one per step with a time (in `steps` order), each with blocks
--- { kind = 'model'|'tool'|'step', id, step, turn, label, s, e (ms; e nil while running), status, miss }.
--- `steps` are getRun steps (stepId, label, agent, kind, status, startedAt, finishedAt).
function M.layout(steps, calls, traces, now)
  local times = {}
  local function add(t)
    if t then
      times[#times + 1] = t
    end
  end
  local running = false
  for _, s in ipairs(steps) do
    add(state.parse_time(str(s.startedAt)))
    add(state.parse_time(str(s.finishedAt)))
    running = running or s.status == 'running'
  end
  for _, c in ipairs(calls) do
    add(state.parse_time(str(c.startedAt)))
    add(state.parse_time(str(c.finishedAt)))
    running = running or not str(c.finishedAt)
  end
  for _, t in ipairs(traces) do
    add(state.parse_time(str(t.startedAt)))
    add(state.parse_time(str(t.finishedAt)))
  end
  if #times == 0 then
    return { t0 = 0, t1 = 0, lanes = {} }
  end
  local t0, t1 = math.min(unpack(times)), math.max(unpack(times))
  if running and now and now > t1 then
    t1 = now
  end
  local lanes = {}
  local known = {}
  local list = {}
  for _, s in ipairs(steps) do
    known[s.stepId] = true
    list[#list + 1] = s
  end
  for _, src in ipairs({ calls, traces }) do
    for _, x in ipairs(src) do
      if x.stepId and not known[x.stepId] then
        known[x.stepId] = true
        list[#list + 1] = { stepId = x.stepId, label = x.stepId, kind = 'agent', status = 'completed' }
      end
    end
  end
  for _, s in ipairs(list) do
    local blocks = {}
    for _, c in ipairs(M.of_step(calls, s.stepId)) do
      local a = state.parse_time(str(c.startedAt))
      if a then
        local e = state.parse_time(str(c.finishedAt))
        local status = not e and 'running' or ((str(c.error) or (num(c.status) or 200) >= 400) and 'error' or 'ok')
        blocks[#blocks + 1] = { kind = 'model', id = c.callId, step = s.stepId, turn = num(c.turn), label = 'turn ' .. tostring(c.turn), s = a, e = e, status = status, miss = str(c.missReason) ~= nil, call = c }
      end
    end
    local tools = {}
    for _, t in ipairs(traces) do
      if t.stepId == s.stepId then
        tools[#tools + 1] = t
      end
    end
    table.sort(tools, function(x, y)
      return (state.parse_time(x.startedAt) or 0) < (state.parse_time(y.startedAt) or 0)
    end)
    for _, t in ipairs(tools) do
      local a = state.parse_time(str(t.startedAt))
      if a then
        local e = state.parse_time(str(t.finishedAt)) or (num(t.latencyMs) and a + num(t.latencyMs)) or nil
        blocks[#blocks + 1] = { kind = 'tool', id = t.traceId, step = s.stepId, turn = num(t.turn), label = t.tool or '?', s = a, e = e, status = str(t.outcome) or (e and 'ok' or 'running') }
      end
    end
    if #blocks == 0 then
      local a = state.parse_time(str(s.startedAt))
      if a then
        local e = state.parse_time(str(s.finishedAt))
        if not e and s.status ~= 'running' then
          e = a
        end
        blocks[1] = { kind = 'step', id = s.stepId, step = s.stepId, label = str(s.agent) or s.kind or 'step', s = a, e = e, status = s.status }
      end
    end
    if #blocks > 0 then
      lanes[#lanes + 1] = { step = s.stepId, label = str(s.label) or s.stepId, agent = str(s.agent), kind = s.kind, status = s.status, blocks = blocks }
    end
  end
  return { t0 = t0, t1 = t1, lanes = lanes }
end

--- Cells [c0, c1) of a block on a track of `width` cells (at least one cell).
function M.cells(layout, blk, width)
  local span = math.max(1, layout.t1 - layout.t0)
  local c0 = math.floor((blk.s - layout.t0) / span * width)
  local c1 = math.floor(((blk.e or layout.t1) - layout.t0) / span * width + 0.5)
  c0 = math.max(0, math.min(width - 1, c0))
  c1 = math.max(c0 + 1, math.min(width, c1))
  return c0, c1
end

-- ---- restore: the run as it was when a turn ended ------------------------------------

--- Events of a transcript up to and including the messageComplete of `turn`.
function M.cut_transcript(events, turn)
  local seen = 0
  for i, e in ipairs(events or {}) do
    if type(e) == 'table' and e.type == 'messageComplete' then
      seen = num(e.turn) or (seen + 1)
      if seen >= turn then
        return vim.list_slice(events, 1, i)
      end
    end
  end
  return vim.list_slice(events or {}, 1, #(events or {}))
end

local function count_turns(events)
  local n = 0
  for _, e in ipairs(events or {}) do
    if type(e) == 'table' and e.type == 'messageComplete' then
      n = n + 1
    end
  end
  return n
end

--- A boo/getRun {transcript: true} answer as it was when `sid`'s turn `turn` ended:
--- every step's transcript cut at its last turn ended by then (a step without model
--- calls is whole once finished, empty before it started), statuses as they were, no
--- report. Returns result, at_ms; nil when that turn has no finished model call.
function M.run_at_turn(result, calls, sid, turn)
  local at
  for _, c in ipairs(calls) do
    if c.stepId == sid and num(c.turn) == turn and str(c.finishedAt) then
      at = state.parse_time(c.finishedAt)
    end
  end
  if not at then
    return nil
  end
  local out = vim.deepcopy(result)
  for _, s in ipairs(out.steps or {}) do
    local started = state.parse_time(str(s.startedAt))
    local finished = state.parse_time(str(s.finishedAt))
    local events = type(s.transcript) == 'table' and s.transcript or {}
    local keep
    if s.stepId == sid then
      keep = M.cut_transcript(events, turn)
    elseif finished and finished <= at then
      keep = events
    else
      local last = 0
      for _, c in ipairs(calls) do
        local f = c.stepId == s.stepId and state.parse_time(str(c.finishedAt))
        if f and f <= at then
          last = math.max(last, num(c.turn) or 0)
        end
      end
      keep = last > 0 and M.cut_transcript(events, last) or {}
    end
    local done = finished ~= nil and finished <= at and not (s.stepId == sid and turn < count_turns(events))
    s.transcript = keep
    s.lastSeq = nil
    if not done then
      s.status = (started and started <= at) and 'running' or 'pending'
      s.finishedAt = vim.NIL
      s.output = vim.NIL
      s.error = vim.NIL
      s.usage = vim.NIL
    end
  end
  local rf = state.parse_time(str(out.run and out.run.finishedAt))
  if not (rf and rf <= at) then
    out.report = vim.NIL
    out.run.status = 'running'
    out.run.finishedAt = vim.NIL
    out.run.usage = vim.NIL
  end
  return out, at
end

return M
