--- Finding the `boo` server binary without any configuration.
---
--- In order: the `cmd` option when it is set; the release build of the repository
--- this plugin was loaded from (`<repo>/target/release/boo`, what the lazy.nvim
--- `build = 'cargo build --release'` step produces); `boo` on $PATH.
local M = {}

--- The folder of this plugin: the one holding `lua/boo/`.
function M.plugin_dir()
  local src = debug.getinfo(1, 'S').source:gsub('^@', '')
  return vim.fn.fnamemodify(src, ':p:h:h:h')
end

--- The boo repository around the plugin: the nearest folder upwards (from the
--- plugin folder as loaded and as resolved through symlinks) with a Cargo.toml.
function M.repo_dirs()
  local dirs, seen = {}, {}
  local starts = { M.plugin_dir() }
  local real = vim.uv.fs_realpath(starts[1])
  if real and real ~= starts[1] then
    starts[#starts + 1] = real
  end
  for _, start in ipairs(starts) do
    local found = vim.fs.root(start, { 'Cargo.toml' })
    if found and not seen[found] then
      seen[found] = true
      dirs[#dirs + 1] = found
    end
  end
  return dirs
end

local function executable(p)
  return p and vim.fn.executable(p) == 1
end

--- The server binary this plugin would start, and where it came from
--- ('build' | 'path'), or nil and the places it looked.
function M.find()
  local looked = {}
  for _, dir in ipairs(M.repo_dirs()) do
    local p = dir .. '/target/release/boo'
    looked[#looked + 1] = p
    if executable(p) then
      return p, 'build'
    end
  end
  local on_path = vim.fn.exepath('boo')
  looked[#looked + 1] = '`boo` on $PATH'
  if on_path ~= '' then
    return on_path, 'path'
  end
  return nil, looked
end

--- The command to start the server: `cmd` when given, else { <found>, 'serve' }
--- (or { 'boo', 'serve' } when nothing was found, so the error names it).
function M.cmd(cmd)
  if cmd then
    return cmd
  end
  local found = M.find()
  return { found or 'boo', 'serve' }
end

--- Where the server comes from, for :checkhealth and errors.
function M.describe(cmd)
  if cmd then
    return 'from the `cmd` option: ' .. table.concat(cmd, ' ')
  end
  local found, how = M.find()
  if not found then
    return 'not found; looked at ' .. table.concat(how, ', ')
  end
  if how == 'build' then
    return found .. ' (built in the plugin\'s repository)'
  end
  return found .. ' (on $PATH)'
end

return M
