--- The trace view (`t` in the pane, :Boo traces): per step, one line per
--- tool call with a timing bar scaled to the step, latency and outcome, and
--- the token breakdown with the cache hit rate; per model turn (boo/getModelCalls)
--- a bar of the prompt's segments by what the server reused, TTFT, tokens/s and the
--- miss reason, the run's model-call totals on top. Live boo/modelCall notifications
--- of the shown run update it (a finish replaces its start).
local render = require('boo.render')
local calls_mod = require('boo.calls')

local M = {}

local ns = vim.api.nvim_create_namespace('boo.traces')
local MAX_PAGES = 50

--- Fetch every trace of a run (follows nextCursor), then cb(err, traces).
function M.fetch(run_id, cb)
  local client = require('boo.client')
  local all, pages = {}, 0
  local function page(cursor)
    pages = pages + 1
    local params = { runId = run_id, limit = 500 }
    if cursor then
      params.cursor = cursor
    end
    client.run_request(run_id, 'boo/getTraces', params, function(err, res)
      if err or type(res) ~= 'table' then
        return cb(err or { message = 'empty answer to boo/getTraces' })
      end
      for _, t in ipairs(res.traces or {}) do
        all[#all + 1] = t
      end
      local nxt = res.nextCursor
      if nxt and nxt ~= vim.NIL and pages < MAX_PAGES then
        return page(nxt)
      end
      cb(nil, all)
    end)
  end
  page(nil)
end

--- What each open trace view shows: { run, traces, calls, note } by run id.
M.views = {}

local BAR = 32

--- The head section: the run's model-call totals (the words of `boo calls`).
local function head_lines(b, v)
  b.add('')
  if not v.calls then
    b.add('model calls: ' .. (v.note or 'not available'), 'BooMuted')
    return
  end
  local s = calls_mod.stats(v.calls)
  if s.calls == 0 then
    b.add('model calls: none recorded for this run (calls are recorded when agents run through boo’s model proxy)', 'BooMuted')
    return
  end
  b.chunks({
    { 'model calls ', 'BooLabel' },
    { string.format('%d calls%s · prompt tokens %s computed, %s reused · hit rate %s · ttft p50 %s p90 %s', s.calls,
      s.running > 0 and string.format(' (%d running)', s.running) or '', render.tokens(s.computed), render.tokens(s.reused),
      s.hit_rate and string.format('%d%%', math.floor(s.hit_rate * 100 + 0.5)) or '-', calls_mod.fmt_ms(s.ttft_p50),
      calls_mod.fmt_ms(s.ttft_p90)), 'BooText' },
    { s.misses > 0 and string.format(' · %d with a miss reason', s.misses) or '', 'BooCallMiss' },
  })
  b.add(string.format('  bar: █ reused from the cache  ░ computed  ? not reported · segments S system T tools H history R tool result N new I image · <CR> pane at turn · K segments'), 'BooMuted')
end

--- One step's model turns: a bar line per call, then its miss reason.
local function step_lines(b, v, sid)
  if not v.calls then
    return
  end
  b.row_call = b.row_call or {}
  for _, c in ipairs(calls_mod.of_step(v.calls, sid)) do
    local chunks = { { string.format('  turn %2s ', tostring(c.turn)), 'BooLabel' }, { '[', 'BooMuted' } }
    vim.list_extend(chunks, calls_mod.bar(c, BAR))
    local done = c.finishedAt and c.finishedAt ~= vim.NIL
    local figures
    if done then
      figures = string.format('] prompt %s cached %s%s ttft %s %s', tostring(calls_mod.num(c.promptTokens) or '-'),
        tostring(calls_mod.num(c.cachedTokens) or '?'),
        (calls_mod.num(c.expectedCachedTokens) or 0) > 0 and string.format(' (exp ≈%d)', calls_mod.num(c.expectedCachedTokens)) or '',
        calls_mod.fmt_ms(c.ttftMs), calls_mod.num(c.tokensPerSecond) and string.format('%.1f tok/s', calls_mod.num(c.tokensPerSecond)) or '- tok/s')
    else
      figures = '] running…'
    end
    chunks[#chunks + 1] = { figures, 'BooMuted' }
    local status = calls_mod.num(c.status)
    if status and status ~= 200 then
      chunks[#chunks + 1] = { ' status ' .. status, 'BooStatusFailed' }
    end
    b.row_call[b.chunks(chunks)] = c
    if c.missReason and c.missReason ~= vim.NIL then
      b.row_call[b.add('           miss: ' .. c.missReason, 'BooCallMiss')] = c
    end
    if c.error and c.error ~= vim.NIL then
      b.row_call[b.add('           error: ' .. tostring(c.error), 'BooToolError')] = c
    end
  end
end

--- The call on the cursor's line of a trace view, if any.
function M.call_at_cursor()
  local buf = vim.api.nvim_get_current_buf()
  local v = M.views[vim.b[buf].boo_run_id or '']
  if not v or not v.row_call then
    return nil
  end
  return v.row_call[vim.api.nvim_win_get_cursor(0)[1]]
end

local function show(run_id, b)
  local name = 'boo://traces/' .. run_id
  local buf = vim.fn.bufnr(name)
  if buf <= 0 then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
    vim.bo[buf].buftype = 'nofile'
    vim.bo[buf].bufhidden = 'hide'
    vim.bo[buf].swapfile = false
    vim.bo[buf].filetype = 'boo-traces'
    vim.b[buf].boo_run_id = run_id
    vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, nowait = true, silent = true, desc = 'boo: close' })
    vim.keymap.set('n', 'r', function()
      M.open(run_id)
    end, { buffer = buf, nowait = true, silent = true, desc = 'boo: refresh traces' })
    vim.keymap.set('n', '<CR>', function()
      local c = M.call_at_cursor()
      if c then
        require('boo.timeline').reveal(run_id, c.stepId, calls_mod.num(c.turn))
      end
    end, { buffer = buf, nowait = true, silent = true, desc = 'boo: show this turn in the pane' })
    vim.keymap.set('n', 'K', function()
      local c = M.call_at_cursor()
      if c then
        vim.notify(table.concat(calls_mod.detail_lines(c), '\n'), vim.log.levels.INFO)
      end
    end, { buffer = buf, nowait = true, silent = true, desc = 'boo: segments of this model turn' })
    vim.keymap.set('n', 'T', function()
      require('boo.timeline').open(run_id)
    end, { buffer = buf, nowait = true, silent = true, desc = 'boo: run timeline' })
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, b.lines)
  vim.bo[buf].modifiable = false
  vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  for row, list in pairs(b.hls) do
    for _, h in ipairs(list) do
      pcall(vim.api.nvim_buf_set_extmark, buf, ns, row - 1, h[1], { end_col = h[2], hl_group = h[3] })
    end
  end
  local win
  for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if vim.api.nvim_win_get_buf(w) == buf then
      win = w
    end
  end
  if not win then
    vim.cmd('belowright split')
    win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(win, buf)
    vim.wo[win].wrap = false
    vim.wo[win].number = false
    vim.wo[win].relativenumber = false
    vim.wo[win].signcolumn = 'no'
  end
  vim.api.nvim_set_current_win(win)
  return buf
