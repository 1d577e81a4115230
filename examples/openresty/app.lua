-- app: the handlers of the OpenResty example (examples/openresty/nginx.conf).
--
--   counter(name)  POST /counter/<name> increments, GET reads
--   session(id)    POST /session creates one (body = data, ?ttl=seconds,
--                  default 1800); GET /session/<id> reads it and slides
--                  its ttl; DELETE ends it
--   doc(id)        PUT /doc/<id> stores a JSON document durably (the fsync
--                  runs on nginx's thread pool), GET reads it, DELETE
--   docs()         GET /docs?after=<id>&limit=<n>: a page of documents in
--                  id order, {"items": [...], "next": <last id or null>}
--
-- State lives in stoat through stoat.ngx: the dicts are ngx.shared.DICT
-- look-alikes (replace `sngx.dict("counter")` by `ngx.shared.counter` and
-- the counter works the same, minus persistence). Loaded in init_by_lua;
-- the database is opened per worker by init_worker_by_lua.

local sngx = require "stoat.ngx"
local cjson = require "cjson.safe"

local ngx = ngx
local tonumber = tonumber

local M = {}

local counters = sngx.dict("counter")
local sessions = sngx.dict("session")
local docs = sngx.dict("doc", { durable = true })

local function fail(status, msg)
    ngx.status = status
    ngx.say(msg)
    return ngx.exit(status)
end

local function body()
    ngx.req.read_body()
    local data = ngx.req.get_body_data()
    if data == nil then
        local file = ngx.req.get_body_file()
        if file then
            local f = io.open(file, "rb")
            data = f and f:read("*a")
            if f then f:close() end
        end
    end
    return data or ""
end

function M.counter(name)
    local method = ngx.req.get_method()
    if method == "POST" then
        local n, err = counters:incr(name, tonumber(ngx.var.arg_by) or 1, 0)
        if n == nil then
            return fail(500, err)
        end
        return ngx.say(n)
    end
    local n, err = counters:get(name)
    if err then
        return fail(500, err)
    end
    ngx.say(n or 0)
end

local seeded = false

-- A random session id (16 hex digits); add() refuses a duplicate.
local function new_id()
    if not seeded then -- per worker: workers fork from one master
        math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
        seeded = true
    end
    return string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

function M.session(id)
    if id == "" then
        id = nil
    end
    local method = ngx.req.get_method()
    local ttl = tonumber(ngx.var.arg_ttl) or 1800
    if method == "POST" and id == nil then
        for _ = 1, 5 do
            id = new_id()
            local ok, err = sessions:add(id, body(), ttl)
            if ok then
                ngx.status = 201
                return ngx.say(id)
            elseif err ~= "exists" then
                return fail(500, err)
            end
        end
        return fail(500, "no free session id")
    elseif id == nil then
        return fail(405, "POST /session")
    elseif method == "GET" then
        local data, err = sessions:get(id)
        if data == nil then
            return fail(err and 500 or 404, err or "no such session")
        end
        sessions:expire(id, ttl) -- sliding expiry
        return ngx.print(data)
    elseif method == "DELETE" then
        sessions:delete(id)
        return ngx.exit(204)
    end
    return fail(405, "GET, DELETE")
end

function M.doc(id)
    local method = ngx.req.get_method()
    if method == "PUT" then
        local value = cjson.decode(body())
        if type(value) ~= "table" then
            return fail(400, "the body must be a JSON object or array")
        end
        local ok, err = docs:set(id, value) -- durable: returns after the fsync
        if not ok then
            return fail(500, err)
        end
        return ngx.exit(204)
    elseif method == "GET" then
        local value, err = docs:get(id)
        if value == nil then
            return fail(err and 500 or 404, err or "no such document")
        end
        ngx.header["Content-Type"] = "application/json"
        return ngx.say(cjson.encode(value))
    elseif method == "DELETE" then
        local ok, err = docs:delete(id)
        if not ok then
            return fail(500, err)
        end
        return ngx.exit(204)
    end
    return fail(405, "PUT, GET, DELETE")
end

function M.docs()
    local limit = tonumber(ngx.var.arg_limit) or 20
    if limit < 1 or limit > 1000 then
        return fail(400, "limit: 1..1000")
    end
    local prefix = docs.prefix
    local after = ngx.var.arg_after
    local items, last = {}, nil
    -- one snapshot for the page; a long page lets other requests run
    -- every 100 entries; an aborted request releases it at once
    for key, raw in sngx.pairs{ prefix = prefix, after = after and prefix .. after,
                                limit = limit, yield_every = 100 } do
        last = key:sub(#prefix + 1)
        items[#items + 1] = { id = last, doc = cjson.decode(raw) }
    end
    ngx.header["Content-Type"] = "application/json"
    -- (lua-cjson encodes an empty table as {}: write the envelope by hand)
    ngx.say('{"items":', #items > 0 and cjson.encode(items) or "[]", ',"next":',
            cjson.encode(#items == limit and last or cjson.null), "}")
end

return M
