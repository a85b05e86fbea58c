-- End to end: images from Neovim against the real server with the fake qwen.
-- :Boo attach queues a small PNG made here; the next launch sends it (absolute
-- path, visionModel); the pane lists it with its size and dimensions
-- (Run.attachments); <CR> on it fetches it (boo/getAttachment) into a file
-- outside the project, byte-identical, and opens it; export names it; a file
-- that is not an image and a text-only model are refused with the server's
-- message, and no pane opens.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local project = H.project()
vim.cmd('cd ' .. vim.fn.fnameescape(project))
H.setup({ vision_model = true })

local pane = require('boo.pane')
local client = require('boo.client')
local state = require('boo.state')
local attach = require('boo.attach')
local config = require('boo.config')

local notes = {}
vim.notify = function(msg, level)
  table.insert(notes, { msg = tostring(msg), level = level })
end
local function note_with(needle)
  for i = #notes, 1, -1 do
    if notes[i].msg:find(needle, 1, true) then
      return notes[i]
    end
  end
end

-- What the plugin sends.
local sent = {}
local orig_request = client.request
client.request = function(root, method, params, cb)
  if method == 'boo/launchFlow' or method == 'boo/spawnAgent' then
    table.insert(sent, { method = method, params = vim.deepcopy(params) })
  end
  return orig_request(root, method, params, cb)
end

--- A real PNG (RGB, 8 bits, `w`×`h`, stored deflate), made byte by byte.
local bit = require('bit')
local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    c = bit.band(c, 1) == 1 and bit.bxor(0xEDB88320, bit.rshift(c, 1)) or bit.rshift(c, 1)
  end
  crc_table[i] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = bit.bxor(crc_table[bit.band(bit.bxor(c, s:byte(i)), 0xFF)], bit.rshift(c, 8))
  end
  return bit.bxor(c, 0xFFFFFFFF)
end
local function be32(n)
  return string.char(bit.band(bit.rshift(n, 24), 0xFF), bit.band(bit.rshift(n, 16), 0xFF),
    bit.band(bit.rshift(n, 8), 0xFF), bit.band(n, 0xFF))
