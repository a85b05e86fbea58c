--- The run timeline (`:Boo timeline`, `T` in the trace view): one line per step, its
--- model turns (boo/getModelCalls) and tool calls (boo/getTraces) as block characters on
--- a time axis scaled to the window width, with a legend.
---
---   <CR>  on a block: open the run's pane, expand that step and put the cursor on the
---         first line of that model turn (a tool call: the turn that asked for it)
---   R     restore: a read-only buffer of the pane as it was when that turn ended,
---         rebuilt from the stored transcripts (boo/getRun {transcript: true})
---   K     the block's detail (segments of a model turn with tokens and bytes)
---   r     refresh · q close
local calls_mod = require('boo.calls')
local render = require('boo.render')
local state = require('boo.state')

local M = {}

local ns = vim.api.nvim_create_namespace('boo.timeline')

--- What each open timeline shows: { steps, calls, traces, note, hits } by run id.
M.views = {}

local LABEL = 22
local GLYPH = { model = '█', tool = '▒', step = '▬' }

local function block_hl(blk)
  if blk.kind == 'model' then
    if blk.status == 'running' then
      return 'BooTlRunning'
    elseif blk.status == 'error' then
      return 'BooTlToolError'
    end
    return blk.miss and 'BooTlMiss' or 'BooTlModel'
  elseif blk.kind == 'tool' then
    return (blk.status == 'ok' or blk.status == 'running') and 'BooTlTool' or 'BooTlToolError'
  end
  return 'BooTlStep'
end

