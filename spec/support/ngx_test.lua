-- ngx_test: the extra locations of the nginx specs (spec/openresty_spec.lua),
-- loaded inside nginx beside examples/openresty/app.lua. Every handler
-- answers plain text (or JSON) and puts the worker's pid in X-Worker.

local sngx = require "stoat.ngx"
local cjson = require "cjson.safe"

local ngx = ngx
local tonumber, tostring, type, select = tonumber, tostring, type, select

local M = {}

-- Requests this worker has finished (/t/tick bumps it): a scan that yields
-- sees it move.
local ticks = 0
-- Scans in progress in this worker.
local scanning = 0

local function db_or_500()
    local db, err = sngx.db()
    if db == nil then
        ngx.status = 500
        ngx.say(err)
        return ngx.exit(500)
    end
    return db
end

local function worker_header()
    ngx.header["X-Worker"] = ngx.worker.pid()
end

local function body()
    ngx.req.read_body()
    return ngx.req.get_body_data() or ""
end

-- /t/put?k=&v=: db:set, 200 "ok" once committed (sync none).
function M.put()
    worker_header()
    local db = db_or_500()
    local ok, err = db:set(ngx.var.arg_k, ngx.var.arg_v or "1")
    if not ok then
        ngx.status = 500
        return ngx.say(err)
    end
    ngx.say("ok")
end

-- /t/get?k=: the value, or 404.
function M.get()
    worker_header()
    local db = db_or_500()
    local v, err = db:get(ngx.var.arg_k)
    if v == nil then
        ngx.status = err and 500 or 404
        return ngx.say(err or "absent")
    end
    ngx.say(v)
end

-- /t/durable?k=: a durable update (stoat.ngx.update{durable = true});
-- X-Sync says how the syncs ran so far in this worker.
function M.durable()
    worker_header()
    local ok, err = sngx.update(function(txn)
        return txn:set(ngx.var.arg_k, ngx.var.arg_v or "1")
    end, { durable = true })
    ngx.header["X-Sync"] = sngx.counters.thread_syncs .. " thread, "
                           .. sngx.counters.inline_syncs .. " inline"
    if not ok then
        ngx.status = 500
        return ngx.say(err)
    end
    ngx.say("ok")
end

-- /t/tick: counts this request.
function M.tick()
    worker_header()
    ticks = ticks + 1
    ngx.say(ticks)
end

-- /t/fill?prefix=&n=: n keys prefix..%06d in one transaction.
function M.fill()
    local prefix, n = ngx.var.arg_prefix, tonumber(ngx.var.arg_n)
    local ok, err = sngx.update(function(txn)
        for i = 1, n do
            txn:set(("%s%06d"):format(prefix, i), "v")
        end
    end)
    ngx.say(ok and "ok" or err)
end

-- /t/scan?prefix=&every=&pause=: counts the keys of prefix with
-- pairs{yield_every = every}, sleeping pause seconds at each yield;
-- answers "<count> <ticks seen during the scan>".
function M.scan()
    worker_header()
    local pause = tonumber(ngx.var.arg_pause) or 0
    local yield = function() ngx.sleep(pause) end
    local before, n = ticks, 0
    scanning = scanning + 1
    for _ in sngx.pairs{ prefix = ngx.var.arg_prefix, keys_only = true,
                         yield_every = tonumber(ngx.var.arg_every) or 100, yield = yield } do
        n = n + 1
    end
    scanning = scanning - 1 -- (an aborted scan never gets here: a spec knows)
    ngx.say(n, " ", ticks - before)
end

-- /t/count?prefix=: live keys of prefix.
function M.count()
    worker_header()
    local db = db_or_500()
    ngx.say(assert(db:count{ prefix = ngx.var.arg_prefix }))
end

