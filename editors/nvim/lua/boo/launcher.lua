--- :Boo / :Boo launch — category → flow → size (+ fast toggle) → focus,
--- all through vim.ui.select / vim.ui.input (so any UI plugin restyles it).
local config = require('boo.config')

local M = {}

M.CATEGORIES = { 'analysis', 'discovery', 'planning', 'authoring', 'review' }

local function title(s)
  return (s:gsub('^%l', string.upper))
end

local function band_size(flow, band)
  local b = type(flow.bands) == 'table' and flow.bands[band]
  return type(b) == 'table' and #b or nil
end

local function ask_focus(root, flow, band, fast)
  vim.ui.input({ prompt = string.format('boo %s (%s%s) focus: ', flow.name, band, fast and ', fast' or '') }, function(text)
    if text == nil then
      return
    end
    text = vim.trim(text)
    if text == '' then
      require('boo.client').notify('boo: a focus is required (what should the agents look at?)', vim.log.levels.WARN)
      return
    end
    require('boo').launch({ flow = flow.name, band = band, question = text, root = root, fast = fast or nil })
  end)
end

local function ask_band(root, flow, fast)
  local default = config.get().default_band or 'small'
  local items = {}
  for _, band in ipairs({ 'small', 'medium', 'large' }) do
    items[#items + 1] = { band = band }
  end
  items[#items + 1] = { toggle = true }
  items[#items + 1] = { attach = true }
  vim.ui.select(items, {
    prompt = 'boo ' .. flow.name .. ': size',
    kind = 'boo.band',
    format_item = function(it)
      if it.toggle then
        return string.format('[%s] fast mode (toggle)', fast and 'x' or ' ')
      end
      if it.attach then
        local q = require('boo.attach').queue
        return string.format('[%d] images for the agents (add one…)%s', #q,
          #q > 0 and (': ' .. table.concat(vim.tbl_map(function(x)
            return vim.fn.fnamemodify(x, ':t')
          end, q), ', ')) or '')
      end
      local n = band_size(flow, it.band)
      return string.format('%s%s%s%s', it.band, it.band == default and ' (default)' or '',
        n and string.format(' — %d step%s', n, n == 1 and '' or 's') or '', fast and ' · fast' or '')
    end,
  }, function(it)
    if not it then
      return
    end
    if it.toggle then
      return ask_band(root, flow, not fast)
    end
    if it.attach then
      -- The attachments step: one image path (file completion), then back here.
      return vim.ui.input({ prompt = 'boo image to attach (PNG, JPEG, GIF, WebP): ', completion = 'file' }, function(path)
        if path and vim.trim(path) ~= '' then
          local _, err = require('boo.attach').add(path)
          if err then
            require('boo.client').notify('boo: not attached: ' .. err, vim.log.levels.WARN)
          end
        end
        ask_band(root, flow, fast)
      end)
    end
    ask_focus(root, flow, it.band, fast)
  end)
end

--- Workflow: args (JSON or text), then an optional token budget, then launch.
local function ask_workflow_args(root, wf)
  local boo = require('boo')
  vim.ui.input({ prompt = string.format('boo workflow %s args (JSON or text, empty for none): ', wf.name) }, function(text)
    if text == nil then
      return
    end
    local function ask_budget()
      vim.ui.input({ prompt = 'boo token budget (output tokens, e.g. 20k; empty for none): ' }, function(btext)
        if btext == nil then
          return
        end
        local budget, err = boo.parse_budget(btext)
        if err then
          require('boo.client').notify('boo: ' .. err, vim.log.levels.WARN)
          return ask_budget()
        end
        boo.launch_workflow({ workflow = wf.name, args = boo.parse_args(text), budget = budget, root = root })
      end)
    end
    ask_budget()
  end)
end

--- How a workflow shows in the list: name, source mark, description, phases.
function M.format_workflow(w, trusted)
  local desc = (w.description or ''):gsub('%s+', ' ')
  local mark = ''
  if w.source == 'project' then
    mark = trusted and ' [project]' or ' [project, untrusted]'
  elseif w.source == 'user' then
    mark = ' [user]'
  end
  local phases = {}
  for _, ph in ipairs(type(w.phases) == 'table' and w.phases or {}) do
    if type(ph) == 'table' and type(ph.title) == 'string' then
      phases[#phases + 1] = ph.title
    end
  end
  return string.format('%s%s — %s%s', w.name, mark, desc ~= '' and desc or w.name,
    #phases > 0 and (' (' .. table.concat(phases, ' → ') .. ')') or '')
end

--- The workflow list (the launcher's "workflow" category).
function M.open_workflows(root)
  root = root or require('boo.client').root(0)
  require('boo').workflows(root, function(err, list, trusted)
    if err then
      return
    end
    if #list == 0 then
      return require('boo.client').notify('boo: no workflow for ' .. root .. ' (add one to .boo/workflows/)')
    end
    vim.ui.select(list, {
      prompt = 'boo: workflow',
      kind = 'boo.workflow',
      format_item = function(w)
        return M.format_workflow(w, trusted)
      end,
    }, function(wf)
      if wf then
        ask_workflow_args(root, wf)
      end
    end)
  end)
end

--- Run the launcher. `root` defaults to the current buffer's project.
function M.open(root)
  local boo = require('boo')
  root = root or require('boo.client').root(0)
  boo.flows(root, function(err, flows)
    if err then
      return
    end
    local by_cat = {}
    for _, f in ipairs(flows) do
      local c = f.category or 'analysis'
      by_cat[c] = by_cat[c] or {}
      table.insert(by_cat[c], f)
    end
    local cats = {}
    for _, c in ipairs(M.CATEGORIES) do
      if by_cat[c] then
        cats[#cats + 1] = c
      end
    end
    for c in pairs(by_cat) do
      if not vim.tbl_contains(M.CATEGORIES, c) then
        cats[#cats + 1] = c
      end
    end
    -- Workflows sit beside the flow categories.
    cats[#cats + 1] = 'workflow'
    vim.ui.select(cats, {
      prompt = 'boo: category',
      kind = 'boo.category',
      format_item = function(c)
        if c == 'workflow' then
          return 'Workflow (scripts: agent(), parallel(), pipeline())'
        end
        return string.format('%s (%d)', title(c), #by_cat[c])
      end,
    }, function(cat)
      if not cat then
        return
      end
      if cat == 'workflow' then
        return M.open_workflows(root)
      end
      local list = by_cat[cat]
      table.sort(list, function(a, b)
        return a.name < b.name
      end)
      vim.ui.select(list, {
        prompt = 'boo: ' .. title(cat) .. ' flow',
        kind = 'boo.flow',
        format_item = function(f)
          local desc = (f.description or ''):gsub('%s+', ' ')
          local mark = ''
          if f.source == 'project' then
            mark = M._trusted and ' [project]' or ' [project, untrusted]'
          end
          return string.format('%s%s — %s', f.title or f.name, mark, desc ~= '' and desc or f.name)
        end,
      }, function(flow)
        if flow then
          ask_band(root, flow, false)
        end
      end)
    end)
  end)
end

return M
