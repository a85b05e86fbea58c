--- Markdown in the pane: the report is shown with Neovim's own Markdown
--- highlighting (the `markdown` and `markdown_inline` tree-sitter parsers and
--- their highlight queries, as a `filetype=markdown` buffer would), applied as
--- extmarks under the pane's own highlights; and tables are aligned so their
--- columns line up.
local M = {}

--- The cells of a table row (`| a | b |`), or nil when the line is not one.
local function cells(line)
  if not line:match('^%s*|') then
    return nil
  end
  local body = line:gsub('^%s*|', ''):gsub('|%s*$', '')
  local out, cur, i = {}, {}, 1
  while i <= #body do
    local c = body:sub(i, i)
    if c == '\\' and i < #body then
      cur[#cur + 1] = body:sub(i, i + 1)
      i = i + 2
    else
      if c == '|' then
        out[#out + 1] = vim.trim(table.concat(cur))
        cur = {}
      else
        cur[#cur + 1] = c
      end
      i = i + 1
    end
  end
  out[#out + 1] = vim.trim(table.concat(cur))
  return out
end

local function is_delimiter(row)
  for _, c in ipairs(row) do
    if not c:match('^:?%-+:?$') then
      return false
    end
  end
  return #row > 0
end

--- Pads the cells of every pipe table so the columns line up (display width).
function M.align_tables(lines)
  local out, i = {}, 1
  while i <= #lines do
    local rows, j = {}, i
    while j <= #lines do
      local c = cells(lines[j])
      if not c then
        break
      end
      rows[#rows + 1] = c
      j = j + 1
    end
    if #rows >= 2 and is_delimiter(rows[2]) then
      local widths = {}
      for r, row in ipairs(rows) do
        for k, c in ipairs(row) do
          local w = r == 2 and 3 or vim.api.nvim_strwidth(c)
          widths[k] = math.max(widths[k] or 3, w)
        end
      end
      for r, row in ipairs(rows) do
        local parts = {}
        for k = 1, #widths do
          local c = row[k] or ''
          if r == 2 then
            local left, right = c:sub(1, 1) == ':', #c > 1 and c:sub(-1) == ':'
            local dashes = string.rep('-', widths[k] - (left and 1 or 0) - (right and 1 or 0))
            parts[k] = (left and ':' or '') .. dashes .. (right and ':' or '')
          else
            parts[k] = c .. string.rep(' ', widths[k] - vim.api.nvim_strwidth(c))
          end
        end
        out[#out + 1] = '| ' .. table.concat(parts, ' | ') .. ' |'
      end
      i = j
    elseif #rows > 0 then
      for k = i, j - 1 do
        out[#out + 1] = lines[k]
      end
      i = j
    else
      out[#out + 1] = lines[i]
      i = i + 1
    end
  end
  return out
end

--- Highlight ranges of Markdown `lines`: { row, col, end_row, end_col, group }
--- (0-based rows within `lines`, byte columns), from the markdown parsers'
--- highlight queries. Empty when the parsers are not available.
function M.highlights(lines)
  local text = table.concat(lines, '\n')
  local ok, parser = pcall(vim.treesitter.get_string_parser, text, 'markdown')
  if not ok or not parser then
    return {}
  end
  local parsed = pcall(function()
    parser:parse(true)
  end)
  if not parsed then
    return {}
  end
  local out = {}
  parser:for_each_tree(function(tree, ltree)
    local lang = ltree:lang()
    local qok, query = pcall(vim.treesitter.query.get, lang, 'highlights')
    if not qok or not query then
      return
    end
    for id, node in query:iter_captures(tree:root(), text, 0, -1) do
      local name = query.captures[id]
      if not name:match('^_') and name ~= 'spell' and name ~= 'nospell' and name ~= 'conceal' then
        local sr, sc, er, ec = node:range()
        out[#out + 1] = { sr, sc, er, ec, '@' .. name .. '.' .. lang }
      end
    end
  end)
  return out
end

--- Applies the highlights of `lines` shown from buffer row `first` (0-based).
--- Below the pane's own highlights (priority 100, like tree-sitter's).
function M.apply(buf, ns, first, lines)
  local n = #lines
  for _, h in ipairs(M.highlights(lines)) do
    local sr, sc, er, ec = h[1], h[2], h[3], h[4]
    if er >= n then
      er, ec = n - 1, #lines[n]
    end
    if sr < n and (er > sr or ec > sc) then
      pcall(vim.api.nvim_buf_set_extmark, buf, ns, first + sr, sc, {
        end_row = first + er,
        end_col = ec,
        hl_group = h[5],
        priority = 100,
      })
    end
  end
end

return M
