--- The one user command, :Boo {subcommand} [args], with completion.
local M = {}

local BANDS = { 'small', 'medium', 'large' }

local function boo()
  return require('boo')
end

local function notify(msg, level)
  require('boo.client').notify(msg, level)
end

--- Flow names for completion: the cached catalog, or a short blocking fetch.
local function flow_names()
  local b = boo()
  if not b._flows then
    local c = require('boo.client')
    if c.check_cmd() then
      return {}
    end
    local res = c.request_sync(c.root(0), 'boo/listFlows', vim.empty_dict(), 2000)
    if type(res) == 'table' and res.flows then
      b._flows = res.flows
    end
  end
  local names = {}
  for _, f in ipairs(b._flows or {}) do
    names[#names + 1] = f.name
  end
  table.sort(names)
  return names
end
M.flow_names = flow_names

--- :Boo flow [name] [band] <question>
local function flow_cmd(args)
  local c = require('boo.client')
  local root = c.root(0)
  boo().flows(root, function(err, flows)
    if err then
      return
    end
    local known = {}
    for _, f in ipairs(flows) do
      known[f.name] = true
    end
    local i = 1
    local name, band
    if args[i] and known[args[i]] then
      name = args[i]
      i = i + 1
    end
    if args[i] and vim.tbl_contains(BANDS, args[i]) then
      band = args[i]
      i = i + 1
    end
    local question = table.concat(args, ' ', i)
    name = name or require('boo.config').get().chat_flow
    local function go(q)
      q = vim.trim(q or '')
      if q == '' then
        notify('boo: :Boo flow needs a question, e.g. :Boo flow ' .. name .. ' small what could break?', vim.log.levels.WARN)
        return
      end
      boo().launch({ flow = name, band = band, question = q, root = root })
    end
    if vim.trim(question) == '' then
      vim.ui.input({ prompt = 'boo ' .. name .. ' focus: ' }, function(q)
        if q then
          go(q)
        end
      end)
    else
      go(question)
    end
  end)
end

--- :Boo workflow [--budget N] [--fresh] [name | file.js | %] [args…]
--- Without a name: the launcher's workflow list. A .js/.mjs path (or %, the
--- current file) runs that script (scriptPath); args are JSON or plain text.
local function workflow_cmd(args)
  local b = boo()
  local budget, fresh
  local i = 1
  while args[i] do
    if args[i] == '--budget' and args[i + 1] then
      local n, err = b.parse_budget(args[i + 1])
      if err then
        return notify('boo: ' .. err, vim.log.levels.WARN)
      end
      budget = n
      i = i + 2
    elseif args[i] == '--fresh' then
      fresh = true
      i = i + 1
    else
      break
    end
  end
  local target = args[i]
  if not target then
    return require('boo.launcher').open_workflows()
  end
  local spec = { budget = budget, fresh = fresh, args = b.parse_args(table.concat(args, ' ', i + 1)) }
  if target == '%' or target:match('%.m?js$') then
    local path = target == '%' and vim.api.nvim_buf_get_name(0) or vim.fn.fnamemodify(vim.fn.expand(target), ':p')
    if path == '' or vim.fn.filereadable(path) ~= 1 then
      return notify('boo: no workflow script at ' .. (path ~= '' and path or '(this buffer has no file)'), vim.log.levels.WARN)
    end
    spec.scriptPath = path
  else
    spec.workflow = target
  end
  b.launch_workflow(spec)
end

