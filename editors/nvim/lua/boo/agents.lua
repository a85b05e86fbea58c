--- Background agents in Neovim: the `:Boo agents` list (boo/listAgents),
--- finish notifications for agent runs this editor follows and for the
--- children agents spawn in runs open in a pane, and a statusline component.
local state = require('boo.state')

local M = {}

local function client()
  return require('boo.client')
end

local function one_line(s, n)
  s = tostring(s or ''):gsub('%s+', ' ')
  if #s > n then
    s = s:sub(1, n - 3) .. '...'
  end
  return s
end

--- Tokens of a usage object (total, else input + output), or nil.
local function usage_tokens(u)
  if type(u) ~= 'table' then
    return nil
  end
  if type(u.totalTokens) == 'number' and u.totalTokens > 0 then
    return u.totalTokens
  end
  local n = (tonumber(u.inputTokens) or 0) + (tonumber(u.outputTokens) or 0)
  return n > 0 and n or nil
end

--- Tokens of a boo/getRun answer: the run's usage, else the sum of its steps'.
local function answer_tokens(res)
  if type(res) ~= 'table' or type(res.run) ~= 'table' then
    return nil
  end
  local n = usage_tokens(res.run.usage)
  if n then
    return n
  end
  local total, any = 0, false
  for _, sp in ipairs(type(res.steps) == 'table' and res.steps or {}) do
    local t = usage_tokens(sp.usage)
    if t then
      total, any = total + t, true
    end
  end
  return any and total or nil
end

--- One line of the agents list: status, persona, elapsed time, tokens, prompt
--- (and, for a child an agent spawned, the step that spawned it).
function M.format(a, tokens, now)
  local render = require('boo.render')
  local created = state.parse_time(a.createdAt)
  local finished = state.parse_time(a.finishedAt)
  local elapsed = created and ((finished or (state.is_terminal(a.status) and created) or now) - created) or nil
  local child = (type(a.parentStepId) == 'string' and a.parentStepId ~= '') and (' (spawned by ' .. a.parentStepId .. ')') or ''
  return string.format('%-9s %-26s %7s %10s  %s%s', a.status or '?', one_line(a.persona, 26),
    elapsed and render.duration(elapsed) or '', tokens and (render.tokens(tokens) .. ' tok') or '- tok',
    one_line(a.question, 60), child)
end

--- The tokens of each listed agent: what the list or this editor knows, else
--- one boo/getRun each (no transcripts), waited for at most `wait_ms`.
local function with_tokens(root, agents, wait_ms, cb)
  local c = client()
  local tokens, pending, done = {}, 0, false
  local function finish()
    if not done then
      done = true
      cb(tokens)
    end
  end
  for _, a in ipairs(agents) do
    local run = c.store:get(a.runId)
    local known = usage_tokens(a.usage) or (run and state.is_terminal(run.status) and state.run_tokens(run)) or nil
    if known then
      tokens[a.runId] = known
    else
      pending = pending + 1
      c.request(a.root or root, 'boo/getRun', { runId = a.runId }, function(err, res)
        -- A running agent's usage is known once a turn ended: the stream this
        -- editor followed may know more.
        tokens[a.runId] = (not err and answer_tokens(res)) or (run and state.run_tokens(run)) or nil
        pending = pending - 1
        if pending == 0 then
          finish()
        end
      end)
    end
  end
  if pending == 0 then
    return finish()
  end
  vim.defer_fn(finish, wait_ms)
end

--- `:Boo agents`: this project's background agents, newest first; picking one
--- opens its pane (stream and result). Agents still running are followed: a
--- notification says when they end, and the statusline counts them.
--- cb(err, run_id).
function M.pick(root, cb)
  local c = client()
  root = root or c.root(0)
  c.request(root, 'boo/listAgents', { root = root, limit = 50 }, function(err, res)
    if err or type(res) ~= 'table' then
      if not (err and err.notified) then
        c.notify('boo: cannot list agents: ' .. c.err_text(err), vim.log.levels.ERROR)
      end
      return cb and cb(err)
    end
    local agents = res.agents or {}
    if #agents == 0 then
      c.notify('boo: no background agents yet for ' .. root .. ' (:Boo ask <persona> <prompt>)')
      return cb and cb(nil, nil)
    end
    for _, a in ipairs(agents) do
      if not state.is_terminal(a.status) and not c.agent_runs[a.runId] then
        c.agent_runs[a.runId] = { persona = a.persona, prompt = a.question }
      end
    end
    M.changed()
    with_tokens(root, agents, 3000, function(tokens)
      local now = c.now()
      vim.ui.select(agents, {
        prompt = 'boo agents · ' .. root,
        kind = 'boo.agent',
        format_item = function(a)
          return M.format(a, tokens[a.runId], now)
        end,
      }, function(a)
        if not a then
          return cb and cb(nil, nil)
        end
        local run = c.store:ensure(a.runId, now)
        run.root = run.root or a.root
        run.flow = run.flow or a.flow
        run.question = run.question or a.question
        run.kind = 'agent'
        -- Always rebuild from the transcript: the stream and the result.
        run.loaded = false
        run.stub = true
        require('boo.pane').open(a.runId)
        if cb then
          cb(nil, a.runId)
        end
      end)
    end)
  end)
