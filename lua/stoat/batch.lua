-- stoat.batch: db:batch(), fast non-transactional bulk writes.
--
--   local b = db:batch()
--   b:set(k, v [, {ttl =, meta =}]); b:delete(k)
--   assert(b:commit())
--
-- Entries are committed in chunks as the batch fills (each chunk atomic,
-- the batch as a whole not); commit writes the rest, waits, and ends the
-- batch. close() ends it without writing what is still buffered. The
-- batch is a kid of its database's handle node (see stoat.handle): closing
-- the database closes it; a batch used after it ended raises.

local base = require "stoat.base"
local handle = require "stoat.handle"
local txn = require "stoat.txn"

local C = base.C
local fail, raise, check_string = base.fail, base.raise, base.check_string
local set_options = txn.set_options
local getmetatable, setmetatable = getmetatable, setmetatable

local M = {}

local Batch = {}
Batch.__index = Batch

local function live(self, level)
    if getmetatable(self) ~= Batch then
        raise(level + 1, "expected a batch as self (use b:method(), not b.method())")
    end
    if self._node.dead then
        raise(level + 1, "batch is closed (committed or closed already)")
    end
    return self._ptr
end

-- A new batch on database object db, or nil, err.
function M.new(db)
    local rc = C.stoat_batch_new(db._ptr, base.batch_out)
    if rc ~= 0 then
        return fail(rc)
    end
    local node = handle.new(db._node, base.batch_out[0], C.stoat_batch_free)
    return setmetatable({ _ptr = node.addr, _gc = handle.attach(node), _node = node, _db = db },
                        Batch)
end

function Batch:set(key, value, opts)
    local ptr = live(self, 1)
    check_string(key, "batch:set: key", 1)
    check_string(value, "batch:set: value", 1)
    local rc
    if opts == nil then
        rc = C.stoat_batch_set(ptr, key, #key, value, #value)
    else
        local ttl, meta = set_options(opts, "batch:set", 1)
        rc = C.stoat_batch_set_ex(ptr, key, #key, value, #value, ttl, meta)
    end
    if rc ~= 0 then
        return fail(rc)
    end
    return true
end

function Batch:delete(key)
    local ptr = live(self, 1)
    check_string(key, "batch:delete: key", 1)
    local rc = C.stoat_batch_delete(ptr, key, #key)
    if rc ~= 0 then
        return fail(rc)
    end
    return true
end

-- Writes what is buffered, waits for it, ends the batch: true | nil, err.
function Batch:commit()
    local ptr = live(self, 1)
    local rc = C.stoat_batch_commit(ptr)
    local ok, err = true, nil
    if rc ~= 0 then
        ok, err = fail(rc)
    end
    handle.close_now(self._gc, self._node)
    return ok, err
end

-- Ends the batch without writing what is still buffered. Idempotent.
function Batch:close()
    if getmetatable(self) ~= Batch then
        raise(1, "expected a batch as self (use b:close(), not b.close())")
    end
    handle.close_now(self._gc, self._node)
end

return M
