-- Plugin surface without a server: setup, the :Boo command and its
-- completion, a missing binary, highlight groups, help tags, no leaks.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')

local g_before = vim.tbl_keys(vim.g)
local G_before = {}
for k in pairs(_G) do
  G_before[k] = true
end

local notes = {}
local real_notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(notes, { msg = msg, level = level })
end

H.test('plugin/boo.lua defines :Boo before setup', function()
  vim.cmd('runtime plugin/boo.lua')
  H.eq(vim.fn.exists(':Boo'), 2, ':Boo exists')
end)

H.test('setup merges options; cmd is replaced, not merged', function()
  local o = require('boo').setup({
    cmd = { '/opt/boo/bin/boo' },
    db_path = '/tmp/x/boo.db',
    max_parallel = 3,
    qwen_path = '/usr/local/bin/qwen',
    env = { OPENAI_BASE_URL = 'http://127.0.0.1:9/v1' },
    keymaps = { cancel = 'X' },
  })
  local cfg = require('boo.config')
  H.eq(cfg.get().cmd, { '/opt/boo/bin/boo' }, 'cmd')
  H.eq(cfg.get().keymaps.cancel, 'X', 'overridden key')
  H.eq(cfg.get().keymaps.toggle, '<CR>', 'default key kept')
  H.eq(cfg.get().chat_flow, 'code-review', 'default chat flow')
  H.eq(cfg.server_env(), {
    OPENAI_BASE_URL = 'http://127.0.0.1:9/v1',
    BOO_DB = '/tmp/x/boo.db',
    BOO_MAX_PARALLEL = '3',
    BOO_QWEN = '/usr/local/bin/qwen',
  }, 'server env')
  H.eq(cfg.init_options(), { diagnostics = true, dbPath = '/tmp/x/boo.db', qwenPath = '/usr/local/bin/qwen', maxParallelAgents = 3 },
    'initializationOptions')
  H.ok(o, 'setup returns the module')
end)