end

--- Is the pane of this run open (its buffer exists)?
local function pane_open(run_id)
  local p = require('boo.pane').panes[run_id]
  return p ~= nil and p.buf ~= nil and vim.api.nvim_buf_is_valid(p.buf)
end

local LEVEL = { completed = vim.log.levels.INFO }

--- After a `boo/stepUpdated` was applied: notify the end of an agent run this
--- editor follows, and of a child an agent spawned in a run open in a pane.
function M.on_step_updated(p)
  local c = client()
  local agent = c.agent_runs[p.runId]
  local changed = agent ~= nil
  if agent and type(p.runStatus) == 'string' and state.is_terminal(p.runStatus) and not agent.told then
    agent.told = true
    changed = true
    c.notify(string.format('boo: agent %s %s: %s (:Boo pane %s)', agent.persona, p.runStatus,
      one_line(agent.prompt, 60), p.runId), LEVEL[p.runStatus] or vim.log.levels.WARN)
  end
  local run = c.store:get(p.runId)
  local step = run and type(p.stepId) == 'string' and run.by_id[p.stepId]
  if step and state.parent_of(run, step) then
    changed = true
    if state.TERMINAL_STEP[step.status] and not step.told and pane_open(run.id) then
      step.told = true
      c.notify(string.format('boo: %s (%s, spawned by %s) %s: %s', step.id, step.agent or 'agent',
        step.parentStepId, step.status, one_line(step.label or step.id, 60)),
        LEVEL[step.status] or vim.log.levels.WARN)
    end
  end
  if changed then
    M.changed()
  end
end

--- Counts for the statusline: background agents this editor follows, and the
--- children of agents in runs open in a pane.
function M.counts()
  local c = client()
  local n = { running = 0, done = 0, failed = 0, cancelled = 0 }
  local function count(status)
    if status == 'completed' then
      n.done = n.done + 1
    elseif status == 'cancelled' or status == 'skipped' then
      n.cancelled = n.cancelled + 1
    elseif state.is_terminal(status) then
      n.failed = n.failed + 1
    else
      n.running = n.running + 1
    end
  end
  for id in pairs(c.agent_runs) do
    local run = c.store:get(id)
    count(run and run.status or 'running')
  end
  for id in pairs(require('boo.pane').panes) do
    local run = pane_open(id) and c.store:get(id)
    if run then
      for _, s in ipairs(run.steps) do
        if state.parent_of(run, s) then
          count(s.status)
        end
      end
    end
  end
  return n
end

--- "boo: 2 running, 1 done" (then ", N failed", ", N cancelled"; '' when
--- there is nothing to count).
function M.statusline()
  local n = M.counts()
  local parts = {}
  if n.running > 0 then
    parts[#parts + 1] = n.running .. ' running'
  end
  if n.done > 0 then
    parts[#parts + 1] = n.done .. ' done'
  end
  if n.failed > 0 then
    parts[#parts + 1] = n.failed .. ' failed'
  end
  if n.cancelled > 0 then
    parts[#parts + 1] = n.cancelled .. ' cancelled'
  end
  if #parts == 0 then
    return ''
  end
  return 'boo: ' .. table.concat(parts, ', ')
end

--- The counts may have changed: redraw statuslines and tell `User BooAgents`
--- autocommands, when the text changed.
local last
function M.changed()
  vim.schedule(function()
    local text = M.statusline()
    if text == last then
      return
    end
    last = text
    pcall(vim.cmd, 'redrawstatus!')
    pcall(vim.api.nvim_exec_autocmds, 'User', { pattern = 'BooAgents', modeline = false })
  end)
end

return M
