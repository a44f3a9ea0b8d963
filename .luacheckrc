-- luacheck (Debian's lua-check) over the store's Lua scripts as Redis runs them: expanded
-- by `python -m api.store.scripts --expand DIR` (scripts/test), so each file is one whole
-- script with its libraries in place.
--
-- The globals are what Redis's Lua 5.1 offers a script, all read-only: the base functions
-- the scripts may use, math/string/table, Redis's libraries, KEYS and ARGV. Nothing of
-- lua51's io, os, require, dofile, loadfile, load*, print or _G: Redis has none of them
-- (or refuses them), so a script using one fails only when it runs.
local function fields(names) return { fields = names } end

stds.redis = {
  read_globals = {
    "tonumber", "tostring", "type", "pairs", "ipairs", "next", "select", "unpack", "error",
    "pcall", "assert", "setmetatable", "getmetatable", "rawget", "rawset",
    math = fields({
      "abs", "acos", "asin", "atan", "atan2", "ceil", "cos", "cosh", "deg", "exp", "floor",
      "fmod", "frexp", "huge", "ldexp", "log", "log10", "max", "min", "modf", "pi", "pow",
      "rad", "random", "randomseed", "sin", "sinh", "sqrt", "tan", "tanh",
    }),
    string = fields({
      "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep",
      "reverse", "sub", "upper",
    }),
    table = fields({ "concat", "insert", "maxn", "remove", "sort", "getn" }),
    -- Redis's own (any field: redis.call, cjson.decode, ...).
    "redis", "cjson", "cmsgpack", "bit", "struct",
    "KEYS", "ARGV",
  },
}
std = "redis"
