--- :checkhealth boo
local M = {}

local health = vim.health

local function run(cmd, env, timeout)
  local ok, obj = pcall(vim.system, cmd, { text = true, env = env })
  if not ok then
    return nil, tostring(obj)
  end
  local res = obj:wait(timeout or 10000)
  if res.signal and res.signal ~= 0 and res.code == 0 then
    return nil, 'timed out'
  end
  return res
end

local function lines(s)
  local out = {}
  for _, l in ipairs(vim.split(vim.trim(s or ''), '\n', { plain = true })) do
    if l ~= '' then
      out[#out + 1] = l
    end
  end
  return out
end

function M.check()
  local config = require('boo.config')
  local o = config.get()
  local env = config.server_env(o)

  health.start('boo: Neovim')
  if vim.fn.has('nvim-0.10') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()))
  else
    health.error('Neovim ≥ 0.10 is required (vim.lsp.start, vim.system, vim.uv)')
  end

  health.start('boo: server binary')
  local server = require('boo.server')
  local cmd = server.cmd(o.cmd)
  local exe = cmd[1]
  local problem = require('boo.client').check_cmd(o.cmd)
  local have_bin = false
  if problem then
    health.error(problem:gsub('\n', ' '), {
      "lazy.nvim: build = 'cargo build --release' builds it in the plugin's repository",
      'or: cargo build --release (in the boo repository) and put target/release/boo on $PATH',
      "or: require('boo').setup({ cmd = { '/path/to/boo', 'serve' } })",
    })
  else
    have_bin = true
    local path = vim.fn.exepath(exe)
    local res, err = run({ exe, '--version' }, env, 5000)
    if not res then
      health.error('`' .. exe .. ' --version` failed: ' .. err)
    elseif res.code ~= 0 then
      health.error(string.format('`%s --version` exited %d: %s', exe, res.code, vim.trim(res.stderr or '')))
    else
      health.ok(string.format('%s (%s)', vim.trim(res.stdout or ''), path ~= '' and path or exe))
    end
    health.info('server command: ' .. table.concat(cmd, ' '))
    health.info('server: ' .. server.describe(o.cmd))
  end

  health.start('boo: qwen CLI and environment (boo doctor)')
  if have_bin then
    local res, err = run({ exe, 'doctor' }, env, 20000)
    if not res then
      health.error('`' .. exe .. ' doctor` failed: ' .. err)
    else
      -- `boo doctor` prints one check per line: "ok   what: detail",
      -- "warn what: detail" or "FAIL what: detail", then a summary.
      local qwen_ok, parsed = false, 0
      for _, l in ipairs(lines((res.stdout or '') .. '\n' .. (res.stderr or ''))) do
        local status, rest = l:match('^(%a+)%s+(.*)$')
        status = status and status:lower()
        if status == 'ok' then
          parsed = parsed + 1
          health.ok(rest)
          if rest:match('^qwen:') then
            qwen_ok = true
          end
        elseif status == 'fail' then
          parsed = parsed + 1
          if rest:match('^qwen:') then
            health.error(rest, {
              'install the Qwen Code CLI (npm install -g @qwen-code/qwen-code) or set qwen_path / BOO_QWEN',
            })
          else
            health.error(rest)
          end
        elseif status == 'warn' then
          parsed = parsed + 1
          health.warn(rest)
        else
          health.info(l)
        end
      end
      if parsed == 0 and res.code ~= 0 then
        health.error(string.format('`boo doctor` exited %d without a report', res.code))
      elseif not qwen_ok then
        health.error('the qwen CLI is not usable (see above)')
      end
    end
  else
    health.warn('skipped: no server binary')
  end

  health.start('boo: model endpoint')
  local function var(name)
    local v = (o.env or {})[name]
    if v ~= nil then
      return tostring(v), 'setup env'
    end
    v = vim.env[name]
    if v and v ~= '' then
      return v, 'environment'
    end
  end
  for _, name in ipairs({ 'OPENAI_BASE_URL', 'OPENAI_MODEL', 'OPENAI_API_KEY' }) do
    local v, from = var(name)
    if v then
      local shown = v
      if name == 'OPENAI_API_KEY' then
        shown = #v > 4 and ('…' .. v:sub(-4)) or '(set)'
      end
      health.ok(string.format('%s = %s (%s)', name, shown, from))
    elseif name == 'OPENAI_API_KEY' then
      health.info(name .. ' is not set (fine for a local server that needs no key)')
    else
      health.warn(name .. ' is not set', { "set it in your shell or in require('boo').setup({ env = { " .. name .. " = '…' } })" })
    end
  end
  if o.model then
    health.info('model (setup): ' .. o.model)
  end

  health.start('boo: database')
  local db = o.db_path and vim.fn.expand(o.db_path) or vim.env.BOO_DB
  local from = o.db_path and 'setup db_path' or (vim.env.BOO_DB and 'BOO_DB' or 'default')
  if not db or db == '' then
    local data = vim.env.XDG_DATA_HOME
    if not data or data == '' then
      data = (vim.env.HOME or '~') .. '/.local/share'
    end
    db = data .. '/boo/boo.db'
  end
  local dir = vim.fn.fnamemodify(db, ':h')
  if vim.fn.filereadable(db) == 1 then
    local st = vim.uv.fs_stat(db)
    health.ok(string.format('%s (%s, %d KiB)', db, from, math.floor((st and st.size or 0) / 1024)))
  elseif vim.fn.isdirectory(dir) == 1 then
    if vim.fn.filewritable(dir) == 2 then
      health.ok(string.format('%s (%s) will be created on first use', db, from))
    else
      health.error(string.format('%s: directory %s is not writable', db, dir))
    end
  else
    health.info(string.format('%s (%s): the server creates %s on first use', db, from, dir))
  end

  health.start('boo: clients')
  local clients = vim.lsp.get_clients({ name = 'boo' })
  if #clients == 0 then
    health.info('no boo server running (it starts on the first :Boo command)')
  end
  for _, c in ipairs(clients) do
    local info = c.server_info or {}
    health.info(string.format('client %d · root %s · server %s %s', c.id, c.root_dir or '?', info.name or '?', info.version or ''))
  end
end

return M
