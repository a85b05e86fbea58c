-- End to end: workflow runs against the real server with the fake qwen.
-- :Boo workflow runs a script file (scriptPath) with args and a budget; the
-- pane shows the agents live under their phases (meta.phases order), the run
-- log, the budget, and the result on top; a second run is answered from the
-- cache and the pane marks it; a failing script shows its line:column; the
-- history rebuilds a workflow run (cached marks from getRun), export and
-- traces work for it. The launcher's parsing of args and budget, too.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local project = H.project()
vim.cmd('cd ' .. vim.fn.fnameescape(project))
H.setup({ env = { FAKE_QWEN_DELAY_MS = '30' } })
vim.fn.mkdir(project .. '/wf', 'p')
-- Refine is called before Survey's agents finish appearing in the log order,
-- but meta.phases puts Survey first.
vim.fn.writefile({
  "export const meta = { name: 'audit', description: 'survey then refine', phases: [{ title: 'Survey' }, { title: 'Refine' }] };",
  "phase('Survey');",
  "const parts = await parallel(['alpha', 'beta'].map(p => () => agent('Describe part ' + p + ' of cache.py', { label: 'part ' + p })));",
  "log('surveyed ' + parts.filter(Boolean).length + ' parts');",
  "phase('Refine');",
  "const refined = await agent('Refine the survey', { label: 'refine' });",
  'return { parts: parts.filter(Boolean).length, refined: refined !== null, args };',
}, project .. '/wf/audit.js')
vim.fn.writefile({
  "export const meta = { name: 'broken', description: 'fails on line 3' };",
  "log('about to fail');",
  'const x = null; x.length;',
}, project .. '/wf/broken.js')

local pane = require('boo.pane')
local client = require('boo.client')
local state = require('boo.state')
local boo = require('boo')
local run1, run2

local real_notify = vim.notify
vim.notify = function(msg, level)
  if level and level >= vim.log.levels.WARN then
    io.stderr:write('notify: ' .. tostring(msg) .. '\n')
  end
end

H.on_timeout = function()
  local id = pane.last_run_id
  local run = id and client.store:get(id)
  return 'run status: ' .. tostring(run and run.status) .. '\npane:\n' .. (id and H.pane_text(id) or '(no pane)')
end

local function wait_end(id, what)
  local run = client.store:get(id)
  H.wait(60000, function()
    return state.is_terminal(run.status) and run.report ~= nil or run.status == 'failed'
  end, what)
  return run
end

local function new_run(prev)
  return H.wait(20000, function()
    return pane.last_run_id ~= prev and pane.last_run_id
  end, 'a new run id')
end

--- The pane's text now (renders first: redraws are batched on a timer).
local function text_of(id)
  pane.render(id)
  return H.pane_text(id)
end

--- Lines of the pane, and the row of the first line containing `needle`.
local function row_of(text, needle)
  for i, l in ipairs(vim.split(text, '\n', { plain = true })) do
    if l:find(needle, 1, true) then
      return i
    end
  end
end

H.test('args and budget as typed: JSON as JSON, else text; budgets with k and separators', function()
  H.eq(boo.parse_args('{"depth": 1}'), { depth = 1 }, 'JSON object')
  H.eq(boo.parse_args('review the cache'), 'review the cache', 'plain text')
  H.eq(boo.parse_args('{broken'), '{broken', 'not JSON: text')
  H.eq(boo.parse_args('  '), nil, 'empty: no args')
  H.eq(boo.parse_budget('20k'), 20000, '20k')
  H.eq(boo.parse_budget('20,000'), 20000, '20,000')
  H.eq(boo.parse_budget(''), nil, 'empty: no budget')
  local n, err = boo.parse_budget('lots')
  H.eq(n, nil, 'lots')
  H.contains(err, 'number of output tokens', 'the message says what to type')
  local line = require('boo.launcher').format_workflow(
    { name = 'audit', description = 'survey then refine', source = 'project', phases = { { title = 'Survey' }, { title = 'Refine' } } }, false)
  H.eq(line, 'audit [project, untrusted] — survey then refine (Survey → Refine)', 'an untrusted project workflow is marked')
end)

