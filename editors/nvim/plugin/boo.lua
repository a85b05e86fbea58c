-- :Boo works before (and without) require('boo').setup(): defaults apply.
if vim.fn.has('nvim-0.10') == 0 then
  return
end
vim.api.nvim_create_user_command('Boo', function(opts)
  local boo = require('boo')
  if not boo._setup_done then
    boo.setup()
  end
  require('boo.commands').run(opts)
end, {
  nargs = '*',
  complete = function(...)
    return require('boo.commands').complete(...)
  end,
  desc = 'boo: multi-agent flows (launch, chat, runs, export, traces, findings)',
})