-- POST /t/missing (body: keys, one a line): the keys that are absent.
function M.missing()
    local db = db_or_500()
    local out = {}
    for k in body():gmatch("[^\n]+") do
        local v, err = db:get(k)
        if v == nil then
            out[#out + 1] = k .. (err and " " .. err or "")
        end
    end
    ngx.say(#out, "\n", table.concat(out, "\n"))
end

-- /t/live: this worker's open handles on its database, and counters.
function M.live()
    worker_header()
    local db = db_or_500()
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode({ live = db._node.live, released = sngx.counters.released,
                           thread_syncs = sngx.counters.thread_syncs,
                           inline_syncs = sngx.counters.inline_syncs,
                           shared_syncs = sngx.counters.shared_syncs,
                           inflight = sngx.status().inflight, scanning = scanning,
                           pid = ngx.worker.pid() }))
end

-- The results of one call as a comparable string.
local function show(...)
    local parts = { tostring(select("#", ...)) }
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        if type(v) == "table" then
            table.sort(v)
            v = "{" .. table.concat(v, ",") .. "}"
        elseif type(v) == "number" and v ~= math.floor(v) and v > 50 then
            v = math.floor(v + 0.5) -- a ttl: shdict and stoat round differently
        end
        parts[#parts + 1] = type(v) .. ":" .. tostring(v)
    end
    return table.concat(parts, " ")
end

-- One operation: its method name and its arguments, counted (shdict's
-- methods check how many they get, nils included).
local function op(name, ...)
    return { name = name, n = select("#", ...), ... }
end

-- The same, compared by the length of the table it returns.
local function op_len(name, ...)
    local o = op(name, ...)
    o.len = true
    return o
end

local COMPAT_OPS = {
    op("set", "a", "x"), op("get", "a"), op("set", "n", 1.5, 0, 7), op("get", "n"),
    op("set", "b", true), op("get", "b"), op("set", "f", false), op("get", "f"),
    op("set", "neg", -3), op("get", "neg"), op("set", "big", 2 ^ 53), op("get", "big"),
    op("set", "u", "v", 0, 2147483647), op("get", "u"), op("get_stale", "u"),
    op("add", "a", "y"), op("add", "c", "z", 0, 3), op("get", "c"), op("safe_add", "c", "q"),
    op("replace", "zz", "y"), op("replace", "a", "w"), op("get", "a"), op("safe_set", "s", "t"),
    op("incr", "cnt", 1), op("incr", "cnt", 1, 10), op("incr", "cnt", 2), op("incr", "a", 1),
    op("get", "cnt"), op("incr", "flt", 0.5, 1), op("incr", "n", 1), op("get", "n"),
    op("ttl", "a"), op("ttl", "missing"), op("expire", "missing", 1), op("expire", "a", 100),
    op("ttl", "a"), op("expire", "a", 0), op("ttl", "a"), op("set", "e", "x", 100), op("ttl", "e"),
    op("delete", "a"), op("get", "a"), op("get", "missing"), op("delete", "missing"),
    op("set", nil, 1), op("set", "", 1), op("get", nil), op("get", ""), op("incr", "missing", 1),
    op("set", 5, "numeric key"), op("get", 5), op("get", "5"),
    op("get_keys", 0), op_len("get_keys", 2), op("flush_all"), op("get_keys"),
    op("get", "c"),
}

-- /t/compat: runs COMPAT_OPS on ngx.shared.compat and on a stoat dict;
-- JSON { shdict = [...], stoat = [...], ops = [...] }.
function M.compat()
    local shdict, sdict = ngx.shared.compat, sngx.dict("compat_" .. ngx.now())
    shdict:flush_all()
    local out = { shdict = {}, stoat = {}, ops = {} }
    for i, o in ipairs(COMPAT_OPS) do
        local name = o.name
        out.ops[i] = name .. " " .. tostring(o[1])
        for side, d in pairs({ shdict = shdict, stoat = sdict }) do
            if o.len then
                out[side][i] = show(#d[name](d, unpack(o, 1, o.n)))
            else
                out[side][i] = show(d[name](d, unpack(o, 1, o.n)))
            end
        end
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(out))
end

return M
