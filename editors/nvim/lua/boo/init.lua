--- boo for Neovim: a thin client of the boo server (`boo serve`).
--- require('boo').setup(opts) — see :help boo.
local config = require('boo.config')

local M = {}

local augroup = vim.api.nvim_create_augroup('boo', { clear = true })

--- Highlight groups (all `default = true`: a colorscheme or the user wins).
M.highlights = {
  BooHeader = 'Title',
  BooTitle = 'Function',
  BooLabel = 'Label',
  BooQuestion = 'String',
  BooMuted = 'Comment',
  BooSection = 'Special',
  BooReportHeading = 'Title',
  BooText = 'Normal',
  BooThinking = 'Comment',
  BooToolCall = 'Function',
  BooToolName = 'Identifier',
  BooToolResult = 'String',
  BooToolError = 'DiagnosticError',
  BooAgent = 'Type',
  BooStepName = 'Identifier',
  BooStepExpanded = 'Title',
  BooStatusPending = 'Comment',
  BooStatusRunning = 'DiagnosticWarn',
  BooStatusDone = 'DiagnosticOk',
  BooStatusFailed = 'DiagnosticError',
  BooStatusCancelled = 'DiagnosticHint',
  BooStatusSkipped = 'Comment',
  BooTraceBar = 'DiagnosticInfo',
  BooTraceBarError = 'DiagnosticError',
  BooCacheHit = 'DiagnosticOk',
  BooCached = 'DiagnosticHint',
  BooPhase = 'Title',
  BooLog = 'Comment',
  BooAttachment = 'Underlined',
}

local function define_highlights()
  for group, link in pairs(M.highlights) do
    vim.api.nvim_set_hl(0, group, { link = link, default = true })
  end
end

local function client()
  return require('boo.client')
end

local function notify(msg, level)
  client().notify(msg, level)
end

local function current_run(run_id)
  local pane = require('boo.pane')
  return run_id or pane.run_of(0) or pane.last_run_id
end

--- Set up the plugin. Safe to call more than once.
function M.setup(opts)
  config.set(opts)
  M._setup_done = true
  define_highlights()
  require('boo.commands').create()
  vim.api.nvim_clear_autocmds({ group = augroup })
  vim.api.nvim_create_autocmd('ColorScheme', { group = augroup, callback = define_highlights })
  vim.api.nvim_create_autocmd('VimLeavePre', {
    group = augroup,
    callback = function()
      require('boo.pane').stop_timers()
    end,
  })
  local km = config.get().keymaps or {}
  local globals = {
    { km.launch, M.launcher, 'launch a flow' },
    { km.chat, M.chat, 'open the chat' },
    { km.runs, M.runs, 'runs history' },
  }
  for _, g in ipairs(globals) do
    if g[1] and g[1] ~= '' then
      vim.keymap.set('n', g[1], g[2], { desc = 'boo: ' .. g[3], silent = true })
    end
  end
  return M
end

--- The flow catalog (cached after the first answer). cb(err, flows).
M._flows = nil
function M.flows(root, cb)
  if M._flows then
    return cb(nil, M._flows)
  end
  client().request(root or client().root(0), 'boo/listFlows', vim.empty_dict(), function(err, res)
    if err or type(res) ~= 'table' then
      if not (err and err.notified) then
        notify('boo: cannot list flows: ' .. client().err_text(err), vim.log.levels.ERROR)
      end
      return cb(err or { message = 'empty answer' })
    end
    M._flows = res.flows or {}
    require('boo.launcher')._trusted = res.trusted == true
    cb(nil, M._flows)
  end)
end

--- The server's answer to a project flow in an untrusted folder.
M.UNTRUSTED_ROOT = -32005