H.test('a missing boo binary gives ONE clear message per action, no stack trace', function()
  require('boo').setup({ cmd = { '/nonexistent/dir/boo', 'serve' } })
  notes = {}
  local ok, err = pcall(vim.cmd, 'Boo flow code-review small what could break?')
  H.ok(ok, 'no Lua error: ' .. tostring(err))
  vim.wait(200)
  H.eq(#notes, 1, 'one notification')
  H.eq(notes[1].level, vim.log.levels.ERROR, 'error level')
  H.contains(notes[1].msg, 'boo: the server binary `/nonexistent/dir/boo` was not found', 'what')
  H.contains(notes[1].msg, 'Fix:', 'how to fix')
  H.contains(notes[1].msg, "cmd = { '/path/to/boo', 'serve' }", 'the setting')
  H.not_contains(notes[1].msg, 'stack traceback', 'no trace')
  for _, cmd in ipairs({ 'Boo runs', 'Boo', 'Boo launch' }) do
    notes = {}
    ok, err = pcall(vim.cmd, cmd)
    H.ok(ok, cmd .. ': no Lua error: ' .. tostring(err))
    vim.wait(100)
    H.eq(#notes, 1, cmd .. ': one notification')
  end
  H.eq(#vim.lsp.get_clients({ name = 'boo' }), 0, 'no client started')
  -- Completion must not throw either.
  local items = vim.fn.getcompletion('Boo flow ', 'cmdline')
  H.ok(vim.tbl_contains(items, 'small'), 'bands still complete')
end)

H.test(':Boo completion: subcommands, flow names, bands, export targets', function()
  require('boo').setup({ cmd = { '/nonexistent/dir/boo', 'serve' } })
  local boo = require('boo')
  boo._flows = {
    { name = 'code-review', category = 'review', bands = {} },
    { name = 'architectural-analysis', category = 'analysis', bands = {} },
  }
  local subs = vim.fn.getcompletion('Boo ', 'cmdline')
  for _, s in ipairs({ 'launch', 'flow', 'chat', 'runs', 'cancel', 'export', 'traces', 'findings', 'pane', 'rerun' }) do
    H.ok(vim.tbl_contains(subs, s), 'subcommand ' .. s)
  end
  H.eq(vim.fn.getcompletion('Boo ex', 'cmdline'), { 'export' }, 'prefix')
  local f = vim.fn.getcompletion('Boo flow ', 'cmdline')
  H.ok(vim.tbl_contains(f, 'code-review') and vim.tbl_contains(f, 'architectural-analysis'), 'flow names')
  H.eq(vim.fn.getcompletion('Boo flow code', 'cmdline'), { 'code-review' }, 'flow prefix')
  H.eq(vim.fn.getcompletion('Boo flow code-review ', 'cmdline'), { 'small', 'medium', 'large' }, 'bands after a flow')
  H.eq(vim.fn.getcompletion('Boo flow code-review small ', 'cmdline'), {}, 'free text after the band')
  H.eq(vim.fn.getcompletion('Boo export ', 'cmdline'), { 'register', 'buffer', 'file' }, 'export targets')
  boo._flows = nil
end)

H.test('highlight groups are defined with default = true (user colors win)', function()
  vim.api.nvim_set_hl(0, 'BooToolCall', { fg = '#123456' })
  require('boo').setup({})
  local th = vim.api.nvim_get_hl(0, { name = 'BooThinking' })
  H.eq(th.link, 'Comment', 'BooThinking links to Comment')
  for _, g in ipairs({ 'BooHeader', 'BooStatusRunning', 'BooStatusDone', 'BooStatusFailed', 'BooToolCall' }) do
    H.ok(next(vim.api.nvim_get_hl(0, { name = g })) ~= nil, g .. ' defined')
  end
  H.eq(vim.api.nvim_get_hl(0, { name = 'BooToolCall' }).fg, 0x123456, 'user color kept')
  vim.cmd('colorscheme default')
  H.eq(vim.api.nvim_get_hl(0, { name = 'BooThinking' }).link, 'Comment', 'restored after :colorscheme')
end)

H.test(':help boo works after :helptags (tags for commands, keys, highlights)', function()
  local dir = H.tmpdir('help')
  vim.fn.mkdir(dir .. '/doc', 'p')
  local src = H.repo .. '/editors/nvim/doc/boo.txt'
  H.eq(vim.fn.filereadable(src), 1, 'doc/boo.txt exists')
  vim.fn.writefile(vim.fn.readfile(src), dir .. '/doc/boo.txt')
  vim.cmd('helptags ' .. vim.fn.fnameescape(dir .. '/doc'))
  local tags = table.concat(vim.fn.readfile(dir .. '/doc/tags'), '\n')
  for _, t in ipairs({ 'boo.txt', 'boo-setup', ':Boo', 'boo-pane', 'boo-keys', 'boo-highlights', 'boo-chat', 'boo-health',
    'boo-export', 'boo-traces', 'boo-findings', 'boo-runs', 'BooThinking' }) do
    H.ok(tags:find('\n' .. vim.pesc(t) .. '\t') or tags:find('^' .. vim.pesc(t) .. '\t'), 'tag ' .. t)
  end
  vim.opt.runtimepath:prepend(dir)
  vim.cmd('help :Boo')
  H.contains(vim.api.nvim_buf_get_name(0), 'boo.txt', 'help opened')
  H.eq(vim.bo.buftype, 'help', 'help buffer')
  vim.cmd('help boo-highlights')
  H.contains(vim.api.nvim_get_current_line(), 'boo-highlights', 'jumped to the tag')
  vim.cmd('helpclose')
end)

H.test(':checkhealth boo reports a missing binary with the fix', function()
  require('boo').setup({ cmd = { '/nonexistent/dir/boo', 'serve' } })
  vim.cmd('checkhealth boo')
  local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  H.artifact('checkhealth-missing-binary', text)
  H.contains(text, 'boo: server binary', 'section')
  H.contains(text, 'ERROR', 'error reported')
  H.contains(text, 'was not found', 'what')
  H.contains(text, 'cargo build --release', 'advice')
  vim.cmd('bwipeout!')
end)

H.test('the pane opens per layout: vsplit, split, tab; q closes it; :Boo pane reopens it', function()
  local client = require('boo.client')
  local pane = require('boo.pane')
  client.store:run_started({ runId = 'layout-run', flow = 'code-review', band = 'small', question = 'layouts', root = '/tmp',
    status = 'running', steps = { { stepId = 'a', kind = 'agent', agent = 'p', wave = 1, chatId = 'ca', status = 'running' } } }, 0)
  for _, layout in ipairs({ 'vsplit', 'split', 'tab' }) do
    local size = layout == 'split' and 10 or 50
    require('boo').setup({ cmd = { '/nonexistent/dir/boo', 'serve' }, layout = layout, size = size })
    vim.cmd('silent! tabonly | silent! only | enew')
    local tabs, wins = #vim.api.nvim_list_tabpages(), #vim.api.nvim_tabpage_list_wins(0)
    pane.open('layout-run')
    H.eq(vim.bo.filetype, 'boo-orchestrator', layout .. ': pane focused')
    if layout == 'tab' then
      H.eq(#vim.api.nvim_list_tabpages(), tabs + 1, 'a new tab')
    else
      H.eq(#vim.api.nvim_tabpage_list_wins(0), wins + 1, layout .. ': a new window')
      local w = vim.api.nvim_get_current_win()
      if layout == 'vsplit' then
        H.eq(vim.api.nvim_win_get_width(w), size, 'width = size')
      else
        H.eq(vim.api.nvim_win_get_height(w), size, 'height = size')
      end
    end
    H.contains(H.pane_text('layout-run'), 'Focus: layouts', layout .. ': rendered')
    -- Opening again reuses the window.
    local n = #vim.api.nvim_list_wins()
    pane.open('layout-run')
    H.eq(#vim.api.nvim_list_wins(), n, layout .. ': reused')
    vim.api.nvim_feedkeys('q', 'x', false)
    H.ok(vim.bo.filetype ~= 'boo-orchestrator', layout .. ': q closed it')
    vim.cmd('Boo pane')
    H.eq(vim.bo.filetype, 'boo-orchestrator', layout .. ': :Boo pane reopens it')
  end
  vim.cmd('silent! tabonly | silent! only | enew')
end)

H.test('no global state leaks: no new _G or vim.g keys; autocmds in the boo augroup', function()
  require('boo').setup({})
  for k in pairs(_G) do
    H.ok(G_before[k] or k == 'arg', 'new global ' .. tostring(k))
  end
  local g_after = vim.tbl_keys(vim.g)
  H.eq(#g_after, #g_before, 'vim.g unchanged')
  local acs = vim.api.nvim_get_autocmds({ group = 'boo' })
  H.ok(#acs >= 2, 'autocmds in the boo group')
  -- setup twice does not duplicate them
  require('boo').setup({})
  H.eq(#vim.api.nvim_get_autocmds({ group = 'boo' }), #acs, 'setup is idempotent')
end)

vim.notify = real_notify
H.finish()
