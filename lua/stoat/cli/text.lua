-- stoat.cli.text: the text encodings of `stoat dump` and `stoat load`, and
-- of the command's output: base64, a small JSON (flat objects of strings,
-- numbers, booleans, nested objects and arrays for `info --json`), the
-- escaped TSV field, and sizes in bytes for people.
--
-- Binary safety: JSON strings must be UTF-8, so a key or value that is not
-- valid UTF-8 is written base64-encoded under "key_b64" / "value_b64"
-- instead of "key" / "value". A TSV field escapes backslash, tab, newline,
-- carriage return and every byte outside printable ASCII as \xHH, so any
-- bytes survive a round trip. No state.

local bit = require "bit"

local band, bor, lshift, rshift = bit.band, bit.bor, bit.lshift, bit.rshift
local byte, char, sub, format = string.byte, string.char, string.sub, string.format
local concat = table.concat
local type, tostring, tonumber, pairs, ipairs = type, tostring, tonumber, pairs, ipairs
local floor = math.floor

local M = {}

---------------------------------------------------------------------------
-- base64 (RFC 4648, with padding)

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local enc, dec = {}, {}
for i = 1, 64 do
    enc[i - 1] = sub(B64, i, i)
    dec[byte(B64, i)] = i - 1
end

function M.base64_encode(s)
    local out, n = {}, 0
    for i = 1, #s - 2, 3 do
        local a, b, c = byte(s, i, i + 2)
        local v = a * 65536 + b * 256 + c
        n = n + 1
        out[n] = enc[rshift(v, 18)] .. enc[band(rshift(v, 12), 63)] .. enc[band(rshift(v, 6), 63)]
                 .. enc[band(v, 63)]
    end
    local rest = #s % 3
    if rest == 1 then
        local a = byte(s, #s)
        n = n + 1
        out[n] = enc[rshift(a, 2)] .. enc[lshift(band(a, 3), 4)] .. "=="
    elseif rest == 2 then
        local a, b = byte(s, #s - 1, #s)
        n = n + 1
        out[n] = enc[rshift(a, 2)] .. enc[bor(lshift(band(a, 3), 4), rshift(b, 4))]
                 .. enc[lshift(band(b, 15), 2)] .. "="
    end
    return concat(out)
end

-- The bytes of base64 text s | nil, err.
function M.base64_decode(s)
    s = s:gsub("%s", "")
    if #s % 4 ~= 0 then
        return nil, "base64 length is not a multiple of 4"
    end
    local out, n = {}, 0
    for i = 1, #s, 4 do
        local a, b, c, d = byte(s, i, i + 3)
        local va, vb = dec[a], dec[b]
        local vc, vd = dec[c], dec[d]
        if va == nil or vb == nil or (vc == nil and c ~= 61) or (vd == nil and d ~= 61)
           or (c == 61 and d ~= 61) or ((c == 61 or d == 61) and i + 4 <= #s) then
            return nil, "invalid base64"
        end
        local v = va * 262144 + vb * 4096 + (vc or 0) * 64 + (vd or 0)
        n = n + 1
        if c == 61 then
            out[n] = char(rshift(v, 16))
        elseif d == 61 then
            out[n] = char(rshift(v, 16), band(rshift(v, 8), 255))
        else
            out[n] = char(rshift(v, 16), band(rshift(v, 8), 255), band(v, 255))
        end
    end
    return concat(out)
end

---------------------------------------------------------------------------
-- UTF-8 check

-- True when s is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
function M.is_utf8(s)
    if not s:find("[\128-\255]") then
        return true
    end
    local i, n = 1, #s
    while i <= n do
        local c = byte(s, i)
        if c < 0x80 then
            i = i + 1
        else
            local len, min
            if c >= 0xC2 and c <= 0xDF then len, min = 2, 0x80
            elseif c >= 0xE0 and c <= 0xEF then len, min = 3, 0x800
            elseif c >= 0xF0 and c <= 0xF4 then len, min = 4, 0x10000
            else return false end
            if i + len - 1 > n then return false end
            local cp = band(c, rshift(0x7F, len))
            for j = i + 1, i + len - 1 do
                local cc = byte(s, j)
                if cc < 0x80 or cc > 0xBF then return false end
                cp = cp * 64 + (cc - 0x80)
            end
            if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then
                return false
            end
            i = i + len
        end
    end
    return true
end

---------------------------------------------------------------------------
-- JSON

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
              ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- A JSON string literal of UTF-8 text s.
function M.json_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return ESC[c] or format("\\u%04x", byte(c))
    end) .. '"'
end

local function is_array(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n == #t and (n > 0 or getmetatable(t) == M.array_mt)
end

M.array_mt = {}
-- Marks t as a JSON array (so an empty one is [] and not {}).
function M.array(t)
    return setmetatable(t or {}, M.array_mt)
end

-- JSON text of v: tables with string keys (sorted) or arrays, strings
-- (UTF-8), numbers, booleans. indent: nil for one line.
function M.json_encode(v, indent, depth)
    depth = depth or 0
    local t = type(v)
    if t == "string" then
        return M.json_string(v)
    elseif t == "number" then
        if v ~= v or v == math.huge or v == -math.huge then return "null" end
        if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
        return format("%.17g", v)
    elseif t == "boolean" then
        return tostring(v)
    elseif t == "nil" then
        return "null"
    elseif t ~= "table" then
        error("json: cannot encode a " .. t)
    end
    local nl, pad, pad_in = "", "", ""
    if indent then
        nl = "\n"
        pad = (" "):rep(indent * depth)
        pad_in = (" "):rep(indent * (depth + 1))
    end
    local parts = {}
    if is_array(v) then
        if #v == 0 then return "[]" end
        for i, x in ipairs(v) do
            parts[i] = pad_in .. M.json_encode(x, indent, depth + 1)
        end
        return "[" .. nl .. concat(parts, "," .. nl) .. nl .. pad .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    if #keys == 0 then return "{}" end
    for i, k in ipairs(keys) do
        parts[i] = pad_in .. M.json_string(k) .. (indent and ": " or ":")
                   .. M.json_encode(v[k], indent, depth + 1)
    end
    return "{" .. nl .. concat(parts, "," .. nl) .. nl .. pad .. "}"
end

local function utf8_char(cp)
    if cp < 0x80 then return char(cp) end
    if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
    if cp < 0x10000 then
        return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
    end
    return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
                0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

local UNESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
                r = "\r", t = "\t" }

-- Decodes JSON text s: value | nil, err.
function M.json_decode(s)
    local pos = 1
    local function fail(what)
        error({ json = ("%s at character %d"):format(what, pos) })
    end
    local function ws()
        pos = s:find("[^ \t\r\n]", pos) or #s + 1
    end
    local value
    local function str()
        pos = pos + 1
        local out, n = {}, 0
        while true do
            local stop = s:find('["\\%c]', pos)
            if stop == nil then fail("unterminated string") end
            n = n + 1
            out[n] = sub(s, pos, stop - 1)
            local c = sub(s, stop, stop)
            if c == '"' then
                pos = stop + 1
                return concat(out)
            elseif c ~= "\\" then
                pos = stop
                fail("control character in string")
            end
            local e = sub(s, stop + 1, stop + 1)
            if e == "u" then
                local cp = tonumber(sub(s, stop + 2, stop + 5), 16)
                if cp == nil then pos = stop; fail("bad \\u escape") end
                pos = stop + 6
                if cp >= 0xD800 and cp <= 0xDBFF and sub(s, pos, pos + 1) == "\\u" then
                    local lo = tonumber(sub(s, pos + 2, pos + 5), 16)
                    if lo and lo >= 0xDC00 and lo <= 0xDFFF then
                        cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
                        pos = pos + 6
                    end
                end
                n = n + 1
                out[n] = utf8_char(cp)
            elseif UNESC[e] then
                n = n + 1
                out[n] = UNESC[e]
                pos = stop + 2
            else
                pos = stop
                fail("bad escape")
            end
        end
    end
    function value()
        ws()
        local c = sub(s, pos, pos)
        if c == "{" then
            local t = {}
            pos = pos + 1
            ws()
            if sub(s, pos, pos) == "}" then pos = pos + 1; return t end
            while true do
                ws()
                if sub(s, pos, pos) ~= '"' then fail("expected a string key") end
                local k = str()
                ws()
                if sub(s, pos, pos) ~= ":" then fail("expected ':'") end
                pos = pos + 1
                t[k] = value()
                ws()
                c = sub(s, pos, pos)
                pos = pos + 1
                if c == "}" then return t end
                if c ~= "," then pos = pos - 1; fail("expected ',' or '}'") end
            end
        elseif c == "[" then
            local t, n = M.array(), 0
            pos = pos + 1
            ws()
            if sub(s, pos, pos) == "]" then pos = pos + 1; return t end
            while true do
                n = n + 1
                t[n] = value()
                ws()
                c = sub(s, pos, pos)
                pos = pos + 1
                if c == "]" then return t end
                if c ~= "," then pos = pos - 1; fail("expected ',' or ']'") end
            end
        elseif c == '"' then
            return str()
        elseif s:find("^true", pos) then
            pos = pos + 4
            return true
        elseif s:find("^false", pos) then
            pos = pos + 5
            return false
        elseif s:find("^null", pos) then
            pos = pos + 4
            return nil
        end
        local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
        if num == nil or num == "" or tonumber(num) == nil then fail("unexpected character") end
        pos = pos + #num
        return tonumber(num)
    end
    local ok, res = pcall(function()
        local v = value()
        ws()
        if pos <= #s then fail("trailing characters") end
        return v
    end)
    if ok then
        return res
    end
    if type(res) == "table" and res.json then
        return nil, res.json
    end
    error(res, 0)
end

---------------------------------------------------------------------------
-- TSV fields

local TSV_ESC = { ["\\"] = "\\\\", ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r" }

function M.tsv_escape(s)
    return (s:gsub("[%z\1-\31\\\127-\255]", function(c)
        return TSV_ESC[c] or format("\\x%02x", byte(c))
    end))
end

-- The bytes of an escaped TSV field | nil, err.
function M.tsv_unescape(s)
    local bad
    local out = s:gsub("\\(x?)(.?)(%x?)", function(x, a, b)
        if x == "x" then
            local v = tonumber(a .. b, 16)
            if v == nil or #(a .. b) ~= 2 then bad = true; return "" end
            return char(v)
        end
        if a == "\\" then return "\\" .. b end
        if a == "t" then return "\t" .. b end
        if a == "n" then return "\n" .. b end
        if a == "r" then return "\r" .. b end
        bad = true
        return ""
    end)
    if bad then
        return nil, "bad escape in TSV field"
    end
    return out
end

---------------------------------------------------------------------------
-- Sizes for people

-- n bytes as "512 B", "3.4 KiB", "12.0 MiB", "1.5 GiB".
function M.human_bytes(n)
    if n < 1024 then return format("%d B", n) end
    if n < 1048576 then return format("%.1f KiB", n / 1024) end
    if n < 1073741824 then return format("%.1f MiB", n / 1048576) end
    return format("%.1f GiB", n / 1073741824)
end

return M