--- Asks whether to trust `root` (its own .boo/ flows may then run); trusts it
--- through boo/trustRoot when the user says so. cb(trusted).
function M.offer_trust(root, flow, err, cb, what)
  local c = client()
  local trust = 'Trust this folder and launch'
  local prompt
  if what == 'workflow' then
    prompt = string.format(
      "boo: %q is this folder's own workflow (%s/.boo/workflows/ or .claude/workflows/), and the folder is not trusted. Review those scripts first. Trust it?",
      flow,
      root
    )
  else
    prompt = string.format(
      "boo: %q is this folder's own flow (%s/.boo/), and the folder is not trusted. Review its .boo/ folder first. Trust it?",
      flow,
      root
    )
  end
  vim.ui.select({ trust, 'Cancel' }, {
    prompt = prompt,
    kind = 'boo.trust',
  }, function(choice)
    if choice ~= trust then
      notify('boo: not launched: ' .. c.err_text(err), vim.log.levels.WARN)
      return cb(false)
    end
    c.request(root, 'boo/trustRoot', { root = root, trusted = true }, function(terr, res)
      if terr or type(res) ~= 'table' or not res.trusted then
        if not (terr and terr.notified) then
          notify('boo: cannot trust ' .. root .. ': ' .. c.err_text(terr or { message = 'empty answer' }),
            vim.log.levels.ERROR)
        end
        return cb(false)
      end
      M._flows = nil
      notify('boo: trusted ' .. res.root .. ' (withdraw with `boo trust --revoke`)', vim.log.levels.INFO)
      cb(true)
    end)
  end)
end

--- Launch a flow and open its pane.
---@param spec { flow: string, band?: string, question: string, root?: string, fast?: boolean, model?: string, focus?: boolean }
---@param cb? fun(err: table?, run_id: string?)
function M.launch(spec, cb)
  local c = client()
  local root = spec.root or c.root(0)
  local o = config.get()
  local params = {
    flow = spec.flow or o.chat_flow,
    band = spec.band or o.default_band or 'small',
    input = { question = spec.question },
    root = root,
  }
  if spec.fast then
    params.fast = true
  end
  if spec.model or o.model then
    params.model = spec.model or o.model
  end
  require('boo.attach').apply(params)
  c.request(root, 'boo/launchFlow', params, function(err, res, lsp_client)
    if err and err.code == M.UNTRUSTED_ROOT and not spec._trust_asked then
      -- A project flow in a folder the user has not trusted: ask, trust, launch again.
      return M.offer_trust(root, params.flow, err, function(trusted)
        if trusted then
          M.launch(vim.tbl_extend('force', spec, { root = root, _trust_asked = true }), cb)
        elseif cb then
          cb(err)
        end
      end)
    end
    if err or type(res) ~= 'table' or not res.runId then
      if not (err and err.notified) then
        notify('boo: cannot launch ' .. params.flow .. ': ' .. c.err_text(err or { message = 'no runId in the answer' }),
          vim.log.levels.ERROR)
      end
      return cb and cb(err or { message = 'no runId' })
    end
    local run = c.store:ensure(res.runId, c.now())
    run.flow = run.flow or params.flow
    run.band = run.band or params.band
    run.question = run.question or spec.question
    run.root = run.root or root
    run.fast = spec.fast
    if lsp_client then
      c.run_client[res.runId] = lsp_client.id
    end
    M._launched_with_images(run, params, lsp_client)
    -- runStarted normally came before the answer; without it the pane
    -- fetches the run (roster included) itself.
    if #run.steps > 0 then
      run.stub = false
    end
    require('boo.pane').open(res.runId, { focus = spec.focus })
    if cb then
      cb(nil, res.runId)
    end
  end)
end

--- The workflow catalog of `root` (boo/listWorkflows). cb(err, workflows, trusted).
function M.workflows(root, cb)
  local c = client()
  root = root or c.root(0)
  c.request(root, 'boo/listWorkflows', { root = root }, function(err, res)
    if err or type(res) ~= 'table' then
      if not (err and err.notified) then
        notify('boo: cannot list workflows: ' .. c.err_text(err or { message = 'empty answer' }), vim.log.levels.ERROR)
      end
      return cb(err or { message = 'empty answer' })
    end
    cb(nil, res.workflows or {}, res.trusted == true)
  end)
end

