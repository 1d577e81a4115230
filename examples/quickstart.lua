-- quickstart.lua - stoat from LuaJIT: open, transactions, iteration, batch,
-- one-shot get/set/delete, close.
--
--     make && luajit examples/quickstart.lua [DIR]
--
-- Without DIR it works in a fresh temporary directory and removes it at the
-- end. It finds lua/stoat.lua and build/libstoat.so relative to itself, so
-- it runs from a checkout without installing anything; an installed rock
-- is found the usual way (package.path / package.cpath).

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/../lua/?.lua;" .. package.path
package.cpath = here .. "/../build/?.so;" .. package.cpath

local stoat = require "stoat"

local dir, temporary = arg and arg[1], false
if not dir then
    dir = os.tmpname() -- a fresh name; the database wants a directory there
    os.remove(dir)
    temporary = true
end

local db = assert(stoat.open(dir, { sync = "none", compression = "lz4" }))
print(("stoat %s opened %s"):format(stoat.version, dir))

-- A read-write transaction: everything inside commits together when the
-- function returns (update then returns true, or the function's values),
-- or not at all: when it raises (raised again here), returns nil, err, or
-- when one of its writes failed (update returns that error).
assert(db:update(function(txn)
    for i = 1, 5 do
        txn:set(("user:%03d"):format(i), ('{"name": "user %d"}'):format(i))
    end
    txn:set("other", "x")
end))
print("update: wrote user:001 .. user:005 and other")

-- Conflicts retry the function (up to 10 times by default). A read error
-- is not a missing key: check the second value.
local visits = assert(db:update(function(txn)
    local v, err = txn:get("visits")
    if err then return nil, err end
    local n = tonumber(v or "0") + 1
    txn:set("visits", tostring(n))
    return n
end))
print("update: visits is now " .. visits)
print("incr: visits is now " .. assert(db:incr("visits")))   -- the same, in one call

-- A read-only snapshot; values come back as Lua strings, nil when absent.
db:view(function(txn)
    print("view: user:002 -> " .. txn:get("user:002"))
    print("view: user:999 -> " .. tostring(txn:get("user:999")))
    print('view: pairs{prefix = "user:", reverse = true, limit = 3}:')
    for key, value in txn:pairs{ prefix = "user:", reverse = true, limit = 3 } do
        print("  " .. key .. " = " .. value)
    end
    print('view: keys from "other" on (start inclusive, stop exclusive "user:002"):')
    for key in txn:pairs{ start = "other", stop = "user:002", keys_only = true } do
        print("  " .. key)
    end
end)

-- Bulk loading without a transaction.
local b = db:batch()
for i = 1, 1000 do
    b:set(("item:%04d"):format(i), ("payload %d"):format(i))
end
assert(b:commit())
print("batch: wrote item:0001 .. item:1000; item:0500 -> " .. db:get("item:0500"))

-- One-operation transactions, with a time to live (seconds, fractions
-- allowed); iteration outside a transaction; a count.
assert(db:set("session", "token", { ttl = 3600 }))
assert(db:add("session", "other") == nil)     -- add: only when absent ("exists")
print(("session expires in %.0f s"):format(db:ttl("session")))
for key in db:pairs{ prefix = "item:", after = "item:0998", keys_only = true } do
    print("db:pairs after item:0998 -> " .. key)
end
print("count of item: keys -> " .. db:count{ prefix = "item:" })
assert(db:delete("user:003"))
print("get user:003 after delete -> " .. tostring(db:get("user:003")))

-- Failures are nil, "<word>: <detail>"; misuse raises.
local ok, err = db:set("", "empty keys are refused")
print("set of an empty key -> " .. tostring(ok) .. ", " .. err)

local stats = assert(db:stats())
print(("stats: last version %d, %d memtable(s), %d level(s)"):format(
    stats.last_version, stats.memtables, #stats.levels))

assert(db:close())
print("closed")
if temporary then
    os.execute("rm -rf '" .. dir .. "'")
end
