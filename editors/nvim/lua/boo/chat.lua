--- :Boo chat — a prompt buffer. `/flow <focus>` launches the configured
--- chat flow (option chat_flow, default code-review) with band small on the
--- project the chat was opened from, and opens the pane. `/workflow <name>
--- <args>` runs a workflow (args: JSON, else plain text).
local config = require('boo.config')

local M = {}

local PROMPT = 'boo> '

local function append(buf, lines)
  if type(lines) == 'string' then
    lines = vim.split(lines, '\n', { plain = true })
  end
  local n = vim.api.nvim_buf_line_count(buf)
  -- The last line is the live prompt: insert above it.
  vim.api.nvim_buf_set_lines(buf, n - 1, n - 1, false, lines)
end
M.append = append

local function help(buf)
  local o = config.get()
  append(buf, {
    string.format('  /flow <focus>   run %s (band small) on %s and open the pane', o.chat_flow, vim.b[buf].boo_root or '?'),
    '  /workflow <name> <args>   run a workflow (args: JSON or plain text)',
    '  :Boo launch     pick another flow, band and focus',
  })
end

--- Handle one line typed in the chat.
function M.submit(buf, text)
  text = vim.trim(text or '')
  if text == '' then
    return
  end
  local wf = text:match('^/workflow$') and '' or text:match('^/workflow%s+(.*)$')
  if wf then
    local name, rest = vim.trim(wf):match('^(%S+)%s*(.*)$')
    if not name then
      append(buf, '  /workflow needs a name, e.g. /workflow deep-review {"paths": ["src/"]}')
      return
    end
    local boo = require('boo')
    append(buf, string.format('  launching workflow %s …', name))
    boo.launch_workflow({ workflow = name, args = boo.parse_args(rest), root = vim.b[buf].boo_root, focus = false }, function(err, run_id)
      if not vim.api.nvim_buf_is_valid(buf) then
        return
      end
      if err then
        append(buf, '  failed: ' .. require('boo.client').err_text(err))
      else
        append(buf, '  started run ' .. run_id)
      end
    end)
    return
  end
  local focus = text:match('^/flow$') and '' or text:match('^/flow%s+(.*)$')
  if not focus then
    help(buf)
    return
  end
  focus = vim.trim(focus)
  if focus == '' then
    append(buf, '  /flow needs a focus, e.g. /flow what could break in the new cache?')
    return
  end
  local o = config.get()
  local root = vim.b[buf].boo_root
  append(buf, string.format('  launching %s (small) …', o.chat_flow))
  require('boo').launch({ flow = o.chat_flow, band = 'small', question = focus, root = root, focus = false }, function(err, run_id)
    if not vim.api.nvim_buf_is_valid(buf) then
      return
    end
    if err then
      append(buf, '  failed: ' .. require('boo.client').err_text(err))
    else
      append(buf, '  started run ' .. run_id)
    end
  end)
end

--- Open (or focus) the chat buffer.
function M.open()
  local client = require('boo.client')
  local root = client.root(0)
  local name = 'boo://chat'
  local buf = vim.fn.bufnr(name)
  local fresh = buf <= 0 or not vim.api.nvim_buf_is_valid(buf)
  if fresh then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
    vim.bo[buf].buftype = 'prompt'
    vim.bo[buf].bufhidden = 'hide'
    vim.bo[buf].swapfile = false
    vim.bo[buf].filetype = 'boo-chat'
    vim.fn.prompt_setprompt(buf, PROMPT)
    vim.fn.prompt_setcallback(buf, function(text)
      M.submit(buf, text)
    end)
  end
  vim.b[buf].boo_root = root
  local win
  for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if vim.api.nvim_win_get_buf(w) == buf then
      win = w
    end
  end
  if not win then
    vim.cmd('botright 12split')
    win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(win, buf)
    vim.wo[win].number = false
    vim.wo[win].relativenumber = false
    vim.wo[win].signcolumn = 'no'
    vim.wo[win].wrap = true
  end
  vim.api.nvim_set_current_win(win)
  if fresh then
    append(buf, 'boo chat · project ' .. root)
    help(buf)
  end
  vim.cmd('startinsert!')
  return buf
end

return M
