-- Tables, sorting with comparators, closures, metatables, integer/float semantics, string buffers.
local t = {}
local seed = 42
local function rand() seed = (seed * 1103515245 + 12345) % 2147483648; return seed end
for i = 1, 20000 do t[i] = rand() % 100000 end
table.sort(t)
print(t[1], t[10000], t[20000])
table.sort(t, function(a, b) return a > b end)
print(t[1], t[20000])
local V = {}
V.__index = V
V.__add = function(a, b) return setmetatable({x = a.x + b.x, y = a.y + b.y}, V) end
V.__tostring = function(v) return "(" .. v.x .. "," .. v.y .. ")" end
V.__eq = function(a, b) return a.x == b.x and a.y == b.y end
local function vec(x, y) return setmetatable({x = x, y = y}, V) end
local acc = vec(0, 0)
for i = 1, 1000 do acc = acc + vec(i, -i) end
print(tostring(acc), acc == vec(500500, -500500))
local function counter() local n = 0; return function() n = n + 1; return n end end
local c1, c2 = counter(), counter()
c1(); c1()
print(c1(), c2())
print(7 // 2, -7 // 2, 7 % -3, 7.5 // 2, 2^10, 10 / 4, math.maxinteger, math.mininteger, 1 << 62, 0xff ~ 0x0f)
print(math.tointeger(3.0), math.type(1), math.type(1.0), 1e15, 2^53, 100000000000000)
print(string.format("%.14g", math.sin(1) + math.cos(2) + math.log(10) + math.exp(1.5)))
local m = {}
for i = 1, 100 do m["k" .. i] = i end
local sum = 0
for k, v in pairs(m) do sum = sum + v end
print(sum, #m, next({}))
local buf = {}
for i = 1, 1000 do buf[#buf + 1] = string.format("%04d", i) end
print(#table.concat(buf), table.unpack({1, 2, 3}))
print(select(2, "a", "b", "c"), rawlen({1, 2}), rawequal(t, t))
local moved = table.move({1, 2, 3, 4, 5}, 2, 4, 1)
print(table.concat(moved, " "))
