-- Allocation-heavy: binary trees (garbage collector).
local function bottomUp(d)
  if d == 0 then return {} end
  d = d - 1
  return { bottomUp(d), bottomUp(d) }
end
local function check(t)
  if t[1] then return 1 + check(t[1]) + check(t[2]) end
  return 1
end
local N = tonumber(arg and arg[1]) or 14
local maxdepth = math.max(6, N)
local long = bottomUp(maxdepth)
for d = 4, maxdepth, 2 do
  local iters = 2 ^ (maxdepth - d + 4) // 1
  local c = 0
  for _ = 1, iters do c = c + check(bottomUp(d)) end
  print(string.format("%d trees of depth %d check: %d", iters, d, c))
end
print(string.format("long lived tree of depth %d check: %d", maxdepth, check(long)))
