-- stoat.handle: lifetimes of the C handles behind the Lua objects.
--
-- Every C handle (database, transaction, iterator, batch) has a node:
--   { addr = <pointer>, free = <C function>, parent = <node>|nil,
--     kids = { [node] = true }, live = <number of kids>,
--     dead = <freed>, orphan = <its Lua object was collected> }
-- A database's kids are its transactions and batches; a transaction's kids
-- are its iterators. Invariant: a node is freed only after all its kids
-- are (C requires iterators closed before their transaction is discarded
-- and everything closed before the database), whatever order Lua frees
-- things in:
--   * close(node) closes the kids first, then the node;
--   * the ffi.gc finalizer of a handle marks its node orphan and frees it
--     only when it has no live kids; otherwise the last kid to go frees it.
-- So when a database, its transaction and its iterator become garbage in
-- the same cycle, the order in which their finalizers run does not matter.
--
-- node.addr is a pointer cdata of its own, distinct from the one carrying
-- the finalizer: a finalizer that referenced its own cdata would keep it
-- alive for ever (the finalizer table has weak keys, strong values).
-- The Lua objects check node.dead before each call, so a handle used after
-- it was freed raises instead of touching freed memory.
--
-- Single Lua state, no threads: finalizers run on the same state, between
-- VM instructions, never concurrently with this code.

local ffi = require "ffi"

local M = {}

-- A node for the handle at addr, freed by free(addr), under parent (or nil).
function M.new(parent, addr, free)
    local n = { addr = addr, free = free, parent = parent, kids = {}, live = 0,
                dead = false, orphan = false }
    if parent ~= nil then
        parent.kids[n] = true
        parent.live = parent.live + 1
    end
    return n
end

-- Frees a node without kids and tells its parent, which goes too if it was
-- only waiting for its last kid. Returns the code free returned (0 if none).
local function release(n)
    n.dead = true
    local rc = n.free(n.addr) or 0
    local p = n.parent
    if p ~= nil then
        p.kids[n] = nil
        p.live = p.live - 1
        if p.orphan and p.live == 0 and not p.dead then
            release(p)
        end
    end
    return rc
end

-- Closes a node's kids (recursively), leaving the node itself open.
function M.close_kids(n)
    for kid in pairs(n.kids) do
        M.close(kid)
    end
end

-- Closes a node's kids (recursively), then the node. Idempotent: returns 0
-- for a node already freed.
function M.close(n)
    if n.dead then
        return 0
    end
    M.close_kids(n)
    -- An orphan node was freed by its last kid above.
    if n.dead then
        return 0
    end
    return release(n)
end

-- The finalizer of node n's handle (a function of its own for specs).
function M.collect(n)
    if n.dead then
        return
    end
    n.orphan = true
    if n.live == 0 then
        release(n)
    end
end
local collect = M.collect

-- Returns ptr with a finalizer for node n attached. ptr must be a different
-- cdata object than n.addr (read the out-parameter twice).
function M.attach(ptr, n)
    return ffi.gc(ptr, function() collect(n) end)
end

-- Detaches the finalizer from ptr and closes n now.
function M.close_now(ptr, n)
    ffi.gc(ptr, nil)
    return M.close(n)
end

return M
