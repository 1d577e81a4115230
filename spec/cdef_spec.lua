-- The ffi.cdef of lua/stoat/cdef.lua must say what core/include/stoat.h says.

local cdef = require "stoat.cdef"

-- stoat.h as the C compiler of a C (not C++) program sees it: comments
-- removed, #if(n)def blocks resolved, #defines collected apart.
local function preprocess(src)
    src = src:gsub("/%*.-%*/", " "):gsub("//[^\n]*", "")
    local lines, defines, defined, skipping = {}, {}, {}, {}
    local function active()
        for _, s in ipairs(skipping) do
            if s then return false end
        end
        return true
    end
    for line in (src .. "\n"):gmatch("([^\n]*)\n") do
        local directive, rest = line:match("^%s*#%s*(%a+)%s*(.-)%s*$")
        if directive == "ifdef" or directive == "ifndef" then
            local is = defined[rest] == true
            skipping[#skipping + 1] = (directive == "ifdef") ~= is
        elseif directive == "else" then
            skipping[#skipping] = not skipping[#skipping]
        elseif directive == "endif" then
            skipping[#skipping] = nil
        elseif directive == "define" then
            if active() then
                local name, value = rest:match("^([%w_]+)%s*(.*)$")
                defined[name] = true
                if value ~= "" then defines[name] = value end
            end
        elseif directive then
            assert(directive == "include", "unexpected directive #" .. directive)
        elseif active() then
            lines[#lines + 1] = line
        end
    end
    assert(#skipping == 0, "unbalanced #if/#endif")
    return table.concat(lines, "\n"), defines
end

local function tokens(src)
    local out = {}
    local i = 1
    while i <= #src do
        local s, e = src:find("^%s+", i)
        if not s then
            s, e = src:find("^[%w_]+", i)
            if not s then s, e = src:find('^"[^"]*"', i) end
            if not s then s, e = i, i end
            out[#out + 1] = src:sub(s, e)
        end
        i = e + 1
    end
    return out
end

-- The Lua value of a #define's replacement text in stoat.h.
local function define_value(text)
    local str = text:match('^"(.*)"$')
    if str then return str end
    local n = text:match("^(%d+)u?l?l?$")
    if n then return tonumber(n) end
    local a, b = text:match("^%(%s*(%d+)u?l?l?%s*<<%s*(%d+)%s*%)$")
    if a then return tonumber(a) * 2 ^ tonumber(b) end
    error("cdef_spec does not understand #define value: " .. text)
end

local function read_header()
    local f = assert(io.open("core/include/stoat.h", "rb"))
    local src = f:read("*a")
    f:close()
    return preprocess(src)
end

describe("cdef", function()
    it("declares exactly the declarations of stoat.h", function()
        local header = tokens((read_header()))
        local ours = tokens(cdef.declarations)
        for i = 1, math.max(#header, #ours) do
            if header[i] ~= ours[i] then
                local from, to = math.max(1, i - 8), math.min(#header, i + 8)
                local context = table.concat(header, " ", from, to)
                error(("token %d differs: stoat.h has %s, cdef.lua has %s, near: %s")
                      :format(i, tostring(header[i]), tostring(ours[i]), context))
            end
        end
        assert.are.equal(#header, #ours)
    end)

    it("carries every #define constant of stoat.h with its value", function()
        local _, defines = read_header()
        local want = {}
        for name, text in pairs(defines) do
            want[name] = define_value(text)
        end
        assert.are.same(want, cdef.defines)
    end)

    it("finds every declared function in the loaded library", function()
        local C = require("stoat.base").C
        local missing = {}
        for name in cdef.declarations:gmatch("([%w_]+)%s*%(") do
            if name:match("^stoat_") and not pcall(function() return C[name] end) then
                missing[#missing + 1] = name
            end
        end
        assert.are.same({}, missing)
    end)

    it("matches the version of the library it loaded", function()
        local stoat = require "stoat"
        assert.are.equal(cdef.defines.STOAT_VERSION_STRING, stoat.version)
    end)
end)
