-- The boo server for Neovim's own LSP setup (0.11+), found on 'runtimepath':
--
--   vim.lsp.config('boo', { cmd_env = { OPENAI_BASE_URL = 'http://127.0.0.1:8000/v1' } }) -- optional
--   vim.lsp.enable('boo')
--
-- The server starts for files inside a git project (one server per project).
-- Verified findings arrive as diagnostics on those buffers; :Boo (launcher, pane,
-- runs, traces) talks to the same client. `cmd` is the binary the plugin finds by
-- itself (boo.server).
local cfg = require('boo.client').lsp_config()
-- A buffer without a file (the empty one Neovim starts with, scratch buffers) has no
-- project: no server for it.
cfg.root_dir = function(bufnr, on_dir)
  if vim.api.nvim_buf_get_name(bufnr) == '' then
    return
  end
  local root = vim.fs.root(bufnr, { '.git' })
  if root then
    on_dir(vim.uv.fs_realpath(root) or root)
  end
end
return cfg
