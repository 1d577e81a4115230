-- string.buffer arguments (issue 15): db:set, db:delete, db:get, txn:set,
-- txn:delete, txn:get, batch:set and batch:delete take a LuaJIT
-- string.buffer wherever they take a key, and the sets for the value (no
-- codec): its bytes are read in place, no Lua string is made; db:get and
-- txn:get put the value into a buffer given as their second argument.

local h = require "helpers"

local has_buffer, buffer = pcall(require, "string.buffer")
local with_buffer = has_buffer and it or pending

describe("string.buffer arguments", function()
    with_buffer("writes and reads through db with buffer keys and values", function()
        local db = h.open_db(finally, { value_threshold = 64 })
        local k, v = buffer.new(), buffer.new()
        for i = 1, 50 do
            k:reset():putf("key:%04d", i)
            v:reset():put(("v%d;"):format(i):rep(i))
            assert.is_true(db:set(k, v))
        end
        assert.are.equal("key:0050", k:tostring()) -- read, not consumed
        for i = 1, 50 do
            assert.are.equal(("v%d;"):format(i):rep(i), db:get(("key:%04d"):format(i)))
            assert.are.equal(("v%d;"):format(i):rep(i), db:get(k:reset():putf("key:%04d", i)))
        end
        assert.is_true(db:set(k:reset():put("t"), v:reset():put("x"), { ttl = 60, meta = 3 }))
        local value, meta = db:get_meta("t")
        assert.are.same({ "x", 3 }, { value, meta })
        assert.is_true(db:set("empty", buffer.new())) -- its pointer is NULL
        assert.are.equal("", db:get("empty"))
        assert.is_true(db:delete(k:reset():put("key:0007")))
        assert.is_nil(db:get("key:0007"))
        assert.is_nil(db:get(k))
    end)

    with_buffer("writes and reads through transactions and batches with buffers", function()
        local db = h.open_db(finally)
        local k, v = buffer.new(), buffer.new()
        assert(db:update(function(txn)
            assert.is_true(txn:set(k:reset():put("a"), v:reset():put("1")))
            assert.are.equal("1", txn:get(k))
            assert.is_true(txn:set(k:reset():put("b"), v:reset():put("2")))
            assert.is_true(txn:delete(k:reset():put("a")))
            assert.is_nil(txn:get(k))
        end))
        local b = assert(db:batch())
        assert.is_true(b:set(k:reset():put("c"), v:reset():put("3")))
        assert.is_true(b:delete(k:reset():put("b")))
        assert.is_true(b:commit())
        local seen = {}
        for key, value in db:pairs() do seen[#seen + 1] = key .. "=" .. value end
        assert.are.same({ "c=3" }, seen)
    end)

    with_buffer("puts a read value into the buffer given to get", function()
        local db = h.open_db(finally, { value_threshold = 64 })
        local big = ("b"):rep(500) -- in the value log
        assert.is_true(db:set("small", "s"))
        assert.is_true(db:set("big", big))
        local out = buffer.new():put("old contents")
        assert.is_true(rawequal(out, db:get("big", out)))
        assert.are.equal(big, out:tostring())
        assert.is_true(rawequal(out, db:get("small", out)))
        assert.are.equal("s", out:tostring())
        assert.is_nil(db:get("absent", out))
        assert.are.equal("s", out:tostring()) -- untouched when absent
        assert(db:update(function(txn)
            assert.is_true(txn:set("mine", "m"))
            assert.is_true(rawequal(out, txn:get("mine", out)))
            assert.are.equal("m", out:tostring())
            assert.is_true(rawequal(out, txn:get("big", out)))
            assert.are.equal(big, out:tostring())
        end))
        assert.error_matches(function() db:get("small", {}) end,
                             "db:get: buffer must be a string.buffer (got table)", 1, true)
        local cdb = h.open_db(finally, { codec = { encode = tostring, decode = tostring } })
        assert.error_matches(function() cdb:get("k", buffer.new()) end,
                             "db:get: a buffer cannot be used on a database with a codec", 1, true)
    end)

    with_buffer("refuses other userdata and an empty buffer as a key", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:set(io.stdout, "v") end,
                             "db:set: key must be a string or a string.buffer (got userdata)", 1,
                             true)
        assert.error_matches(function() db:get(io.stdout) end,
                             "db:get: key must be a string or a string.buffer", 1, true)
        assert.error_matches(function() db:set("k", io.stdout) end,
                             "db:set: value must be a string", 1, true)
        local ok, err = db:set(buffer.new(), "v")
        assert.is_nil(ok)
        assert.matches("^invalid: ", err)
    end)

    with_buffer("hands a buffer value to the codec of a database that has one", function()
        local seen
        local codec = {
            encode = function(x) seen = x; return "enc" end,
            decode = function(s) return s end,
        }
        local db = h.open_db(finally, { codec = codec })
        local v = buffer.new():put("raw")
        assert.is_true(db:set("k", v))
        assert.is_true(rawequal(seen, v))
        assert.are.equal("enc", db:get("k"))
    end)
end)
