--- The LSP side: one `boo serve` client per project root (started through
--- vim.lsp.start and reused), requests that wait for `initialize`, and the
--- notification handlers that feed boo.state.
local config = require('boo.config')
local server = require('boo.server')
local state = require('boo.state')

local M = {}

--- Every run this editor has seen, across clients (run ids are UUIDs).
M.store = state.new()
--- run id → LSP client id that reported it (for refetches and cancels).
M.run_client = {}
--- client id → callbacks waiting for `initialize` to finish.
local waiting = {}
--- run id → wall clock of the last failed refetch (backoff).
local refetch_failed_at = {}

function M.now()
  local sec, usec = vim.uv.gettimeofday()
  return sec * 1000 + math.floor(usec / 1000)
end

local has_011 = vim.fn.has('nvim-0.11') == 1

--- client:request on 0.11, client.request on 0.10.
local function raw_request(client, method, params, handler)
  if has_011 then
    return client:request(method, params, handler)
  end
  return client.request(method, params, handler)
end

local function stopped(c)
  if has_011 then
    return c:is_stopped()
  end
  return c.is_stopped()
end
M.stopped = stopped

--- The project root for a buffer: the nearest `.git` upwards, else the cwd.
--- Inside a boo pane, the root of the run it shows.
function M.root(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local ok, run_id = pcall(function()
    return vim.b[bufnr].boo_run_id
  end)
  if ok and run_id then
    local run = M.store:get(run_id)
    if run and run.root then
      return run.root
    end
  end
  local root = vim.fs.root(bufnr, { '.git' }) or vim.fn.getcwd()
  return vim.uv.fs_realpath(root) or root
end

local function notify(msg, level)
  vim.notify(msg, level or vim.log.levels.INFO, { title = 'boo' })
end
M.notify = notify

--- Background agents this editor started (runId → { persona, prompt, told }): a
--- notification says when each ends.
M.agent_runs = {}

--- Is the server binary there? Returns nil or one actionable message.
--- `cmd` nil: the binary the plugin finds by itself (boo.server).
function M.check_cmd(cmd)
  if cmd == nil then
    cmd = config.get().cmd
  end
  if cmd == nil then
    if server.find() then
      return nil
    end
    return table.concat({
      'boo: the server binary was not found: ' .. server.describe(nil) .. '.',
      "Fix: build it in the plugin's repository (`cargo build --release`; with lazy.nvim: build = 'cargo build --release'),",
      "or put boo on $PATH, or point the plugin at it: require('boo').setup({ cmd = { '/path/to/boo', 'serve' } }).",
      'Run :checkhealth boo for details.',
    }, '\n')
  end
  local exe = type(cmd) == 'table' and cmd[1] or nil
  if type(exe) ~= 'string' or exe == '' then
    return 'boo: `cmd` must be a list like { "boo", "serve" }; got ' .. vim.inspect(cmd)
  end
  if vim.fn.executable(exe) == 1 then
    return nil
  end
  local looked = exe:find('/') and ('at ' .. exe) or ('on $PATH (PATH=' .. (vim.env.PATH or '') .. ')')
  return table.concat({
    'boo: the server binary `' .. exe .. '` was not found ' .. looked .. '.',
    'Fix: build it (`cargo build --release` in the boo repository) and put target/release/boo on $PATH,',
    "or point the plugin at it: require('boo').setup({ cmd = { '/path/to/boo', 'serve' } }).",
    'Run :checkhealth boo for details.',
  }, '\n')
end

--- A running, not stopping, boo client for this root, or nil (also one
--- started by `vim.lsp.enable('boo')`, whose root may not be resolved).
function M.get(root)
  for _, c in ipairs(vim.lsp.get_clients({ name = 'boo' })) do
    local croot = c.root_dir and (vim.uv.fs_realpath(c.root_dir) or c.root_dir)
    if (c.root_dir == root or croot == root) and not stopped(c) and not c._is_stopping then
      return c
    end
  end
end

local function flush_waiting(client_id, client, err)
  local list = waiting[client_id]
  waiting[client_id] = nil
  for _, cb in ipairs(list or {}) do
    cb(client, err)
  end
end

local function mark_dirty(run_id)
  local ok, pane = pcall(require, 'boo.pane')
  if ok then
    pane.mark_dirty(run_id)
  end
end

--- Refetch a run with transcripts (after a gap, for an unknown run, or to
--- keep following a run whose notifications go to another server).
function M.refetch(run_id, client_id, cb)
  local run = M.store:get(run_id)
  if not run or run.resyncing then
    return
  end
  local now = M.now()
  if refetch_failed_at[run_id] and now - refetch_failed_at[run_id] < 2000 then
    return
  end
  local client = vim.lsp.get_client_by_id(client_id or M.run_client[run_id] or -1)
  if not client and run.root then
    client = M.get(run.root)
  end
  if not client then
    return
  end
  M.store:begin_resync(run_id, now, client.id)
  local sent = raw_request(client, 'boo/getRun', { runId = run_id, transcript = true }, function(err, result)
    if err or not result then
      refetch_failed_at[run_id] = M.now()
      M.store:resync_failed(run_id)
    else
      refetch_failed_at[run_id] = nil
      M.store:load_run(result, M.now(), { transcript = true })
    end
    mark_dirty(run_id)
    if cb then
      cb(err, result)
    end
  end)
  if not sent then
    -- The client is shutting down: the answer will never come.
    refetch_failed_at[run_id] = M.now()
    M.store:resync_failed(run_id)
  end
end

--- A workflow run's budget, meta.phases and earlier log lines are not in its
--- notifications, nor any run's attachments: one boo/getRun (no transcripts)
--- brings them (`force`: for a run that is not a workflow, e.g. launched with images).
local info_asked = {}
function M.ask_run_info(run, client_id, force)
  if not run or (run.kind ~= 'workflow' and not force) or info_asked[run.id] then
    return
  end
  local client = vim.lsp.get_client_by_id(client_id or M.run_client[run.id] or -1)
  if not client then
    return
  end
  info_asked[run.id] = true
  raw_request(client, 'boo/getRun', { runId = run.id }, function(err, result)
    if not err and type(result) == 'table' and type(result.run) == 'table' then
      M.store:run_info(result.run, M.now())
      mark_dirty(run.id)
    end
  end)
end

--- A refetch that never got an answer (its server went away, or it is
--- stuck) must not keep the stream buffered forever.
function M.expire_refetches(client_id, max_age_ms)
  local now = M.now()
  for id, run in pairs(M.store.runs) do
    if run.resyncing and ((client_id and run.resync_via == client_id)
      or (max_age_ms and run.resync_started_ms and now - run.resync_started_ms > max_age_ms)) then
      M.store:resync_failed(id)
      mark_dirty(id)
    end
  end
end

local function after(run, client_id)
  if not run then
    return
  end
  run.disconnected = nil
  M.run_client[run.id] = client_id or M.run_client[run.id]
  if run.resync and not run.resyncing then
    M.refetch(run.id, client_id)
  end
  mark_dirty(run.id)
end

M.handlers = {
  ['boo/runStarted'] = function(_, p, ctx)
    if type(p) ~= 'table' or not p.runId then
      return
    end
    M.run_client[p.runId] = ctx.client_id
    local run = M.store:run_started(p, M.now())
    after(run, ctx.client_id)
    M.ask_run_info(run, ctx.client_id)
  end,
  ['boo/stepUpdated'] = function(_, p, ctx)
    if type(p) ~= 'table' or not p.runId then
      return
    end
    after(M.store:step_updated(p, M.now()), ctx.client_id)
    -- Background agents and agents' children that end: a notification, the statusline.
    require('boo.agents').on_step_updated(p)
  end,
  ['boo/agentStream'] = function(_, p, ctx)
    if type(p) ~= 'table' or not p.runId then
      return
    end
    M.store:agent_stream(p, M.now())
    after(M.store:get(p.runId), ctx.client_id)
  end,
  ['boo/trace'] = function(_, p, ctx)
    if type(p) ~= 'table' or not p.runId then
      return
    end
    M.store:trace(p, M.now())
    after(M.store:get(p.runId), ctx.client_id)
  end,
  ['boo/modelCall'] = function(_, p)
    if type(p) ~= 'table' or not p.runId then
      return
    end
    require('boo.traces').on_model_call(p)
  end,
  ['boo/stepAdded'] = function(_, p, ctx)
    if type(p) ~= 'table' or not p.runId then
      return
    end
    after(M.store:step_added(p, M.now()), ctx.client_id)
  end,
  ['boo/runLog'] = function(_, p, ctx)
    if type(p) ~= 'table' or not p.runId then
      return
    end
    after(M.store:run_log(p, M.now()), ctx.client_id)
  end,
}

--- Start (or reuse) the client for `root`; `cb(client)` once it is
--- initialized, or `cb(nil, err)` where err.notified says the user was told.
function M.ensure(root, cb)
  local existing = M.get(root)
  if existing then
    if existing.initialized then
      return cb(existing)
    end
    waiting[existing.id] = waiting[existing.id] or {}
    table.insert(waiting[existing.id], function(c, e)
      cb(c, e)
    end)
    return
  end
  local o = config.get()
  local problem = M.check_cmd(o.cmd)
  if problem then
    notify(problem, vim.log.levels.ERROR)
    return cb(nil, { message = problem, notified = true })
  end
  local cfg = M.lsp_config()
  cfg.name = 'boo'
  cfg.root_dir = root
  local id
  if has_011 then
    -- One client per root, reused by vim.lsp.start; not attached to any
    -- buffer (the server works on flows, not on open documents).
    id = vim.lsp.start(cfg, { attach = false, silent = true })
  else
    -- 0.10's vim.lsp.start always attaches to a buffer; start_client does
    -- not (reuse per root is done by M.get above).
    id = vim.lsp.start_client(cfg)
  end
  if not id then
    local msg = 'boo: could not start `' .. table.concat(cfg.cmd, ' ') .. '` (see :LspLog)'
    notify(msg, vim.log.levels.ERROR)
    return cb(nil, { message = msg, notified = true })
  end
  local client = vim.lsp.get_client_by_id(id)
  if client and client.initialized then
    return cb(client)
  end
  waiting[id] = waiting[id] or {}
  table.insert(waiting[id], cb)
end

--- The client configuration of the boo server: what the plugin starts, and what
--- `lsp/boo.lua` gives `vim.lsp.config('boo', …)` / `vim.lsp.enable('boo')`.
function M.lsp_config()
  local o = config.get()
  return {
    cmd = server.cmd(o.cmd),
    cmd_env = config.server_env(o),
    init_options = config.init_options(o),
    handlers = M.handlers,
    on_init = function(client)
      vim.schedule(function()
        flush_waiting(client.id, client)
      end)
    end,
    on_exit = function(code, signal, client_id)
      vim.schedule(function()
        flush_waiting(client_id, nil, {
          message = string.format('boo: the server exited while starting (code %s, signal %s); see :LspLog', code, signal),
        })
        local ok, pane = pcall(require, 'boo.pane')
        if ok then
          pane.client_exited(client_id)
        end
      end)
    end,
  }
end

--- Send a request to the client of `root` (started if needed).
--- cb(err, result, client); err is a table with `message` (and `code`).
function M.request(root, method, params, cb)
  M.ensure(root, function(client, err)
    if not client then
      return cb(err or { message = 'boo: no client' })
    end
    local ok = raw_request(client, method, params, function(e, result)
      cb(e, result, client)
    end)
    if not ok then
      cb({ message = 'boo: the server is not running (client stopped)' })
    end
  end)
end

--- Request on a specific run's client (falls back to its root's client).
function M.run_request(run_id, method, params, cb)
  local client = vim.lsp.get_client_by_id(M.run_client[run_id] or -1)
  if client and not stopped(client) and client.initialized then
    return raw_request(client, method, params, function(e, r)
      cb(e, r, client)
    end)
  end
  local run = M.store:get(run_id)
  M.request((run and run.root) or M.root(0), method, params, cb)
end

--- Blocking variant for command-line completion (bounded wait).
function M.request_sync(root, method, params, timeout_ms)
  local done, res, er = false, nil, nil
  M.request(root, method, params, function(e, r)
    done, res, er = true, r, e
  end)
  vim.wait(timeout_ms or 1500, function()
    return done
  end, 10)
  return res, er
end

--- Stop every boo client (used by tests and :Boo stop).
function M.stop_all(force)
  for _, c in ipairs(vim.lsp.get_clients({ name = 'boo' })) do
    if has_011 then
      c:stop(force)
    else
      c.stop(force)
    end
  end
end

--- Human text for an error from a request.
function M.err_text(err)
  if type(err) ~= 'table' then
    return tostring(err)
  end
  local msg = err.message or vim.inspect(err)
  if err.code then
    msg = msg .. ' [' .. tostring(err.code) .. ']'
  end
  return msg
end

return M
