--- Images for the next launch (`:Boo attach`), and the images of a run in its
--- pane (`Run.attachments`, opened with `boo/getAttachment`).
---
--- The queue holds absolute paths. The next launch (a flow, a workflow or
--- `:Boo ask`) sends them as `attachments: [{ path }]`, with `visionModel: true`
--- when the config says the model takes images; the server reads the files,
--- sniffs their type and refuses what it cannot take (`-32602`, the message
--- names the file). The queue empties once a launch with it was accepted.
local M = {}

--- Absolute paths, in the order they were added.
M.queue = {}

local function notify(msg, level)
  require('boo.client').notify(msg, level)
end

--- Queue one file. Returns the absolute path, or nil and why not.
function M.add(path)
  path = vim.trim(path or '')
  if path == '' then
    return nil, 'no file named'
  end
  local abs = vim.fn.fnamemodify(vim.fn.expand(path), ':p')
  abs = vim.uv.fs_realpath(abs) or abs
  if vim.fn.isdirectory(abs) == 1 then
    return nil, abs .. ' is a folder: name an image file (PNG, JPEG, GIF or WebP)'
  end
  if vim.fn.filereadable(abs) ~= 1 then
    return nil, 'cannot read ' .. abs .. ': check the path'
  end
  for _, p in ipairs(M.queue) do
    if p == abs then
      return abs
    end
  end
  M.queue[#M.queue + 1] = abs
  return abs
end

function M.clear()
  M.queue = {}
end

--- Add the queue to launch params (`attachments`, and `visionModel` when the
--- config declares a vision model). Returns the number of images sent.
function M.apply(params)
  if #M.queue == 0 then
    return 0
  end
  local list = {}
  for _, p in ipairs(M.queue) do
    list[#list + 1] = { path = p }
  end
  params.attachments = list
  if require('boo.config').get().vision_model then
    params.visionModel = true
  end
  return #list
end

--- A launch carrying these params was accepted: its images are not queued any more.
function M.launched(params)
  if type(params.attachments) ~= 'table' then
    return
  end
  local sent = {}
  for _, a in ipairs(params.attachments) do
    sent[a.path] = true
  end
  M.queue = vim.tbl_filter(function(p)
    return not sent[p]
  end, M.queue)
end

--- "812 B", "47.1 KB", "3.2 MB".
function M.size(bytes)
  if type(bytes) ~= 'number' then
    return '?'
  end
  if bytes < 1024 then
    return string.format('%d B', bytes)
  elseif bytes < 1024 * 1024 then
    return string.format('%.1f KB', bytes / 1024)
  end
  return string.format('%.1f MB', bytes / (1024 * 1024))
end

--- One line for a `Run.attachments` entry: name, size, dimensions.
function M.describe(a)
  local dims = (type(a.width) == 'number' and type(a.height) == 'number')
    and string.format('%d×%d', a.width, a.height) or '?×?'
  return string.format('%s · %s · %s', a.name or a.attachmentId or '?', M.size(a.bytes), dims)
end

--- Where an opened attachment is written: the cache, never the project.
function M.dir(root)
  local dir = vim.fn.stdpath('cache') .. '/boo/attachments'
  if root and root ~= '' and (dir == root or vim.startswith(dir, root .. '/')) then
    -- A cache inside the project (an unusual XDG setup): the system temp dir.
    dir = (vim.uv.os_tmpdir() or '/tmp') .. '/boo-attachments'
  end
  return dir
end

--- A file name safe to write: the last path part, without control characters.
local function safe_name(name, id)
  name = tostring(name or ''):gsub('[%c]', ''):gsub('.*[/\\]', '')
  if name == '' or name == '.' or name == '..' then
    name = id
  end
  return name
end

--- Fetch one of a run's images (boo/getAttachment) into a file outside the
--- project and open it with the system viewer (vim.ui.open).
--- cb(err, path) — err is a message.
function M.open(run_id, a, cb)
  local c = require('boo.client')
  local run = c.store:get(run_id)
  c.run_request(run_id, 'boo/getAttachment', { attachmentId = a.attachmentId }, function(err, res)
    local function fail(msg)
      notify('boo: cannot open ' .. tostring(a.name) .. ': ' .. msg, vim.log.levels.ERROR)
      if cb then
        cb(msg)
      end
    end
    if err or type(res) ~= 'table' or type(res.data) ~= 'string' then
      return fail(c.err_text(err or { message = 'no data in the answer' }))
    end
    local ok, bytes = pcall(vim.base64.decode, res.data)
    if not ok then
      return fail('the server sent data that is not base64')
    end
    local dir = M.dir(run and run.root) .. '/' .. safe_name(a.attachmentId, 'image')
    vim.fn.mkdir(dir, 'p')
    local path = dir .. '/' .. safe_name(res.name or a.name, a.attachmentId)
    local f, ferr = io.open(path, 'wb')
    if not f then
      return fail('cannot write ' .. path .. ': ' .. tostring(ferr))
    end
    f:write(bytes)
    f:close()
    local _, oerr = vim.ui.open(path)
    if oerr then
      notify('boo: ' .. a.name .. ' is saved at ' .. path .. ' (no viewer: ' .. tostring(oerr) .. ')', vim.log.levels.WARN)
    end
    if cb then
      cb(nil, path)
    end
  end)
end

--- `:Boo attach {path}…` queues, `:Boo attach` lists, `:Boo attach!` clears.
function M.command(args, bang)
  if bang then
    local n = #M.queue
    M.clear()
    return notify(string.format('boo: %d image%s removed from the next launch', n, n == 1 and '' or 's'))
  end
  if #args == 0 then
    if #M.queue == 0 then
      return notify('boo: no image queued for the next launch (:Boo attach {path})')
    end
    local lines = { 'boo: images for the next launch (:Boo attach! clears):' }
    for _, p in ipairs(M.queue) do
      local st = vim.uv.fs_stat(p)
      lines[#lines + 1] = '  ' .. p .. (st and ('  ' .. M.size(st.size)) or '  (gone)')
    end
    return notify(table.concat(lines, '\n'))
  end
  local added = {}
  for _, p in ipairs(args) do
    local abs, err = M.add(p)
    if not abs then
      notify('boo: not attached: ' .. err, vim.log.levels.WARN)
    else
      added[#added + 1] = vim.fn.fnamemodify(abs, ':t')
    end
  end
  if #added > 0 then
    -- A server already running for this project that does not take images
    -- (no "attachments" in capabilities.experimental.boo.features) would
    -- launch without them: say so now.
    local c = require('boo.client')
    local running = c.get(c.root(0))
    local features = running and vim.tbl_get(running.server_capabilities or {}, 'experimental', 'boo', 'features')
    if type(features) == 'table' and not vim.tbl_contains(features, 'attachments') then
      notify('boo: this boo server does not take images (no "attachments" feature): update boo, then :Boo stop',
        vim.log.levels.WARN)
    end
    local vision = require('boo.config').get().vision_model
    notify(string.format('boo: %d image%s for the next launch (%s)%s', #M.queue, #M.queue == 1 and '' or 's',
      table.concat(added, ', '),
      vision and '' or "; the model must take images: setup({ vision_model = true }) or BOO_VISION_MODEL=1"))
  end
end

return M
