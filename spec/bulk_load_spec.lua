-- Bulk loads: db:loader(), db:bulk_load() (lua/stoat/loader.lua), and the
-- `stoat load` / `stoat restore` paths that use them (issue 14).

local stoat = require "stoat"
local backup = require "stoat.backup"
local h = require "helpers"

local q = h.shell_quote

local function slurp(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end

-- Runs `bin/stoat ARGS` (a shell fragment); exit status, stdout, stderr.
local function stoat_cmd(finally, args)
    local dir = h.scratch(finally)
    local out, err = dir .. "/out", dir .. "/err"
    local ok, how, code = os.execute(("{ bin/stoat %s\n} > %s 2> %s"):format(args, q(out), q(err)))
    local status
    if type(ok) == "number" then status = ok / 256 else status = code end
    if how == "signal" then status = 128 + code end
    return status, slurp(out), slurp(err)
end

-- Every live entry of the closed database at path: key -> { value, meta, expiry }.
local function contents(path)
    local db = assert(stoat.open(path, { create_if_missing = false }))
    local t = {}
    assert(db:view(function(txn)
        backup.walk(txn, {}, function(k, v, _, exp, meta)
            t[k] = { v, meta, exp }
        end)
        return true
    end))
    assert(db:close())
    return t
end

local function key(i)
    return ("key%06d"):format(i)
end

-- An iterator over keys 1..n: key(i), "value" .. i.
local function numbered(n)
    local i = 0
    return function()
        i = i + 1
        if i <= n then return key(i), "value" .. i end
    end
end

describe("bulk load", function()
    describe("db:loader", function()
        it("makes entries visible all at once when it finishes", function()
            local db = h.open_db(finally)
            local ld = assert(db:loader())
            for i = 1, 1000 do assert(ld:add(key(i), "v" .. i)) end
            assert.is_nil(db:get(key(1)))
            local version = assert(ld:finish())
            assert.is_true(version > 0)
            assert.are.equal("v1", db:get(key(1)))
            assert.are.equal("v1000", db:get(key(1000)))
            assert.are.equal(version, db:stats().last_version)
            assert.are.equal(0, db:stats().memtable_entries)
        end)

        it("refuses a key out of order with invalid and stays usable", function()
            local db = h.open_db(finally)
            local ld = assert(db:loader())
            assert(ld:add("b", "1"))
            local ok, err = ld:add("a", "2")
            assert.is_nil(ok)
            assert.matches("^invalid: .*strictly increasing", err)
            assert.is_nil((ld:add("b", "3")))
            assert(ld:add("c", "4"))
            assert(ld:finish())
            assert.are.equal("1", db:get("b"))
            assert.is_nil(db:get("a"))
        end)

        it("refuses with exists when its key range holds data, installing nothing", function()
            local db = h.open_db(finally)
            assert(db:set(key(50), "there"))
            local ld = assert(db:loader())
            for i = 1, 100 do assert(ld:add(key(i), "v")) end
            local version, err = ld:finish()
            assert.is_nil(version)
            assert.matches("^exists: .*already holds data", err)
            assert.is_nil(db:get(key(1)))
            -- beside the data it goes in
            assert.are.equal(49, (assert(db:bulk_load(numbered(49)))))
            assert.are.equal("value49", db:get(key(49)))
        end)

        it("keeps ttl, expires_at and meta", function()
            local db = h.open_db(finally)
            local now = stoat.now()
            local ld = assert(db:loader())
            assert(ld:add("a", "1", { ttl = 3600, meta = 5 }))
            assert(ld:add("b", "2", { expires_at = math.floor(now * 1000) - 1000 }))
            assert(ld:add("c", "3", { expires_at = 4102444800000, meta = 9 }))
            assert.has_error(function() ld:add("d", "4", { ttl = 1, expires_at = 1 }) end)
            assert.has_error(function() ld:add("d", "4", { colour = 1 }) end)
            assert(ld:finish())
            assert(db:view(function(txn)
                local v, meta, exp = txn:get_meta("a")
                assert.are.equal("1", v)
                assert.are.equal(5, meta)
                assert.is_true(exp >= now + 3599 and exp <= now + 3700)
                assert.is_nil(txn:get("b")) -- expired already
                local _, meta_c, exp_c = txn:get_meta("c")
                assert.are.equal(9, meta_c)
                assert.are.equal(4102444800, exp_c)
                return true
            end))
        end)

        it("is not seen by a snapshot taken before it finished", function()
            local db = h.open_db(finally)
            assert(db:set("a", "1"))
            local ld = assert(db:loader())
            assert(ld:add("k1", "v"))
            local seen
            assert(db:view(function(txn)
                assert(ld:finish())
                seen = txn:get("k1")
                return true
            end))
            assert.is_nil(seen)
            assert.are.equal("v", db:get("k1"))
        end)

        it("drops everything on abort, and db:close refuses while one holds entries", function()
            local db = h.open_db(finally)
            local ld = assert(db:loader())
            assert(ld:add("a", "1"))
            local ok, err = db:close()
            assert.is_nil(ok)
            assert.matches("^busy: 1 bulk load not finished", err)
            ld:abort()
            ld:abort()
            assert.is_nil(db:get("a"))
            local ok2, err2 = pcall(ld.add, ld, "b", "2")
            assert.is_false(ok2)
            assert.matches("loader is closed", err2)
        end)

        it("goes through the database's codec", function()
            local codec = { encode = function(v) return "<" .. v .. ">" end,
                            decode = function(s) return s:sub(2, -2) end }
            local db = h.open_db(finally, { codec = codec })
            local ld = assert(db:loader())
            assert(ld:add("a", "x"))
            assert(ld:finish())
            assert.are.equal("x", db:get("a"))
        end)
    end)

    describe("db:bulk_load", function()
        it("loads an iterator and returns the count and the version", function()
            local db = h.open_db(finally)
            local n, version = db:bulk_load(numbered(5000))
            assert.are.equal(5000, n)
            assert.is_true(version > 0)
            assert.are.equal(5000, db:count())
        end)

        it("writes the same data as a batch", function()
            local a, pa = h.open_db(finally)
            local b, pb = h.open_db(finally)
            local bt = a:batch()
            for k, v in numbered(3000) do assert(bt:set(k, v)) end
            assert(bt:commit())
            assert(b:bulk_load(numbered(3000)))
            a:close()
            b:close()
            assert.are.same(contents(pa), contents(pb))
        end)

        it("installs nothing when the iterator raises or a key is out of order", function()
            local db = h.open_db(finally)
            local i = 0
            assert.has_error(function()
                db:bulk_load(function()
                    i = i + 1
                    if i > 10 then error("source failed") end
                    return key(i), "v"
                end)
            end, "source failed")
            local keys = { "b", "a" }
            local n, err = db:bulk_load(function()
                i = i + 1
                return keys[i - 11], "v"
            end)
            assert.is_nil(n)
            assert.matches("^invalid", err)
            assert.are.equal(0, db:count())
        end)
    end)

    describe("stoat load", function()
        local function dump_file(finally, lines)
            local path = h.scratch(finally) .. "/in.jsonl"
            local f = assert(io.open(path, "wb"))
            f:write(table.concat(lines, "\n"), "\n")
            f:close()
            return path
        end

        local function jsonl(n, from)
            local lines = {}
            for i = from or 1, n do
                lines[#lines + 1] = ('{"key":"%s","value":"v%d"}'):format(key(i), i)
            end
            return lines
        end

        it("bulk loads sorted input into an empty database", function()
            local dst = h.scratch(finally) .. "/db"
            local status, _, err = stoat_cmd(finally, ("load %s %s"):format(q(dst),
                                             q(dump_file(finally, jsonl(2000)))))
            assert.are.equal(0, status, err)
            assert.matches("load: 2000 entries %(2000 bulk loaded%)", err)
            local t = contents(dst)
            assert.are.equal("v1", t[key(1)][1])
            assert.are.equal(2000, #h.sorted_keys(t))
        end)

        it("goes on with write batches from the first key out of order", function()
            local lines = jsonl(100)
            lines[#lines + 1] = ('{"key":"%s","value":"again"}'):format(key(50))
            lines[#lines + 1] = '{"key":"a-first","value":"late"}'
            local dst = h.scratch(finally) .. "/db"
            local status, _, err = stoat_cmd(finally, ("load %s %s"):format(q(dst),
                                             q(dump_file(finally, lines))))
            assert.are.equal(0, status, err)
            assert.matches("100 bulk loaded, 2 through write batches", err)
            local t = contents(dst)
            assert.are.equal("again", t[key(50)][1])
            assert.are.equal("late", t["a-first"][1])
            assert.are.equal("v100", t[key(100)][1])
        end)

        it("--bulk refuses input out of order, loading nothing", function()
            local lines = jsonl(10)
            lines[#lines + 1] = '{"key":"a","value":"x"}'
            local dst = h.scratch(finally) .. "/db"
            local status, _, err = stoat_cmd(finally, ("load --bulk %s %s"):format(q(dst),
                                             q(dump_file(finally, lines))))
            assert.are.equal(1, status)
            assert.matches("line 11: keys are not in increasing order", err)
            assert.are.same({}, contents(dst))
        end)

        it("uses write batches into a database that holds data; --bulk beside it", function()
            local dst = h.scratch(finally) .. "/db"
            local db = assert(stoat.open(dst))
            assert(db:set("zzz", "last"))
            assert(db:close())
            local status, _, err = stoat_cmd(finally, ("load %s %s"):format(q(dst),
                                             q(dump_file(finally, jsonl(10)))))
            assert.are.equal(0, status, err)
            assert.matches("load: 10 entries\n", err)
            status, _, err = stoat_cmd(finally, ("load --bulk %s %s"):format(q(dst),
                                       q(dump_file(finally, jsonl(20, 11)))))
            assert.are.equal(0, status, err)
            assert.matches("10 bulk loaded", err)
            status, _, err = stoat_cmd(finally, ("load --bulk %s %s"):format(q(dst),
                                       q(dump_file(finally, jsonl(5)))))
            assert.are.equal(1, status)
            assert.matches("exists: .*already holds data", err)
            assert.are.equal(21, #h.sorted_keys(contents(dst)))
        end)

        it("--no-bulk writes batches; --help explains both", function()
            local dst = h.scratch(finally) .. "/db"
            local status, _, err = stoat_cmd(finally, ("load --no-bulk %s %s"):format(q(dst),
                                             q(dump_file(finally, jsonl(10)))))
            assert.are.equal(0, status, err)
            assert.matches("load: 10 entries\n", err)
            local out
            status, out = stoat_cmd(finally, "load --help")
            assert.are.equal(0, status)
            assert.matches("bulk loaded", out)
            assert.matches("%-%-no%-bulk", out)
            status = stoat_cmd(finally, ("load --bulk --no-bulk %s"):format(q(dst)))
            assert.are.equal(2, status)
        end)
    end)

    describe("stoat restore", function()
        it("bulk loads a full backup into an empty database, then applies incrementals", function()
            local src = h.scratch(finally) .. "/src"
            local db = assert(stoat.open(src))
            for i = 1, 3000 do
                assert(db:set(key(i), "v" .. i, i % 7 == 0 and { meta = 7 } or nil))
            end
            assert(db:set("ttl", "soon", { ttl = 3600 }))
            local dir = h.scratch(finally)
            local f = assert(io.open(dir .. "/full", "wb"))
            local info = assert(backup.write(db, f))
            f:close()
            assert(db:set(key(5), "changed"))
            assert(db:delete(key(6)))
            f = assert(io.open(dir .. "/inc", "wb"))
            assert(backup.write(db, f, { since = info.version }))
            f:close()
            assert(db:close())
            local dst = dir .. "/dst"
            local status, _, err = stoat_cmd(finally, ("restore %s %s"):format(q(dst),
                                             q(dir .. "/full")))
            assert.are.equal(0, status, err)
            assert.matches("full backup up to version %d+: 3001 set, 0 deleted %(bulk loaded%)",
                           err)
            local restored = contents(dst)
            assert.are.equal("v6", restored[key(6)][1])
            assert.are.equal(7, restored[key(7)][2])
            assert.is_true(restored.ttl[3] > 0)
            status, _, err = stoat_cmd(finally, ("restore %s %s"):format(q(dst), q(dir .. "/inc")))
            assert.are.equal(0, status, err)
            assert.is_nil(err:find("bulk loaded", 1, true))
            local a, b = contents(src), contents(dst)
            assert.are.same(h.sorted_keys(a), h.sorted_keys(b))
            for k, v in pairs(a) do
                assert.are.equal(v[1], b[k][1])
                assert.are.equal(v[2], b[k][2])
                assert.are.equal(v[3], b[k][3])
            end
        end)
    end)
end)
