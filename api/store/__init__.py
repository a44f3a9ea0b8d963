"""Redis is the system of record; `keys.py` documents every key and its retention.

Every change that spans keys is one Lua script, kept as a file: `lua/<name>.lua` is the
script `<name>`, `lua/lib/<name>.lua` functions several scripts share, pulled in by a line
`--@include <name>`. `scripts.py` reads them with importlib.resources when it is imported,
expands the includes, fills the `@NAME@` constants from Python (the contract's status order,
the feed's caps, ...) and refuses any that does not make a whole script. A script binds its
KEYS and ARGV to named locals at its top (the call record's key is always `kcall`), and
Python calls it through one typed wrapper (a `scripts.ScriptCall` dataclass next to the
store module that uses it) whose fields are those keys and arguments, by name, in order;
`Store.run` sends it by EVALSHA on the client it was registered on, loading it on
NOSCRIPT. `scripts/test` runs luacheck (`.luacheckrc`) over the expanded scripts.
"""
