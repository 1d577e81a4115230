-- The hot paths of the Lua face compile under the JIT (issue 5): loops of
-- gets, sets, batches, scans and an iterator per item record traces that
-- do not abort inside the module on something the module does: a "NYI"
-- (a closure created per call is "NYI: bytecode 51"; a loop of its own in
-- a function called from the caller's loop leads to "NYI: return to lower
-- frame") or an "inner loop in root trace" located in the module (that
-- loop itself). Other aborts
-- ("loop unroll limit reached" while unrolling the spec's nested loops,
-- "leaving loop in root trace") are the JIT
-- choosing among traces, and it may report them anywhere in the code it
-- was recording.

local h = require "helpers"
local jutil = require "jit.util"
local vmdef = require "jit.vmdef"

local has_nkeys = pcall(require, "table.nkeys")
local N = 2000

-- True for the chunk names of the module's files: ".../stoat.lua",
-- ".../stoat/<name>.lua" and the generated "=stoat.base options_checker".
local function in_module(source)
    return source:find("[/@]stoat%.lua$") or source:find("[/@]stoat/[%w_]+%.lua$")
        or source:find("^=stoat%.")
end

-- Runs fn with the JIT flushed and returns the aborts located in the
-- module's files, as "file:line: reason" strings: those named above, or
-- with pattern those whose reason matches it; with anywhere, wherever
-- they are (an abort inside a builtin has no Lua location).
local function module_aborts(fn, pattern, anywhere)
    local found = {}
    local function on_trace(what, _, func, pc, code, info)
        if what ~= "abort" then
            return
        end
        local where = jutil.funcinfo(func, pc)
        local reason = vmdef.traceerr[code]
        if type(reason) == "string" and info ~= nil then
            reason = reason:format(info)
        end
        reason = tostring(reason)
        local wanted
        if pattern then
            wanted = reason:find(pattern)
        else
            wanted = reason:find("^NYI") or reason == "inner loop in root trace"
        end
        if wanted and (anywhere or (where.source and in_module(where.source))) then
            found[#found + 1] = ("%s:%s: %s"):format(where.source, tostring(where.currentline),
                                                     reason)
        end
    end
    jit.flush()
    jit.attach(on_trace, "trace")
    local ok, err = pcall(fn)
    jit.attach(on_trace)
    assert(ok, err)
    return found
end

describe("jit", function()
    it("compiles a loop of db:set and db:get without aborts in the module", function()
        local db = h.open_db(finally)
        assert.are.same({}, module_aborts(function()
            for i = 1, N do
                assert(db:set("k" .. i % 100, "v"))
                assert(db:get("k" .. i % 100))
            end
        end))
    end)

    local has_buffer, buffer = pcall(require, "string.buffer")
    local with_buffer = has_buffer and it or pending

    with_buffer("compiles a loop of db:set and db:get with buffer keys without aborts", function()
        local db = h.open_db(finally)
        local k, v = buffer.new(), buffer.new():put("v")
        local function loop()
            for i = 1, N do
                k:reset():putf("k%d", i % 100)
                assert(db:set(k, v))
                assert(db:get(k))
            end
        end
        assert.are.same({}, module_aborts(loop))
        -- Telling a buffer by getmetatable aborted every trace here (the JIT
        -- does not record getmetatable of a userdata), inside the builtin.
        assert.are.same({}, module_aborts(loop, "^bad argument type", true))
    end)

    it("compiles a loop of batches without aborts in the module", function()
        local db = h.open_db(finally)
        assert.are.same({}, module_aborts(function()
            for _ = 1, N / 10 do
                local b = db:batch()
                for j = 1, 10 do
                    assert(b:set("b" .. j, "v"))
                end
                assert(b:commit())
            end
        end))
    end)

    it("compiles a scan without aborts in the module", function()
        local db = h.open_db(finally)
        for i = 1, 100 do
            assert(db:set("k" .. i, "v"))
        end
        assert.are.same({}, module_aborts(function()
            assert(db:view(function(txn)
                local n = 0
                for _ = 1, 50 do
                    for _, v in txn:pairs() do
                        n = n + #v
                    end
                end
                return n
            end))
        end))
    end)

    -- Without table.nkeys (OpenResty's LuaJIT has it) an options table is
    -- checked by a loop (base.options_checker).
    local with_nkeys = has_nkeys and it or pending

    with_nkeys("compiles an iterator per item without aborts in the module", function()
        local db = h.open_db(finally)
        for i = 1, 100 do
            assert(db:set(("k%03d"):format(i), "v"))
        end
        assert.are.same({}, module_aborts(function()
            assert(db:view(function(txn)
                local found = 0
                for i = 1, N do
                    for k in txn:pairs{ start = ("k%03d"):format(i % 100), limit = 1 } do
                        found = found + #k
                    end
                end
                return found
            end))
        end))
    end)

    -- The last step of each iterator ends it (handle.close_now): that path
    -- went through three tail calls per item, which the JIT counts while it
    -- records ("loop unroll limit reached" at handle.lua), and the trace
    -- of the step then ended in the interpreter.
    with_nkeys("ends an iterator per item without a tail-call abort in handle.lua", function()
        local db = h.open_db(finally)
        for i = 1, 100 do
            assert(db:set(("k%03d"):format(i), "v"))
        end
        local aborts = module_aborts(function()
            assert(db:view(function(txn)
                local found = 0
                for i = 1, N do
                    for k, v in txn:pairs{ start = ("k%03d"):format(i % 100), limit = 1 } do
                        found = found + #k + #v
                    end
                end
                return found
            end))
        end, "^loop unroll limit reached$")
        local in_handle = {}
        for _, a in ipairs(aborts) do
            if a:find("stoat/handle%.lua:") then in_handle[#in_handle + 1] = a end
        end
        assert.are.same({}, in_handle)
    end)

    with_nkeys("compiles a loop of sets with options without aborts in the module", function()
        local db = h.open_db(finally)
        assert.are.same({}, module_aborts(function()
            for i = 1, N do
                assert(db:set("t" .. i % 100, "v", { ttl = 60 }))
            end
        end))
    end)

    it("compiles a loop of updates that return nothing without aborts in the module", function()
        local db = h.open_db(finally)
        local function body(txn) txn:set("k", "v") end
        assert.are.same({}, module_aborts(function()
            for _ = 1, N / 4 do
                assert(db:update(body))
            end
        end))
    end)

    with_nkeys("compiles a db:pairs per item without aborts in the module", function()
        local db = h.open_db(finally)
        for i = 1, 100 do
            assert(db:set(("k%03d"):format(i), "v"))
        end
        assert.are.same({}, module_aborts(function()
            local found = 0
            for i = 1, N do
                for k in db:pairs{ after = ("k%03d"):format(i % 100), limit = 1 } do
                    found = found + #k
                end
            end
            return found
        end))
    end)
end)
