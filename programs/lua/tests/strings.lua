-- String library: patterns, gsub, format, rep, byte/char, utf8.
local words = {}
local text = ("The quick brown fox jumps over the lazy dog. "):rep(50)
for w in text:gmatch("%a+") do words[#words + 1] = w:lower() end
print(#words, words[1], words[#words])
local counts = {}
for _, w in ipairs(words) do counts[w] = (counts[w] or 0) + 1 end
local keys = {}
for k in pairs(counts) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do io.write(k, "=", counts[k], " ") end
print()
print((text:sub(1, 44):gsub("(%w+)", "<%1>")))
print(string.format("%5.2f|%-6s|%x|%q|%g|%e", 3.14159, "ab", 255, "a\nb", 1e20, 12345.678))
print(("hello"):byte(1, -1))
print(string.char(72, 105), ("abc"):upper(), ("x"):rep(3, ","), ("  trim  "):match("^%s*(.-)%s*$"))
print(utf8.char(72, 228, 8364, 128512), utf8.len("häll€"))
for p, c in utf8.codes("aé€") do io.write(p, ":", c, " ") end
print()
print(string.pack and #string.pack("i4i8d", 1, 2, 3.0), ("%d items"):format(42))
local parts = {}
for i = 1, 200 do parts[#parts + 1] = tostring(i * i) end
local joined = table.concat(parts, ",")
print(#joined, joined:sub(-20), select("#", joined:find("1681", 1, true)))
