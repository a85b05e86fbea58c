-- End to end: stream integrity against the real server. One agentStream
-- notification is dropped (a gap) and one is delivered twice (a duplicate);
-- the plugin must refetch with transcripts and end with exactly the
-- server's transcript.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local project = H.project()
vim.cmd('cd ' .. vim.fn.fnameescape(project))
H.setup({ env = { FAKE_QWEN_DELAY_MS = '60' } })
vim.cmd('edit ' .. vim.fn.fnameescape(project .. '/cache.py'))

local pane = require('boo.pane')
local client = require('boo.client')
local state = require('boo.state')

local dropped, duplicated
local orig = client.handlers['boo/agentStream']
client.handlers['boo/agentStream'] = function(err, p, ctx)
  if not dropped and p.seq == 3 then
    dropped = { chatId = p.chatId, stepId = p.stepId, seq = p.seq }
    return
  end
  if not duplicated and p.seq == 2 and (not dropped or p.chatId ~= dropped.chatId) then
    duplicated = { chatId = p.chatId, seq = p.seq }
    orig(err, p, ctx)
  end
  orig(err, p, ctx)
end

-- Refetches asked for because of a gap (the run is flagged for resync).
local refetches = 0
local orig_refetch = client.refetch
client.refetch = function(run_id, ...)
  local run = client.store:get(run_id)
  if run and run.resync then
    refetches = refetches + 1
  end
  return orig_refetch(run_id, ...)
end

H.test('a gap triggers a transcript refetch, a duplicate is dropped, the stream ends exact', function()
  vim.cmd('Boo flow code-review small check the stream [[fake:slow]]')
  local id = H.wait(20000, function()
    return pane.last_run_id
  end, 'a run')
  H.wait(30000, function()
    return dropped and duplicated
  end, 'a dropped and a duplicated notification')
  H.wait(10000, function()
    return refetches >= 1
  end, 'a refetch after the gap')
  local run = client.store:get(id)
  H.wait(90000, function()
    return state.is_terminal(run.status)
  end, 'the end of the run')
  H.eq(run.status, 'completed', 'completed')
  H.eq(run.resync, false, 'no refetch pending')
  H.ok(H.compare_with_server(id) >= 2, 'agent steps compared')
  local gapped = run.by_chat[dropped.chatId]
  H.ok(gapped and #gapped.blocks > 0, 'the gapped step has its stream')
  H.artifact('pane', H.pane_text(id))
  H.report(string.format('  (dropped seq %d of %s, duplicated seq %d, %d refetch(es))', dropped.seq, dropped.stepId or '?',
    duplicated.seq, refetches))
end)

H.finish()
