-- End to end: the launcher (category → flow → size + fast toggle → focus)
-- with vim.ui.select / vim.ui.input replaced by a script.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local project = H.project()
vim.cmd('cd ' .. vim.fn.fnameescape(project))
H.setup()
vim.cmd('edit ' .. vim.fn.fnameescape(project .. '/cache.py'))

local pane = require('boo.pane')
local client = require('boo.client')
local state = require('boo.state')

-- What the plugin sends (the server does not echo `fast`).
local sent
local orig_request = client.request
client.request = function(root, method, params, cb)
  if method == 'boo/launchFlow' then
    sent = vim.deepcopy(params)
  end
  return orig_request(root, method, params, cb)
end

local step = 0
H.script_select(function(labels)
  step = step + 1
  if step == 1 then
    return H.find_label(labels, '^Review')
  elseif step == 2 then
    return H.find_label(labels, '^Code review')
  elseif step == 3 then
    return H.find_label(labels, 'fast mode', true)
  else
    return H.find_label(labels, '^small')
  end
end)
local inputs = {}
vim.ui.input = function(opts, on_confirm)
  table.insert(inputs, opts.prompt)
  vim.schedule(function()
    on_confirm('  how is the cache used? [[fake:hang]]  ')
  end)
end

H.test(':Boo runs the launcher: category, flow with description, size with a fast toggle, focus', function()
  vim.cmd('Boo')
  local id = H.wait(20000, function()
    return pane.last_run_id
  end, 'a run from the launcher')
  H.eq(#H.selects, 4, 'four selects (category, flow, size, size after the toggle)')
  local cats = H.selects[1].labels
  local order = {}
  for _, l in ipairs(cats) do
    order[#order + 1] = l:match('^(%a+)')
  end
  local want = vim.tbl_filter(function(c)
    return vim.tbl_contains(order, c)
  end, { 'Analysis', 'Discovery', 'Planning', 'Authoring', 'Review' })
  want[#want + 1] = 'Workflow'
  H.eq(order, want, 'categories in the documented order, then the workflows')
  H.ok(#order >= 2, 'several categories')
  local flow_label = H.selects[2].labels[H.find_label(H.selects[2].labels, '^Code review')]
  H.contains(flow_label, 'Reviews the working-tree', 'the flow description')
  H.contains(H.selects[3].labels[1], 'small (default)', 'small is the default')
  H.contains(table.concat(H.selects[3].labels, '\n'), '[ ] fast mode', 'fast toggle off')
  H.contains(table.concat(H.selects[4].labels, '\n'), '[x] fast mode', 'fast toggle on')
  H.eq(#inputs, 1, 'one focus prompt')
  H.contains(inputs[1], 'code-review (small, fast)', 'focus prompt names the choice')
  H.eq(sent, {
    flow = 'code-review',
    band = 'small',
    fast = true,
    input = { question = 'how is the cache used? [[fake:hang]]' },
    root = project,
  }, 'launch params')
  local run = client.store:get(id)
  H.wait(10000, function()
    return #run.steps > 0 and H.pane_text(id):find('── Steps', 1, true)
  end, 'roster in the pane')
  H.artifact('1-launched', H.pane_text(id))
  require('boo').cancel(id)
  H.wait(20000, function()
    return state.is_terminal(run.status)
  end, 'cancelled')
end)

H.test('cancelling the launcher at any step launches nothing', function()
  local before = pane.last_run_id
  sent = nil
  H.script_select(function()
    return nil
  end)
  vim.cmd('Boo launch')
  vim.wait(500)
  H.eq(sent, nil, 'nothing sent')
  H.eq(pane.last_run_id, before, 'no new pane')
end)

H.finish()
