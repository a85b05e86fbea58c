--- The orchestrator pane: one buffer per run (filetype boo-orchestrator),
--- shown in a split or a tab. Notifications only mark a pane dirty; redraws
--- are batched on a timer (config.redraw_ms) and touch only changed lines.
local config = require('boo.config')
local render = require('boo.render')
local state = require('boo.state')

local M = {}

local ns = vim.api.nvim_create_namespace('boo.pane')
M.ns = ns
--- The report's Markdown highlighting (under the pane's own highlights).
local md_ns = vim.api.nvim_create_namespace('boo.pane.markdown')
M.md_ns = md_ns

--- run id → { buf, expanded, picked, lines, row_step, step_row }
M.panes = {}
--- The run whose pane was opened or focused last.
M.last_run_id = nil

local dirty = {}
local redraw_timer, tick_timer
local redraw_scheduled = false
--- Number of pane renders (tests use it to check batching).
M.render_count = 0

local function store()
  return require('boo.client').store
end

function M.buf_name(run_id)
  return 'boo://run/' .. run_id
end

local function valid(p)
  return p and p.buf and vim.api.nvim_buf_is_valid(p.buf)
end

local function pane_wins(buf)
  local wins = {}
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_buf(w) == buf then
      wins[#wins + 1] = w
    end
  end
  return wins
end

--- Replace only the lines that changed, and their highlights.
local function apply(buf, old, new, hls)
  local set = vim.api.nvim_buf_set_lines
  local n_old, n_new = #old, #new
  local common = math.min(n_old, n_new)
  local rows = {}
  vim.bo[buf].modifiable = true
  local i = 1
  while i <= common do
    if old[i] ~= new[i] then
      local j = i
      while j < common and old[j + 1] ~= new[j + 1] do
        j = j + 1
      end
      vim.api.nvim_buf_clear_namespace(buf, ns, i - 1, j)
      set(buf, i - 1, j, false, { unpack(new, i, j) })
      for r = i, j do
        rows[#rows + 1] = r
      end
      i = j + 1
    else
      i = i + 1
    end
  end
  if n_old > n_new then
    vim.api.nvim_buf_clear_namespace(buf, ns, math.max(0, n_new - 1), -1)
    set(buf, n_new, n_old, false, {})
    if n_new >= 1 then
      rows[#rows + 1] = n_new
    end
  elseif n_new > n_old then
    if n_old == 0 then
      -- An empty buffer still has one (empty) line: replace it.
      set(buf, 0, -1, false, new)
    else
      set(buf, n_old, n_old, false, { unpack(new, n_old + 1, n_new) })
    end
    for r = n_old + 1, n_new do
      rows[#rows + 1] = r
    end
  end
  vim.bo[buf].modifiable = false
  for _, r in ipairs(rows) do
    for _, h in ipairs(hls[r] or {}) do
      pcall(vim.api.nvim_buf_set_extmark, buf, ns, r - 1, h[1], { end_col = h[2], hl_group = h[3] })
    end
  end
end
M.apply = apply

local function current_expanded(p, run)
  if p.picked then
    return p.expanded
  end
  return state.auto_step(run)
end

--- Render one pane now.
function M.render(run_id)
  local p = M.panes[run_id]
  if not valid(p) then
    M.panes[run_id] = nil
    return
  end
  local run = store():get(run_id)
  if not run then
    return
  end
  local o = config.get()
  local wins = pane_wins(p.buf)
  local width = 72
  if wins[1] then
    width = math.max(40, math.min(100, vim.api.nvim_win_get_width(wins[1]) - 2))
  end
  local b = render.pane(run, {
    expanded = current_expanded(p, run),
    now = require('boo.client').now(),
    glyphs = o.glyphs,
    tool_result_lines = o.tool_result_lines,
    width = width,
    disconnected = run.disconnected and not state.is_terminal(run.status),
  })
  -- Keep the cursor on the last line when it was there (tail the stream).
  local tails = {}
  for _, w in ipairs(wins) do
    local n = #(p.lines or {})
    tails[w] = n > 1 and vim.api.nvim_win_get_cursor(w)[1] >= n
  end
  apply(p.buf, p.lines or {}, b.lines, b.hls)
  local md_key = b.report and (b.report.first .. '\0' .. table.concat(b.report.lines, '\n')) or nil
  if md_key ~= p.md_key then
    vim.api.nvim_buf_clear_namespace(p.buf, md_ns, 0, -1)
    if b.report then
      require('boo.markdown').apply(p.buf, md_ns, b.report.first - 1, b.report.lines)
    end
    p.md_key = md_key
  end
  p.lines = b.lines
  p.row_step = b.row_step
  p.step_row = b.step_row
  p.row_attachment = b.row_attachment
  p.turn_row = b.turn_row
  p.shown_expanded = current_expanded(p, run)
  p.rendered_version = run.version
  for w, tail in pairs(tails) do
    if tail then
      pcall(vim.api.nvim_win_set_cursor, w, { #b.lines, 0 })
    end
  end
  M.render_count = M.render_count + 1
end

local function flush()
  redraw_scheduled = false
  local ids = vim.tbl_keys(dirty)
  dirty = {}
  for _, id in ipairs(ids) do
    if M.panes[id] then
      M.render(id)
    end
  end
end

--- Note that a run changed; its pane (if any) is redrawn on the next tick
--- of the batching timer. Cheap: safe to call once per notification.
function M.mark_dirty(run_id)
  if not M.panes[run_id] then
    return
  end
  dirty[run_id] = true
  if redraw_scheduled then
    return
  end
  redraw_scheduled = true
  redraw_timer = redraw_timer or vim.uv.new_timer()
  redraw_timer:start(config.get().redraw_ms or 50, 0, vim.schedule_wrap(flush))
end

--- Once a second while a shown run is running: refresh elapsed time, and
--- refetch a run that went quiet (owned by another server, or a lost stream).
local function tick()
  local any = false
  local now = require('boo.client').now()
  require('boo.client').expire_refetches(nil, 15000)
  local poll = config.get().poll_ms or 3000
  for id, p in pairs(M.panes) do
    if not valid(p) then
      M.panes[id] = nil
    else
      local run = store():get(id)
      if run and not state.is_terminal(run.status) then
        any = true
        if #pane_wins(p.buf) > 0 then
          M.mark_dirty(id)
          if (run.resync or now - (run.last_event_ms or 0) > poll) and not run.resyncing then
            run.last_event_ms = now
            require('boo.client').refetch(id)
          end
        end
      end
    end
  end
  if not any and tick_timer then
    tick_timer:stop()
  end
end

local function ensure_tick()
  tick_timer = tick_timer or vim.uv.new_timer()
  if not tick_timer:is_active() then
    tick_timer:start(1000, 1000, vim.schedule_wrap(tick))
  end
end

function M.stop_timers()
  for _, t in ipairs({ redraw_timer, tick_timer }) do
    if t and not t:is_closing() then
      t:stop()
      t:close()
    end
  end
  redraw_timer, tick_timer, redraw_scheduled = nil, nil, false
end

--- The run shown in a buffer (0: current).
function M.run_of(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  local ok, id = pcall(function()
    return vim.b[buf].boo_run_id
  end)
  return ok and id or nil
end

local function step_ids(run)
  local ids = {}
  for _, s in ipairs(state.display_steps(run)) do
    ids[#ids + 1] = s.id
  end
  return ids
end

local function goto_step_row(p, sid)
  local row = p.step_row and p.step_row[sid]
  if not row then
    return
  end
  for _, w in ipairs(pane_wins(p.buf)) do
    pcall(vim.api.nvim_win_set_cursor, w, { row, 0 })
  end
end

--- Expand a step (nil collapses) as the user's pick.
function M.expand(run_id, sid)
  local p = M.panes[run_id]
  if not p then
    return
  end
  p.picked = true
  p.expanded = sid
  M.render(run_id)
  if sid then
    goto_step_row(p, sid)
  end
end

--- Expand a step and put the cursor on the first line of its model turn `turn`
--- (the run timeline's <CR>); without a turn, or when the stream has no such turn
--- yet, on the step's header.
function M.goto_turn(run_id, sid, turn)
  local p = M.panes[run_id]
  if not p then
    return
  end
  M.expand(run_id, sid)
  local row = turn and p.turn_row and p.turn_row[turn]
  if row and row > #p.lines then
    row = #p.lines
  end
  if row then
    for _, w in ipairs(pane_wins(p.buf)) do
      pcall(vim.api.nvim_win_set_cursor, w, { row, 0 })
      vim.api.nvim_win_call(w, function()
        vim.cmd('normal! zt')
      end)
    end
  end
  return row
end

--- Go back to following the active step.
function M.follow(run_id)
  local p = M.panes[run_id]
  if not p then
    return
  end
  p.picked = false
  p.expanded = nil
  M.render(run_id)
end

--- The run's image on the cursor row (fetched and opened), if any: true when
--- there was one.
function M.open_attachment_at_cursor()
  local id = M.run_of(0)
  local p = id and M.panes[id]
  local run = id and store():get(id)
  local i = p and p.row_attachment and p.row_attachment[vim.api.nvim_win_get_cursor(0)[1]]
  local a = i and run and run.attachments and run.attachments[i]
  if not a then
    return false
  end
  require('boo.attach').open(id, a)
  return true
end

function M.toggle_at_cursor()
  local id = M.run_of(0)
  local p = id and M.panes[id]
  if not p then
    return
  end
  if M.open_attachment_at_cursor() then
    return
  end
  local row = vim.api.nvim_win_get_cursor(0)[1]
  local sid = p.row_step and p.row_step[row]
  if not sid and p.shown_expanded and p.step_row then
    -- Inside the expanded step's stream: <CR> collapses it.
    local last_roster = 0
    for _, r in pairs(p.step_row) do
      last_roster = math.max(last_roster, r)
    end
    if row > last_roster then
      sid = p.shown_expanded
    end
  end
  if not sid then
    return
  end
  if sid == p.shown_expanded then
    M.expand(id, nil)
  else
    M.expand(id, sid)
  end
end

function M.step_move(delta)
  local id = M.run_of(0)
  local p = id and M.panes[id]
  local run = id and store():get(id)
  if not p or not run or #run.steps == 0 then
    return
  end
  local ids = step_ids(run)
  local cur = p.shown_expanded
  if not cur then
    local row = vim.api.nvim_win_get_cursor(0)[1]
    cur = p.row_step and p.row_step[row]
  end
  local idx = 0
  for i, s in ipairs(ids) do
    if s == cur then
      idx = i
    end
  end
  local nxt
  if idx == 0 then
    nxt = delta > 0 and 1 or #ids
  else
    nxt = ((idx - 1 + delta) % #ids) + 1
  end
  M.expand(id, ids[nxt])
end

local function set_keymaps(buf)
  local km = config.get().keymaps or {}
  local function map(key, fn, desc)
    if key and key ~= '' then
      vim.keymap.set('n', key, fn, { buffer = buf, nowait = true, silent = true, desc = 'boo: ' .. desc })
    end
  end
  local boo = function()
    return require('boo')
  end
  map(km.toggle, M.toggle_at_cursor, 'expand/collapse the step')
  map(km.next_step, function()
    M.step_move(1)
  end, 'next step')
  map(km.prev_step, function()
    M.step_move(-1)
  end, 'previous step')
  map(km.follow, function()
    M.follow(M.run_of(0))
  end, 'follow the active step')
  map(km.cancel, function()
    boo().cancel(M.run_of(0))
  end, 'cancel the run')
  map(km.export, function()
    boo().export_prompt(M.run_of(0))
  end, 'export the report')
  map(km.traces, function()
    require('boo.traces').open(M.run_of(0))
  end, 'traces')
  map(km.rerun, function()
    boo().rerun(M.run_of(0))
  end, 're-run')
  map(km.close, M.close, 'close the pane')
  map(km.open_attachment, function()
    if not M.open_attachment_at_cursor() then
      -- Not on an image row: the usual gx (open the path or URL under the cursor).
      local f = vim.fn.expand('<cfile>')
      if f ~= '' then
        vim.ui.open(f)
      end
    end
  end, 'open the image under the cursor')
end

local function create_buf(run_id)
  local name = M.buf_name(run_id)
  local existing = vim.fn.bufnr(name)
  local buf = existing > 0 and existing or vim.api.nvim_create_buf(false, true)
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].swapfile = false
  vim.bo[buf].undolevels = -1
  if existing <= 0 then
    vim.api.nvim_buf_set_name(buf, name)
  end
  vim.b[buf].boo_run_id = run_id
  vim.bo[buf].filetype = 'boo-orchestrator'
  vim.bo[buf].modifiable = false
  set_keymaps(buf)
  return buf
end

local function set_win_opts(win)
  local wo = vim.wo[win]
  wo.number = false
  wo.relativenumber = false
  wo.signcolumn = 'no'
  wo.foldcolumn = '0'
  wo.foldenable = false
  wo.spell = false
  wo.list = false
  wo.wrap = true
  wo.linebreak = true
  wo.cursorline = true
  wo.winfixwidth = true
end

--- A window in this tab that already shows a boo pane, if any.
local function find_pane_win()
  for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    local b = vim.api.nvim_win_get_buf(w)
    if vim.bo[b].filetype == 'boo-orchestrator' then
      return w
    end
  end
end

local function open_win(buf)
  local o = config.get()
  local win = find_pane_win()
  if win then
    vim.api.nvim_win_set_buf(win, buf)
    vim.api.nvim_set_current_win(win)
    return win
  end
  if o.layout == 'tab' then
    vim.cmd('tabnew')
    local scratch = vim.api.nvim_get_current_buf()
    vim.api.nvim_win_set_buf(0, buf)
    if scratch ~= buf and vim.api.nvim_buf_is_valid(scratch) and vim.api.nvim_buf_get_name(scratch) == '' then
      pcall(vim.api.nvim_buf_delete, scratch, { force = true })
    end
  elseif o.layout == 'split' then
    vim.cmd('botright ' .. (o.size and tostring(o.size) or '') .. 'split')
    vim.api.nvim_win_set_buf(0, buf)
  else
    vim.cmd('botright ' .. tostring(o.size or math.max(40, math.floor(vim.o.columns / 2))) .. 'vsplit')
    vim.api.nvim_win_set_buf(0, buf)
  end
  win = vim.api.nvim_get_current_win()
  set_win_opts(win)
  return win
end

--- Open (or focus) the pane of a run. Unknown or partially known runs are
--- fetched with their transcripts first.
---@param run_id string
---@param opts? { focus?: boolean }
function M.open(run_id, opts)
  opts = opts or {}
  local client = require('boo.client')
  local run = store():ensure(run_id, client.now())
  local p = M.panes[run_id]
  if not valid(p) then
    p = { buf = create_buf(run_id), picked = false, lines = {} }
    M.panes[run_id] = p
  end
  M.last_run_id = run_id
  local prev = vim.api.nvim_get_current_win()
  open_win(p.buf)
  M.render(run_id)
  if opts.focus == false and vim.api.nvim_win_is_valid(prev) then
    vim.api.nvim_set_current_win(prev)
  end
  if run.stub and not run.loaded then
    client.refetch(run_id)
  end
  if not state.is_terminal(run.status) then
    ensure_tick()
  end
  return p.buf
end

--- Close the pane window (the buffer stays, :Boo pane reopens it).
function M.close()
  local win = vim.api.nvim_get_current_win()
  if #vim.api.nvim_tabpage_list_wins(0) > 1 then
    vim.api.nvim_win_close(win, false)
  elseif #vim.api.nvim_list_tabpages() > 1 then
    vim.cmd('tabclose')
  else
    local alt = vim.fn.bufnr('#')
    if alt > 0 and vim.api.nvim_buf_is_valid(alt) and alt ~= vim.api.nvim_get_current_buf() then
      vim.api.nvim_win_set_buf(win, alt)
    else
      vim.cmd('enew')
    end
  end
end

--- The server of some runs went away: show it in their panes.
function M.client_exited(client_id)
  local client = require('boo.client')
  client.expire_refetches(client_id)
  for id, cid in pairs(client.run_client) do
    if cid == client_id then
      local run = store():get(id)
      if run and not state.is_terminal(run.status) then
        run.disconnected = true
        run.version = run.version + 1
        M.mark_dirty(id)
      end
      client.run_client[id] = nil
    end
  end
end

--- Text of a run's pane buffer (tests and artifacts).
function M.text(run_id)
  local p = M.panes[run_id]
  if not valid(p) then
    return nil
  end
  return table.concat(vim.api.nvim_buf_get_lines(p.buf, 0, -1, false), '\n')
end

return M
