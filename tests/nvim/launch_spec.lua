-- End to end: :Boo flow against the real server with the fake qwen.
-- The pane at each stage (roster, streaming, report), diagnostics and
-- :Boo findings, export (file, register, buffer), traces, $/progress.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local project = H.project()
vim.cmd('cd ' .. vim.fn.fnameescape(project))
H.setup({ env = { FAKE_QWEN_DELAY_MS = '80' } })
vim.cmd('edit ' .. vim.fn.fnameescape(project .. '/cache.py'))

local pane = require('boo.pane')
local client = require('boo.client')
local run_id

local notes = {}
local real_notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(notes, { msg = msg, level = level })
  if level and level >= vim.log.levels.WARN then
    io.stderr:write('notify: ' .. tostring(msg) .. '\n')
  end
end

-- $/progress arrives through Neovim's own handler; record what it shows.
local progress_seen = {}
vim.api.nvim_create_autocmd('LspProgress', {
  callback = function(ev)
    local v = ev.data and ev.data.params and ev.data.params.value
    if type(v) == 'table' and v.kind then
      table.insert(progress_seen, v.kind)
    end
  end,
})

H.on_timeout = function()
  local run = run_id and client.store:get(run_id)
  return 'run status: ' .. tostring(run and run.status) .. '\npane:\n' .. (run_id and H.pane_text(run_id) or '(no pane)')
end