end

--- (Re)draw the trace view of a run from what it holds.
function M.draw(run_id)
  local v = M.views[run_id]
  if not v then
    return nil
  end
  v.row_call = nil
  local b = render.traces(v.run, v.traces, {
    now = require('boo.client').now(),
    on_head = function(bb)
      head_lines(bb, v)
    end,
    on_step = function(bb, sid)
      step_lines(bb, v, sid)
    end,
  })
  v.row_call = b.row_call or {}
  return show(run_id, b)
end

local pending_redraw = {}

--- A live boo/modelCall: merged into the open views of its run (trace view, timeline).
function M.on_model_call(p)
  local v = M.views[p.runId]
  local tl = require('boo.timeline')
  tl.on_model_call(p)
  if not v or not v.calls then
    return
  end
  calls_mod.merge(v.calls, p)
  if pending_redraw[p.runId] then
    return
  end
  pending_redraw[p.runId] = true
  vim.defer_fn(function()
    pending_redraw[p.runId] = nil
    local buf = vim.fn.bufnr('boo://traces/' .. p.runId)
    if buf > 0 and vim.api.nvim_buf_is_valid(buf) and #vim.fn.win_findbuf(buf) > 0 then
      local cur = vim.api.nvim_get_current_win()
      local win = vim.fn.win_findbuf(buf)[1]
      local view = vim.api.nvim_win_call(win, vim.fn.winsaveview)
      M.draw(p.runId)
      vim.api.nvim_win_call(win, function()
        vim.fn.winrestview(view)
      end)
      if vim.api.nvim_win_is_valid(cur) then
        vim.api.nvim_set_current_win(cur)
      end
    end
  end, 100)
end

--- Open the trace view of a run (default: the pane's or the last run).
function M.open(run_id, cb)
  local client = require('boo.client')
  local pane = require('boo.pane')
  run_id = run_id or pane.run_of(0) or pane.last_run_id
  if not run_id then
    client.notify('boo: no run to show traces for (launch one, or open one with :Boo runs)', vim.log.levels.WARN)
    return
  end
  client.run_request(run_id, 'boo/getRun', { runId = run_id }, function(err, res)
    if err or type(res) ~= 'table' then
      client.notify('boo: cannot load the run: ' .. client.err_text(err), vim.log.levels.ERROR)
      return cb and cb(err)
    end
    local run = client.store:load_run(res, client.now())
    M.fetch(run_id, function(terr, traces)
      if terr then
        client.notify('boo: cannot load traces: ' .. client.err_text(terr), vim.log.levels.ERROR)
        return cb and cb(terr)
      end
      calls_mod.fetch(run_id, function(cerr, calls, note)
        if cerr then
          note = 'cannot load model calls: ' .. client.err_text(cerr)
        end
        M.views[run_id] = { run = run, traces = traces, calls = calls, note = note }
        local buf = M.draw(run_id)
        if cb then
          cb(nil, buf, traces, calls)
        end
      end)
    end)
  end)
end

return M