--- Args typed by the user: valid JSON is sent as JSON, anything else as the
--- text itself; empty text sends no args (the script sees `undefined`).
function M.parse_args(text)
  text = vim.trim(text or '')
  if text == '' then
    return nil
  end
  local ok, v = pcall(vim.json.decode, text)
  if ok and v ~= nil then
    return v
  end
  return text
end

--- A budget typed by the user: empty is none; a positive whole number of
--- output tokens (`20000`, `20,000`, `20k`). Returns nil, error message otherwise.
function M.parse_budget(text)
  text = vim.trim(text or ''):gsub('[,_%s]', '')
  if text == '' then
    return nil
  end
  local num, k = text:match('^(%d+%.?%d*)([kK]?)$')
  local n = num and tonumber(num)
  if n then
    n = math.floor(n * (k ~= '' and 1000 or 1) + 0.5)
  end
  if not n or n <= 0 then
    return nil, 'the budget is a number of output tokens, like 20000 or 20k (got "' .. text .. '"); leave it empty for none'
  end
  return n
end

--- Launch a workflow and open its pane.
---@param spec { workflow?: string, scriptPath?: string, script?: string, args?: any, budget?: integer, fresh?: boolean, root?: string, model?: string, focus?: boolean }
---@param cb? fun(err: table?, run_id: string?)
function M.launch_workflow(spec, cb)
  local c = client()
  local root = spec.root or c.root(0)
  local o = config.get()
  local params = { root = root }
  for _, k in ipairs({ 'workflow', 'scriptPath', 'script', 'budget' }) do
    if spec[k] ~= nil then
      params[k] = spec[k]
    end
  end
  if spec.args ~= nil then
    params.args = spec.args
  end
  if spec.fresh then
    params.fresh = true
  end
  if spec.model or o.model then
    params.model = spec.model or o.model
  end
  local name = params.workflow or params.scriptPath or 'script'
  require('boo.attach').apply(params)
  c.request(root, 'boo/launchWorkflow', params, function(err, res, lsp_client)
    if err and err.code == M.UNTRUSTED_ROOT and not spec._trust_asked then
      -- A project workflow in a folder the user has not trusted: ask, trust, launch again.
      return M.offer_trust(root, name, err, function(trusted)
        if trusted then
          M.launch_workflow(vim.tbl_extend('force', spec, { root = root, _trust_asked = true }), cb)
        elseif cb then
          cb(err)
        end
      end, 'workflow')
    end
    if err or type(res) ~= 'table' or not res.runId then
      if not (err and err.notified) then
        notify('boo: cannot launch ' .. name .. ': ' .. c.err_text(err or { message = 'no runId in the answer' }),
          vim.log.levels.ERROR)
      end
      return cb and cb(err or { message = 'no runId' })
    end
    local run = c.store:ensure(res.runId, c.now())
    run.flow = run.flow or params.workflow or vim.fn.fnamemodify(params.scriptPath or 'script', ':t:r')
    run.root = run.root or root
    run.kind = 'workflow'
    run.launch = params
    if lsp_client then
      c.run_client[res.runId] = lsp_client.id
    end
    M._launched_with_images(run, params, lsp_client)
    if #run.steps > 0 then
      run.stub = false
    end
    require('boo.pane').open(res.runId, { focus = spec.focus })
    if cb then
      cb(nil, res.runId)
    end
  end)
end

