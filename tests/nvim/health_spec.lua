-- :checkhealth boo with the real binary (boo doctor with the fake qwen).
local H = dofile(vim.fn.fnamemodify((_G.arg and _G.arg[0]) or '', ':p:h') .. '/helpers.lua')
H.require_server()

local text

H.test(':checkhealth boo: binary and version, qwen via boo doctor, endpoint variables, database', function()
  H.setup({ env = { OPENAI_BASE_URL = 'http://127.0.0.1:9/v1', OPENAI_MODEL = 'fake-model', OPENAI_API_KEY = 'sk-test-abcd1234' } })
  local version = vim.trim(vim.system({ H.bin, '--version' }, { text = true }):wait().stdout or '')
  H.ok(version ~= '', 'boo --version prints something')
  vim.cmd('checkhealth boo')
  text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  H.artifact('checkhealth', text)
  H.contains(text, 'boo: server binary', 'binary section')
  H.contains(text, 'OK ' .. version, 'version reported')
  H.contains(text, 'boo: qwen CLI and environment (boo doctor)', 'doctor section')
  H.contains(text, 'OK qwen: ' .. H.fake_qwen, 'qwen found through boo doctor')
  H.contains(text, 'ERROR endpoint: nothing answers at 127.0.0.1:9', 'an unreachable endpoint is an error')
  H.contains(text, 'OPENAI_BASE_URL = http://127.0.0.1:9/v1 (setup env)', 'endpoint variable')
  H.contains(text, 'OPENAI_API_KEY = …1234', 'key masked')
  H.not_contains(text, 'sk-test-abcd1234', 'key never shown')
  H.contains(text, H.db, 'database path')
end)

-- The database is a fresh file in a writable temp dir: `boo doctor` must
-- accept it.
H.test('boo doctor accepts a writable database', function()
  H.ok(text, 'checkhealth ran')
  H.not_contains(text, 'ERROR database', 'doctor database check')
end)

H.finish()
