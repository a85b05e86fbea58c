-- End to end: cancel a hanging run from the pane; agents stop; a second
-- cancel answers -32004 naming the status.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local project = H.project()
vim.cmd('cd ' .. vim.fn.fnameescape(project))
H.setup()
vim.cmd('edit ' .. vim.fn.fnameescape(project .. '/cache.py'))

local pane = require('boo.pane')
local client = require('boo.client')
local state = require('boo.state')
local run_id

local notes = {}
vim.notify = function(msg, level)
  table.insert(notes, { msg = msg, level = level })
end

H.on_timeout = function()
  return 'pane:\n' .. (run_id and H.pane_text(run_id) or '(none)')
end

H.test('c in the pane cancels a hanging run; every step ends; no agent is left', function()
  vim.cmd('Boo flow code-review small wait forever [[fake:hang]]')
  run_id = H.wait(20000, function()
    return pane.last_run_id
  end, 'a run')
  local run = client.store:get(run_id)
  H.wait(30000, function()
    return H.pane_text(run_id):find('Thinking very hard', 1, true)
  end, 'a hanging agent streaming')
  H.ok(#H.pids_in(H.snapshots(), 'fake-qwen') > 0, "agents are running in the run's snapshot")
  H.artifact('1-hanging', H.pane_text(run_id))
  vim.api.nvim_set_current_win(vim.fn.bufwinid(pane.panes[run_id].buf))
  vim.api.nvim_feedkeys('c', 'x', false)
  H.wait(20000, function()
    return run.status == 'cancelled'
  end, 'cancelled status')
  H.wait(3000, function()
    return vim.split(H.pane_text(run_id), '\n')[1]:find('⊘ cancelled', 1, true)
  end, 'the header shows it')
  for _, s in ipairs(run.steps) do
    H.ok(state.TERMINAL_STEP[s.status], 'step ' .. s.id .. ' ended: ' .. s.status)
  end
  H.wait(10000, function()
    return #H.pids_in(H.snapshots(), 'fake-qwen') == 0
  end, 'no fake-qwen process left: ' .. table.concat(H.pids_in(H.snapshots(), 'fake-qwen'), '; '))
  H.artifact('2-cancelled', H.pane_text(run_id))
end)

H.test('cancelling a run that already ended answers -32004 naming its status', function()
  local got
  client.run_request(run_id, 'boo/cancelRun', { runId = run_id }, function(err, res)
    got = { err = err, res = res }
  end)
  H.wait(5000, function()
    return got
  end, 'the answer')
  H.ok(got.err, 'an error, got result ' .. vim.inspect(got.res))
  H.eq(got.err.code, -32004, 'code')
  H.contains(got.err.message, 'cancelled', 'message names the status')
  notes = {}
  vim.cmd('Boo cancel')
  H.wait(5000, function()
    return #notes > 0
  end, 'a notification')
  H.contains(notes[1].msg, 'cancelled', 'the user is told the status')
  H.eq(notes[1].level, vim.log.levels.WARN, 'a warning')
end)

H.finish()