--- Persona names for completion: the agents of the cached catalog's flows.
local function persona_names()
  flow_names()
  local seen, names = {}, {}
  for _, f in ipairs(boo()._flows or {}) do
    for _, a in ipairs(f.agents or {}) do
      local name = type(a) == 'table' and a.persona or a
      if type(name) == 'string' and not seen[name] then
        seen[name] = true
        names[#names + 1] = name
      end
    end
  end
  table.sort(names)
  return names
end

--- :Boo ask [--background] <persona> <prompt>
local function ask_cmd(args)
  local background = false
  local i = 1
  if args[i] == '--background' then
    background = true
    i = i + 1
  end
  local persona = args[i]
  local prompt = vim.trim(table.concat(args, ' ', i + 1))
  if not persona or prompt == '' then
    return notify('boo: :Boo ask [--background] <persona> <prompt>, e.g. :Boo ask --background codebase-explorer where is the cache invalidated?',
      vim.log.levels.WARN)
  end
  boo().ask({ persona = persona, prompt = prompt, background = background })
end

M.subcommands = {
  ask = {
    desc = 'one agent on one task: :Boo ask [--background] <persona> <prompt>',
    run = ask_cmd,
    complete = function(n, words)
      if n == 1 then
        local out = { '--background' }
        vim.list_extend(out, persona_names())
        return out
      elseif n == 2 and words[1] == '--background' then
        return persona_names()
      end
      return {}
    end,
  },
  attach = {
    desc = 'images for the next launch: :Boo attach {path}… (add) | :Boo attach (list) | :Boo attach! (clear)',
    run = function(args, bang)
      require('boo.attach').command(args, bang)
    end,
    complete = function(_, _, arglead)
      return vim.fn.getcompletion(arglead, 'file')
    end,
  },
  agents = {
    desc = "this project's background agents; open one",
    run = function()
      boo().agents()
    end,
  },
  workflow = {
    desc = 'run a workflow: :Boo workflow [--budget N] [--fresh] [name | file.js | %] [args]',
    run = workflow_cmd,
    complete = function(n, _, arglead)
      if n == 1 then
        local out = { '--budget', '--fresh', '%' }
        vim.list_extend(out, vim.fn.getcompletion(arglead, 'file'))
        return out
      end
      return {}
    end,
  },
  launch = {
    desc = 'pick a flow (category → flow → size → focus)',
    run = function()
      boo().launcher()
    end,
  },
  flow = {
    desc = 'launch a flow: :Boo flow [name] [band] <question>',
    run = flow_cmd,
    complete = function(n, words)
      if n == 1 then
        local out = flow_names()
        vim.list_extend(out, BANDS)
        return out
      elseif n == 2 and not vim.tbl_contains(BANDS, words[1] or '') then
        return BANDS
      end
      return {}
    end,
  },
  chat = {
    desc = 'open the chat (/flow <focus>, /workflow <name> <args>)',
    run = function()
      boo().chat()
    end,
  },
  runs = {
    desc = "this project's runs; open one",
    run = function()
      boo().runs()
    end,
  },
  pane = {
    desc = 'reopen the pane of the last run',
    run = function(args)
      boo().open(args[1])
    end,
  },
  cancel = {
    desc = 'cancel the run of the pane (or the last run)',
    run = function(args)
      boo().cancel(args[1])
    end,
  },
  rerun = {
    desc = 'launch the last run again',
    run = function(args)
      boo().rerun(args[1])
    end,
  },
  export = {
    desc = 'export the report: register [x] | buffer | file [path]',
    run = function(args)
      local target = args[1]
      if not target then
        return boo().export_prompt()
      end
      if not vim.tbl_contains({ 'register', 'buffer', 'file' }, target) then
        return notify('boo: :Boo export register [x] | buffer | file [path]', vim.log.levels.WARN)
      end
      boo().export(nil, target, args[2] and table.concat(args, ' ', 2) or nil)
    end,
    complete = function(n, words, arglead)
      if n == 1 then
        return { 'register', 'buffer', 'file' }
      elseif n == 2 and words[1] == 'file' then
        return vim.fn.getcompletion(arglead, 'file')
      end
      return {}
    end,
  },
  traces = {
    desc = 'tool-call timings and token usage of the run',
    run = function(args)
      boo().traces(args[1])
    end,
  },
  timeline = {
    desc = 'the run’s timeline: steps as lanes, model turns and tool calls on a time axis',
    run = function(args)
      require('boo.timeline').open(args[1])
    end,
  },
  findings = {
    desc = 'the run’s verified findings in the quickfix list',
    run = function(args)
      if args[1] == 'all' then
        return require('boo.findings').list(nil)
      end
      boo().findings(args[1])
    end,
    complete = function(n)
      return n == 1 and { 'all' } or {}
    end,
  },
  stop = {
    desc = 'stop the boo servers of this editor',
    run = function()
      boo().stop()
    end,
  },
}

function M.names()
  local names = vim.tbl_keys(M.subcommands)
  table.sort(names)
  return names
end

function M.run(opts)
  local args = vim.deepcopy(opts.fargs or {})
  local sub = table.remove(args, 1)
  if not sub then
    return boo().launcher()
  end
  -- `:Boo attach!` (and `:Boo! attach`): the bang goes to the subcommand.
  local bang = opts.bang == true
  if sub:sub(-1) == '!' then
    sub, bang = sub:sub(1, -2), true
  end
  local def = M.subcommands[sub]
  if not def then
    return notify('boo: unknown subcommand `' .. sub .. '`; one of: ' .. table.concat(M.names(), ', '), vim.log.levels.WARN)
  end
  def.run(args, bang)
end

function M.complete(arglead, cmdline, cursorpos)
  local before = cmdline:sub(1, cursorpos)
  local words = vim.split(vim.trim(before), '%s+')
  table.remove(words, 1) -- "Boo" (or an abbreviation of it)
  if arglead ~= '' then
    table.remove(words) -- the word being completed
  end
  local function filter(list)
    return vim.tbl_filter(function(s)
      return vim.startswith(s, arglead)
    end, list)
  end
  if #words == 0 then
    return filter(M.names())
  end
  local sub = table.remove(words, 1)
  local def = M.subcommands[sub] or M.subcommands[sub:gsub('!$', '')]
  if not def or not def.complete then
    return {}
  end
  return filter(def.complete(#words + 1, words, arglead))
end

function M.create()
  vim.api.nvim_create_user_command('Boo', M.run, {
    nargs = '*',
    bang = true,
    complete = M.complete,
    desc = 'boo: multi-agent flows (launch, chat, runs, export, traces, findings)',
  })
end

return M
