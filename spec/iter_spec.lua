-- txn:pairs: order, bounds, limit, keys_only, pending writes, lifetimes.

local stoat = require "stoat"
local h = require "helpers"

-- Committed keys (some flushed to a table, some in the memtable) and the
-- pending writes of the transaction that iterates.
local FLUSHED = { "a", "a\0", "ab", "abc", "b", "b\0z", "b1" }
local MEMTABLE = { "b2", "ba", "c", "\0", "\255\255" }
local PENDING_SET = { "b15", "bz", "d" }
local PENDING_DELETE = { "abc", "c" }

local function fill(db)
    for _, k in ipairs(FLUSHED) do assert.is_true(db:set(k, "v:" .. k)) end
    assert.is_true(db:flush())
    for _, k in ipairs(MEMTABLE) do assert.is_true(db:set(k, "v:" .. k)) end
end

local function pending(txn)
    for _, k in ipairs(PENDING_SET) do assert.is_true(txn:set(k, "p:" .. k)) end
    for _, k in ipairs(PENDING_DELETE) do assert.is_true(txn:delete(k)) end
end

-- What txn:pairs(o) must yield, as a list of "key=value" strings.
local function model(o)
    local live = {}
    for _, k in ipairs(FLUSHED) do live[k] = "v:" .. k end
    for _, k in ipairs(MEMTABLE) do live[k] = "v:" .. k end
    for _, k in ipairs(PENDING_SET) do live[k] = "p:" .. k end
    for _, k in ipairs(PENDING_DELETE) do live[k] = nil end
    local keys = {}
    for _, k in ipairs(h.sorted_keys(live)) do
        if (o.prefix == nil or k:sub(1, #o.prefix) == o.prefix)
            and (o.start == nil or k >= o.start) and (o.stop == nil or k < o.stop) then
            keys[#keys + 1] = k
        end
    end
    local out = {}
    local first, last, step = 1, #keys, 1
    if o.reverse then first, last, step = #keys, 1, -1 end
    for i = first, last, step do
        if o.limit and #out >= o.limit then break end
        out[#out + 1] = keys[i] .. "=" .. (o.keys_only and "nil" or live[keys[i]])
    end
    return out
end

local function collect(txn, o)
    local out = {}
    for k, v in txn:pairs(o) do out[#out + 1] = k .. "=" .. tostring(v) end
    return out
end

-- Every combination of the options, each value or absent.
local function combinations()
    local choices = {
        prefix = { false, "b", "a", "zz", "" },
        start = { false, "a\0", "b1", "\0", "" },
        stop = { false, "b2", "c", "a", "" },
        reverse = { false, true },
        limit = { false, 0, 2 },
        keys_only = { false, true },
    }
    local names = h.sorted_keys(choices)
    local all = { {} }
    for _, name in ipairs(names) do
        local next_all = {}
        for _, partial in ipairs(all) do
            for _, value in ipairs(choices[name]) do
                local o = {}
                for k, v in pairs(partial) do o[k] = v end
                if value ~= false or name == "reverse" or name == "keys_only" then
                    o[name] = value
                end
                next_all[#next_all + 1] = o
            end
        end
        all = next_all
    end
    return all
end

local function describe_options(o)
    local parts = {}
    for _, k in ipairs(h.sorted_keys(o)) do parts[#parts + 1] = k .. "=" .. ("%q"):format(o[k]) end
    return "{" .. table.concat(parts, ", ") .. "}"
end

describe("txn:pairs", function()
    it("yields keys in byte order forwards and backwards with every option combination",
       function()
        local db = h.open_db(finally)
        fill(db)
        local all = combinations()
        assert.are.equal(5 * 5 * 5 * 2 * 3 * 2, #all)
        local got = assert(db:update(function(txn)
            pending(txn)
            local results = {}
            for i, o in ipairs(all) do results[i] = collect(txn, o) end
            return results
        end))
        for i, o in ipairs(all) do
            assert.are.same(model(o), got[i], describe_options(o))
        end
    end)

    it("yields nothing on an empty database", function()
        local db = h.open_db(finally)
        local n = db:view(function(txn)
            local count = 0
            for _ in txn:pairs() do count = count + 1 end
            for _ in txn:pairs{ reverse = true } do count = count + 1 end
            return count
        end)
        assert.are.equal(0, n)
    end)

    it("yields a nil value and the key alone when keys_only is set", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v"))
        local n, k, v = db:view(function(txn)
            local gen = txn:pairs{ keys_only = true }
            return (function(...) return select("#", ...), ... end)(gen())
        end)
        assert.are.same({ 1, "k" }, { n, k, v })
    end)

    it("does not see writes made after it was opened", function()
        local db = h.open_db(finally)
        for i = 1, 5 do assert.is_true(db:set("k" .. i, "v")) end
        local seen = db:update(function(txn)
            local n = 0
            for k in txn:pairs() do
                n = n + 1
                txn:set(k .. "x", "new")
            end
            return n
        end)
        assert.are.equal(5, seen)
        assert.are.equal("new", db:get("k3x"))
    end)

    it("lets the transaction commit after a loop left by break", function()
        local db = h.open_db(finally)
        for i = 1, 5 do assert.is_true(db:set("k" .. i, "v")) end
        assert.is_true(db:update(function(txn)
            for k in txn:pairs() do
                if k == "k2" then break end
            end
            txn:set("after", "break")
            return true
        end))
        assert.are.equal("break", db:get("after"))
    end)

    it("keeps returning nil once exhausted", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v"))
        db:view(function(txn)
            local gen = txn:pairs()
            assert.are.equal("k", (gen()))
            assert.is_nil(gen())
            assert.is_nil(gen())
            gen = txn:pairs{ limit = 0 }
            assert.is_nil(gen())
            assert.is_nil(gen())
        end)
    end)

    it("raises when used outside its transaction", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        assert.is_true(db:set("b", "2"))
        local gen = db:view(function(txn)
            local g = txn:pairs()
            g()
            return g
        end)
        assert.error_matches(gen, "iterator used outside its transaction", 1, true)
    end)

    it("raises when an option is unknown or has the wrong type", function()
        local db = h.open_db(finally)
        for _, bad in ipairs({ { prefx = "a" }, { limit = -1 }, { limit = 1.5 },
                               { reverse = 1 }, { start = 5 }, { keys_only = "yes" },
                               { after = 1 }, { meta = 1 }, { all_versions = "y" },
                               { start = "a", after = "b" } }) do
            local ok, err = pcall(db.view, db, function(txn) txn:pairs(bad) end)
            assert.is_false(ok)
            assert.matches("txn:pairs: ", err, 1, true)
        end
        local ok, err = pcall(db.view, db, function(txn) txn:pairs("prefix") end)
        assert.is_false(ok)
        assert.matches("options must be a table", err, 1, true)
    end)

    it("returns nil, corruption from the closure when a table is damaged", function()
        local db, path = h.open_db(finally, { compression = "none" })
        local value = ("x"):rep(200)
        for i = 1, 500 do assert.is_true(db:set(("k%04d"):format(i), value)) end
        assert.is_true(db:flush())
        db:close()
        local ok, out = h.run("ls " .. h.shell_quote(path) .. " | grep '\\.sst$' | head -n 1")
        assert.is_true(ok, out)
        local sst = path .. "/" .. out:match("[^\n]+")
        local f = assert(io.open(sst, "r+b"))
        f:seek("set", 1000)
        f:write(("\0"):rep(64))
        f:close()
        local err
        db, err = stoat.open(path)
        if db == nil then -- the damage may be found when the table is opened
            assert.matches("^corruption: ", err)
            return
        end
        ok, err = db:view(function(txn)
            for _ in txn:pairs() do end
        end)
        db:close()
        assert.is_nil(ok)
        assert.matches("^corruption: ", err)
    end)
end)

describe("pairs paging", function()
    local function keys(db, opts)
        local t = {}
        for k in db:pairs(opts) do t[#t + 1] = k end
        return t
    end

    local function fill_items(db)
        for i = 1, 9 do assert.is_true(db:set("item:" .. i, tostring(i))) end
        return db
    end

    it("starts after the given key with after (exclusive)", function()
        local db = fill_items(h.open_db(finally))
        assert.are.same({ "item:4", "item:5" }, keys(db, { after = "item:3", limit = 2 }))
    end)

    it("pages forward with after = the last key seen", function()
        local db = fill_items(h.open_db(finally))
        local pages, last = {}, nil
        repeat
            local page = keys(db, { prefix = "item:", after = last, limit = 4 })
            last = page[#page]
            pages[#pages + 1] = table.concat(page, ",")
        until #page < 4
        assert.are.same({ "item:1,item:2,item:3,item:4", "item:5,item:6,item:7,item:8",
                          "item:9" }, pages)
    end)

    it("pages backward with reverse and stop = the last key seen", function()
        local db = fill_items(h.open_db(finally))
        assert.are.same({ "item:9", "item:8", "item:7" },
                        keys(db, { reverse = true, limit = 3 }))
        assert.are.same({ "item:6", "item:5", "item:4" },
                        keys(db, { reverse = true, stop = "item:7", limit = 3 }))
    end)

    it("keeps after as a lower bound in reverse", function()
        local db = fill_items(h.open_db(finally))
        assert.are.same({ "item:9", "item:8" }, keys(db, { reverse = true, after = "item:7" }))
    end)
end)

describe("pairs with meta", function()
    it("yields key, value, version, expires_at and user_meta", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1", { meta = 5, ttl = 100 }))
        local version = db:stats().last_version
        local rows = {}
        for k, v, ver, exp, um in db:pairs{ meta = true } do
            rows[#rows + 1] = { k, v, ver, exp > 0, um }
        end
        assert.are.same({ { "a", "1", version, true, 5 } }, rows)
    end)

    it("yields the metadata without values when keys_only", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        local it = db:pairs{ meta = true, keys_only = true }
        local k, v, ver, exp, um = it()
        assert.are.same({ "a", nil, 0, 0 }, { k, v, exp, um })
        assert.is_true(ver > 0)
    end)
end)

describe("pairs with all_versions", function()
    it("yields every version, newest first, a deletion with a nil value", function()
        local db = h.open_db(finally, { num_versions_to_keep = 10 })
        assert.is_true(db:set("k", "1"))
        assert.is_true(db:set("k", "2"))
        assert.is_true(db:delete("k"))
        assert.is_true(db:set("k", "3"))
        local seen = {}
        for k, v in db:pairs{ all_versions = true } do
            seen[#seen + 1] = k .. "=" .. tostring(v)
        end
        assert.are.same({ "k=3", "k=nil", "k=2", "k=1" }, seen)
    end)
end)

describe("pairs with value_buffer", function()
    local has_buffer, buffer = pcall(require, "string.buffer")
    local with_buffer = has_buffer and it or pending

    with_buffer("puts each value into the buffer and yields the buffer", function()
        local db = h.open_db(finally, { value_threshold = 64 })
        local big = ("x"):rep(300) -- in the value log
        assert.is_true(db:set("a", "1"))
        assert.is_true(db:set("b", big))
        assert.is_true(db:set("c", ""))
        local buf = buffer.new()
        local seen, same = {}, true
        assert(db:view(function(txn)
            for k, v in txn:pairs{ value_buffer = buf } do
                same = same and rawequal(v, buf)
                seen[#seen + 1] = k .. "=" .. #v .. ":" .. v:tostring()
            end
        end))
        assert.is_true(same)
        assert.are.same({ "a=1:1", "b=300:" .. big, "c=0:" }, seen)
        -- reverse, and the buffer keeps the last value after the loop
        local keys = {}
        for k in db:pairs{ value_buffer = buf, reverse = true } do keys[#keys + 1] = k end
        assert.are.same({ "c", "b", "a" }, keys)
        assert.are.equal("1", buf:tostring())
    end)

    with_buffer("puts each key into key_buffer, also with a codec", function()
        local db = h.open_db(finally, { codec = { encode = tostring, decode = tonumber } })
        for i = 1, 3 do assert.is_true(db:set("k" .. i, i * 10)) end
        local kb = buffer.new()
        local seen = {}
        for k, v in db:pairs{ key_buffer = kb } do
            assert.is_true(rawequal(k, kb))
            seen[#seen + 1] = k:tostring() .. "=" .. v
        end
        assert.are.same({ "k1=10", "k2=20", "k3=30" }, seen)
        local vb, keys = buffer.new(), {}
        for k, v in db:pairs{ key_buffer = kb, keys_only = true, reverse = true } do
            assert.is_nil(v)
            keys[#keys + 1] = k:tostring()
        end
        assert.are.same({ "k3", "k2", "k1" }, keys)
        assert.has_error(function() db:pairs{ key_buffer = 1 } end)
        assert.has_error(function() db:pairs{ key_buffer = kb, value_buffer = vb } end,
                         "stoat: db:pairs: option 'value_buffer' cannot be used on a database "
                         .. "with a codec")
    end)

    with_buffer("yields the buffer with meta and nil for a deletion", function()
        local db = h.open_db(finally, { num_versions_to_keep = 10 })
        assert.is_true(db:set("k", "1"))
        assert.is_true(db:delete("k"))
        assert.is_true(db:set("k", "22", { meta = 7 }))
        local buf = buffer.new()
        local seen = {}
        for k, v, _, _, um in db:pairs{ all_versions = true, meta = true, value_buffer = buf } do
            seen[#seen + 1] = ("%s=%s/%d"):format(k, v and v:tostring() or "nil", um)
        end
        assert.are.same({ "k=22/7", "k=nil/0", "k=1/0" }, seen)
    end)

    with_buffer("raises for a value_buffer that is no string.buffer, or with a codec", function()
        local db = h.open_db(finally)
        assert.has_error(function() db:pairs{ value_buffer = io.stdout } end,
                         "stoat: db:pairs: option 'value_buffer' must be a string.buffer")
        assert.has_error(function() db:pairs{ value_buffer = "x" } end)
        -- refused before the C iterator opens: nothing left open
        local live = db._node.live
        assert.has_error(function() db:pairs{ key_buffer = io.stdout } end)
        assert.are.equal(live, db._node.live)
        local cdb = h.open_db(finally, { codec = { encode = tostring, decode = tostring } })
        assert.has_error(function() cdb:pairs{ value_buffer = buffer.new() } end,
                         "stoat: db:pairs: option 'value_buffer' cannot be used on a database "
                         .. "with a codec")
    end)
end)

describe("db:pairs", function()
    it("iterates outside a transaction", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        assert.is_true(db:set("b", "2"))
        local seen = {}
        for k, v in db:pairs() do seen[#seen + 1] = k .. v end
        assert.are.same({ "a1", "b2" }, seen)
    end)

    it("reads one snapshot, blind to writes made during the loop", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        local n = 0
        for _ in db:pairs() do
            n = n + 1
            assert.is_true(db:set("z" .. n, "x"))
        end
        assert.are.equal(1, n)
    end)

    it("releases its snapshot when the loop ends", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        for _ in db:pairs() do end
        assert.are.equal(0, db._node.live)
    end)

    it("releases its snapshot when the iterator is collected after a break", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        assert.is_true(db:set("b", "1"))
        for _ in db:pairs() do break end -- luacheck: ignore 512
        collectgarbage()
        collectgarbage()
        assert.are.equal(0, db._node.live)
        assert.is_true(db:close())
    end)
end)

describe("pairs{yield_every}", function()
    it("calls its yield every K steps, before the entries K+1, 2K+1, ...", function()
        local db = h.open_db(finally)
        for i = 1, 25 do assert.is_true(db:set(("k%02d"):format(i), "v")) end
        local trace = {}
        for k in db:pairs{ keys_only = true, yield_every = 10,
                           yield = function() trace[#trace + 1] = "yield" end } do
            trace[#trace + 1] = k
        end
        assert.are.equal(27, #trace)
        assert.are.equal("yield", trace[11])
        assert.are.equal("k11", trace[12])
        assert.are.equal("yield", trace[22])
        assert.are.equal("k25", trace[27])
    end)

    it("stays on one snapshot while other code writes during its yields", function()
        local db = h.open_db(finally)
        for i = 1, 30 do assert.is_true(db:set(("k%02d"):format(i), "v")) end
        local n = 0
        local co = coroutine.wrap(function()
            for _ in db:pairs{ yield_every = 5 } do n = n + 1 end
            return "done"
        end)
        local yields = 0
        while co() ~= "done" do -- the default yield: coroutine.yield() in a coroutine
            yields = yields + 1
            assert.is_true(db:set("k00" .. yields, "new"))
            assert.is_true(db:delete(("k%02d"):format(30 - yields)))
        end
        assert.are.equal(6, yields) -- before entries 6, 11, ..., 26 and the end
        assert.are.equal(30, n)
        assert.are.equal(0, db._node.live)
    end)

    it("does nothing at its yields outside a coroutine and nginx", function()
        local db = h.open_db(finally)
        for i = 1, 12 do assert.is_true(db:set(("k%02d"):format(i), "v")) end
        local n = 0
        for _ in db:pairs{ yield_every = 1 } do n = n + 1 end
        assert.are.equal(12, n)
    end)

    it("raises on a yield_every that is not a positive integer", function()
        local db = h.open_db(finally)
        assert.has_error(function() db:pairs{ yield_every = 0 } end)
        assert.has_error(function() db:pairs{ yield_every = 1.5 } end)
        assert.has_error(function() db:pairs{ yield = 3 } end)
    end)
end)

describe("it:close()", function()
    it("releases a db:pairs snapshot at once; later steps return nil", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        assert.is_true(db:set("b", "2"))
        local it = db:pairs()
        assert.are.equal("a", (it()))
        assert.are.equal(1, db._node.live)
        it:close()
        assert.are.equal(0, db._node.live)
        assert.is_nil(it())
        it:close() -- idempotent
    end)

    it("ends a transaction's iterator, leaving the transaction usable", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        assert.is_true(db:view(function(txn)
            local it = txn:pairs()
            it:close()
            assert.is_nil(it())
            assert.are.equal("1", txn:get("a"))
        end))
    end)
end)

describe("db:count", function()
    it("counts the live keys, within a prefix or bounds", function()
        local db = h.open_db(finally)
        for i = 1, 5 do assert.is_true(db:set("a:" .. i, "v")) end
        for i = 1, 3 do assert.is_true(db:set("b:" .. i, "v")) end
        assert.is_true(db:delete("a:1"))
        assert.are.equal(7, db:count())
        assert.are.equal(4, db:count{ prefix = "a:" })
        assert.are.equal(5, db:count{ after = "a:3" })
        assert.are.equal(2, db:count{ start = "a:4", stop = "b:" })
    end)

    it("raises on unknown options", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:count{ prefx = "a" } end, "unknown option", 1, true)
    end)
end)
