-- End to end: runs survive a server restart. Stop the client (the server
-- exits), start a new one on the same database through :Boo runs, and
-- rebuild the pane from boo/getRun {transcript = true}.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local project = H.project()
vim.cmd('cd ' .. vim.fn.fnameescape(project))
H.setup({ env = { FAKE_QWEN_DELAY_MS = '150' } })
vim.cmd('edit ' .. vim.fn.fnameescape(project .. '/cache.py'))

local pane = require('boo.pane')
local client = require('boo.client')
local state = require('boo.state')

H.on_timeout = function()
  local id = pane.last_run_id
  return 'pane:\n' .. (id and H.pane_text(id) or '(none)')
end

local function launch(question)
  local before = pane.last_run_id
  vim.cmd('Boo flow code-review small ' .. question)
  return H.wait(20000, function()
    return pane.last_run_id ~= before and pane.last_run_id
  end, 'a run')
end

--- Forget everything the editor knew: stop the servers, wipe the panes,
--- start from an empty store.
local function forget()
  H.stop_clients()
  for id, p in pairs(pane.panes) do
    if vim.api.nvim_buf_is_valid(p.buf) then
      vim.api.nvim_buf_delete(p.buf, { force = true })
    end
    pane.panes[id] = nil
  end
  client.store = state.new()
  client.run_client = {}
end

local function open_from_history(id)
  H.selects = {}
  H.script_select(function(_, items)
    for i, r in ipairs(items) do
      if r.runId == id then
        return i
      end
    end
    error('run ' .. id .. ' not in the history')
  end)
  vim.cmd('Boo runs')
  H.wait(20000, function()
    local run = client.store:get(id)
    return pane.panes[id] and run and run.loaded and H.pane_text(id):find('── Steps', 1, true)
      and not H.pane_text(id):find('(loading…)', 1, true)
  end, 'the pane rebuilt from history')
end

local function roster_lines(text)
  local out = {}
  for _, l in ipairs(vim.split(text, '\n', { plain = true })) do
    local st = l:match('^[▸▾ ] (%S+ %S+)')
    if st and l:find('  w%d') then
      out[#out + 1] = st
    end
  end
  return out
end

H.test('a finished run reopens from :Boo runs after a restart, rebuilt from its transcript', function()
  local id = launch('first look [[fake:slow]]')
  local run = client.store:get(id)
  H.wait(90000, function()
    return state.is_terminal(run.status)
  end, 'the run to finish')
  H.eq(run.status, 'completed', 'completed')
  H.wait(3000, function()
    return H.pane_text(id):find('── Report', 1, true)
  end, 'report drawn')
  local before = H.pane_text(id)
  H.artifact('1-before-restart', before)
  local expanded = pane.panes[id].shown_expanded
  forget()
  H.eq(#vim.lsp.get_clients({ name = 'boo' }), 0, 'servers stopped')
  open_from_history(id)
  H.eq(#vim.lsp.get_clients({ name = 'boo' }), 1, 'a new server')
  local label = H.selects[1].labels[1]
  H.contains(table.concat(H.selects[1].labels, '\n'), 'code-review', 'history names the flow')
  H.contains(table.concat(H.selects[1].labels, '\n'), 'completed', 'history shows the status')
  H.contains(table.concat(H.selects[1].labels, '\n'), 'first look', 'history shows the focus')
  H.ok(label:find('ago'), 'history shows the age')
  H.wait(5000, function()
    return H.pane_text(id):find('── Report', 1, true)
  end, 'report after reopening')
  local after = H.pane_text(id)
  H.artifact('2-after-restart', after)
  H.eq(roster_lines(after), roster_lines(before), 'same roster and statuses')
  H.ok(#roster_lines(after) >= 4, 'roster lines found')
  local rep_before = before:sub(before:find('── Report', 1, true), before:find('── Steps', 1, true))
  local rep_after = after:sub(after:find('── Report', 1, true), after:find('── Steps', 1, true))
  H.eq(rep_after, rep_before, 'same report')
  -- The transcript rebuilds the stream of the step shown before.
  pane.expand(id, expanded)
  local text = H.pane_text(id)
  H.contains(text, 'Looking at the project.', 'streamed text rebuilt')
  H.contains(text, '⚙ read_file', 'tool calls rebuilt')
end)

H.test('a run interrupted by a server stop resumes in the new server; the reopened pane follows it', function()
  local id = launch('resume me [[fake:slow]]')
  H.wait(30000, function()
    return H.pane_text(id):find('Looking at the project.', 1, true)
  end, 'an agent streaming')
  local chats_before = {}
  for _, s in ipairs(client.store:get(id).steps) do
    chats_before[s.id] = s.chatId and (s.chatId .. '@' .. s.last_seq .. ' ' .. s.status)
  end
  H.stop_clients()
  H.wait(5000, function()
    return H.pane_text(id):find('Server disconnected', 1, true)
  end, 'the pane says the server went away')
  H.artifact('3-disconnected', H.pane_text(id))
  -- The editor keeps what it knew (a server restart, not an editor restart):
  -- the resumed steps get new chats and their streams start over at seq 1.
  open_from_history(id)
  H.artifact('4-reopened', H.pane_text(id))
  local run = client.store:get(id)
  H.wait(90000, function()
    return state.is_terminal(run.status)
  end, 'the resumed run to finish')
  H.eq(run.status, 'completed', 'completed after resume (error: ' .. tostring(run.error) .. ')')
  H.wait(5000, function()
    return H.pane_text(id):find('── Report', 1, true)
  end, 'report on top')
  H.artifact('5-resumed-done', H.pane_text(id))
  -- Every agent step shows exactly the server's stream (not the stale one).
  local chats_after = {}
  for _, s in ipairs(run.steps) do
    chats_after[s.id] = s.chatId and (s.chatId .. '@' .. s.last_seq)
  end
  H.report('  (chats before the stop: ' .. vim.inspect(chats_before, { newline = ' ', indent = '' }) .. ')')
  H.report('  (chats after the resume: ' .. vim.inspect(chats_after, { newline = ' ', indent = '' }) .. ')')
  H.ok(H.compare_with_server(id) >= 3, 'agent steps compared')
end)

H.finish()