H.test(':Boo flow completes flow names from the server', function()
  local items = vim.fn.getcompletion('Boo flow ', 'cmdline')
  H.ok(vim.tbl_contains(items, 'code-review') and vim.tbl_contains(items, 'architectural-analysis'),
    'flow names: ' .. table.concat(items, ' '))
  H.eq(#vim.lsp.get_clients({ name = 'boo' }), 1, 'the server started for it')
end)

H.test(':Boo flow launches and opens the pane with the roster', function()
  vim.cmd('Boo flow code-review small what could break in the cache? [[fake:slow]]')
  run_id = H.wait(20000, function()
    return pane.last_run_id
  end, 'a run id')
  local run = client.store:get(run_id)
  H.wait(10000, function()
    return #run.steps > 0
  end, 'the roster')
  local buf = pane.panes[run_id].buf
  H.eq(vim.bo[buf].filetype, 'boo-orchestrator', 'filetype')
  H.wait(5000, function()
    local t = H.pane_text(run_id)
    for _, s in ipairs(run.steps) do
      if not t:find(s.id, 1, true) then
        return false
      end
    end
    return t:find('── Steps', 1, true)
  end, 'roster drawn')
  local text = H.pane_text(run_id)
  H.artifact('1-roster', text)
  H.contains(text, 'boo · code-review · small', 'header')
  H.contains(text, 'Focus: what could break in the cache? [[fake:slow]]', 'focus')
  H.eq(run.root, project, 'root is the project')
  for _, s in ipairs(run.steps) do
    H.contains(text, s.id, 'roster line of ' .. s.id)
  end
  H.contains(text, 'behavioral-analyst', 'persona in the roster')
  H.contains(text, 'adversarial-security-analyst', 'persona in the roster')
  H.ok(#vim.lsp.get_clients({ name = 'boo' }) == 1, 'one client')
end)

H.test('a streamed delta shows in the expanded step while the run is live', function()
  H.wait(30000, function()
    local t = H.pane_text(run_id)
    return t:find('Looking at the project.', 1, true) and t:find('⚙ glob', 1, true)
  end, 'streamed text and a tool call in the pane')
  local run = client.store:get(run_id)
  local text = H.pane_text(run_id)
  H.artifact('2-streaming', text)
  H.eq(run.status, 'running', 'still running when the delta showed')
  H.contains(text, "┆ I should list the project's files first.", 'thinking, dimmed prefix')
  H.contains(text, '⚙ glob', 'tool call')
  local expanded = pane.panes[run_id].shown_expanded
  H.ok(expanded and run.by_id[expanded].kind == 'agent', 'an agent step is expanded')
  H.contains(text, '── ' .. expanded .. ' · ', 'its section')
end)

H.test('the report is on top when the run completes', function()
  H.wait(90000, function()
    return client.store:get(run_id).status ~= 'running'
  end, 'the end of the run')
  local run = client.store:get(run_id)
  H.eq(run.status, 'completed', 'run status (error: ' .. tostring(run.error) .. ')')
  H.ok(type(run.report) == 'string' and #run.report > 0, 'a report came with the last notification')
  H.wait(3000, function()
    return H.pane_text(run_id):find('── Report', 1, true)
  end, 'report drawn')
  local text = H.pane_text(run_id)
  H.artifact('3-report', text)
  local lines = vim.split(text, '\n', { plain = true })
  H.contains(lines[1], '✓ completed', 'header status')
  local report_at = text:find('── Report', 1, true)
  local roster_at = text:find('── Steps', 1, true)
  H.ok(report_at < roster_at, 'report above the roster')
  local first = vim.split(run.report, '\n', { plain = true })[1]
  H.contains(text:sub(report_at, roster_at), first, 'report text in the pane')
  for _, s in ipairs(run.steps) do
    H.ok(require('boo.state').TERMINAL_STEP[s.status], 'step ' .. s.id .. ' ended: ' .. s.status)
  end
  H.ok(vim.tbl_contains(progress_seen, 'begin') and vim.tbl_contains(progress_seen, 'end'),
    '$/progress begin and end seen: ' .. vim.inspect(progress_seen))
end)

H.test('verified findings show up as diagnostics on the cited file; :Boo findings lists them', function()
  local readme = project .. '/README.md'
  local bufnr = vim.fn.bufadd(readme)
  local diag = H.wait(10000, function()
    for _, d in ipairs(vim.diagnostic.get(bufnr)) do
      if d.source == 'boo' then
        return d
      end
    end
  end, 'a boo diagnostic on README.md')
  H.eq(diag.lnum, 0, 'line 1')
  H.contains(diag.message, '[code-review/', 'message names the flow')
  H.contains(diag.message, 'First line of README.md', 'finding title')
  vim.cmd('Boo findings')
  local qf = vim.fn.getqflist({ title = 1, items = 1 })
  H.contains(qf.title, 'code-review', 'quickfix title')
  H.ok(#qf.items >= 1, 'quickfix items; boo diagnostics: ' .. vim.inspect(require('boo.findings').all()))
  H.eq(vim.api.nvim_buf_get_name(qf.items[1].bufnr), readme, 'quickfix file')
  H.eq(qf.items[1].lnum, 1, 'quickfix line')
  vim.cmd('cclose')
end)

H.test(':Boo export writes the report to a file, a register and a buffer', function()
  local win = vim.fn.bufwinid(pane.panes[run_id].buf)
  vim.api.nvim_set_current_win(win)
  local path = H.tmpdir('export') .. '/report.md'
  vim.cmd('Boo export file ' .. path)
  H.wait(5000, function()
    return vim.fn.filereadable(path) == 1
  end, 'the exported file')
  local content = table.concat(vim.fn.readfile(path), '\n')
  H.contains(content, 'what could break in the cache?', 'the question in the export')
  H.artifact('4-export', content)
  vim.cmd('Boo export register a')
  H.wait(5000, function()
    return vim.fn.getreg('a') ~= ''
  end, 'register a')
  H.eq(vim.trim(vim.fn.getreg('a')), vim.trim(content), 'register = file')
  vim.cmd('Boo export buffer')
  H.wait(5000, function()
    return vim.bo.filetype == 'markdown'
  end, 'a markdown buffer')
  H.eq(vim.trim(table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')), vim.trim(content), 'buffer = file')
  vim.cmd('tabclose')
end)

H.test('t in the pane opens the traces: bars, latency, outcome, tokens, cache hit rate', function()
  local win = vim.fn.bufwinid(pane.panes[run_id].buf)
  vim.api.nvim_set_current_win(win)
  vim.api.nvim_feedkeys('t', 'x', false)
  local tbuf = H.wait(10000, function()
    local b = vim.fn.bufnr('boo://traces/' .. run_id)
    return b > 0 and vim.api.nvim_buf_line_count(b) > 3 and b
  end, 'the trace buffer')
  local text = table.concat(vim.api.nvim_buf_get_lines(tbuf, 0, -1, false), '\n')
  H.artifact('5-traces', text)
  H.eq(vim.bo[tbuf].filetype, 'boo-traces', 'filetype')
  H.contains(text, 'boo traces · code-review', 'title')
  H.contains(text, 'glob ', 'glob call')
  H.contains(text, 'read_file ', 'read_file call')
  H.contains(text, '█', 'timing bar')
  H.ok(text:find('%d+ ms ok'), 'latency and outcome')
  H.contains(text, 'cache hit', 'cache hit rate')
  H.ok(text:find('in %d') and text:find('cache read %d'), 'token breakdown')
  vim.cmd('close')
end)

H.test('r re-runs the same flow, band and focus', function()
  local win = vim.fn.bufwinid(pane.panes[run_id].buf)
  vim.api.nvim_set_current_win(win)
  local first = run_id
  vim.api.nvim_feedkeys('r', 'x', false)
  local second = H.wait(15000, function()
    return pane.last_run_id ~= first and pane.last_run_id
  end, 'a new run')
  local r2 = client.store:get(second)
  H.wait(10000, function()
    return r2.flow ~= nil and #r2.steps > 0
  end, 'second roster')
  H.eq({ r2.flow, r2.band, r2.question, r2.root }, { 'code-review', 'small', 'what could break in the cache? [[fake:slow]]', project },
    'same launch')
  H.wait(90000, function()
    return require('boo.state').is_terminal(r2.status)
  end, 'second run end')
  H.eq(r2.status, 'completed', 'second run completed')
end)

vim.notify = real_notify
H.finish()
