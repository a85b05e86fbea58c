--- The trace view (`t` in the pane, :Boo traces): per step, one line per
--- tool call with a timing bar scaled to the step, latency and outcome, and
--- the token breakdown with the cache hit rate.
local render = require('boo.render')

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
      local b = render.traces(run, traces, { now = client.now() })
      local buf = show(run_id, b)
      if cb then
        cb(nil, buf, traces)
      end
    end)
  end)
end

return M
