-- luacheck (Debian's lua-check) over the store's Lua scripts as Redis runs them: expanded
-- by `python -m api.store.scripts --expand DIR` (scripts/test), so each file is one whole
-- script with its libraries in place.
std = "lua51"
-- What Redis gives a script: KEYS and ARGV are read, never written.
read_globals = { "redis", "KEYS", "ARGV", "cjson", "cmsgpack", "bit", "struct" }
