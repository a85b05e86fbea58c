-- The report in the pane is highlighted as Markdown (Neovim's own markdown and
-- markdown_inline parsers, as in a filetype=markdown buffer), under the pane's
-- own highlights; its tables are aligned.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
local md = require('boo.markdown')

H.test('tables are aligned to their widest cell, delimiters included', function()
  local got = md.align_tables({
    'text before',
    '| wave | step | status |',
    '| --- | :-- | --: |',
    '| 1 | Collect the changes | completed |',
    '| 2 | a \\| b | – |',
    'after',
    '| not | a table |',
  })
  H.eq(got, {
    'text before',
    '| wave | step                | status    |',
    '| ---- | :------------------ | --------: |',
    '| 1    | Collect the changes | completed |',
    '| 2    | a \\| b              | –         |',
    'after',
    '| not | a table |',
  }, 'aligned table')
end)

H.test('Markdown highlights come from the markdown parsers and queries', function()
  local groups = {}
  for _, h in ipairs(md.highlights({ '# Title', '', 'Some `code` and **bold**.', '', '| a | b |', '| - | - |', '| 1 | 2 |' })) do
    groups[h[5]] = groups[h[5]] or {}
    table.insert(groups[h[5]], h[1])
  end
  H.ok(groups['@markup.heading.1.markdown'], 'a level-1 heading: ' .. vim.inspect(vim.tbl_keys(groups)))
  H.ok(groups['@markup.raw.markdown_inline'] and groups['@markup.raw.markdown_inline'][1] == 2, 'the code span on row 2')
  H.ok(groups['@markup.strong.markdown_inline'], 'bold')
  H.ok(groups['@markup.heading.markdown'], 'the table header')
end)

H.require_server()
local project = H.project()
vim.cmd('cd ' .. vim.fn.fnameescape(project))
H.setup()
local pane = require('boo.pane')
local client = require('boo.client')
local run_id

H.test('a finished run shows its report with Markdown highlighting and the pane keeps its own', function()
  vim.cmd('Boo flow code-review small is the cache safe?')
  run_id = H.wait(20000, function()
    return pane.last_run_id
  end, 'a run id')
  H.wait(60000, function()
    local run = client.store:get(run_id)
    return run and run.status == 'completed' and run.report and H.pane_text(run_id):find('## Roster', 1, true)
  end, 'the report in the pane')
  local buf = pane.panes[run_id].buf
  local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  local function row_of(pat)
    for i, l in ipairs(lines) do
      if l:find(pat, 1, true) then
        return i - 1
      end
    end
    error('no line with ' .. pat)
  end
  local by_row = {}
  local dump = {}
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(buf, pane.md_ns, 0, -1, { details = true })) do
    by_row[m[2]] = by_row[m[2]] or {}
    by_row[m[2]][m[4].hl_group] = true
    table.insert(dump, string.format('%d:%d-%d:%d %s', m[2], m[3], m[4].end_row, m[4].end_col, m[4].hl_group))
  end
  H.artifact('report-highlights', table.concat(dump, '\n'))
  H.artifact('report', table.concat(lines, '\n'))
  local title = row_of('# Code review — is the cache safe?')
  H.ok(by_row[title] and by_row[title]['@markup.heading.1.markdown'], 'the title is a level-1 heading')
  local cited = row_of('`README.md:1`')
  H.ok(by_row[cited] and by_row[cited]['@markup.raw.markdown_inline'], 'the citation is a code span')
  local roster = row_of('| wave')
  H.ok(by_row[roster] and by_row[roster]['@markup.heading.markdown'], 'the table header')
  -- The roster table is aligned: every row has the same display width.
  local widths, rows = {}, {}
  for i = roster + 1, #lines do
    if not lines[i]:match('^|') then
      break
    end
    widths[vim.api.nvim_strwidth(lines[i])] = true
    rows[#rows + 1] = lines[i]
  end
  H.ok(#rows >= 4, 'the roster table has rows')
  H.eq(#vim.tbl_keys(widths), 1, 'one width for the whole table:\n' .. table.concat(rows, '\n'))
  -- The pane's own highlights are still there, over the Markdown ones.
  local own = {}
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(buf, pane.ns, 0, -1, { details = true })) do
    own[m[4].hl_group] = true
  end
  for _, g in ipairs({ 'BooSection', 'BooReportHeading', 'BooStatusDone' }) do
    H.ok(own[g], 'pane highlight ' .. g .. ' kept')
  end
  local mark = vim.api.nvim_buf_get_extmarks(buf, pane.md_ns, { title, 0 }, { title, -1 }, { details = true })[1]
  H.eq(mark[4].priority, 100, 'Markdown highlights sit below the pane highlights')
end)

H.finish()
