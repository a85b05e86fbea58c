-- Pure state and rendering: notifications → run state → pane text.
-- No server: boo.state and boo.render are driven directly.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
local state = require('boo.state')
local render = require('boo.render')

local RUN = '0190aaaa-0000-7000-8000-000000000001'
local CHAT_A = 'c-aaaa'
local CHAT_B = 'c-bbbb'

local function started(store, now)
  return store:run_started({
    runId = RUN,
    flow = 'code-review',
    band = 'small',
    question = 'what could break in the cache?',
    root = '/tmp/project',
    status = 'running',
    steps = {
      { stepId = 'report', agent = nil, kind = 'code', label = 'Render the report', wave = 3, status = 'pending' },
      { stepId = 'diff', kind = 'code', label = 'Collect the diff', wave = 1, status = 'pending' },
      { stepId = 'security', agent = 'adversarial-security-analyst', kind = 'agent', label = 'Security', wave = 2, chatId = CHAT_A, status = 'pending' },
      { stepId = 'tests', agent = 'test-engineer', kind = 'agent', label = 'Tests', wave = 2, chatId = CHAT_B, status = 'pending' },
    },
  }, now or 1000)
end

local function stream(store, chat, step, seq, events, now)
  return store:agent_stream({ runId = RUN, stepId = step, chatId = chat, seq = seq, events = events }, now or 2000)
end