H.test(':Boo workflow runs a script: agents appear live under their phases, the log, the budget, the result on top', function()
  vim.cmd('Boo workflow --budget 20k wf/audit.js {"depth": 1}')
  run1 = new_run(nil)
  local run = client.store:get(run1)
  -- Live: an agent shows while the run is still running.
  H.wait(20000, function()
    return run.status == 'running' and #run.steps >= 2
  end, 'the first agent while running')
  H.artifact('1-live', text_of(run1))
  wait_end(run1, 'the workflow run end')
  H.eq(run.status, 'completed', 'completed')
  local text = text_of(run1)
  H.artifact('2-report', text)
  H.contains(text, 'boo · audit · workflow · ', 'the header names the workflow')
  H.contains(text, 'Args:  {"depth":1}', 'the args')
  H.ok(text:find('Budget: [%d.]+k? / 20%.0k output tokens'), 'tokens spent against the budget')
  H.ok(state.budget_spent(run) > 0, 'the agents that ran spent tokens')
  H.eq(run.workflow and run.workflow.budget_total, 20000, 'the budget total came from boo/getRun')
  H.contains(text, '## Result', 'the report starts with the result')
  H.contains(text, '"parts": 2', 'the return value')
  H.eq(run.result and run.result.parts, 2, 'Run.result')
  -- Report above the log, the log above the steps; phases in meta order.
  local r_report, r_log, r_steps = row_of(text, '── Report'), row_of(text, '── Log'), row_of(text, '── Steps')
  H.ok(r_report and r_log and r_steps and r_report < r_log and r_log < r_steps, 'report, then log, then steps')
  H.ok(row_of(text, '▸ Survey') < row_of(text, '  surveyed 2 parts') and row_of(text, '  surveyed 2 parts') < row_of(text, '▸ Refine'),
    'log lines in order')
  local survey, refine = row_of(text, '  Phase: Survey'), row_of(text, '  Phase: Refine')
  H.ok(survey and refine and survey < refine, 'Survey before Refine')
  H.ok(row_of(text, '  Script') < survey, 'the script step on top')
  local ids = {}
  for _, s in ipairs(state.display_steps(run)) do
    ids[#ids + 1] = s.id .. ':' .. tostring(s.phase)
  end
  H.eq(#ids, 4, 'script and three agents: ' .. table.concat(ids, ' '))
  H.eq(ids[4], 'agent-3:Refine', 'the Refine agent last')
  H.not_contains(text, 'cached', 'nothing came from the cache the first time')
  H.ok(H.compare_with_server(run1) == 3, 'the three agents streamed what the server recorded')
end)

H.test('the same workflow again is answered from the cache: every agent marked cached, no tokens spent', function()
  vim.cmd('Boo workflow --budget 20k wf/audit.js {"depth": 1}')
  run2 = new_run(run1)
  local run = wait_end(run2, 'the cached run end')
  H.eq(run.status, 'completed', 'completed')
  local text = text_of(run2)
  H.artifact('3-cached', text)
  local cached = 0
  for _, s in ipairs(run.steps) do
    if s.kind == 'agent' then
      H.ok(s.cached, s.id .. ' is cached')
      H.eq(#s.blocks, 0, s.id .. ' has no stream (no agent ran)')
      cached = cached + 1
    end
  end
  H.eq(cached, 3, 'three cached agents')
  local _, n = text:gsub('  cached', '')
  H.eq(n, 3, 'three rows marked cached')
  H.contains(text, 'Budget: 0 / 20.0k output tokens', 'cached answers cost nothing')
  H.contains(text, '"parts": 2', 'the same result')
end)

H.test('a failing script shows its error with line and column', function()
  vim.cmd('Boo workflow wf/broken.js')
  local id = new_run(run2)
  local run = wait_end(id, 'the failed run end')
  H.eq(run.status, 'failed', 'failed')
  local text = text_of(id)
  H.artifact('4-failed', text)
  H.ok(text:find('Error: [^\n]*3:%d+'), 'the error names line 3 and a column:\n' .. text)
  H.contains(text, 'about to fail', 'the log line before the failure')
  H.contains(text, '0 output tokens (no budget)', 'no budget')
end)

H.test('history, export and traces work for a workflow run', function()
  -- Forget the cached run locally, then open it from :Boo runs.
  client.store.runs[run2] = nil
  H.script_select(function(labels)
    return H.find_label(labels, 'audit', true)
  end)
  local picked
  boo.runs(project, function(_, id)
    picked = id
  end)
  H.wait(10000, function()
    return picked
  end, 'a run picked from the history')
  local run = client.store:get(picked)
  H.wait(10000, function()
    return run.loaded and #run.steps == 4 and run.report
  end, 'the run rebuilt from boo/getRun')
  local text = text_of(picked)
  H.artifact('5-history', text)
  H.eq(run.kind, 'workflow', 'kind')
  H.ok(row_of(text, '  Phase: Survey') < row_of(text, '  Phase: Refine'), 'phases')
  H.contains(text, '▸ Refine', 'the log came back')
  if picked == run2 then
    local _, n = text:gsub('  cached', '')
    H.eq(n, 3, 'cached marks from getRun')
  end
  -- Export the first (live) run to a file.
  local path = H.tmpdir('export') .. '/wf.md'
  local done
  boo.export(run1, 'file', path, function(err)
    done = { err = err }
  end)
  H.wait(10000, function()
    return done
  end, 'the export')
  local content = table.concat(vim.fn.readfile(path), '\n')
  H.artifact('6-export', content)
  H.contains(content, '"parts": 2', 'the result in the export')
  -- Traces of the first run: its agents' tool calls.
  require('boo.traces').open(run1)
  local tbuf = H.wait(10000, function()
    local b = vim.fn.bufnr('boo://traces/' .. run1)
    return b > 0 and vim.api.nvim_buf_line_count(b) > 3 and b
  end, 'the trace buffer')
  local ttext = table.concat(vim.api.nvim_buf_get_lines(tbuf, 0, -1, false), '\n')
  H.artifact('7-traces', ttext)
  H.contains(ttext, 'agent-1 · workflow-agent', 'an agent of the workflow')
  H.contains(ttext, 'read_file ', 'its tool calls')
end)

H.test('a built-in workflow picked by name in the launcher runs on the real server: its phases, agents and report', function()
  -- Nothing stubbed but the user's answers: the list comes from boo/listWorkflows, the
  -- launch goes to boo/launchWorkflow {workflow = 'research-question'}.
  local prev = pane.last_run_id
  H.selects = {}
  H.script_select(function(labels)
    if labels[#labels]:find('^Workflow') then
      return #labels
    end
    return H.find_label(labels, '^research%-question ', false)
  end)
  local answers = { 'how does the cache evict entries?', '' }
  local real_input = vim.ui.input
  vim.ui.input = function(_, on_confirm)
    local a = table.remove(answers, 1)
    vim.schedule(function()
      on_confirm(a)
    end)
  end
  local ok, err = pcall(function()
    require('boo.launcher').open(project)
    return new_run(prev)
  end)
  vim.ui.input = real_input
  if not ok then
    error(err, 0)
  end
  local id = err
  H.contains(H.selects[2].labels[H.find_label(H.selects[2].labels, '^research%-question ', false)],
    '(Plan → Investigate → Answer)', 'the built-in is listed with its phases')
  local run = wait_end(id, 'the research-question run end')
  H.eq(run.status, 'completed', 'completed')
  local text = text_of(id)
  H.artifact('8-builtin', text)
  H.contains(text, 'boo · research-question · workflow · ', 'the header names the built-in workflow')
  H.contains(text, 'Args:  how does the cache evict entries?', 'the args as text')
  -- Its agents under its phases: the plan, one investigator per sub-question, the answer.
  local steps = text:sub((text:find('── Steps', 1, true)) or #text)
  local plan, inv, ans = row_of(steps, '  Phase: Plan'), row_of(steps, '  Phase: Investigate'), row_of(steps, '  Phase: Answer')
  H.ok(plan and inv and ans and plan < inv and inv < ans, 'its phases in meta order:\n' .. steps)
  local subs = tonumber(text:match('\n  (%d+) sub%-question%(s%)\n'))
  H.ok(subs and subs >= 1, 'the run log names the sub-questions:\n' .. text)
  H.contains(text, string.format('%d of %d sub-question(s) answered', subs, subs), 'every investigation answered')
  local phases = {}
  for _, st in ipairs(state.display_steps(run)) do
    if st.kind == 'agent' then
      phases[st.phase] = (phases[st.phase] or 0) + 1
    end
  end
  H.eq(phases, { Plan = 1, Investigate = subs, Answer = 1 }, 'agents per phase')
  H.ok(row_of(steps, 'codebase-explorer') > plan and row_of(steps, 'codebase-explorer') < inv, 'the planner under Plan')
  H.contains(steps, '· write the answer', 'the last agent is the answer (expanded)')
  H.contains(text, '── Report', 'the report')
  H.contains(text, '## Verified findings', 'the answer\'s findings were checked')
  H.contains(text, '## Snapshot', 'the snapshot note')
  H.ok(row_of(text, '── Report') < row_of(text, '── Steps'), 'the report above the steps')
end)

H.test('/workflow <name> <args> in the chat and the launcher\'s workflow category launch the named workflow', function()
  -- The catalog and the launch are stubbed here: this is about what the user
  -- typed and picked becoming the launch (the server side is tested above).
  local real_launch, real_workflows = boo.launch_workflow, boo.workflows
  local launched = {}
  boo.launch_workflow = function(spec, cb)
    launched[#launched + 1] = spec
    if cb then
      cb(nil, 'run-' .. #launched)
    end
  end
  boo.workflows = function(_, cb)
    cb(nil, {
      { name = 'deep-review', description = 'find, then verify', source = 'builtin', phases = { { title = 'Find' } } },
      { name = 'audit', description = 'the team audit', source = 'project' },
    }, false)
  end
  local ok, err = pcall(function()
    local chat = require('boo.chat')
    local buf = chat.open()
    chat.submit(buf, '/workflow audit {"depth": 2}')
    chat.submit(buf, '/workflow research how does eviction work?')
    chat.submit(buf, '/workflow')
    H.eq(#launched, 2, 'two launches')
    H.eq({ launched[1].workflow, launched[1].args }, { 'audit', { depth = 2 } }, 'JSON args')
    H.eq({ launched[2].workflow, launched[2].args }, { 'research', 'how does eviction work?' }, 'text args')
    H.eq(launched[1].root, project, 'the chat\'s project')
    local text = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
    H.contains(text, 'started run run-1', 'the chat says the run started')
    H.contains(text, '/workflow needs a name', 'a name is required')
    vim.cmd('close')

    -- The launcher: the last category lists the workflows, then args, then a budget.
    H.selects = {}
    H.script_select(function(labels)
      if labels[#labels]:find('^Workflow') then
        return #labels
      end
      return H.find_label(labels, '^audit', false)
    end)
    local answers = { '{"depth": 3}', 'lots', '12k' }
    local prompts = {}
    local real_input = vim.ui.input
    vim.ui.input = function(opts, on_confirm)
      prompts[#prompts + 1] = opts.prompt
      local a = table.remove(answers, 1)
      vim.schedule(function()
        on_confirm(a)
      end)
    end
    require('boo.launcher').open(project)
    H.wait(10000, function()
      return #launched == 3
    end, 'a launch from the launcher')
    vim.ui.input = real_input
    H.eq(H.selects[1].labels[#H.selects[1].labels]:match('^Workflow') ~= nil, true, 'workflow is the last category')
    H.eq(H.selects[2].labels, {
      'deep-review — find, then verify (Find)',
      'audit [project, untrusted] — the team audit',
    }, 'the workflows, the untrusted project one marked')
    H.eq({ launched[3].workflow, launched[3].args, launched[3].budget }, { 'audit', { depth = 3 }, 12000 },
      'args and budget (a bad budget is asked again)')
    H.eq(#prompts, 3, 'args, then a budget twice')
  end)
  boo.launch_workflow, boo.workflows = real_launch, real_workflows
  if not ok then
    error(err, 0)
  end
end)

H.test('a project workflow refused in an untrusted folder asks, trusts the folder and launches again', function()
  -- The refusal (-32005) is simulated once; the trust and the second launch go to the server.
  local c = client
  local real_request = c.request
  local calls = {}
  local refused = false
  c.request = function(root, method, params, cb)
    calls[#calls + 1] = method
    if method == 'boo/launchWorkflow' and not refused then
      refused = true
      return vim.schedule(function()
        cb({ code = -32005, message = 'project workflows run only in a trusted root: boo trust ' .. root })
      end)
    end
    return real_request(root, method, params, cb)
  end
  H.selects = {}
  H.script_select(function(labels)
    return H.find_label(labels, 'Trust this folder and launch', true)
  end)
  local got
  local ok, err = pcall(function()
    boo.launch_workflow({ scriptPath = project .. '/wf/audit.js', args = { depth = 1 }, root = project, focus = false }, function(e, id)
      got = { err = e, id = id }
    end)
    H.wait(20000, function()
      return got
    end, 'the launch after the trust prompt')
  end)
  c.request = real_request
  if not ok then
    error(err, 0)
  end
  H.eq(got.err, nil, 'launched')
  H.eq(calls, { 'boo/launchWorkflow', 'boo/trustRoot', 'boo/launchWorkflow' }, 'refused, trusted, launched again')
  H.contains(H.selects[1].prompt, "own workflow", 'the prompt says it is the folder\'s own workflow')
  H.contains(H.selects[1].prompt, 'not trusted', 'and that the folder is not trusted')
  wait_end(got.id, 'the run launched after trusting')
end)

vim.notify = real_notify
H.finish()
