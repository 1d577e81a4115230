-- stoat.open, its options table, db:close and the misuse of a closed db.

local stoat = require "stoat"
local cdef = require "stoat.cdef"
local options = require "stoat.options"
local h = require "helpers"

local function struct_fields(name)
    local body = cdef.declarations:match("typedef struct " .. name .. " {(.-)}")
    local fields = {}
    for field in body:gmatch("([%w_]+)%s*%b[]%s*;") do fields[field] = true end
    for field in body:gmatch("([%w_]+)%s*;") do fields[field] = true end
    return fields
end

describe("stoat.open", function()
    it("creates a database when the directory does not exist", function()
        local path = h.scratch(finally) .. "/new"
        local db = assert(stoat.open(path))
        assert.is_true(db:set("k", "v"))
        assert.is_true(db:close())
        db = assert(stoat.open(path, { create_if_missing = false }))
        assert.are.equal("v", db:get("k"))
        db:close()
    end)

    it("returns nil and a not found error when there is no database and create is off", function()
        local path = h.scratch(finally) .. "/missing"
        local db, err = stoat.open(path, { create_if_missing = false })
        assert.is_nil(db)
        assert.matches("^not found: ", err)
    end)

    it("returns nil and an exists error when error_if_exists is set", function()
        local first, path = h.open_db(finally)
        first:close()
        local db, err = stoat.open(path, { error_if_exists = true })
        assert.is_nil(db)
        assert.matches("^exists: ", err)
    end)

    it("returns nil and a busy error when the directory is open exclusively", function()
        local _, path = h.open_db(finally, { multi_process = false })
        local db, err = stoat.open(path)
        assert.is_nil(db)
        assert.matches("^busy: ", err)
    end)

    it("opens a directory another handle has open, as one database (the default)",
       function()
        local first, path = h.open_db(finally)
        local db = assert(stoat.open(path))
        finally(function() db:close() end)
        assert(first:set("k", "v"))
        assert.are.equal("v", db:get("k"))
        local _, err = stoat.open(path, { multi_process = false })
        assert.matches("^busy: ", err)
    end)

    it("returns nil and an invalid error when an option value is out of range", function()
        local path = h.scratch(finally) .. "/db"
        local db, err = stoat.open(path, { num_levels = 0 })
        assert.is_nil(db)
        assert.matches("^invalid: .*num_levels", err)
    end)

    it("raises when an option is unknown", function()
        assert.error_matches(function() stoat.open("/nonexistent", { memtable = 1 }) end,
                             "stoat: open: unknown option 'memtable'", 1, true)
    end)

    it("raises when an option has the wrong type", function()
        local bad = {
            { create_if_missing = "yes" }, { memtable_size = "1M" }, { memtable_size = -1 },
            { memtable_size = 1.5 }, { num_levels = true }, { block_size = 2 ^ 32 },
            { bloom_fp_rate = "low" }, { sync = "always" }, { compression = "gzip" },
            { compression = true },
        }
        for _, opts in ipairs(bad) do
            local name = next(opts)
            assert.has_error(function() stoat.open("/nonexistent", opts) end)
            local ok, err = pcall(stoat.open, "/nonexistent", opts)
            assert.is_false(ok)
            assert.matches("option '" .. name .. "'", err, 1, true)
        end
    end)

    it("raises when dir or the options are not a string and a table", function()
        assert.error_matches(function() stoat.open(nil) end,
                             "stoat: open: dir must be a string (got nil)", 1, true)
        assert.error_matches(function() stoat.open("/tmp/a\0b") end,
                             "stoat: open: dir must not contain a zero byte", 1, true)
        assert.error_matches(function() stoat.open("/nonexistent", "fast") end,
                             "stoat: open: options must be a table (got string)", 1, true)
    end)

    it("knows every field of stoat_options by name", function()
        local fields = struct_fields("stoat_options")
        local known = {}
        for name in pairs(options.FIELDS) do known[name] = true end
        assert.are.same(fields, known)
    end)

    it("accepts every option by name, enums as strings or numbers", function()
        local path = h.scratch(finally) .. "/db"
        local db = assert(stoat.open(path, {
            create_if_missing = true, error_if_exists = 0, read_only = false, sync = "commit",
            memtable_size = 2 * 1024 * 1024, num_memtables = 3, block_size = 8192,
            compression = "zstd", zstd_level = 3, bloom_fp_rate = 0.05,
            cache_size = 4 * 1024 * 1024, max_open_files = 100, num_compactors = 1,
            num_levels = 5, base_level_size = 8 * 1024 * 1024, level_size_multiplier = 8,
            table_size = 1024 * 1024, l0_compaction_trigger = 2, l0_slowdown_trigger = 8,
            l0_stall_trigger = 12, detect_conflicts = true, num_versions_to_keep = 2,
            max_txn_bytes = 512 * 1024, max_txn_entries = 1000,
        }))
        assert.is_true(db:set("k", "v"))
        db:close()
        db = assert(stoat.open(path, { sync = 0, compression = 1 }))
        assert.are.equal("v", db:get("k"))
        db:close()
    end)

    it("opens read-only when read_only is set and refuses writes", function()
        local db, path = h.open_db(finally)
        assert.is_true(db:set("k", "v"))
        db:close()
        local ro = assert(stoat.open(path, { read_only = true }))
        assert.are.equal("v", ro:get("k"))
        local ok, err = ro:set("k", "w")
        assert.is_nil(ok)
        assert.matches("^read only: ", err)
        ro:close()
    end)

    it("exposes the library version", function()
        assert.are.equal(cdef.defines.STOAT_VERSION_STRING, stoat.version)
        assert.matches("^%d+%.%d+%.%d+", stoat.version)
    end)
end)

describe("db:close", function()
    it("is idempotent", function()
        local db = h.open_db(finally)
        assert.is_true(db:close())
        assert.is_true(db:close())
        assert.is_true(db:is_closed())
    end)

    it("releases the directory when it returns", function()
        local db, path = h.open_db(finally)
        db:close()
        local again = assert(stoat.open(path))
        again:close()
    end)

    it("makes every method of the closed database fail with closed", function()
        local db = h.open_db(finally)
        db:close()
        local calls = {
            function() return db:get("k") end, function() return db:set("k", "v") end,
            function() return db:delete("k") end,
            function() return db:update(function() end) end,
            function() return db:view(function() end) end, function() return db:batch() end,
            function() return db:stats() end, function() return db:flatten() end,
            function() return db:sync() end, function() return db:flush() end,
            function() return db:drop_prefix("p") end, function() return db:drop_all() end,
            function() return db:gc() end, function() return db:incr("n") end,
            function() return db:add("k", "v") end, function() return db:replace("k", "v") end,
            function() return db:get_meta("k") end, function() return db:ttl("k") end,
            function() return db:expire("k", 1) end, function() return db:count() end,
        }
        for i, call in ipairs(calls) do
            local res, err = call()
            assert.is_nil(res, "call " .. i)
            assert.matches("^closed: ", err)
        end
    end)

    it("makes db:pairs of the closed database raise closed", function()
        local db = h.open_db(finally)
        db:close()
        local ok, err = pcall(db.pairs, db)
        assert.is_false(ok)
        assert.matches("^closed: ", err)
    end)

    it("raises when called without the database as self", function()
        local db = h.open_db(finally)
        assert.has_error(function() db.get("k") end)
        assert.has_error(function() db.close() end)
    end)
end)
