-- The shared corpus of protocol cases (tests/protocol-cases/*.json, format in
-- its README.md): every case's notifications go through the plugin's reducer
-- (boo.state) and the run's state, projected into the corpus's shape, must
-- equal the case's expectations at every checkpoint and at the end.
-- No server: pure state. A new case file is picked up with no change here.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
local state = require('boo.state')

local DIR = H.repo .. '/tests/protocol-cases'
local NIL = vim.NIL

local RUN_REQUIRED = { 'status', 'error', 'report', 'needsResync' }
local RUN_OPTIONAL = { 'usage', 'kind', 'phases', 'log', 'budget', 'result', 'attachments' }
local STEP_REQUIRED = { 'stepId', 'status', 'chatId', 'text' }
local STEP_OPTIONAL = { 'kind', 'agent', 'label', 'wave', 'thinking', 'lastSeq', 'needsResync', 'error', 'phase', 'cached', 'parentStepId' }

--- JSON null and a missing value are the same thing here.
local function norm(v)
  if v == NIL then
    return nil
  end
  if type(v) == 'table' then
    local out = {}
    for k, x in pairs(v) do
      out[k] = norm(x)
    end
    return out
  end
  return v
end

local function show(v)
  v = norm(v)
  if v == nil then
    return 'null'
  end
  return type(v) == 'string' and string.format('%q', v) or vim.inspect(v)
end

local function joined(step, kind)
  local parts = {}
  for _, b in ipairs(step.blocks) do
    if b.kind == kind then
      parts[#parts + 1] = state.block_text(b)
    end
  end
  return table.concat(parts)
end

--- The plugin's run state in the corpus's shape.
local function project(run)
  if not run then
    return { run = { status = nil, needsResync = true }, steps = {} }
  end
  local steps = {}
  for _, s in ipairs(state.display_steps(run)) do
    steps[#steps + 1] = {
      stepId = s.id,
      kind = s.kind,
      agent = s.agent,
      label = s.label,
      wave = s.wave,
      status = s.status,
      chatId = s.chatId,
      text = joined(s, 'text'),
      thinking = joined(s, 'thinking'),
      lastSeq = s.last_seq,
      needsResync = next(s.pending) ~= nil,
      error = s.error,
      phase = s.phase,
      cached = s.cached == true,
      parentStepId = s.parentStepId,
    }
  end
  local phases, log = {}, {}
  if run.kind == 'workflow' then
    for i, g in ipairs(state.phase_groups(run)) do
      -- A list with holes would not compare: the no-phase group is vim.NIL here.
      phases[i] = g.title == nil and NIL or g.title
    end
  end
  for _, l in ipairs(run.log or {}) do
    log[#log + 1] = { seq = l.seq, kind = l.kind, message = l.message }
  end
  local attachments = {}
  for _, a in ipairs(run.attachments or {}) do
    attachments[#attachments + 1] = {
      attachmentId = a.attachmentId,
      name = a.name,
      mimeType = a.mimeType,
      bytes = a.bytes,
      width = a.width,
      height = a.height,
    }
  end
  return {
    run = {
      status = run.status,
      error = run.error,
      report = run.report,
      -- A refetch is wanted (or in flight), or the roster is not known yet.
      needsResync = (run.resync or run.resyncing or not run.rostered) == true,
      usage = run.usage,
      kind = run.kind or 'flow',
      phases = phases,
      log = log,
      budget = { total = run.workflow and run.workflow.budget_total, spent = state.budget_spent(run) },
      result = run.result,
      attachments = attachments,
    },
    steps = steps,
  }
end

--- Compare a projected state with an expected one; errors name the place and field.
local function compare(got, want, where)
  local fails = {}
  local function fail(field, w, g)
    fails[#fails + 1] = string.format('%s: %s: expected %s, got %s', where, field, show(w), show(g))
  end
  local function field(prefix, obj_w, obj_g, name)
    if not vim.deep_equal(norm(obj_w[name]), norm(obj_g[name])) then
      fail(prefix .. name, obj_w[name], obj_g[name])
    end
  end
  local wr = want.run
  for _, k in ipairs(RUN_REQUIRED) do
    field('run.', wr, got.run, k)
  end
  for _, k in ipairs(RUN_OPTIONAL) do
    if wr[k] ~= nil then
      field('run.', wr, got.run, k)
    end
  end
  local ids_w, ids_g = {}, {}
  for _, s in ipairs(want.steps) do
    ids_w[#ids_w + 1] = s.stepId
  end
  for _, s in ipairs(got.steps) do
    ids_g[#ids_g + 1] = s.stepId
  end
  if not vim.deep_equal(ids_w, ids_g) then
    fail('roster (stepIds in display order)', ids_w, ids_g)
  else
    for i, sw in ipairs(want.steps) do
      local sg = got.steps[i]
      local prefix = 'steps[' .. sw.stepId .. '].'
      for _, k in ipairs(STEP_REQUIRED) do
        field(prefix, sw, sg, k)
      end
      for _, k in ipairs(STEP_OPTIONAL) do
        if sw[k] ~= nil then
          field(prefix, sw, sg, k)
        end
      end
    end
  end
  return fails
end

--- A case must name every required field (so it cannot pass by saying nothing).
local function validate(case, file)
  local problems = {}
  local function need(cond, what)
    if not cond then
      problems[#problems + 1] = file .. ': ' .. what
    end
  end
  local function check_state(st, where)
    need(type(st) == 'table' and type(st.run) == 'table' and type(st.steps) == 'table', where .. ' needs run and steps')
    if type(st) ~= 'table' or type(st.run) ~= 'table' or type(st.steps) ~= 'table' then
      return
    end
    for _, k in ipairs(RUN_REQUIRED) do
      need(st.run[k] ~= nil, where .. ': run.' .. k .. ' is required (null is a value)')
    end
    for i, s in ipairs(st.steps) do
      for _, k in ipairs(STEP_REQUIRED) do
        need(s[k] ~= nil, string.format('%s: steps[%d].%s is required (null is a value)', where, i, k))
      end
    end
  end
  need(type(case.description) == 'string' and case.description ~= '', 'description is required')
  need(type(case.runId) == 'string', 'runId is required')
  need(type(case.input) == 'table' and #case.input > 0, 'input must list notifications')
  for i, item in ipairs(type(case.input) == 'table' and case.input or {}) do
    if item.expect ~= nil then
      check_state(item.expect, 'input[' .. i .. '].expect')
    elseif item.getRun ~= nil then
      need(type(item.getRun) == 'table' and type(item.getRun.run) == 'table', 'input[' .. i .. '].getRun needs run (a boo/getRun answer)')
    else
      need(type(item.method) == 'string' and type(item.params) == 'table', 'input[' .. i .. '] is neither a notification nor a checkpoint')
    end
  end
  check_state(case.expect, 'expect')
  return problems
end

local files = vim.fn.glob(DIR .. '/*.json', false, true)
table.sort(files)

H.test('the corpus is there', function()
  H.ok(#files >= 9, 'at least the 9 required cases in ' .. DIR .. ', found ' .. #files)
end)

for _, path in ipairs(files) do
  local file = vim.fn.fnamemodify(path, ':t')
  H.test('case ' .. file, function()
    local text = table.concat(vim.fn.readfile(path), '\n')
    -- Expectations keep JSON null as vim.NIL; notifications are decoded the
    -- way Neovim's LSP client decodes a message (null object fields → nil).
    local case = vim.json.decode(text)
    local wire = vim.json.decode(text, { luanil = { object = true } })
    local problems = validate(case, file)
    if #problems > 0 then
      error('malformed case:\n  ' .. table.concat(problems, '\n  '), 0)
    end
    local store = state.new()
    local now = 1000
    local fails = {}
    for i, item in ipairs(case.input) do
      if item.expect ~= nil then
        local where = string.format('%s, checkpoint input[%d]', file, i)
        vim.list_extend(fails, compare(project(store:get(case.runId)), item.expect, where))
      elseif item.getRun ~= nil then
        now = now + 10
        store:load_run(wire.input[i].getRun, now)
      else
        now = now + 10
        store:notify(wire.input[i].method, wire.input[i].params, now)
      end
    end
    vim.list_extend(fails, compare(project(store:get(case.runId)), case.expect, file .. ', final state'))
    if #fails > 0 then
      error(table.concat(fails, '\n'), 0)
    end
  end)
end

H.finish()
