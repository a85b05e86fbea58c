-- End to end: a project flow in an untrusted folder. The launcher marks it
-- untrusted; launching it asks to trust the folder; "Cancel" launches nothing,
-- "Trust" calls boo/trustRoot and launches again, and the run completes.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local project = H.project()
vim.fn.mkdir(project .. '/.boo/flows', 'p')
vim.fn.writefile({
  'name = "solo"',
  'title = "Solo"',
  'category = "analysis"',
  'description = "One look"',
  '',
  '[[steps]]',
  'id = "solo"',
  'kind = "agent"',
  'persona = "structural-analyst"',
  'prompt = "Look."',
}, project .. '/.boo/flows/solo.toml')
vim.cmd('cd ' .. vim.fn.fnameescape(project))
H.setup()

local boo = require('boo')
local client = require('boo.client')
local notes = {}
local real_notify = vim.notify
vim.notify = function(msg, level)
  table.insert(notes, { msg = msg, level = level })
end

H.test('the launcher marks an untrusted project flow', function()
  local got
  boo.flows(nil, function(err, flows)
    got = { err = err, flows = flows }
  end)
  H.wait(10000, function()
    return got ~= nil
  end, 'flows')
  H.ok(got.err == nil, 'no error')
  local solo
  for _, f in ipairs(got.flows) do
    if f.name == 'solo' then
      solo = f
    end
  end
  H.ok(solo and solo.source == 'project', 'solo is a project flow')
  H.eq(require('boo.launcher')._trusted, false, 'the folder is untrusted')
end)

H.test('cancel at the trust prompt launches nothing', function()
  H.script_select(function(labels)
    return H.find_label(labels, 'Cancel', true)
  end)
  local done
  boo.launch({ flow = 'solo', question = 'anything?' }, function(err, id)
    done = { err = err, id = id }
  end)
  H.wait(10000, function()
    return done ~= nil
  end, 'launch answer')
  H.eq(done.err and done.err.code, -32005, 'refused as untrusted')
  H.ok(done.id == nil, 'no run')
  local prompt = H.selects[#H.selects].prompt
  H.contains(prompt, 'not trusted', 'the prompt says why')
  local runs = client.request_sync(project, 'boo/listRuns', vim.empty_dict(), 5000)
  H.eq(#((runs or {}).runs or {}), 0, "no run row")
end)

H.test('trust at the prompt trusts the folder and launches', function()
  H.script_select(function(labels)
    return H.find_label(labels, 'Trust', true)
  end)
  local done
  boo.launch({ flow = 'solo', question = 'anything?' }, function(err, id)
    done = { err = err, id = id }
  end)
  H.wait(15000, function()
    return done ~= nil
  end, 'launch answer')
  H.ok(done.err == nil and done.id, 'launched after trusting')
  local listed = client.request_sync(project, 'boo/listFlows', vim.empty_dict(), 5000)
  H.eq(listed and listed.trusted, true, 'the server records the trust')
  local run = client.store:get(done.id)
  H.wait(60000, function()
    return require('boo.state').is_terminal(run.status)
  end, 'run end')
  H.eq(run.status, 'completed', 'the project flow ran')
end)

vim.notify = real_notify
H.finish()