--- A background agent (boo/spawnAgent): `spec = { persona, prompt, root?, model?,
--- background?, focus? }`. In the foreground the run's pane opens like a flow's; with
--- `background` only a message says it started. Either way a notification says when
--- it ends (see client.lua, `agent_runs`). cb(err, run_id).
function M.ask(spec, cb)
  local c = client()
  local root = spec.root or c.root(0)
  local o = config.get()
  local params = { persona = spec.persona, prompt = spec.prompt, root = root }
  if spec.model or o.model then
    params.model = spec.model or o.model
  end
  require('boo.attach').apply(params)
  c.request(root, 'boo/spawnAgent', params, function(err, res, lsp_client)
    if err or type(res) ~= 'table' or not res.runId then
      if not (err and err.notified) then
        notify('boo: cannot start agent ' .. tostring(spec.persona) .. ': ' .. c.err_text(err or { message = 'no runId in the answer' }),
          vim.log.levels.ERROR)
      end
      return cb and cb(err or { message = 'no runId' })
    end
    local run = c.store:ensure(res.runId, c.now())
    run.flow = run.flow or 'agent'
    run.question = run.question or spec.prompt
    run.root = run.root or root
    run.kind = 'agent'
    c.agent_runs[res.runId] = { persona = spec.persona, prompt = spec.prompt }
    if lsp_client then
      c.run_client[res.runId] = lsp_client.id
    end
    M._launched_with_images(run, params, lsp_client)
    if #run.steps > 0 then
      run.stub = false
    end
    if spec.background then
      notify('boo: ' .. spec.persona .. ' is working in the background; :Boo agents lists it')
    else
      require('boo.pane').open(res.runId, { focus = spec.focus })
    end
    if cb then
      cb(nil, res.runId)
    end
  end)
end

--- This project's background agents (boo/listAgents) with persona, prompt,
--- status, elapsed time and tokens, newest first; picking one opens its pane.
--- cb(err, run_id). See boo/agents.lua.
function M.agents(root, cb)
  return require('boo.agents').pick(root, cb)
end

--- Background agents and agents' children for a statusline, e.g.
--- "boo: 2 running, 1 done" ('' when there are none). See :help boo-statusline.
function M.statusline()
  return require('boo.agents').statusline()
end

--- A launch that carried images was accepted: they leave the queue, and the
--- run's `attachments` (names, sizes, dimensions) are fetched for the pane.
function M._launched_with_images(run, params, lsp_client)
  if type(params.attachments) ~= 'table' then
    return
  end
  require('boo.attach').launched(params)
  client().ask_run_info(run, lsp_client and lsp_client.id, true)
end

--- Open the pane of a run (default: the last one).
function M.open(run_id)
  run_id = current_run(run_id)
  if not run_id then
    return notify('boo: no run yet: launch one with :Boo or pick one with :Boo runs', vim.log.levels.WARN)
  end
  local c = client()
  local run = c.store:get(run_id)
  if not run or not run.loaded then
    -- Rebuild from the server (transcripts included), then show it.
    c.store:ensure(run_id, c.now())
  end
  return require('boo.pane').open(run_id)
end

function M.cancel(run_id, cb)
  run_id = current_run(run_id)
  if not run_id then
    return notify('boo: no run to cancel', vim.log.levels.WARN)
  end
  local c = client()
  c.run_request(run_id, 'boo/cancelRun', { runId = run_id }, function(err, res)
    if err then
      notify('boo: cancel: ' .. c.err_text(err), vim.log.levels.WARN)
    elseif type(res) == 'table' and res.status then
      if require('boo.state').is_terminal(res.status) then
        c.store:step_updated({ runId = run_id, runStatus = res.status }, c.now())
        require('boo.pane').mark_dirty(run_id)
      end
      notify('boo: run ' .. run_id .. ' → ' .. res.status)
    end
    if cb then
      cb(err, res)
    end
  end)
end

--- Launch the same flow, band, focus and root again (a workflow run: the
--- same launch again, when this editor launched it).
function M.rerun(run_id, cb)
  run_id = current_run(run_id)
  local run = run_id and client().store:get(run_id)
  if run and run.launch then
    return M.launch_workflow(vim.tbl_extend('force', run.launch, {}), cb)
  end
  if not run or not run.flow or not run.question then
    return notify('boo: nothing to re-run', vim.log.levels.WARN)
  end
  M.launch({ flow = run.flow, band = run.band, question = run.question, root = run.root, fast = run.fast }, cb)
end

