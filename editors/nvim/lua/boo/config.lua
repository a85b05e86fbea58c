--- Options for require('boo').setup(opts). Every field is optional.
local M = {}

M.defaults = {
  -- The server command, e.g. { '/path/to/boo', 'serve' }. nil: the release build
  -- in the plugin's own repository (lazy.nvim's `build = 'cargo build --release'`),
  -- else `boo` on $PATH (see require('boo.server')).
  cmd = nil,
  -- Extra environment for the server (and through it, qwen), e.g.
  -- { OPENAI_BASE_URL = 'http://127.0.0.1:8080/v1', OPENAI_API_KEY = '...', OPENAI_MODEL = '...' }
  env = {},
  -- SQLite database (BOO_DB). nil: the server's default (~/.local/share/boo/boo.db).
  db_path = nil,
  -- Agents running at once (BOO_MAX_PARALLEL / maxParallelAgents). nil: server default.
  max_parallel = nil,
  -- The qwen executable (BOO_QWEN / qwenPath). nil: `qwen` on PATH.
  qwen_path = nil,
  -- Model name handed to the agents. nil: OPENAI_MODEL / server default.
  model = nil,
  -- The model takes images: launches with images (:Boo attach) send
  -- `visionModel: true`. false: the server decides (BOO_VISION_MODEL=1).
  vision_model = false,
  -- Show verified findings as diagnostics.
  diagnostics = true,
  -- Flow launched by `/flow <focus>` in the chat buffer (and `:Boo flow <question>`).
  chat_flow = 'code-review',
  -- Band used when none is given.
  default_band = 'small',
  -- How the orchestrator pane opens: 'vsplit' | 'split' | 'tab'.
  layout = 'vsplit',
  -- Width (vsplit) or height (split) of the pane; nil: half the editor.
  size = nil,
  -- Redraw batching interval for the pane, in milliseconds.
  redraw_ms = 50,
  -- Lines of a tool result shown under a tool call in the pane.
  tool_result_lines = 4,
  -- Refetch a running run when no notification arrived for this long (ms):
  -- keeps a pane opened from history following a run owned by another server.
  poll_ms = 3000,
  -- Register used by `:Boo export register` when none is given.
  -- nil: '+' when a clipboard is available, else the unnamed register.
  export_register = nil,
  -- Status glyphs in the roster.
  glyphs = {
    pending = '○',
    running = '●',
    completed = '✓',
    failed = '✗',
    skipped = '–',
    cancelled = '⊘',
    expanded = '▾',
    collapsed = '▸',
  },
  -- Buffer-local keys in the pane (false disables one) and optional global
  -- normal-mode keys (launch, chat, runs; off unless set).
  keymaps = {
    toggle = '<CR>',
    next_step = ']s',
    prev_step = '[s',
    cancel = 'c',
    export = 'e',
    traces = 't',
    rerun = 'r',
    follow = 'a',
    close = 'q',
    -- On an image row of the pane (<CR> there does the same): fetch and open it.
    open_attachment = 'gx',
    launch = false,
    chat = false,
    runs = false,
  },
}

M.options = vim.deepcopy(M.defaults)

function M.set(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  -- `cmd` is a list: replace it whole, never merge element-wise.
  if opts and opts.cmd then
    M.options.cmd = type(opts.cmd) == 'string' and { opts.cmd, 'serve' } or vim.deepcopy(opts.cmd)
  end
  return M.options
end

function M.get()
  return M.options
end

--- Environment for the server process (cmd_env).
function M.server_env(o)
  o = o or M.options
  local env = {}
  for k, v in pairs(o.env or {}) do
    env[k] = tostring(v)
  end
  if o.db_path then
    env.BOO_DB = vim.fn.expand(o.db_path)
  end
  if o.max_parallel then
    env.BOO_MAX_PARALLEL = tostring(o.max_parallel)
  end
  if o.qwen_path then
    env.BOO_QWEN = vim.fn.expand(o.qwen_path)
  end
  return env
end

--- initializationOptions for `initialize`.
function M.init_options(o)
  o = o or M.options
  local io = { diagnostics = o.diagnostics ~= false }
  if o.db_path then
    io.dbPath = vim.fn.expand(o.db_path)
  end
  if o.qwen_path then
    io.qwenPath = vim.fn.expand(o.qwen_path)
  end
  if o.model then
    io.model = o.model
  end
  if o.max_parallel then
    io.maxParallelAgents = o.max_parallel
  end
  return io
end

return M
