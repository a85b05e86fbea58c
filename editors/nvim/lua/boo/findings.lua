--- :Boo findings — the verified findings the server published as
--- diagnostics (source "boo"), as a quickfix list for one run.
---
--- Diagnostics arrive through Neovim's own LSP client (no code here); the
--- message is "[<flow>/<persona>[, <persona>…]] <title>: <claim>". A run's
--- findings are the boo diagnostics whose flow matches the run's flow and
--- whose personas include one of the run's agents (or whose LSP `data.runId` is the run, when the
--- server sends it).
local M = {}

--- All diagnostics published by boo clients.
function M.all()
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(nil)) do
    if d.source == 'boo' then
      out[#out + 1] = d
    end
  end
  return out
end

local function lsp_data(d)
  local ud = d.user_data
  return type(ud) == 'table' and type(ud.lsp) == 'table' and ud.lsp.data or nil
end

--- The diagnostics that belong to a run (all boo ones when run is nil).
function M.for_run(run)
  local all = M.all()
  if not run then
    return all
  end
  local agents = {}
  for _, s in ipairs(run.steps or {}) do
    if s.agent then
      agents[s.agent] = true
    end
  end
  local out = {}
  for _, d in ipairs(all) do
    local data = lsp_data(d)
    local keep
    if type(data) == 'table' and data.runId then
      keep = data.runId == run.id
    else
      -- "[flow/persona] …" or, for a finding several agents made,
      -- "[flow/persona-a, persona-b] …".
      local flow, personas = (d.message or ''):match('^%[([^/%]]+)/([^%]]+)%]')
      keep = flow ~= nil and flow == run.flow
      if keep and next(agents) ~= nil then
        local any = false
        for persona in personas:gmatch('[^,%s]+') do
          any = any or agents[persona] == true
        end
        keep = any
      end
    end
    if keep then
      out[#out + 1] = d
    end
  end
  return out
end

--- Fill the quickfix list with a run's findings (or all, with no run) and open it.
---@return table[] items
function M.list(run_id)
  local client = require('boo.client')
  local run = run_id and client.store:get(run_id) or nil
  local diags = M.for_run(run)
  table.sort(diags, function(a, b)
    if a.bufnr ~= b.bufnr then
      return vim.api.nvim_buf_get_name(a.bufnr) < vim.api.nvim_buf_get_name(b.bufnr)
    end
    return a.lnum < b.lnum
  end)
  local items = vim.diagnostic.toqflist(diags)
  local title = run and string.format('boo findings · %s · %s · run %s', run.flow or '?', run.band or '?', run.id)
    or 'boo findings · all runs'
  vim.fn.setqflist({}, ' ', { title = title, items = items })
  if #items == 0 then
    client.notify('boo: no findings' .. (run and (' for run ' .. run.id) or '') .. ' yet')
  else
    vim.cmd('botright copen')
  end
  return items
end

return M
