-- End to end: /flow in the chat prompt buffer.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local project = H.project()
vim.cmd('cd ' .. vim.fn.fnameescape(project))
local opts = H.setup()
vim.cmd('edit ' .. vim.fn.fnameescape(project .. '/cache.py'))

local pane = require('boo.pane')
local client = require('boo.client')
local state = require('boo.state')

H.on_timeout = function()
  local id = pane.last_run_id
  return 'chat:\n' .. table.concat(vim.api.nvim_buf_get_lines(vim.fn.bufnr('boo://chat'), 0, -1, false), '\n')
    .. '\npane:\n' .. (id and H.pane_text(id) or '(none)')
end

local function type_in_chat(text)
  local buf = vim.fn.bufnr('boo://chat')
  vim.api.nvim_set_current_win(vim.fn.bufwinid(buf))
  vim.cmd('stopinsert')
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('A' .. text .. '<CR><Esc>', true, false, true), 'xt', false)
end

local function chat_text()
  return table.concat(vim.api.nvim_buf_get_lines(vim.fn.bufnr('boo://chat'), 0, -1, false), '\n')
end

local function cancel_and_wait(id)
  require('boo').cancel(id)
  H.wait(20000, function()
    return state.is_terminal(client.store:get(id).status)
  end, 'run ' .. id .. ' to end after cancel')
end

H.test(':Boo chat opens a prompt buffer with a help line', function()
  vim.cmd('Boo chat')
  local buf = vim.api.nvim_get_current_buf()
  H.eq(vim.api.nvim_buf_get_name(buf), 'boo://chat', 'name')
  H.eq(vim.bo[buf].buftype, 'prompt', 'buftype')
  H.eq(vim.bo[buf].filetype, 'boo-chat', 'filetype')
  H.contains(chat_text(), '/flow <focus>   run code-review (band small) on ' .. project, 'help line')
end)

H.test('/flow <focus> launches code-review, band small, on the project, and opens the pane', function()
  type_in_chat('/flow is the cache bounded? [[fake:hang]]')
  local id = H.wait(20000, function()
    return pane.last_run_id
  end, 'a run from the chat')
  local run = client.store:get(id)
  H.wait(10000, function()
    return #run.steps > 0
  end, 'roster')
  H.eq(run.flow, 'code-review', 'flow')
  H.eq(run.band, 'small', 'band')
  H.eq(run.question, 'is the cache bounded? [[fake:hang]]', 'question = text after /flow')
  H.eq(run.root, project, 'root')
  H.ok(vim.fn.bufwinid(pane.panes[id].buf) ~= -1, 'pane visible')
  H.wait(5000, function()
    return chat_text():find('started run ' .. id, 1, true)
  end, 'the chat names the run')
  H.wait(20000, function()
    return H.pane_text(id):find('Thinking very hard', 1, true)
  end, 'the hanging agent streamed')
  H.artifact('1-chat', chat_text())
  H.artifact('2-pane', H.pane_text(id))
  cancel_and_wait(id)
end)

H.test('other input prints the help; /flow without focus says what is missing', function()
  type_in_chat('hello there')
  H.wait(2000, function()
    local _, n = chat_text():gsub('/flow <focus>', '')
    return n >= 2
  end, 'a second help line')
  type_in_chat('/flow')
  H.wait(2000, function()
    return chat_text():find('/flow needs a focus', 1, true)
  end, 'the missing focus message')
end)

H.test('the chat_flow option picks the flow /flow launches', function()
  H.setup(vim.tbl_extend('force', opts, { chat_flow = 'architectural-analysis' }))
  local before = pane.last_run_id
  type_in_chat('/flow how is it layered? [[fake:hang]]')
  local id = H.wait(20000, function()
    return pane.last_run_id ~= before and pane.last_run_id
  end, 'a second run')
  local run = client.store:get(id)
  H.wait(10000, function()
    return run.flow ~= nil
  end, 'flow known')
  H.eq(run.flow, 'architectural-analysis', 'configured flow')
  H.eq(run.band, 'small', 'band')
  H.artifact('3-chat', chat_text())
  cancel_and_wait(id)
end)

H.finish()
