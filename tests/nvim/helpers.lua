-- Test helpers for the headless Neovim specs (run by scripts/test-nvim.sh):
--   nvim --headless -u NONE -i NONE -n -l tests/nvim/<name>_spec.lua
-- Each spec prints one line per test ("PASS name" / "FAIL name: why") and a
-- final "RESULT <passed> <failed>", then exits non-zero on any failure.
local H = {}

local this = debug.getinfo(1, 'S').source:sub(2)
H.repo = vim.fn.fnamemodify(this, ':p:h:h:h')
H.spec = vim.fn.fnamemodify((_G.arg and _G.arg[0]) or 'spec', ':t:r')

vim.opt.runtimepath:prepend(H.repo .. '/editors/nvim')
vim.opt.swapfile = false

H.passed, H.failed = 0, 0

-- Result lines go to stdout and, when the runner asks, to a results file
-- (stdout may also carry Neovim's own messages, e.g. "Running healthchecks...").
local results_file = vim.env.BOO_NVIM_RESULTS
local function report(line)
  io.stdout:write('\n' .. line .. '\n')
  io.stdout:flush()
  if results_file then
    local f = io.open(results_file, 'a')
    if f then
      f:write(line .. '\n')
      f:close()
    end
  end
end
H.report = report
H.tmp_dirs = {}

local function fmt(v)
  return type(v) == 'string' and string.format('%q', v) or vim.inspect(v)
end

function H.eq(got, want, what)
  if not vim.deep_equal(got, want) then
    error(string.format('%s: expected %s, got %s', what or 'value', fmt(want), fmt(got)), 2)
  end
end

function H.ok(v, what)
  if not v then
    error((what or 'expected a true value') .. ' (got ' .. fmt(v) .. ')', 2)
  end
  return v
end

function H.contains(text, needle, what)
  if type(text) ~= 'string' or not text:find(needle, 1, true) then
    error(string.format('%s: %s not found in:\n%s', what or 'text', fmt(needle), tostring(text)), 2)
  end
end

function H.not_contains(text, needle, what)
  if type(text) == 'string' and text:find(needle, 1, true) then
    error(string.format('%s: %s unexpectedly found in:\n%s', what or 'text', fmt(needle), tostring(text)), 2)
  end
end

--- Wait (processing events) until cond() is truthy; error after timeout.
function H.wait(timeout_ms, cond, what)
  local last
  local ok = vim.wait(timeout_ms, function()
    local good, v = pcall(cond)
    last = good and v or last
    return good and v
  end, 20)
  if not ok then
    local extra = H.on_timeout and ('\n' .. H.on_timeout()) or ''
    error(string.format('timed out after %d ms waiting for %s%s', timeout_ms, what or 'condition', extra), 2)
  end
  return last
end

function H.test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    H.passed = H.passed + 1
    report('PASS ' .. H.spec .. ': ' .. name)
  else
    H.failed = H.failed + 1
    report('FAIL ' .. H.spec .. ': ' .. name .. ': ' .. (tostring(err):gsub('\n', '\n    ')))
  end
end

function H.tmpdir(prefix)
  local dir = vim.fn.tempname() .. '-' .. (prefix or 'boo')
  vim.fn.mkdir(dir, 'p')
  dir = vim.uv.fs_realpath(dir) or dir
  table.insert(H.tmp_dirs, dir)
  return dir
end

function H.sh(cmd, cwd)
  local res = vim.system(cmd, { cwd = cwd, text = true }):wait(30000)
  if res.code ~= 0 then
    error(table.concat(cmd, ' ') .. ' failed: ' .. (res.stderr or '') .. (res.stdout or ''), 2)
  end
  return res.stdout
end

--- A small git project: two committed files and one uncommitted change.
function H.project()
  local dir = H.tmpdir('project')
  vim.fn.writefile({
    '# Cache service',
    '',
    'A tiny service with an in-memory cache.',
  }, dir .. '/README.md')
  vim.fn.writefile({
    'CACHE = {}',
    '',
    'def get(key):',
    '    return CACHE.get(key)',
    '',
    'def put(key, value):',
    '    CACHE[key] = value',
  }, dir .. '/cache.py')
  H.sh({ 'git', 'init', '-q', '-b', 'main' }, dir)
  H.sh({ 'git', '-c', 'user.email=t@example.com', '-c', 'user.name=t', 'add', '.' }, dir)
  H.sh({ 'git', '-c', 'user.email=t@example.com', '-c', 'user.name=t', 'commit', '-q', '-m', 'init' }, dir)
  vim.fn.writefile({
    'CACHE = {}',
    'MAX = 100',
    '',
    'def get(key):',
    '    return CACHE.get(key)',
    '',
    'def put(key, value):',
    '    if len(CACHE) > MAX:',
    '        CACHE.clear()',
    '    CACHE[key] = value',
  }, dir .. '/cache.py')
  return dir
end

H.bin = vim.env.BOO_BIN or (H.repo .. '/target/debug/boo')
H.fake_qwen = vim.env.BOO_FAKE_QWEN or (H.repo .. '/tests/fixtures/fake-qwen')

--- Pids of processes whose working directory is `dir` or below (agents run
--- in the project root), optionally only those whose command line has `needle`.
--- Where boo keeps runs' snapshots of their project: agents work there.
function H.snapshots()
  return (vim.env.XDG_DATA_HOME or (vim.env.HOME .. '/.local/share')) .. '/boo/snapshots'
end

function H.pids_in(dir, needle)
  local out = {}
  for _, name in ipairs(vim.fn.readdir('/proc')) do
    if name:match('^%d+$') then
      local cwd = vim.uv.fs_readlink('/proc/' .. name .. '/cwd')
      if cwd and (cwd == dir or vim.startswith(cwd, dir .. '/')) then
        local f = io.open('/proc/' .. name .. '/cmdline', 'rb')
        local cmd = f and f:read('*a') or ''
        if f then
          f:close()
        end
        cmd = cmd:gsub('%z', ' ')
        if not needle or cmd:find(needle, 1, true) then
          out[#out + 1] = name .. ' ' .. cmd
        end
      end
    end
  end
  return out
end

--- Replace vim.ui.select with a script: `pick(labels, items, opts)` returns
--- the index to choose (nil cancels). Every call is recorded in H.selects.
H.selects = {}
function H.script_select(pick)
  vim.ui.select = function(items, opts, on_choice)
    opts = opts or {}
    local labels = {}
    for i, it in ipairs(items) do
      labels[i] = opts.format_item and opts.format_item(it) or tostring(it)
    end
    table.insert(H.selects, { prompt = opts.prompt, labels = labels, items = items })
    local idx = pick(labels, items, opts)
    vim.schedule(function()
      on_choice(idx and items[idx] or nil, idx)
    end)
  end
end

--- Index of the first label matching a Lua pattern (plain when plain=true).
function H.find_label(labels, pat, plain)
  for i, l in ipairs(labels) do
    if l:find(pat, 1, plain) then
      return i
    end
  end
  error('no item matching ' .. pat .. ' in ' .. vim.inspect(labels), 2)
end

--- The text, thinking and tool count of a list of stream blocks.
function H.stream_summary(blocks)
  local state = require('boo.state')
  local t = { text = {}, thinking = {}, tools = 0 }
  for _, b in ipairs(blocks) do
    if b.kind == 'text' or b.kind == 'thinking' then
      table.insert(t[b.kind], state.block_text(b))
    elseif b.kind == 'tool' then
      t.tools = t.tools + 1
    end
  end
  return { text = table.concat(t.text), thinking = table.concat(t.thinking), tools = t.tools }
end

--- Compare every agent step's stream in the plugin's state with the server's
--- transcript (boo/getRun {transcript = true}). Returns the number compared.
function H.compare_with_server(run_id)
  local client = require('boo.client')
  local state = require('boo.state')
  local got
  client.run_request(run_id, 'boo/getRun', { runId = run_id, transcript = true }, function(err, res)
    got = { err = err, res = res }
  end)
  H.wait(5000, function()
    return got
  end, 'getRun with transcripts')
  if not got.res then
    error('getRun failed: ' .. vim.inspect(got.err), 2)
  end
  local run = client.store:get(run_id)
  local compared = 0
  local mine_st, theirs_st = {}, {}
  for _, sp in ipairs(got.res.steps) do
    theirs_st[sp.stepId] = sp.status
    mine_st[sp.stepId] = run.by_id[sp.stepId] and run.by_id[sp.stepId].status
  end
  H.eq(mine_st, theirs_st, 'step statuses (plugin vs server)')
  H.eq(run.status, got.res.run.status, 'run status (plugin vs server)')
  for _, sp in ipairs(got.res.steps) do
    if sp.kind == 'agent' and type(sp.transcript) == 'table' then
      local ref = state.new():load_run({ run = { runId = 'ref' }, steps = { { stepId = 'a', transcript = sp.transcript, lastSeq = 0 } } },
        0, { transcript = true })
      local mine = run.by_id[sp.stepId]
      H.eq(H.stream_summary(mine.blocks), H.stream_summary(ref.by_id.a.blocks), 'stream of ' .. sp.stepId)
      H.eq(mine.last_seq, sp.lastSeq, 'lastSeq of ' .. sp.stepId)
      H.eq(mine.chatId, sp.chatId, 'chatId of ' .. sp.stepId)
      compared = compared + 1
    end
  end
  return compared
end

--- Set up the plugin against the real server and the fake qwen.
function H.setup(extra)
  H.db = H.db or (H.tmpdir('db') .. '/boo.db')
  local opts = vim.tbl_deep_extend('force', {
    cmd = { H.bin, 'serve' },
    db_path = H.db,
    qwen_path = H.fake_qwen,
    max_parallel = 2,
    layout = 'vsplit',
    env = { FAKE_QWEN_DELAY_MS = vim.env.FAKE_QWEN_DELAY_MS or '20', BOO_LOG = 'info' },
  }, extra or {})
  require('boo').setup(opts)
  return opts
end

--- Save text under artifacts/nvim/ so a person can look at it.
function H.artifact(name, text)
  local dir = H.repo .. '/artifacts/nvim'
  vim.fn.mkdir(dir, 'p')
  local path = string.format('%s/%s-%s.txt', dir, H.spec, name)
  vim.fn.writefile(vim.split(text or '', '\n', { plain = true }), path)
  return path
end

function H.pane_text(run_id)
  return require('boo.pane').text(run_id) or ''
end

--- Stop every boo client and wait until their servers are gone.
function H.stop_clients()
  local clients = vim.lsp.get_clients({ name = 'boo' })
  if #clients == 0 then
    return
  end
  require('boo.client').stop_all()
  local gone = vim.wait(5000, function()
    return #vim.lsp.get_clients({ name = 'boo' }) == 0
  end, 20)
  if not gone then
    require('boo.client').stop_all(true)
    vim.wait(3000, function()
      return #vim.lsp.get_clients({ name = 'boo' }) == 0
    end, 20)
  end
end

--- The server binary must exist for end-to-end specs.
function H.require_server()
  if vim.fn.executable(H.bin) ~= 1 then
    H.test('server binary present', function()
      error('no executable server at ' .. H.bin .. ' (build it with cargo build, or set BOO_BIN)')
    end)
    H.finish()
  end
  if vim.fn.executable(H.fake_qwen) ~= 1 then
    H.test('fake qwen present', function()
      error('no executable fake qwen at ' .. H.fake_qwen)
    end)
    H.finish()
  end
end

function H.finish()
  pcall(function()
    require('boo.pane').stop_timers()
  end)
  pcall(H.stop_clients)
  for _, d in ipairs(H.tmp_dirs) do
    if not vim.env.BOO_KEEP_TMP then
      vim.fn.delete(d, 'rf')
    end
  end
  report(string.format('RESULT %d %d', H.passed, H.failed))
  os.exit(H.failed == 0 and H.passed > 0 and 0 or 1)
end

return H
