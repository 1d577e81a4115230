-- Values as Lua data through a codec (issue 13): codec = "json" (lua-cjson)
-- or { encode =, decode = }; raw strings stay the default.

local h = require "helpers"
local stoat = require "stoat"

local has_cjson = pcall(require, "cjson")
local with_cjson = has_cjson and it or pending

describe("codec", function()
    with_cjson("stores tables as JSON with codec = 'json'", function()
        local db = h.open_db(finally, { codec = "json" })
        assert.is_true(db:set("user:1", { name = "Ada", tags = { "a", "b" } }))
        assert.are.same({ name = "Ada", tags = { "a", "b" } }, db:get("user:1"))
    end)

    with_cjson("decodes values in transactions, get_meta and pairs", function()
        local db = h.open_db(finally, { codec = "json" })
        assert(db:update(function(txn) assert(txn:set("a", { n = 1 })) end))
        assert.is_true(db:set("b", { n = 2 }, { meta = 4 }))
        assert.are.same({ n = 1 }, db:view(function(txn) return txn:get("a") end))
        local value, meta = db:get_meta("b")
        assert.are.same({ { n = 2 }, 4 }, { value, meta })
        local seen = {}
        for k, v in db:pairs() do seen[k] = v.n end
        assert.are.same({ a = 1, b = 2 }, seen)
    end)

    with_cjson("stores the JSON text on disk", function()
        local _, path = h.open_db(finally, { codec = "json" })
        local db = h.open_db(finally)
        db:close()
        local json_db = assert(stoat.open(path .. "-2", { codec = "json" }))
        assert.is_true(json_db:set("k", { 1, 2 }))
        json_db:close()
        local raw = assert(stoat.open(path .. "-2"))
        assert.are.equal("[1,2]", raw:get("k"))
        raw:close()
        h.rmrf(path:match("^(.*)/db$"))
    end)

    with_cjson("counts with incr through the codec", function()
        local db = h.open_db(finally, { codec = "json" })
        assert.are.equal(1, db:incr("n"))
        assert.are.equal(11, db:incr("n", 10))
        assert.are.equal(11, db:get("n"))
    end)

    it("uses a codec given as encode and decode functions", function()
        local codec = {
            encode = function(v) return "<" .. tostring(v) .. ">" end,
            decode = function(s) return s:sub(2, -2) end,
        }
        local db = h.open_db(finally, { codec = codec })
        assert.is_true(db:set("k", 42))
        assert.are.equal("42", db:get("k"))
    end)

    it("raises when encode does not return a string", function()
        local db = h.open_db(finally, { codec = { encode = function() return 1 end,
                                                  decode = function(s) return s end } })
        assert.error_matches(function() db:set("k", "v") end, "not a string", 1, true)
    end)

    it("raises at open on a codec that is neither 'json' nor encode/decode", function()
        local dir = h.scratch(finally)
        assert.error_matches(function() stoat.open(dir .. "/db", { codec = "xml" }) end,
                             "option 'codec'", 1, true)
        assert.error_matches(function() stoat.open(dir .. "/db", { codec = { encode = print } })
                             end, "option 'codec'", 1, true)
    end)

    it("keeps raw strings as the default and raises for tables", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:set("k", { 1 }) end, "value must be a string", 1,
                             true)
    end)
end)
