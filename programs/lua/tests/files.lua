-- io library against the preopened directory: write, append, read modes, seek, lines, remove, rename.
local name = "lua-files-test.txt"
local f = assert(io.open(name, "w"))
for i = 1, 100 do f:write("line ", i, "\n") end
f:close()
f = assert(io.open(name, "a"))
f:write("appended\n")
f:close()
local n, last = 0, nil
for l in io.lines(name) do n = n + 1; last = l end
print(n, last)
f = assert(io.open(name, "r"))
print(f:read("l"), f:read("n"), f:seek("cur"))
print(f:seek("set", 5), f:read(4))
print(f:seek("end"))
f:close()
f = assert(io.open(name, "rb"))
local all = f:read("a")
f:close()
print(#all, select(2, all:gsub("\n", "")))
assert(os.rename(name, name .. ".2"))
print(io.open(name) == nil, io.open(name .. ".2") ~= nil)
assert(os.remove(name .. ".2"))
print(io.open(name .. ".2") == nil)
print(type(os.time()), type(os.clock()), os.getenv("FERRY_UNSET_VARIABLE"))
