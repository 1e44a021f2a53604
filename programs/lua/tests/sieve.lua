-- Sieve of Eratosthenes and integer loops.
local N = tonumber(arg and arg[1]) or 1000000
local composite = {}
local count = 0
for i = 2, N do
  if not composite[i] then
    count = count + 1
    for j = i * i, N, i do composite[j] = true end
  end
end
print("primes below " .. N .. ": " .. count)
local s = 0
for i = 1, N do s = (s + i * i) % 1000000007 end
print(s)