end
local function chunk(kind, data)
  return be32(#data) .. kind .. data .. be32(crc32(kind .. data))
end
local function png(w, h)
  local raw = {}
  for y = 0, h - 1 do
    raw[#raw + 1] = '\0'
    for x = 0, w - 1 do
      raw[#raw + 1] = string.char((x * 80) % 256, (y * 120) % 256, 200)
    end
  end
  raw = table.concat(raw)
  local a, b = 1, 0
  for i = 1, #raw do
    a = (a + raw:byte(i)) % 65521
    b = (b + a) % 65521
  end
  local len = #raw
  local zlib = '\120\1' .. '\1' .. string.char(len % 256, math.floor(len / 256))
    .. string.char(255 - len % 256, 255 - math.floor(len / 256)) .. raw .. be32(b * 65536 + a)
  return '\137PNG\r\n\26\n' .. chunk('IHDR', be32(w) .. be32(h) .. '\8\2\0\0\0') .. chunk('IDAT', zlib) .. chunk('IEND', '')
end

local images = H.tmpdir('images')
local shot = images .. '/shot.png'
local shot_bytes = png(5, 3)
do
  local f = assert(io.open(shot, 'wb'))
  f:write(shot_bytes)
  f:close()
end
local notes_png = images .. '/notes.png'
vim.fn.writefile({ 'not an image at all' }, notes_png)

local function read_bytes(path)
  local f = io.open(path, 'rb')
  if not f then
    return nil
  end
  local s = f:read('*a')
  f:close()
  return s
end

local run_id

H.test(':Boo attach queues, lists and clears images (absolute paths)', function()
  vim.cmd('Boo attach ' .. vim.fn.fnameescape(shot))
  H.eq(attach.queue, { shot }, 'queued by absolute path')
  vim.cmd('Boo attach ' .. vim.fn.fnameescape(shot))
  H.eq(#attach.queue, 1, 'the same file once')
  vim.cmd('Boo attach')
  H.contains(note_with('images for the next launch').msg, shot, 'the list names the file')
  vim.cmd('Boo attach ' .. vim.fn.fnameescape(images .. '/missing.png'))
  H.contains(note_with('not attached').msg, 'missing.png', 'a missing file is refused at once')
  vim.cmd('Boo attach!')
  H.eq(attach.queue, {}, ':Boo attach! clears')
  local done = require('boo.commands').complete(images .. '/sh', 'Boo attach ' .. images .. '/sh', #('Boo attach ' .. images .. '/sh'))
  H.eq(done, { shot }, 'file completion')
end)

H.test('a launch sends the queued image; the pane lists it with size and dimensions', function()
  vim.cmd('Boo attach ' .. vim.fn.fnameescape(shot))
  sent = {}
  require('boo').launch({ flow = 'code-review', band = 'small', question = 'why does the layout break?' }, function(err, id)
    run_id = id or ('error: ' .. vim.inspect(err))
  end)
  H.wait(20000, function()
    return run_id
  end, 'the launch answer')
  H.ok(not tostring(run_id):match('^error'), 'launched: ' .. tostring(run_id))
  H.eq(sent[1].params.attachments, { { path = shot } }, 'attachments: [{ path }] (absolute)')
  H.eq(sent[1].params.visionModel, true, 'visionModel from the config')
  H.eq(attach.queue, {}, 'the queue is empty after the launch')
  local run = client.store:get(run_id)
  H.wait(20000, function()
    return run.attachments and #run.attachments == 1
  end, 'Run.attachments in the store')
  local a = run.attachments[1]
  H.eq({ a.name, a.mimeType, a.bytes, a.width, a.height }, { 'shot.png', 'image/png', #shot_bytes, 5, 3 }, 'the attachment')
  local line = string.format('shot.png · %d B · 5×3', #shot_bytes)
  H.wait(5000, function()
    return H.pane_text(run_id):find(line, 1, true)
  end, 'the pane lists ' .. line)
  H.wait(60000, function()
    return state.is_terminal(run.status) and run.report
  end, 'the run ends')
  H.eq(run.status, 'completed', 'completed')
  pane.render(run_id)
  H.artifact('pane', H.pane_text(run_id))
end)

H.test('<CR> on the image row fetches it outside the project, byte-identical, and opens it', function()
  local opened
  vim.ui.open = function(path)
    opened = path
    return nil, nil
  end
  local p = pane.panes[run_id]
  local row
  for r, i in pairs(p.row_attachment) do
    if i == 1 then
      row = r
    end
  end
  H.ok(row, 'an image row')
  local win = vim.fn.bufwinid(p.buf)
  vim.api.nvim_set_current_win(win)
  vim.api.nvim_win_set_cursor(win, { row, 0 })
  vim.api.nvim_feedkeys(vim.keycode('<CR>'), 'x', false)
  H.wait(10000, function()
    return opened
  end, 'vim.ui.open called')
  H.eq(vim.fn.fnamemodify(opened, ':t'), 'shot.png', 'the file keeps its name')
  H.ok(not vim.startswith(opened, project .. '/'), 'written outside the project: ' .. opened)
  H.eq(read_bytes(opened) == shot_bytes, true, 'byte-identical to the attached file')
  H.eq(vim.fn.glob(project .. '/**/shot.png', true, true), {}, 'nothing written into the project')
  -- gx does the same (the file is fetched again).
  local first = opened
  os.remove(first)
  opened = nil
  vim.api.nvim_feedkeys('gx', 'x', false)
  H.wait(10000, function()
    return opened
  end, 'gx opens it too')
  H.eq(opened, first, 'the same place')
  H.eq(read_bytes(opened) == shot_bytes, true, 'written again, byte-identical')
end)

H.test('export names the attachment', function()
  local out = H.tmpdir('export') .. '/report.md'
  local got
  require('boo').export(run_id, 'file', out, function(err)
    got = { err = err }
  end)
  H.wait(10000, function()
    return got
  end, 'the export')
  H.eq(got.err, nil, 'exported')
  local text = table.concat(vim.fn.readfile(out), '\n')
  H.contains(text, 'shot.png', 'the report lists the attachment')
  H.contains(text, run_id and client.store:get(run_id).attachments[1].attachmentId, 'with its id')
end)

H.test('a file that is not an image is refused with the server message; no run, the queue stays', function()
  vim.cmd('Boo attach ' .. vim.fn.fnameescape(notes_png))
  local before = pane.last_run_id
  local got
  require('boo').launch({ flow = 'code-review', band = 'small', question = 'q' }, function(err, id)
    got = { err = err, id = id }
  end)
  H.wait(20000, function()
    return got
  end, 'the refusal')
  H.eq(got.err and got.err.code, -32602, 'invalid params')
  local n = note_with('cannot launch code-review')
  H.ok(n, 'a notification')
  H.contains(n.msg, 'notes.png', 'it names the file')
  H.contains(n.msg, got.err.message, 'it carries the server message')
  H.eq(n.level, vim.log.levels.ERROR, 'as an error')
  H.eq(pane.last_run_id, before, 'no pane opened')
  H.eq(attach.queue, { notes_png }, 'the queue stays for the user to fix')
  H.artifact('refused-not-an-image', n.msg)
  vim.cmd('Boo attach!')
end)

H.test('a text-only model refuses images with a message that says how to declare one', function()
  config.options.vision_model = false
  vim.cmd('Boo attach ' .. vim.fn.fnameescape(shot))
  sent = {}
  local got
  require('boo').launch({ flow = 'code-review', band = 'small', question = 'q' }, function(err, id)
    got = { err = err, id = id }
  end)
  H.wait(20000, function()
    return got
  end, 'the refusal')
  H.eq(sent[1].params.visionModel, nil, 'no visionModel without the config')
  H.eq(got.err and got.err.code, -32602, 'invalid params')
  H.contains(note_with('cannot launch code-review').msg, got.err.message, 'the message is shown')
  H.artifact('refused-text-only-model', note_with('cannot launch code-review').msg)
  vim.cmd('Boo attach!')
  config.options.vision_model = true
end)

H.test(':Boo ask sends the queued images too; the agent pane lists them', function()
  vim.cmd('Boo attach ' .. vim.fn.fnameescape(shot))
  sent = {}
  local got
  require('boo').ask({ persona = 'codebase-explorer', prompt = 'what does this screenshot show?' }, function(err, id)
    got = { err = err, id = id }
  end)
  H.wait(20000, function()
    return got
  end, 'spawnAgent answered')
  H.eq(got.err, nil, 'started')
  H.eq(sent[1].method, 'boo/spawnAgent', 'spawnAgent')
  H.eq(sent[1].params.attachments, { { path = shot } }, 'with the image')
  H.eq(sent[1].params.visionModel, true, 'and visionModel')
  H.eq(attach.queue, {}, 'the queue is empty after it')
  H.wait(20000, function()
    return H.pane_text(got.id):find('shot.png · ', 1, true)
  end, 'the agent pane lists the image')
  local run = client.store:get(got.id)
  H.wait(60000, function()
    return state.is_terminal(run.status)
  end, 'the agent ends')
end)

H.test('attaching to a running server without the "attachments" feature warns', function()
  local c = client.get(client.root(0))
  H.ok(c, 'the project server runs')
  local features = vim.tbl_get(c.server_capabilities, 'experimental', 'boo', 'features')
  H.ok(vim.tbl_contains(features, 'attachments'), 'the real server announces attachments')
  notes = {}
  vim.cmd('Boo attach ' .. vim.fn.fnameescape(shot))
  H.eq(note_with('does not take images'), nil, 'no warning with the feature')
  c.server_capabilities.experimental.boo.features = vim.tbl_filter(function(f)
    return f ~= 'attachments'
  end, features)
  vim.cmd('Boo attach ' .. vim.fn.fnameescape(shot))
  c.server_capabilities.experimental.boo.features = features
  H.ok(note_with('does not take images'), 'a warning without it')
  vim.cmd('Boo attach!')
end)

H.test('the launcher has an attachments step', function()
  local step = 0
  H.selects = {}
  H.script_select(function(labels)
    step = step + 1
    if step == 1 then
      return H.find_label(labels, '^Review')
    elseif step == 2 then
      return H.find_label(labels, '^Code review')
    elseif step == 3 then
      return H.find_label(labels, 'images for the agents', true)
    else
      return H.find_label(labels, '^small')
    end
  end)
  local inputs = {}
  vim.ui.input = function(opts, on_confirm)
    table.insert(inputs, opts)
    vim.schedule(function()
      on_confirm(#inputs == 1 and shot or 'how is the layout built?')
    end)
  end
  sent = {}
  local before = pane.last_run_id
  vim.cmd('Boo')
  H.wait(20000, function()
    return pane.last_run_id ~= before and sent[1]
  end, 'a launch from the launcher')
  H.eq(inputs[1].completion, 'file', 'the image prompt completes file names')
  H.contains(H.selects[4].labels[5], '[1] images for the agents', 'the size step shows the count')
  H.contains(H.selects[4].labels[5], 'shot.png', 'and the name')
  H.eq(sent[1].params.attachments, { { path = shot } }, 'sent with the launch')
  local run = client.store:get(pane.last_run_id)
  H.wait(20000, function()
    return run.attachments and #run.attachments == 1
  end, 'listed on the run')
  client.run_request(run.id, 'boo/cancelRun', { runId = run.id }, function() end)
  H.wait(20000, function()
    return state.is_terminal(run.status)
  end, 'the run ends')
end)

H.finish()
