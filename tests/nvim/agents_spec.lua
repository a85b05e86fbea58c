-- End to end: background agents from Neovim against the real server with the fake
-- qwen. :Boo ask opens the agent's pane and its run completes; :Boo ask
-- --background opens nothing and a notification says when the agent ends;
-- :Boo agents lists them (persona, status) and opens the one picked.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local project = H.project()
vim.cmd('cd ' .. vim.fn.fnameescape(project))
H.setup()

local pane = require('boo.pane')
local client = require('boo.client')
local state = require('boo.state')

local notes = {}
vim.notify = function(msg, level)
  table.insert(notes, { msg = tostring(msg), level = level })
end

local function note_with(needle)
  for _, n in ipairs(notes) do
    if n.msg:find(needle, 1, true) then
      return n
    end
  end
end

H.test(':Boo ask opens the agent pane and the run completes with a report', function()
  vim.cmd('Boo ask codebase-explorer where is the cache invalidated?')
  local id = H.wait(20000, function()
    return pane.last_run_id
  end, 'the agent run')
  local run = client.store:get(id)
  H.wait(60000, function()
    return state.is_terminal(run.status) and run.report ~= nil
  end, 'the agent run ends')
  H.eq(run.status, 'completed', 'completed')
  H.eq(#run.steps, 1, 'one step')
  H.eq(run.steps[1].id, 'agent', 'the agent step')
  H.contains(H.pane_text(id), 'codebase-explorer', 'the pane names the persona')
  H.ok(note_with('agent codebase-explorer completed'), 'a notification says it ended')
end)

H.test(':Boo ask --background opens no pane and notifies when the agent ends', function()
  local before = pane.last_run_id
  local started
  require('boo').ask({ persona = 'codebase-explorer', prompt = 'look around quietly', background = true }, function(err, id)
    started = { err = err, id = id }
  end)
  H.wait(20000, function()
    return started
  end, 'spawnAgent answered')
  H.eq(started.err, nil, 'no error')
  H.eq(pane.last_run_id, before, 'no pane opened')
  H.ok(note_with('working in the background'), 'it says the agent started')
  H.wait(60000, function()
    return note_with('look around quietly')
  end, 'the end notification')
  H.contains(note_with('look around quietly').msg, 'completed', 'it completed')
  H.contains(note_with('look around quietly').msg, started.id, 'it names the run to open')
end)

H.test(':Boo agents lists both with persona and status and opens the one picked', function()
  H.selects = {}
  local listed
  H.script_select(function(labels)
    listed = labels
    return H.find_label(labels, 'look around quietly', true)
  end)
  local got
  require('boo').agents(nil, function(err, id)
    got = { err = err, id = id }
  end)
  H.wait(20000, function()
    return got
  end, 'an agent picked')
  H.eq(#listed, 2, 'two agents')
  H.contains(listed[1], 'completed', 'status shown')
  H.contains(listed[1], 'codebase-explorer', 'persona shown')
  H.eq(pane.last_run_id, got.id, 'its pane opened')
end)

H.test('the agents list shows prompt, elapsed time and tokens; <CR> opens the stream and the result', function()
  H.selects = {}
  local listed
  H.script_select(function(labels)
    listed = labels
    return H.find_label(labels, 'where is the cache invalidated', true)
  end)
  local got
  require('boo').agents(nil, function(err, id)
    got = { err = err, id = id }
  end)
  H.wait(20000, function()
    return got
  end, 'an agent picked')
  H.artifact('list', table.concat(listed, '\n'))
  for _, l in ipairs(listed) do
    H.ok(l:match('^completed +codebase%-explorer +%d+%.%ds +%d+%.%dk tok  %S'), 'status, persona, elapsed, tokens, prompt: ' .. l)
  end
  H.contains(listed[2], 'where is the cache invalidated?', 'the prompt')
  local run = client.store:get(got.id)
  H.wait(20000, function()
    return run.loaded and run.report and H.pane_text(got.id):find('Looking at the project.', 1, true)
  end, 'the stream and the report in the pane')
  H.contains(H.pane_text(got.id), '── Report', 'the result')
end)

H.test('the statusline counts the background agents this editor follows', function()
  H.eq(require('boo').statusline(), 'boo: 2 done', 'the two finished agents')
  local started
  require('boo').ask({ persona = 'codebase-explorer', prompt = 'keep looking [[fake:hang]]', background = true }, function(err, id)
    started = { err = err, id = id }
  end)
  H.wait(20000, function()
    return started
  end, 'spawnAgent answered')
  H.eq(require('boo').statusline(), 'boo: 1 running, 2 done', 'one running')
  vim.o.statusline = "%{v:lua.require'boo'.statusline()}"
  H.eq(vim.api.nvim_eval_statusline(vim.o.statusline, {}).str, 'boo: 1 running, 2 done', 'as a statusline expression')
  require('boo').cancel(started.id)
  H.wait(20000, function()
    return require('boo').statusline() == 'boo: 2 done, 1 cancelled'
  end, 'cancelled: ' .. require('boo').statusline())
  H.ok(note_with('agent codebase-explorer cancelled'), 'a notification says it was cancelled')
end)

H.finish()
