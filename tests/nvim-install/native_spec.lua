-- Neovim 0.11's own LSP setup: `vim.lsp.config('boo', …)` and `vim.lsp.enable('boo')`
-- with the plugin folder on 'runtimepath' (its lsp/boo.lua). The server starts for
-- a file of a git project; :Boo uses that same client; findings arrive as
-- diagnostics on the open buffer.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h:h') .. '/nvim/helpers.lua')
vim.opt.runtimepath:remove(H.repo .. '/editors/nvim')
local clone = assert(vim.env.BOO_PLUGIN_CLONE, 'BOO_PLUGIN_CLONE (scripts/test-nvim-install.sh sets it)')
local server = clone .. '/target/release/boo'

H.test('the plugin folder has its build (lazy_spec runs first)', function()
  H.eq(vim.fn.executable(server), 1, server)
  H.eq(vim.fn.exepath('boo'), '', 'no boo on PATH')
end)

-- A user's init has filetype detection on (nvim -u NONE does not): FileType events
-- are what vim.lsp.enable starts servers on.
vim.cmd('filetype on')
vim.opt.runtimepath:prepend(clone)
for _, f in ipairs(vim.fn.glob(clone .. '/plugin/**/*.lua', false, true)) do
  vim.cmd.source(f)
end

local db = H.tmpdir('db') .. '/boo.db'
local project = H.project()
local buf

H.test('vim.lsp.config + vim.lsp.enable start boo for a project file', function()
  vim.lsp.config('boo', {
    cmd_env = {
      BOO_DB = db,
      BOO_QWEN = H.fake_qwen,
      OPENAI_BASE_URL = 'http://127.0.0.1:9/v1',
      OPENAI_API_KEY = 'k',
      OPENAI_MODEL = 'test-model',
      FAKE_QWEN_DELAY_MS = '20',
    },
  })
  H.eq(vim.lsp.config.boo.cmd, { server, 'serve' }, 'lsp/boo.lua found the built server')
  H.eq(type(vim.lsp.config.boo.root_dir), 'function', 'the project root of a file')
  vim.lsp.enable('boo')
  vim.wait(500)
  H.eq(#vim.lsp.get_clients({ name = 'boo' }), 0, 'no server for the empty start-up buffer')
  vim.cmd('cd ' .. vim.fn.fnameescape(project))
  vim.cmd('edit ' .. vim.fn.fnameescape(project .. '/README.md'))
  buf = vim.api.nvim_get_current_buf()
  local c = H.wait(15000, function()
    local cs = vim.lsp.get_clients({ name = 'boo', bufnr = buf })
    return cs[1] and cs[1].initialized and cs[1]
  end, 'boo attached to README.md')
  H.eq(c.root_dir, project, 'root_dir')
  H.eq(c.server_info and c.server_info.name, 'boo', 'serverInfo')
end)

H.test(':Boo uses the same client; the run ends and its findings are diagnostics on the buffer', function()
  vim.cmd('Boo flow code-review small is the README right?')
  local pane = require('boo.pane')
  local run_id = H.wait(30000, function()
    return pane.last_run_id
  end, 'a run id')
  local clients = vim.lsp.get_clients({ name = 'boo' })
  local seen = vim.tbl_map(function(c)
    return { id = c.id, root = c.root_dir, bufs = vim.tbl_keys(c.attached_buffers), cmd = c.config.cmd }
  end, clients)
  H.eq(#clients, 1, 'one boo client, the native one: ' .. vim.inspect(seen))
  H.wait(90000, function()
    local run = require('boo.client').store:get(run_id)
    return run and run.status == 'completed'
  end, 'the run to complete')
  local diags = H.wait(15000, function()
    local d = vim.diagnostic.get(buf)
    return #d > 0 and d
  end, 'diagnostics on README.md')
  H.eq(diags[1].source, 'boo', 'source')
  H.contains(diags[1].message, '[code-review/', 'message')
  H.eq(diags[1].lnum, 0, 'on line 1')
end)

H.finish()
