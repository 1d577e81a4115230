-- stoat.batch: db:batch(), fast non-transactional bulk writes.
--
--   local b = db:batch()
--   b:set(k, v [, {ttl =, meta =}]); b:delete(k); b:set(k, nil)
--   assert(b:commit())
--
-- Entries are committed in chunks as the batch fills (each chunk atomic,
-- the batch as a whole not); commit writes the rest, waits, and ends the
-- batch. A failed b:set or b:delete dooms the batch: later writes and
-- commit write nothing more and return that first failure (chunks written
-- before it stay written). close() ends it without writing what is still
-- buffered. The batch is a kid of its database's handle node (see
-- stoat.handle); its node's `pending` flag says it holds writes that are
-- not committed, which makes db:close refuse (see stoat.lua). A batch used
-- after it ended raises; after its database was closed, it fails with
-- "closed: ...".

local base = require "stoat.base"
local handle = require "stoat.handle"
local write = require "stoat.write"

local C = base.C
local raise, errstr = base.raise, base.errstr
local store, BATCH = write.store, write.BATCH
local getmetatable, setmetatable = getmetatable, setmetatable

local M = {}

local Batch = {}
Batch.__index = Batch

-- The live C batch of self, nil when its database is closed, or raises.
local function live(self, level)
    if getmetatable(self) ~= Batch then
        raise(level + 1, "expected a batch as self (use b:method(), not b.method())")
    end
    if self._db._node.dead then
        return nil
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
        return base.fail(rc)
    end
    local node = handle.new(db._node, base.batch_out[0], C.stoat_batch_free)
    node.pending = false
    return setmetatable({ _ptr = node.addr, _gc = handle.attach(node), _node = node, _db = db,
                          _codec = db._codec, _err = false }, Batch)
end

-- One write: true | nil, err (and the batch is doomed). Tail-called by
-- the methods: its caller is theirs (hence level 1).
local function add(self, key, value, opts, what)
    local ptr = live(self, 1)
    if ptr == nil then
        return nil, base.CLOSED
    end
    if self._err then
        return nil, self._err
    end
    self._node.pending = true
    local rc = store(BATCH, ptr, key, value, opts, self._codec, what, 1)
    if rc ~= 0 then
        self._err = errstr(rc)
        return nil, self._err
    end
    return true
end

-- Buffers key = value (value nil: deletes key); opts: {ttl =, meta =}.
function Batch:set(key, value, opts)
    return add(self, key, value, opts, "batch:set")
end

function Batch:delete(key)
    return add(self, key, nil, nil, "batch:delete")
end

-- Writes what is buffered, waits for it, ends the batch: true | nil, err.
function Batch:commit()
    local ptr = live(self, 1)
    if ptr == nil then
        return nil, base.CLOSED
    end
    local ok, err = false, self._err
    if not err then
        ok, err = base.ok(C.stoat_batch_commit(ptr))
    end
    handle.close_now(self._gc, self._node)
    return ok or nil, err
end

-- Ends the batch without writing what is still buffered. Idempotent.
function Batch:close()
    if getmetatable(self) ~= Batch then
        raise(1, "expected a batch as self (use b:close(), not b.close())")
    end
    handle.close_now(self._gc, self._node)
end

return M
