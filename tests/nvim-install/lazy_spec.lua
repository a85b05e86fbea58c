-- The lazy.nvim install of the README, step by step as lazy.nvim takes it:
-- the plugin folder (a clone of the repository) gets its `build` run there, goes
-- on 'runtimepath', its plugin/ files are sourced and `opts` go to setup(). The
-- plugin then finds the server its build step made — no `boo` on PATH, no `cmd`.
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h:h') .. '/nvim/helpers.lua')
-- helpers.lua puts this checkout's editors/nvim on 'runtimepath': the plugin must
-- come from the installed folder only.
vim.opt.runtimepath:remove(H.repo .. '/editors/nvim')
local clone = assert(vim.env.BOO_PLUGIN_CLONE, 'BOO_PLUGIN_CLONE (scripts/test-nvim-install.sh sets it)')

-- The spec exactly as editors/nvim/README.md gives it (plus this test's private
-- database, fake qwen and endpoint in `opts`).
local spec = {
  url = 'file://' .. clone,
  build = 'cargo build --release',
  cmd = 'Boo',
  opts = {
    env = { OPENAI_BASE_URL = 'http://127.0.0.1:9/v1', OPENAI_API_KEY = 'k', OPENAI_MODEL = 'test-model', FAKE_QWEN_DELAY_MS = '20' },
    db_path = H.tmpdir('db') .. '/boo.db',
    qwen_path = H.fake_qwen,
  },
}

H.test('the README gives this spec', function()
  local readme = table.concat(vim.fn.readfile(clone .. '/editors/nvim/README.md'), '\n')
  H.contains(readme, "build = 'cargo build --release'", 'the build step')
  H.contains(readme, "{ url = BOO_GIT_URL, build = 'cargo build --release', cmd = 'Boo', opts = {} }", 'the one-line spec')
end)

H.test('no boo on PATH', function()
  H.eq(vim.fn.exepath('boo'), '', 'exepath(boo)')
end)

H.test('the build step builds the server in the plugin folder', function()
  local res = vim.system({ vim.o.shell, '-c', spec.build }, { cwd = clone, text = true }):wait(1700 * 1000)
  if res.code ~= 0 then
    error('build failed (' .. tostring(res.code) .. '):\n' .. (res.stderr or ''):sub(-3000))
  end
  H.eq(vim.fn.executable(clone .. '/target/release/boo'), 1, 'target/release/boo')
end)

H.test('loaded like lazy.nvim loads it: :Boo, setup(opts), and the binary found by itself', function()
  vim.opt.runtimepath:prepend(clone)
  for _, f in ipairs(vim.fn.glob(clone .. '/plugin/**/*.lua', false, true)) do
    vim.cmd.source(f)
  end
  H.eq(vim.fn.exists(':Boo'), 2, ':Boo defined by plugin/boo.lua')
  -- lazy.nvim calls require(main).setup(opts); main is the module named like the plugin.
  H.eq(vim.fn.isdirectory(clone .. '/lua/boo'), 1, 'lua/boo at the plugin root')
  require('boo').setup(spec.opts)
  local found, how = require('boo.server').find()
  H.eq(found, clone .. '/target/release/boo', 'the binary')
  H.eq(how, 'build', 'found as the build of the plugin folder')
  H.eq(require('boo.client').check_cmd(), nil, 'no missing-binary problem')
end)

H.test(':help boo comes from the plugin folder', function()
  vim.cmd('helptags ' .. vim.fn.fnameescape(clone .. '/doc'))
  vim.cmd('help boo.txt')
  local real = vim.uv.fs_realpath
  H.eq(real(vim.api.nvim_buf_get_name(0)), real(clone .. '/doc/boo.txt'), 'the help file of the plugin folder')
  vim.cmd('helpclose')
end)

H.test('a flow runs on the server the plugin found', function()
  local project = H.project()
  vim.cmd('cd ' .. vim.fn.fnameescape(project))
  vim.cmd('edit ' .. vim.fn.fnameescape(project .. '/cache.py'))
  vim.cmd('Boo flow code-review small what could break?')
  local pane = require('boo.pane')
  local run_id = H.wait(30000, function()
    return pane.last_run_id
  end, 'a run id')
  H.wait(90000, function()
    local run = require('boo.client').store:get(run_id)
    return run and run.status == 'completed' and H.pane_text(run_id):find('## Verified findings', 1, true)
  end, 'the run to complete with its report in the pane')
  local c = vim.lsp.get_clients({ name = 'boo' })[1]
  H.eq(c.config.cmd[1], clone .. '/target/release/boo', 'the client runs the built binary')
end)

H.finish()