local function text_of(step)
  local out = {}
  for _, b in ipairs(step.blocks) do
    if b.kind == 'text' then
      out[#out + 1] = state.block_text(b)
    end
  end
  return table.concat(out, '|')
end

H.test('parse_time reads RFC 3339 with milliseconds and offsets', function()
  H.eq(state.parse_time('1970-01-01T00:00:00Z'), 0, 'epoch')
  H.eq(state.parse_time('2026-11-20T23:07:01.123Z'), 1795216021123, 'ms')
  H.eq(state.parse_time('2000-02-29T12:00:00Z'), 951825600000, 'leap day')
  H.eq(state.parse_time('2000-02-29T14:00:00+02:00'), 951825600000, 'offset')
  H.eq(state.parse_time('not a time'), nil, 'garbage')
  H.eq(state.parse_time(vim.NIL), nil, 'null')
end)

H.test('runStarted builds the roster in wave order', function()
  local s = state.new()
  local run = started(s)
  local ids = vim.tbl_map(function(st)
    return st.id
  end, run.steps)
  H.eq(ids, { 'diff', 'security', 'tests', 'report' }, 'roster order')
  H.eq(run.by_chat[CHAT_A].id, 'security', 'chat index')
  H.eq(run.status, 'running', 'status')
  H.eq(run.created_ms, 1000, 'local start time')
end)

H.test('stream events become blocks: text merges, tool results pair with calls', function()
  local s = state.new()
  started(s)
  s:step_updated({ runId = RUN, stepId = 'security', status = 'running', startedAt = '2026-11-20T23:07:01.000Z' }, 1500)
  H.eq(stream(s, CHAT_A, 'security', 1, { { type = 'thinking', text = 'Let me ' }, { type = 'thinking', text = 'look.' } }), 'applied', 'seq 1')
  H.eq(stream(s, CHAT_A, 'security', 2, { { type = 'toolCall', toolCallId = 't1', name = 'glob', input = { pattern = '**/*.py' } } }), 'applied', 'seq 2')
  H.eq(stream(s, CHAT_A, 'security', 3, {
    { type = 'toolResult', toolCallId = 't1', isError = false, content = 'cache.py' },
    { type = 'text', text = 'The cache ' },
  }), 'applied', 'seq 3')
  H.eq(stream(s, CHAT_A, 'security', 4, {
    { type = 'text', text = 'is unbounded.' },
    { type = 'messageComplete', usage = { inputTokens = 100, outputTokens = 20, cacheReadTokens = 60, totalTokens = 120 } },
  }), 'applied', 'seq 4')
  local st = s:get(RUN).by_id.security
  H.eq(#st.blocks, 4, 'blocks: thinking, tool, text, turn')
  H.eq(state.block_text(st.blocks[1]), 'Let me look.', 'thinking merged')
  H.eq(st.blocks[2].result, 'cache.py', 'tool result paired')
  H.eq(st.blocks[2].done, true, 'tool done')
  H.eq(text_of(st), 'The cache is unbounded.', 'text merged')
  H.eq(st.last_seq, 4, 'last seq')
  H.eq(state.step_tokens(st), 120, 'stream usage counted')
  H.eq(s:get(RUN).active_step, 'security', 'active step')
end)

H.test('a duplicate seq is dropped', function()
  local s = state.new()
  started(s)
  stream(s, CHAT_A, 'security', 1, { { type = 'text', text = 'a' } })
  stream(s, CHAT_A, 'security', 2, { { type = 'text', text = 'b' } })
  H.eq(stream(s, CHAT_A, 'security', 2, { { type = 'text', text = 'b' } }), 'duplicate', 'replayed seq 2')
  H.eq(stream(s, CHAT_A, 'security', 1, { { type = 'text', text = 'a' } }), 'duplicate', 'replayed seq 1')
  H.eq(text_of(s:get(RUN).by_id.security), 'ab', 'text not doubled')
  H.eq(s:get(RUN).resync, false, 'no refetch for duplicates')
end)

H.test('a gap is detected, buffered, and healed by a transcript refetch', function()
  local s = state.new()
  started(s)
  stream(s, CHAT_A, 'security', 1, { { type = 'text', text = 'one ' } })
  -- seq 2 is lost
  H.eq(stream(s, CHAT_A, 'security', 3, { { type = 'text', text = 'three ' } }), 'gap', 'seq 3 after 1')
  local run = s:get(RUN)
  H.eq(run.resync, true, 'refetch requested')
  H.eq(text_of(run.by_id.security), 'one ', 'nothing applied past the gap')
  -- The other chat keeps streaming normally.
  H.eq(stream(s, CHAT_B, 'tests', 1, { { type = 'text', text = 'B1' } }), 'applied', 'other chat unaffected')
  -- The client starts the refetch; what arrives meanwhile is kept.
  s:begin_resync(RUN)
  H.eq(stream(s, CHAT_A, 'security', 4, { { type = 'text', text = 'four ' } }), 'buffered', 'seq 4 during refetch')
  H.eq(stream(s, CHAT_B, 'tests', 2, { { type = 'text', text = 'B2' } }), 'buffered', 'B seq 2 during refetch')
  -- The server's transcript covers seq 1..3.
  s:load_run({
    run = { runId = RUN, flow = 'code-review', band = 'small', status = 'running', question = 'q', root = '/tmp/project',
      createdAt = '2026-11-20T23:07:00.000Z' },
    steps = {
      { stepId = 'security', agent = 'adversarial-security-analyst', kind = 'agent', wave = 2, chatId = CHAT_A, status = 'running',
        transcript = { { type = 'text', text = 'one ' }, { type = 'text', text = 'two ' }, { type = 'text', text = 'three ' } },
        lastSeq = 3 },
      { stepId = 'tests', agent = 'test-engineer', kind = 'agent', wave = 2, chatId = CHAT_B, status = 'running',
        transcript = { { type = 'text', text = 'B1' } }, lastSeq = 1 },
    },
    report = vim.NIL,
  }, 3000, { transcript = true })
  H.eq(text_of(run.by_id.security), 'one two three four ', 'rebuilt + replayed seq 4')
  H.eq(run.by_id.security.last_seq, 4, 'continues after the buffered seq')
  H.eq(text_of(run.by_id.tests), 'B1B2', 'B replayed')
  H.eq(run.resync, false, 'healed')
  H.eq(run.resyncing, false, 'not resyncing')
  H.eq(stream(s, CHAT_A, 'security', 5, { { type = 'text', text = 'five' } }), 'applied', 'live again')
  H.eq(stream(s, CHAT_A, 'security', 3, { { type = 'text', text = 'three ' } }), 'duplicate', 'old seq after refetch')
  H.eq(text_of(run.by_id.security), 'one two three four five', 'final text')
end)

H.test('a transcript newer than the buffered notifications wins', function()
  local s = state.new()
  started(s)
  stream(s, CHAT_A, 'security', 1, { { type = 'text', text = 'x' } })
  stream(s, CHAT_A, 'security', 3, { { type = 'text', text = 'z' } })
  s:begin_resync(RUN)
  s:load_run({
    run = { runId = RUN, status = 'running' },
    steps = { { stepId = 'security', chatId = CHAT_A, status = 'running',
      transcript = { { type = 'text', text = 'x' }, { type = 'text', text = 'y' }, { type = 'text', text = 'z' }, { type = 'text', text = '!' } },
      lastSeq = 4 } },
  }, 3000, { transcript = true })
  local st = s:get(RUN).by_id.security
  H.eq(text_of(st), 'xyz!', 'no double z')
  H.eq(st.last_seq, 4, 'lastSeq')
  H.eq(next(st.pending), nil, 'stale buffer dropped')
end)

H.test('a step dispatched again under a new chatId restarts its stream at seq 1', function()
  local s = state.new()
  started(s)
  stream(s, CHAT_A, 'security', 1, { { type = 'text', text = 'old ' } })
  stream(s, CHAT_A, 'security', 2, { { type = 'text', text = 'attempt' } })
  -- A resumed run: the step runs again with a fresh chat.
  s:step_updated({ runId = RUN, stepId = 'security', status = 'running', chatId = 'c-new' }, 3000)
  local st = s:get(RUN).by_id.security
  H.eq(st.last_seq, 0, 'seq restarts')
  H.eq(#st.blocks, 0, 'old stream dropped')
  H.eq(stream(s, 'c-new', 'security', 1, { { type = 'text', text = 'fresh' } }), 'applied', 'new seq 1 applies')
  H.eq(text_of(st), 'fresh', 'new stream')
  H.eq(s:get(RUN).by_chat[CHAT_A], nil, 'old chat forgotten')
  -- Same through a refetch: the transcript of the new chat replaces a longer old one.
  local s2 = state.new()
  started(s2)
  for i = 1, 5 do
    stream(s2, CHAT_A, 'security', i, { { type = 'text', text = 'x' } })
  end
  s2:load_run({ run = { runId = RUN, status = 'running' }, steps = { { stepId = 'security', chatId = 'c-new', status = 'running',
    transcript = { { type = 'text', text = 'y' } }, lastSeq = 1 } } }, 0, { transcript = true })
  H.eq(text_of(s2:get(RUN).by_id.security), 'y', 'rebuilt from the new chat')
  H.eq(stream(s2, 'c-new', 'security', 2, { { type = 'text', text = 'z' } }), 'applied', 'continues after lastSeq')
end)

H.test('notifications for an unknown run create a stub that asks for a refetch', function()
  local s = state.new()
  H.eq(s:agent_stream({ runId = 'other', stepId = 'x', chatId = 'cx', seq = 7, events = { { type = 'text', text = 'late' } } }, 10), 'gap', 'joined late')
  H.eq(s:get('other').resync, true, 'refetch requested')
  H.eq(s:get('other').stub, true, 'stub')
end)

H.test('terminal statuses never change again; the report arrives with runStatus', function()
  local s = state.new()
  started(s)
  s:step_updated({ runId = RUN, stepId = 'diff', status = 'completed', output = 'diff --git', finishedAt = '2026-11-20T23:07:02.000Z' }, 2000)
  s:step_updated({ runId = RUN, stepId = 'diff', status = 'running' }, 2100)
  local run = s:get(RUN)
  H.eq(run.by_id.diff.status, 'completed', 'step stays completed')
  s:step_updated({ runId = RUN, stepId = 'report', status = 'completed', runStatus = 'completed', report = '# Answer\n\nAll good.' }, 4000)
  H.eq(run.status, 'completed', 'run completed')
  H.eq(run.report, '# Answer\n\nAll good.', 'report')
  H.eq(run.finished_ms, 4000, 'finish time')
  s:step_updated({ runId = RUN, stepId = 'report', status = 'failed', runStatus = 'failed' }, 5000)
  H.eq(run.status, 'completed', 'run stays completed')
  H.eq(run.by_id.report.status, 'completed', 'step stays completed')
end)

H.test('auto-expand follows the most recently streaming step', function()
  local s = state.new()
  started(s)
  s:step_updated({ runId = RUN, stepId = 'security', status = 'running' }, 1)
  H.eq(state.auto_step(s:get(RUN)), 'security', 'running step')
  stream(s, CHAT_B, 'tests', 1, { { type = 'text', text = 'b' } })
  H.eq(state.auto_step(s:get(RUN)), 'tests', 'latest stream')
  stream(s, CHAT_A, 'security', 1, { { type = 'text', text = 'a' } })
  H.eq(state.auto_step(s:get(RUN)), 'security', 'back to A')
end)

H.test('render: header, roster, expanded stream (text, dimmed thinking, tool), report on top', function()
  local s = state.new()
  started(s, 0)
  s:step_updated({ runId = RUN, stepId = 'diff', status = 'completed' }, 100)
  s:step_updated({ runId = RUN, stepId = 'security', status = 'running' }, 200)
  stream(s, CHAT_A, 'security', 1, {
    { type = 'thinking', text = 'Check bounds.' },
    { type = 'toolCall', toolCallId = 't1', name = 'read_file', input = { path = 'cache.py' } },
    { type = 'toolResult', toolCallId = 't1', isError = false, content = 'line1\nline2\nline3\nline4\nline5\nline6' },
    { type = 'text', text = 'The cache grows\nwithout a bound.' },
  }, 300)
  local run = s:get(RUN)
  local b = render.pane(run, { expanded = 'security', now = 12300, width = 60 })
  local text = table.concat(b.lines, '\n')
  H.contains(b.lines[1], 'boo · code-review · small · ● running · 12.3s', 'header')
  H.contains(b.lines[2], 'Focus: what could break in the cache?', 'focus line')
  H.contains(text, '── Steps 1/4', 'roster title')
  local sec_row = b.step_row.security
  H.contains(b.lines[sec_row], '▾ ● security', 'expanded running step')
  H.contains(b.lines[b.step_row.diff], '✓ diff', 'completed code step')
  H.contains(b.lines[b.step_row.tests], '▸ ○ tests', 'pending agent step')
  H.contains(text, '┆ Check bounds.', 'thinking line')
  H.contains(text, '⚙ read_file {"path":"cache.py"}', 'tool call')
  H.contains(text, '  ↳ line1', 'tool result')
  H.contains(text, '… 2 more lines', 'long result folded')
  H.contains(text, 'The cache grows\nwithout a bound.', 'streamed text')
  -- Highlights: thinking is dimmed, the status glyph colored.
  local think_row
  for i, l in ipairs(b.lines) do
    if l:find('Check bounds', 1, true) then
      think_row = i
    end
  end
  H.eq(b.hls[think_row][1][3], 'BooThinking', 'thinking highlight')
  local has_running = false
  for _, h in ipairs(b.hls[sec_row]) do
    has_running = has_running or h[3] == 'BooStatusRunning'
  end
  H.ok(has_running, 'running status highlight on the roster row')
  H.eq(b.row_step[sec_row], 'security', 'row → step')
  -- Completed: the report goes on top, before the roster.
  s:step_updated({ runId = RUN, stepId = 'security', status = 'completed' }, 400)
  s:step_updated({ runId = RUN, stepId = 'report', status = 'completed', runStatus = 'completed', report = '# Answer\n\nThe cache is unbounded.' }, 500)
  b = render.pane(run, { expanded = nil, now = 900, width = 60 })
  text = table.concat(b.lines, '\n')
  local report_at = text:find('── Report', 1, true)
  local roster_at = text:find('── Steps', 1, true)
  H.ok(report_at and roster_at and report_at < roster_at, 'report above the roster')
  H.contains(text, '# Answer\n\nThe cache is unbounded.', 'report text')
  H.contains(b.lines[1], '✓ completed', 'header status')
  H.not_contains(text, 'Check bounds', 'collapsed step hides its stream')
end)

H.test('render: traces with a timing bar and the cache hit rate', function()
  local s = state.new()
  local run = s:load_run({
    run = { runId = RUN, flow = 'code-review', band = 'small', status = 'completed' },
    steps = {
      { stepId = 'security', agent = 'adversarial-security-analyst', kind = 'agent', wave = 2, status = 'completed',
        startedAt = '2026-11-20T23:07:00.000Z', finishedAt = '2026-11-20T23:07:10.000Z',
        usage = { inputTokens = 1000, outputTokens = 200, cacheReadTokens = 750, totalTokens = 1200 } },
    },
  }, 0)
  local b = render.traces(run, {
    { traceId = 'a', stepId = 'security', tool = 'glob', startedAt = '2026-11-20T23:07:00.000Z',
      finishedAt = '2026-11-20T23:07:01.000Z', latencyMs = 1000, outcome = 'ok' },
    { traceId = 'b', stepId = 'security', tool = 'read_file', startedAt = '2026-11-20T23:07:05.000Z',
      finishedAt = '2026-11-20T23:07:10.000Z', latencyMs = 5000, outcome = 'error', error = 'no such file' },
  }, { bar_width = 10 })
  local text = table.concat(b.lines, '\n')
  H.contains(text, 'security · adversarial-security-analyst · 10.0s · 2 tool calls', 'step title')
  H.contains(text, 'in 1.0k · out 200 · cache read 750 · cache hit 75%', 'token breakdown')
  H.contains(text, 'glob       █·········  1000 ms ok', 'first bar at the start, 1/10 wide')
  H.contains(text, 'read_file  ·····█████  5000 ms error  no such file', 'second bar, half way, half wide')
  H.contains(text, 'Run cache hit rate: 75%', 'run total')
end)

H.test('pane redraws are batched: 10 agents × 100 deltas → few renders, all text shown', function()
  require('boo').setup({ cmd = { 'boo-not-used', 'serve' }, redraw_ms = 50 })
  local client = require('boo.client')
  local pane = require('boo.pane')
  local steps = {}
  for i = 1, 10 do
    steps[i] = { stepId = 'agent' .. i, agent = 'persona-' .. i, kind = 'agent', wave = 1, chatId = 'chat' .. i, status = 'running' }
  end
  local run_id = 'batch-run'
  client.handlers['boo/runStarted'](nil, { runId = run_id, flow = 'architectural-analysis', band = 'large',
    question = 'load test', root = '/tmp', status = 'running', steps = steps }, { client_id = -1 })
  pane.open(run_id)
  local before = pane.render_count
  local t0 = vim.uv.hrtime()
  for seq = 1, 100 do
    for i = 1, 10 do
      client.handlers['boo/agentStream'](nil, { runId = run_id, stepId = 'agent' .. i, chatId = 'chat' .. i, seq = seq,
        events = { { type = 'text', text = string.format('a%d-s%d ', i, seq) } } }, { client_id = -1 })
    end
  end
  local per_note_us = (vim.uv.hrtime() - t0) / 1000 / 1000
  H.eq(pane.render_count - before, 0, 'no synchronous render per notification')
  H.wait(2000, function()
    return pane.render_count > before
  end, 'a batched render')
  local text = H.pane_text(run_id)
  H.contains(text, 'a10-s100', 'last delta of the active step visible')
  H.ok(pane.render_count - before <= 2, 'at most 2 renders, got ' .. (pane.render_count - before))
  H.ok(per_note_us < 200, string.format('state update cost %.1f µs per notification', per_note_us))
  H.artifact('batched-10-agents', text)
  H.report(string.format('  (1000 notifications: %.1f µs each, %d render(s))', per_note_us, pane.render_count - before))
end)

H.test('a refetch whose server went away (or never answers) stops buffering the stream', function()
  local client = require('boo.client')
  local run = client.store:run_started({ runId = 'stuck', flow = 'code-review', band = 'small', question = 'q', root = '/tmp',
    status = 'running', steps = { { stepId = 'a', kind = 'agent', agent = 'p', wave = 1, chatId = 'ca', status = 'running' } } }, 0)
  client.store:begin_resync('stuck', client.now(), 4242)
  H.eq(client.store:agent_stream({ runId = 'stuck', stepId = 'a', chatId = 'ca', seq = 1, events = {} }, 0), 'buffered', 'buffered')
  require('boo.pane').client_exited(4242)
  H.eq(run.resyncing, false, 'no longer waiting for the dead server')
  H.eq(run.resync, true, 'asks for a new refetch')
  -- An unanswered refetch expires after a while.
  client.store:begin_resync('stuck', client.now() - 60000, 7)
  client.expire_refetches(nil, 15000)
  H.eq(run.resyncing, false, 'expired')
end)

H.test('pane keys: <CR> picks a step, ]s/[s move, a follows again', function()
  local pane = require('boo.pane')
  local run_id = 'batch-run'
  local p = pane.panes[run_id]
  H.ok(p, 'pane from the previous test')
  local win = vim.fn.bufwinid(p.buf)
  vim.api.nvim_set_current_win(win)
  pane.render(run_id)
  vim.api.nvim_win_set_cursor(win, { p.step_row.agent3, 0 })
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('<CR>', true, false, true), 'x', false)
  H.eq(p.shown_expanded, 'agent3', '<CR> expands the step under the cursor')
  H.contains(H.pane_text(run_id), 'a3-s100', 'its stream shown')
  vim.api.nvim_feedkeys(']s', 'x', false)
  H.eq(p.shown_expanded, 'agent4', ']s next')
  vim.api.nvim_feedkeys('[s[s', 'x', false)
  H.eq(p.shown_expanded, 'agent2', '[s previous twice')
  -- A user pick sticks while other agents stream.
  require('boo.client').handlers['boo/agentStream'](nil, { runId = run_id, stepId = 'agent7', chatId = 'chat7', seq = 101,
    events = { { type = 'text', text = 'more' } } }, { client_id = -1 })
  pane.render(run_id)
  H.eq(p.shown_expanded, 'agent2', 'pick kept')
  vim.api.nvim_feedkeys('a', 'x', false)
  H.eq(p.shown_expanded, 'agent7', 'a: follow the active step again')
  vim.api.nvim_win_set_cursor(win, { p.step_row.agent7, 0 })
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('<CR>', true, false, true), 'x', false)
  H.eq(p.shown_expanded, nil, '<CR> on the expanded step collapses it')
  H.eq(vim.bo[p.buf].filetype, 'boo-orchestrator', 'filetype')
  H.eq(vim.bo[p.buf].modifiable, false, 'read-only buffer')
end)

H.finish()
