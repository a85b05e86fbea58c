-- Children of agents (rule 20) in the pane, their finish notifications and the
-- statusline, from the notifications of the shared case flow-children.json fed
-- through the plugin's own handlers (no server: the server that spawns
-- children is checked by the protocol cases and the server's tests).
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')

require('boo').setup({ cmd = { H.bin, 'serve' }, layout = 'vsplit' })
local pane = require('boo.pane')
local client = require('boo.client')

local notes = {}
vim.notify = function(msg, level)
  table.insert(notes, { msg = tostring(msg), level = level })
end
local function notes_with(needle)
  local out = {}
  for _, n in ipairs(notes) do
    if n.msg:find(needle, 1, true) then
      out[#out + 1] = n
    end
  end
  return out
end

local text = table.concat(vim.fn.readfile(H.repo .. '/tests/protocol-cases/flow-children.json'), '\n')
local case = vim.json.decode(text, { luanil = { object = true } })
local RUN = case.runId
-- The same run again under another id: its pane is never opened.
local other = vim.json.decode(text:gsub(RUN, '0193a000-0000-7000-8000-0000000002ff'), { luanil = { object = true } })

local function feed(item)
  client.handlers[item.method](nil, item.params, { client_id = 4242 })
end

--- Feed the case's notifications from index i to j (checkpoints skipped).
local function feed_range(c, i, j)
  for k = i, j do
    if c.input[k].method then
      feed(c.input[k])
    end
  end
end

local checkpoint
for i, item in ipairs(case.input) do
  if item.expect then
    checkpoint = i
  end
end

local function lines_of(run_id)
  pane.render(run_id)
  return vim.split(H.pane_text(run_id), '\n', { plain = true })
end

local function row_of(lines, id)
  for i, l in ipairs(lines) do
    if l:match('^[└ %s▸▾]*%S+ ' .. vim.pesc(id) .. ' ') then
      return i, l
    end
  end
  error('no row for ' .. id .. ' in:\n' .. table.concat(lines, '\n'), 2)
end

H.test('children show under their parent, indented, in order of appearance', function()
  H.eq(require('boo').statusline(), '', 'nothing to count yet')
  feed(case.input[1])
  pane.open(RUN)
  feed_range(case, 2, checkpoint - 1)
  local lines = lines_of(RUN)
  H.artifact('pane-running', table.concat(lines, '\n'))
  local order = {}
  for _, id in ipairs({ 'diff', 'security', 'security.sub-1', 'security.sub-2', 'perf', 'perf.sub-1', 'report' }) do
    order[#order + 1] = (row_of(lines, id))
  end
  for i = 2, #order do
    H.eq(order[i], order[i - 1] + 1, 'row after the previous one (' .. i .. ')')
  end
  local _, parent = row_of(lines, 'security')
  local _, child = row_of(lines, 'security.sub-1')
  H.ok(not vim.startswith(parent, '└'), 'a parent is not indented: ' .. parent)
  H.ok(vim.startswith(child, '  └ '), 'a child is indented under it: ' .. child)
  H.ok(vim.startswith(select(2, row_of(lines, 'perf.sub-1')), '  └ '), 'perf.sub-1 too')
  H.contains(lines[1], 'security-review · small', 'still a flow run (no workflow header)')
end)

H.test('a child opens with its own stream', function()
  pane.expand(RUN, 'security.sub-1')
  local t = H.pane_text(RUN)
  H.contains(t, '── security.sub-1 · adversarial-security-analyst · Check the session cookie · spawned by security', 'its title')
  H.contains(t, 'Cookie is HttpOnly.', 'its stream')
  H.not_contains(t, 'Two leads.', 'not its parent’s stream')
end)

H.test('the statusline counts children of runs open in a pane', function()
  H.eq(require('boo').statusline(), 'boo: 3 running', 'three children running')
  vim.o.statusline = "%{v:lua.require'boo'.statusline()}"
  H.eq(vim.api.nvim_eval_statusline(vim.o.statusline, {}).str, 'boo: 3 running', 'as a statusline expression')
  -- The other run's children (no pane) do not count.
  feed_range(other, 1, checkpoint - 1)
  H.eq(require('boo').statusline(), 'boo: 3 running', 'a run without a pane does not count')
end)

H.test('a child that ends is notified (once) when its run is open in a pane; parents are not', function()
  feed_range(case, checkpoint + 1, #case.input)
  feed_range(other, checkpoint + 1, #other.input)
  local mine = notes_with('spawned by')
  H.eq(#mine, 3, 'three child notifications:\n' .. vim.inspect(notes))
  H.contains(mine[1].msg, 'security.sub-1 (adversarial-security-analyst, spawned by security) completed: Check the session cookie',
    'names the child, its persona, its parent and its task')
  H.eq(#notes_with('perf.sub-1'), 1, 'perf.sub-1 once')
  H.eq(#notes_with('0193a000-0000-7000-8000-0000000002ff'), 0, 'nothing about the run without a pane')
  H.eq(require('boo').statusline(), 'boo: 3 done', 'all three done')
  -- A repeated final update tells nothing again.
  feed({ method = 'boo/stepUpdated', params = { runId = RUN, stepId = 'perf.sub-1', status = 'completed' } })
  H.eq(#notes_with('perf.sub-1'), 1, 'still once')
  H.artifact('pane-done', table.concat(lines_of(RUN), '\n'))
end)

H.finish()