--- Lines of a timeline: returns { lines, hls = {row = {{c0, c1, group}}}, hits = {row = {{c0, c1, block}}} }.
--- `width` is the whole line; the track is what is left after the step labels.
function M.render(run, v, width, now)
  local layout = calls_mod.layout(v.steps, v.calls or {}, v.traces or {}, now)
  local b = render.builder()
  local hits = {}
  local track = math.max(20, width - LABEL - 1)
  local stats = calls_mod.stats(v.calls or {})
  b.chunks({
    { 'boo timeline', 'BooHeader' },
    { ' · ', 'BooMuted' },
    { run.flow or '?', 'BooTitle' },
    { string.format(' · %s · %s · %d model turns · %d tool calls · run %s', run.status or '', calls_mod.fmt_offset(math.max(0, layout.t1 - layout.t0)),
      stats.calls, #(v.traces or {}), run.runId or ''), 'BooMuted' },
  })
  b.chunks({
    { 'legend ', 'BooLabel' },
    { GLYPH.model, 'BooTlModel' },
    { ' model turn (digit: turn no.)  ', 'BooMuted' },
    { GLYPH.model, 'BooTlMiss' },
    { ' turn with a cache miss reason  ', 'BooMuted' },
    { GLYPH.tool, 'BooTlTool' },
    { ' tool call  ', 'BooMuted' },
    { GLYPH.step, 'BooTlStep' },
    { ' code step', 'BooMuted' },
  })
  b.add('<CR> show in the pane · R restore the pane at that turn · K detail · r refresh · q close', 'BooMuted')
  if v.note then
    b.add('model calls: ' .. v.note, 'BooMuted')
  end
  if #layout.lanes == 0 then
    b.add('')
    b.add('Nothing to show yet: no step of this run has started.', 'BooMuted')
    return b, hits
  end
  -- Axis: tick labels at their cells.
  local span = math.max(1, layout.t1 - layout.t0)
  local step = calls_mod.tick_step(span, math.max(2, math.floor(track / 10)))
  local axis = {}
  for i = 1, track do
    axis[i] = ' '
  end
  local t = 0
  while t <= span do
    local c = math.floor(t / span * track) + 1
    local label = calls_mod.fmt_offset(t)
    if c + #label - 1 <= track then
      local free = true
      for k = math.max(1, c - 1), c + #label - 1 do
        if axis[k] ~= ' ' then
          free = false
        end
      end
      if free then
        for k = 1, #label do
          axis[c + k - 1] = label:sub(k, k)
        end
      end
    end
    t = t + step
  end
  b.add(string.rep(' ', LABEL + 1) .. table.concat(axis), 'BooMuted')
  b.add(string.rep(' ', LABEL + 1) .. string.rep('─', track), 'BooMuted')
  for _, lane in ipairs(layout.lanes) do
    -- Cells: model turns first, then tool calls and steps in the cells still free
    -- (a tool call whose cells are all taken moves to the next free cell).
    local cells = {}
    local function paint(blk, c0, c1)
      for c = c0, c1 - 1 do
        cells[c] = blk
      end
    end
    for _, blk in ipairs(lane.blocks) do
      if blk.kind == 'model' then
        local c0, c1 = calls_mod.cells(layout, blk, track)
        paint(blk, c0, c1)
      end
    end
    for _, blk in ipairs(lane.blocks) do
      if blk.kind ~= 'model' then
        local c0, c1 = calls_mod.cells(layout, blk, track)
        local any = false
        for c = c0, c1 - 1 do
          if not cells[c] then
            cells[c] = blk
            any = true
          end
        end
        if not any then
          for c = c1, track - 1 do
            if not cells[c] then
              cells[c] = blk
              break
            end
          end
        end
      end
    end
    local name = render.trunc(lane.label, LABEL)
    local prefix = name .. string.rep(' ', LABEL - vim.fn.strdisplaywidth(name)) .. ' '
    local parts, hl, hit = { prefix }, {}, {}
    local col = #prefix
    local c = 0
    while c < track do
      local blk = cells[c]
      local e = c + 1
      while e < track and cells[e] == blk do
        e = e + 1
      end
      local text
      if not blk then
        text = string.rep('·', e - c)
      else
        local g = GLYPH[blk.kind] or '█'
        text = string.rep(g, e - c)
        if blk.kind == 'model' and blk.turn and e - c >= 2 then
          -- The turn number at the block's start.
          local d = tostring(blk.turn)
          if #d < e - c then
            text = d .. string.rep(g, e - c - #d)
          end
        end
      end
      parts[#parts + 1] = text
      if blk then
        hl[#hl + 1] = { col, col + #text, block_hl(blk) }
        hit[#hit + 1] = { col, col + #text, blk }
      else
        hl[#hl + 1] = { col, col + #text, 'BooMuted' }
      end
      col = col + #text
      c = e
    end
    local row = b.add(table.concat(parts))
    b.hls[row] = vim.list_extend({ { 0, #name, lane.kind == 'code' and 'BooMuted' or 'BooStepName' } }, hl)
    hits[row] = hit
    -- The agent under the step's name, with its turns' summary.
    local summary = {}
    for _, blk in ipairs(lane.blocks) do
      if blk.kind == 'model' then
        summary[#summary + 1] = blk
      end
    end
    local agent = lane.kind == 'code' and ('code · ' .. (lane.agent or '')) or (lane.agent or lane.kind or '')
    local info = string.format('  %s', render.trunc(agent, LABEL - 2))
    if #summary > 0 then
      local total = 0
      for _, blk in ipairs(summary) do
        total = total + ((blk.e or layout.t1) - blk.s)
      end
      info = info .. string.rep(' ', math.max(1, LABEL + 1 - vim.fn.strdisplaywidth(info)))
        .. string.format('%d turns · %s in the model', #summary, calls_mod.fmt_ms(total))
    end
    b.add(info, 'BooMuted')
  end
  return b, hits, layout
end

--- The block under the cursor (or the nearest on that line).
function M.block_at_cursor()
  local buf = vim.api.nvim_get_current_buf()
  local v = M.views[vim.b[buf].boo_run_id or '']
  if not v or not v.hits then
    return nil
  end
  local pos = vim.api.nvim_win_get_cursor(0)
  local row, col = pos[1], pos[2]
  local list = v.hits[row] or v.hits[row - 1]
  if not list then
    return nil
  end
  local best, dist = nil, math.huge
  for _, h in ipairs(list) do
    local d = (col >= h[1] and col < h[2]) and 0 or math.min(math.abs(col - h[1]), math.abs(col - (h[2] - 1)))
    if d < dist then
      best, dist = h[3], d
    end
  end
  return best
end

local function win_of(buf)
  for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if vim.api.nvim_win_get_buf(w) == buf then
      return w
    end
  end
end

local function ensure_buf(run_id)
  local name = 'boo://timeline/' .. run_id
  local buf = vim.fn.bufnr(name)
  if buf > 0 and vim.api.nvim_buf_is_valid(buf) then
    return buf
  end
  buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(buf, name)
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = 'boo-timeline'
  vim.b[buf].boo_run_id = run_id
  local function map(lhs, fn, desc)
    vim.keymap.set('n', lhs, fn, { buffer = buf, nowait = true, silent = true, desc = 'boo: ' .. desc })
  end
  map('q', '<cmd>close<cr>', 'close')
  map('r', function()
    M.open(run_id)
  end, 'refresh the timeline')
  map('<CR>', function()
    local blk = M.block_at_cursor()
    if blk then
      M.reveal(run_id, blk.step, blk.turn)
    end
  end, 'show this turn in the pane')
  map('R', function()
    local blk = M.block_at_cursor()
    if blk and blk.turn then
      M.restore(run_id, blk.step, blk.turn)
    elseif blk then
      require('boo.client').notify('boo: restore works on a model turn or a tool call (this block has no turn)', vim.log.levels.WARN)
    end
  end, 'restore the pane at this turn')
  map('K', function()
    local blk = M.block_at_cursor()
    if not blk then
      return
    end
    local lines
    if blk.kind == 'model' and blk.call then
      lines = calls_mod.detail_lines(blk.call)
    else
      lines = { string.format('%s · %s · %s · %s', blk.step, blk.label, blk.e and calls_mod.fmt_ms(blk.e - blk.s) or 'running', blk.status or '') }
    end
    vim.notify(table.concat(lines, '\n'), vim.log.levels.INFO)
  end, 'detail of this block')
  return buf
end

--- Draw the timeline of a run from what it holds (width: its window's).
function M.draw(run_id)
  local v = M.views[run_id]
  if not v then
    return nil
  end
  local buf = ensure_buf(run_id)
  local win = win_of(buf)
  if not win then
    vim.cmd('belowright split')
    win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(win, buf)
    vim.wo[win].wrap = false
    vim.wo[win].number = false
    vim.wo[win].relativenumber = false
    vim.wo[win].signcolumn = 'no'
    vim.wo[win].list = false
  end
  local width = vim.api.nvim_win_get_width(win) - 1
  local b, hits = M.render(v.run, v, width, require('boo.client').now())
  v.hits = hits
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, b.lines)
  vim.bo[buf].modifiable = false
  vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  for row, list in pairs(b.hls) do
    for _, h in ipairs(list) do
      pcall(vim.api.nvim_buf_set_extmark, buf, ns, row - 1, h[1], { end_col = h[2], hl_group = h[3] })
    end
  end
  return buf, win
end

--- Open the timeline of a run (default: the current buffer's or the last run).
function M.open(run_id, cb)
  local client = require('boo.client')
  local pane = require('boo.pane')
  run_id = run_id or pane.run_of(0) or pane.last_run_id
  if not run_id then
    client.notify('boo: no run to show a timeline for (launch one, or open one with :Boo runs)', vim.log.levels.WARN)
    return
  end
  client.run_request(run_id, 'boo/getRun', { runId = run_id }, function(err, res)
    if err or type(res) ~= 'table' then
      client.notify('boo: cannot load the run: ' .. client.err_text(err), vim.log.levels.ERROR)
      return cb and cb(err)
    end
    require('boo.traces').fetch(run_id, function(terr, traces)
      if terr then
        client.notify('boo: cannot load traces: ' .. client.err_text(terr), vim.log.levels.ERROR)
        return cb and cb(terr)
      end
      calls_mod.fetch(run_id, function(cerr, calls, note)
        if cerr then
          note = 'cannot load model calls: ' .. client.err_text(cerr)
        end
        local r = res.run or {}
        M.views[run_id] = {
          run = { runId = run_id, flow = r.flow, status = r.status },
          steps = res.steps or {},
          traces = traces,
          calls = calls or {},
          note = note,
        }
        local buf, win = M.draw(run_id)
        vim.api.nvim_set_current_win(win)
        if cb then
          cb(nil, buf)
        end
      end)
    end)
  end)
end

--- A live boo/modelCall: merged into the run's open timeline (redrawn soon).
local pending = {}
function M.on_model_call(p)
  local v = M.views[p.runId]
  if not v then
    return
  end
  calls_mod.merge(v.calls, p)
  if pending[p.runId] then
    return
  end
  pending[p.runId] = true
  vim.defer_fn(function()
    pending[p.runId] = nil
    local buf = vim.fn.bufnr('boo://timeline/' .. p.runId)
    if buf > 0 and win_of(buf) then
      local cur = vim.api.nvim_get_current_win()
      M.draw(p.runId)
      if vim.api.nvim_win_is_valid(cur) then
        vim.api.nvim_set_current_win(cur)
      end
    end
  end, 100)
end

--- Open the run's pane, expand the step and put the cursor on the first line of model
--- turn `turn` (nil: the step's header).
function M.reveal(run_id, sid, turn)
  local pane = require('boo.pane')
  pane.open(run_id)
  pane.goto_turn(run_id, sid, turn)
end

--- A read-only buffer of the pane as it was when `sid`'s turn `turn` ended.
function M.restore(run_id, sid, turn, cb)
  local client = require('boo.client')
  client.run_request(run_id, 'boo/getRun', { runId = run_id, transcript = true }, function(err, res)
    if err or type(res) ~= 'table' then
      client.notify('boo: cannot load the run: ' .. client.err_text(err), vim.log.levels.ERROR)
      return cb and cb(err)
    end
    calls_mod.fetch(run_id, function(cerr, calls)
      if cerr or not calls then
        client.notify('boo: cannot restore without the run’s model calls: ' .. client.err_text(cerr), vim.log.levels.ERROR)
        return cb and cb(cerr or { message = 'no model calls' })
      end
      local cut, at = calls_mod.run_at_turn(res, calls, sid, turn)
      if not cut then
        client.notify(string.format('boo: turn %s of %s has not ended: nothing to restore', tostring(turn), sid), vim.log.levels.WARN)
        return cb and cb({ message = 'no such turn' })
      end
      -- A private store: the restored run never mixes with the live one.
      local store = state.new()
      local run = store:load_run(cut, client.now())
      local name = string.format('boo://restore/%s/%s/%d', run_id, sid, turn)
      local buf = vim.fn.bufnr(name)
      if buf <= 0 or not vim.api.nvim_buf_is_valid(buf) then
        buf = vim.api.nvim_create_buf(false, true)
        vim.api.nvim_buf_set_name(buf, name)
        vim.bo[buf].buftype = 'nofile'
        vim.bo[buf].bufhidden = 'wipe'
        vim.bo[buf].swapfile = false
        vim.bo[buf].filetype = 'boo-pane'
        vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, nowait = true, silent = true, desc = 'boo: close' })
      end
      vim.cmd('tab split')
      local win = vim.api.nvim_get_current_win()
      vim.api.nvim_win_set_buf(win, buf)
      vim.wo[win].wrap = true
      vim.wo[win].number = false
      local width = math.max(40, math.min(100, vim.api.nvim_win_get_width(win) - 2))
      local o = require('boo.config').get()
      local b = render.pane(run, { expanded = sid, now = at, glyphs = o.glyphs, tool_result_lines = o.tool_result_lines, width = width })
      local t0 = state.parse_time(res.run and res.run.createdAt) or at
      local head = string.format('restored · the pane as it was %s into the run, when turn %d of %s ended · read-only (q closes)',
        calls_mod.fmt_offset(math.max(0, at - t0)), turn, sid)
      local lines = { head, '' }
      vim.list_extend(lines, b.lines)
      vim.bo[buf].modifiable = true
      vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
      vim.bo[buf].modifiable = false
      vim.bo[buf].readonly = true
      vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
      pcall(vim.api.nvim_buf_set_extmark, buf, ns, 0, 0, { end_col = #head, hl_group = 'BooCached' })
      for row, list in pairs(b.hls) do
        for _, h in ipairs(list) do
          pcall(vim.api.nvim_buf_set_extmark, buf, ns, row + 1, h[1], { end_col = h[2], hl_group = h[3] })
        end
      end
      -- The cursor at the end of that turn (the last line of the expanded stream).
      pcall(vim.api.nvim_win_set_cursor, win, { #lines, 0 })
      if cb then
        cb(nil, buf, run)
      end
    end)
  end)
end

return M
