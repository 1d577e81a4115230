-- Value-log GC after a reader (issue 16, ../shared/reference/lua-trial.md B3): values
-- overwritten under an open db:view, with a compaction meanwhile, are kept
-- for the view; once it ends, one db:gc brings the value log down to at
-- most 1.1 x the live values, also after a reopen and after a view left
-- suspended in an abandoned coroutine (an aborted OpenResty request).

local stoat = require "stoat"
local h = require "helpers"

local N, LEN = 64, 65536
local LIVE = N * LEN
-- Values stored as they are: the spec measures the log against raw sizes.
local OPTS = { value_log_file_size = 1024 * 1024, auto_gc = false, value_log_compression = "none" }

local function fill(db, ch)
    local v = string.rep(ch, LEN)
    for i = 1, N do assert.is_true(db:set("k" .. i, v)) end
end

local function vlog_bytes(db)
    return assert(db:stats()).vlog_bytes
end

local function check_values(db, ch)
    local v = string.rep(ch, LEN)
    for i = 1, N do assert.are.equal(v, db:get("k" .. i)) end
end

describe("value-log gc", function()
    it("reclaims what a view kept once the view has ended", function()
        local db = h.open_db(finally, OPTS)
        fill(db, "a")
        assert(db:view(function(txn)
            fill(db, "b")
            assert.are.equal(0, db:gc(0.1))            -- the view needs it all
            assert.are.equal(string.rep("a", LEN), txn:get("k7"))
            return true
        end))
        assert.is_true(vlog_bytes(db) > 1.9 * LIVE)
        assert.is_true(db:gc(0.1) > 0)
        assert.is_true(vlog_bytes(db) <= 1.1 * LIVE, "value log " .. vlog_bytes(db))
        check_values(db, "b")
    end)

    it("reclaims what a view kept after a reopen", function()
        local path = h.scratch(finally) .. "/db"
        local db = assert(stoat.open(path, OPTS))
        fill(db, "a")
        assert(db:view(function()
            fill(db, "b")
            assert(db:flatten())
            return true
        end))
        db:close()
        db = assert(stoat.open(path, OPTS))
        assert.is_true(vlog_bytes(db) > 1.9 * LIVE)
        assert.is_true(db:gc(0.1) > 0)
        assert.is_true(vlog_bytes(db) <= 1.1 * LIVE, "value log " .. vlog_bytes(db))
        check_values(db, "b")
        db:close()
    end)

    it("reclaims what an abandoned view kept once Lua collects it", function()
        local db = h.open_db(finally, OPTS)
        fill(db, "a")
        do
            local co = coroutine.create(function()
                db:view(function() coroutine.yield() end)
            end)
            assert(coroutine.resume(co))                -- suspended inside the view
            fill(db, "b")
            assert.are.equal(0, db:gc(0.1))
        end
        collectgarbage()
        collectgarbage()
        assert.is_true(db:gc(0.1) > 0)
        assert.is_true(vlog_bytes(db) <= 1.1 * LIVE, "value log " .. vlog_bytes(db))
        check_values(db, "b")
    end)
end)
