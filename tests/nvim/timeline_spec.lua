-- Cache shape in the trace view and the run timeline (boo.calls, boo.traces,
-- boo.timeline), rendered from the shared fixture of a finished run
-- (tests/fixtures/model-calls/code-review.json): the server's answers to
-- boo/getRun, boo/getTraces and boo/getModelCalls are played back at the client's
-- request boundary (client.run_request), so no server runs.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
local calls = require('boo.calls')

local FX = vim.json.decode(table.concat(vim.fn.readfile(H.repo .. '/tests/fixtures/model-calls/code-review.json'), '\n'))
local RUN = FX.runId

-- Play the fixture back; getModelCalls in pages of 4 so the view must follow nextCursor.
local client = require('boo.client')
local asked = {}
client.run_request = function(run_id, method, params, cb)
  asked[#asked + 1] = method
  local res, err
  if run_id ~= RUN then
    err = { code = -32004, message = 'unknown run' }
  elseif method == 'boo/getRun' then
    res = vim.deepcopy(FX.getRun)
    if not params.transcript then
      for _, s in ipairs(res.steps) do
        s.transcript = nil
      end
    end
  elseif method == 'boo/getTraces' then
    res = { traces = vim.deepcopy(FX.traces), nextCursor = vim.NIL }
  elseif method == 'boo/getModelCalls' then
    local from = tonumber(params.cursor or '0')
    local page = vim.list_slice(FX.calls, from + 1, from + 4)
    res = { calls = vim.deepcopy(page), nextCursor = (from + 4 < #FX.calls) and tostring(from + 4) or vim.NIL }
  end
  vim.schedule(function()
    cb(err, res)
  end)
end

require('boo').setup({ cmd = { 'false' }, layout = 'vsplit' })
vim.o.columns = 160
vim.o.lines = 50

local function call_of(step, turn)
  for _, c in ipairs(FX.calls) do
    if c.stepId == step and c.turn == turn then
      return c
    end
  end
end

local function buf_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
end

H.test('stats: computed vs reused, hit rate, TTFT p50/p90 as `boo calls` counts them', function()
  local s = calls.stats(FX.calls)
  H.eq(s.calls, 9, 'calls')
  H.eq(s.misses, 4, 'misses')
  H.eq(s.ttft_p50, 900, 'p50')
  H.eq(s.ttft_p90, 3600, 'p90')
  local prompt, cached = 0, 0
  for _, c in ipairs(FX.calls) do
    prompt, cached = prompt + c.promptTokens, cached + c.cachedTokens
  end
  H.eq(s.reused, cached, 'reused')
  H.eq(s.computed, prompt - cached, 'computed')
  -- The Rust test's numbers (src/proxy/report.rs): 3 calls, p50 50, p90 100.
  local t = calls.stats({ { ttftMs = 100, promptTokens = 1000, cachedTokens = 0 }, { ttftMs = 30, promptTokens = 1000, cachedTokens = 500 }, { ttftMs = 50, promptTokens = 1000, cachedTokens = vim.NIL } })
  H.eq({ t.computed, t.reused, t.ttft_p50, t.ttft_p90 }, { 2500, 500, 50, 100 }, 'boo calls numbers')
end)

local function cells_by_hl(chunks)
  local n = {}
  for _, c in ipairs(chunks) do
    n[c[2]] = (n[c[2]] or 0) + vim.fn.strchars(c[1])
  end
  return n
end

H.test('bar: cells cached / computed by the reported prefix, a letter per segment', function()
  local hit = call_of('correctness', 3)
  local bar = calls.bar(hit, 32)
  local n = cells_by_hl(bar)
  H.eq((n.BooCallCached or 0) + (n.BooCallUncached or 0), 32, 'all cells')
  H.eq(n.BooCallCached, math.floor(32 * hit.cachedTokens / hit.promptTokens + 0.5), 'cached cells follow cachedTokens')
  local text = ''
  for _, c in ipairs(bar) do
    text = text .. c[1]
  end
  H.ok(text:sub(1, 1) == 'S', 'starts with the system prompt: ' .. text)
  H.contains(text, 'T', 'tools segment')
  H.contains(text, 'N', 'new segment')
  -- The evicted call: only 64 tokens reused, so (almost) nothing is green.
  local ev = cells_by_hl(calls.bar(call_of('security', 2), 32))
  H.ok((ev.BooCallCached or 0) <= 1 and ev.BooCallUncached >= 31, vim.inspect(ev))
  -- No cache field: unknown, not computed.
  local unk = vim.deepcopy(hit)
  unk.cachedTokens = vim.NIL
  H.eq(cells_by_hl(calls.bar(unk, 20)).BooCallUnknown, 20, 'unknown cells')
  local parts = calls.parts(call_of('security', 1))
  H.eq(parts[1].reuse, 'uncached', 'nothing reused on a changed system prompt')
end)

H.test('merge: a finish replaces its start by callId; a late start never replaces a finish', function()
  local list = {}
  local start = vim.tbl_extend('force', vim.deepcopy(FX.calls[1]), { callId = 'x', phase = 'start', finishedAt = vim.NIL, cachedTokens = vim.NIL, segments = {} })
  calls.merge(list, start)
  H.eq(#list, 1, 'added')
  H.eq(list[1].phase, nil, 'phase not kept')
  H.eq(calls.stats(list).running, 1, 'running')
  calls.merge(list, vim.tbl_extend('force', vim.deepcopy(FX.calls[1]), { callId = 'x', phase = 'finish' }))
  H.eq(#list, 1, 'replaced')
  H.eq(calls.stats(list).running, 0, 'finished')
  calls.merge(list, start)
  H.eq(list[1].cachedTokens, FX.calls[1].cachedTokens, 'the finish stays')
end)

local traces_buf
H.test('trace view: run totals, a bar line per model turn, miss reasons in words (all pages fetched)', function()
  local done
  require('boo.traces').open(RUN, function(err, buf, _, got)
    done = { err = err, buf = buf, calls = got }
  end)
  H.wait(5000, function()
    return done ~= nil
  end, 'trace view')
  H.eq(done.err, nil, 'no error')
  H.eq(#done.calls, 9, 'every page of boo/getModelCalls')
  traces_buf = done.buf
  local text = buf_text(done.buf)
  H.artifact('traces', text)
  H.contains(text, 'model calls 9 calls · prompt tokens', 'totals')
  H.contains(text, 'ttft p50 900 ms p90 3.6 s', 'ttft percentiles')
  H.contains(text, '4 with a miss reason', 'misses')
  H.contains(text, 'miss: the server evicted or does not cache this prefix (expected ≈ 6011 tokens, got 64)', 'evicted reason')
  H.contains(text, 'miss: first request of this prefix', 'first request')
  local turn_lines = 0
  for _, l in ipairs(vim.api.nvim_buf_get_lines(done.buf, 0, -1, false)) do
    if l:match('^  turn  %d %[') then
      turn_lines = turn_lines + 1
    end
  end
  H.eq(turn_lines, 9, 'one bar line per model turn')
  H.contains(text, 'ttft 900 ms 36.9 tok/s', 'speed of correctness turn 3')
end)

H.test('trace view: a live boo/modelCall start shows as running, its finish replaces it', function()
  local new = vim.tbl_extend('force', vim.deepcopy(call_of('verdict', 3)), { callId = 'live-1', turn = 4, phase = 'start', finishedAt = vim.NIL, promptTokens = vim.NIL, cachedTokens = vim.NIL, segments = {}, missReason = vim.NIL })
  client.handlers['boo/modelCall'](nil, new, { client_id = 0 })
  H.wait(2000, function()
    return buf_text(traces_buf):find('turn  4 %[.-%] running…') ~= nil
  end, 'running turn 4')
  H.contains(buf_text(traces_buf), '(1 running)', 'counted as running')
  local fin = vim.tbl_extend('force', vim.deepcopy(call_of('verdict', 3)), { callId = 'live-1', turn = 4, phase = 'finish' })
  client.handlers['boo/modelCall'](nil, fin, { client_id = 0 })
  H.wait(2000, function()
    return buf_text(traces_buf):find('turn  4 %[.-%] prompt') ~= nil
  end, 'finished turn 4')
  H.contains(buf_text(traces_buf), 'model calls 10 calls', 'one more call, not two')
  vim.cmd('only')
end)

local tl_buf
H.test('timeline: lanes per step, blocks scaled to the window, a legend and an axis', function()
  local done
  require('boo.timeline').open(RUN, function(err, buf)
    done = { err = err, buf = buf }
  end)
  H.wait(5000, function()
    return done ~= nil
  end, 'timeline')
  H.eq(done.err, nil, 'no error')
  tl_buf = done.buf
  local v = require('boo.timeline').views[RUN]
  local text = buf_text(tl_buf)
  H.artifact('timeline', text)
  H.contains(text, 'legend █ model turn', 'legend')
  H.contains(text, '0s', 'axis')
  local lines = vim.api.nvim_buf_get_lines(tl_buf, 0, -1, false)
  local width = vim.api.nvim_win_get_width(0)
  local lanes = {}
  for row, l in ipairs(lines) do
    local hit = v.hits[row]
    if hit then
      lanes[#lanes + 1] = row
      H.ok(vim.fn.strdisplaywidth(l) <= width, string.format('lane %d fits the window (%d > %d)', row, vim.fn.strdisplaywidth(l), width))
      H.ok(vim.fn.strdisplaywidth(l) >= width - 2, 'lane fills the window')
    end
  end
  H.eq(#lanes, #FX.getRun.steps, 'one lane per step')
  local kinds = { model = 0, tool = 0, step = 0 }
  local seen = {}
  local last_security, first_verdict = 0, math.huge
  for row, list in pairs(v.hits) do
    for _, h in ipairs(list) do
      local blk = h[3]
      if not seen[blk] then
        seen[blk] = true
        kinds[blk.kind] = kinds[blk.kind] + 1
      end
      -- Display columns (the block characters are several bytes each).
      local c0 = vim.fn.strdisplaywidth(lines[row]:sub(1, h[1]))
      local c1 = vim.fn.strdisplaywidth(lines[row]:sub(1, h[2]))
      if blk.step == 'security' then
        last_security = math.max(last_security, c1)
      elseif blk.step == 'verdict' and blk.kind == 'model' then
        first_verdict = math.min(first_verdict, c0)
      end
    end
  end
  H.eq(kinds, { model = 9, tool = 6, step = 4 }, 'blocks')
  H.ok(first_verdict >= last_security, string.format('the verdict (col %d) comes after the reviewers (col %d) on the axis', first_verdict, last_security))
  -- Wider window, wider lanes.
  local before = vim.fn.strdisplaywidth(lines[lanes[1]])
  vim.cmd('vsplit')
  require('boo.timeline').draw(RUN)
  local narrow = vim.fn.strdisplaywidth(vim.api.nvim_buf_get_lines(tl_buf, lanes[1] - 1, lanes[1], false)[1])
  H.ok(narrow < before, string.format('scaled to the window (%d < %d)', narrow, before))
  vim.cmd('only')
  require('boo.timeline').draw(RUN)
end)

local function cursor_on(step, kind, turn)
  local v = require('boo.timeline').views[RUN]
  local win = vim.fn.win_findbuf(tl_buf)[1]
  vim.api.nvim_set_current_win(win)
  for row, list in pairs(v.hits) do
    for _, h in ipairs(list) do
      if h[3].step == step and h[3].kind == kind and h[3].turn == turn then
        vim.api.nvim_win_set_cursor(win, { row, h[1] })
        return h[3]
      end
    end
  end
  error('no block ' .. step .. ' ' .. kind .. ' ' .. tostring(turn))
end

H.test('timeline <CR> on a model turn opens the pane at that turn of that agent', function()
  -- The pane of the run is built from the stored transcript (the fixture's getRun).
  client.store:load_run(vim.deepcopy(FX.getRun), client.now(), { transcript = true })
  local blk = cursor_on('security', 'model', 2)
  H.eq(require('boo.timeline').block_at_cursor(), blk, 'the block under the cursor')
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('<CR>', true, false, true), 'x', false)
  local pane = require('boo.pane')
  local p = pane.panes[RUN]
  H.ok(p, 'pane opened')
  H.eq(vim.api.nvim_get_current_buf(), p.buf, 'the pane has the cursor')
  H.eq(p.expanded, 'security', 'security expanded')
  local row = vim.api.nvim_win_get_cursor(0)[1]
  H.eq(row, p.turn_row[2], 'cursor on turn 2')
  local line = vim.api.nvim_buf_get_lines(p.buf, row - 1, row, false)[1]
  H.contains(line, 'read_file', 'turn 2 starts with the read_file call')
  H.artifact('pane-at-turn', H.pane_text(RUN))
  -- A tool block jumps to the turn that asked for it.
  cursor_on('correctness', 'tool', 1)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('<CR>', true, false, true), 'x', false)
  H.eq(p.expanded, 'correctness', 'correctness expanded')
  H.eq(vim.api.nvim_win_get_cursor(0)[1], p.turn_row[1], 'cursor on turn 1')
end)

H.test('timeline R restores the pane as it was when the turn ended (read-only)', function()
  cursor_on('security', 'model', 2)
  local got
  require('boo.timeline').restore(RUN, 'security', 2, function(err, buf, run)
    got = { err = err, buf = buf, run = run }
  end)
  H.wait(5000, function()
    return got ~= nil
  end, 'restore')
  H.eq(got.err, nil, 'no error')
  local text = buf_text(got.buf)
  H.artifact('restored', text)
  H.contains(text, 'when turn 2 of security ended', 'says what it is')
  H.contains(text, 'read_file', 'turn 2 is there')
  H.not_contains(text, 'Step security: fake-qwen looked', 'turn 3 (the answer) is not')
  H.eq(got.run.by_id.verdict.status, 'pending', 'the verdict had not started')
  H.eq(got.run.by_id.correctness.status, 'running', 'correctness was still running')
  H.eq(got.run.by_id.diff.status, 'completed', 'code steps had finished')
  H.eq(vim.bo[got.buf].modifiable, false, 'read-only')
  H.not_contains(text, '11.6k tok', 'the run total is not shown before the run ended')
  -- The live store is untouched: the pane still shows the whole run.
  H.contains(H.pane_text(RUN), 'completed', 'live pane unchanged')
  vim.cmd('tabclose')
end)

H.finish()