--- Export a run's report (markdown).
---@param target 'register'|'buffer'|'file'
---@param arg? string register name or file path
function M.export(run_id, target, arg, cb)
  run_id = current_run(run_id)
  if not run_id then
    return notify('boo: no run to export', vim.log.levels.WARN)
  end
  local c = client()
  c.run_request(run_id, 'boo/exportRun', { runId = run_id, format = 'markdown' }, function(err, res)
    if err or type(res) ~= 'table' or type(res.content) ~= 'string' then
      notify('boo: export: ' .. c.err_text(err or { message = 'no content' }), vim.log.levels.ERROR)
      return cb and cb(err or { message = 'no content' })
    end
    local lines = vim.split(res.content, '\n', { plain = true })
    local where
    if target == 'buffer' then
      vim.cmd('tabnew')
      local buf = vim.api.nvim_get_current_buf()
      vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
      vim.bo[buf].filetype = 'markdown'
      local name = res.fileName or ('boo-' .. run_id .. '.md')
      if vim.fn.bufnr(name) < 0 then
        pcall(vim.api.nvim_buf_set_name, buf, name)
      end
      vim.bo[buf].modified = false
      where = 'buffer ' .. buf
    elseif target == 'file' then
      local path = (arg and arg ~= '') and arg or (res.fileName or ('boo-' .. run_id .. '.md'))
      path = vim.fn.fnamemodify(vim.fn.expand(path), ':p')
      vim.fn.mkdir(vim.fn.fnamemodify(path, ':h'), 'p')
      if vim.fn.writefile(lines, path) ~= 0 then
        notify('boo: export: cannot write ' .. path, vim.log.levels.ERROR)
        return cb and cb({ message = 'cannot write ' .. path })
      end
      where = path
    else
      local reg = (arg and arg ~= '') and arg or config.get().export_register
        or (vim.fn.has('clipboard') == 1 and '+' or '"')
      vim.fn.setreg(reg, res.content)
      where = 'register ' .. reg
    end
    notify('boo: report exported to ' .. where)
    if cb then
      cb(nil, where, res)
    end
  end)
end

function M.export_prompt(run_id)
  run_id = current_run(run_id)
  vim.ui.select({ 'register', 'buffer', 'file' }, { prompt = 'boo: export the report to' }, function(target)
    if not target then
      return
    end
    if target == 'file' then
      vim.ui.input({ prompt = 'boo: file: ', completion = 'file' }, function(path)
        if path then
          M.export(run_id, 'file', path)
        end
      end)
    else
      M.export(run_id, target)
    end
  end)
end

--- :Boo runs — the project's past runs; picking one rebuilds its pane.
function M.runs(root, cb)
  local c = client()
  root = root or c.root(0)
  c.request(root, 'boo/listRuns', { root = root, limit = 50 }, function(err, res)
    if err or type(res) ~= 'table' then
      if not (err and err.notified) then
        notify('boo: cannot list runs: ' .. c.err_text(err), vim.log.levels.ERROR)
      end
      return cb and cb(err)
    end
    local runs = res.runs or {}
    if #runs == 0 then
      notify('boo: no runs yet for ' .. root)
      return cb and cb(nil, nil)
    end
    local now = c.now()
    local render = require('boo.render')
    vim.ui.select(runs, {
      prompt = 'boo runs · ' .. root,
      kind = 'boo.run',
      format_item = function(r)
        return render.run_summary(r, now)
      end,
    }, function(r)
      if not r then
        return cb and cb(nil, nil)
      end
      local run = c.store:ensure(r.runId, now)
      run.root = run.root or r.root
      run.flow = run.flow or r.flow
      run.band = run.band or r.band
      run.question = run.question or r.question
      -- Always rebuild from the transcript: the pane may be stale.
      run.loaded = false
      run.stub = true
      local buf = require('boo.pane').open(r.runId)
      if cb then
        cb(nil, r.runId, buf)
      end
    end)
  end)
end

function M.findings(run_id)
  return require('boo.findings').list(current_run(run_id))
end

function M.traces(run_id)
  return require('boo.traces').open(current_run(run_id))
end

function M.launcher()
  return require('boo.launcher').open()
end

function M.chat()
  return require('boo.chat').open()
end

--- Stop the servers of this editor (runs keep going in their database only
--- while a server owns them; a new server resumes unfinished runs).
function M.stop()
  client().stop_all()
end

return M
