-- stoat.handle: lifetimes of the C handles behind the Lua objects.
--
-- Every C handle (database, transaction, iterator, batch) has a node:
--   { addr = <pointer>, free = <C function>, parent = <node>|nil,
--     kids = { [node] = true } (false for an iterator: never has kids),
--     live = <number of kids>,
--     dead = <freed>, orphan = <its Lua object was collected>,
--     serial = <its token's number, see below> }
-- A database's kids are its transactions, batches and db:pairs
-- iterators; a transaction's kids are its iterators. Invariant: a node
-- is freed only after all its kids are (C requires iterators closed
-- before their transaction is discarded and everything closed before
-- the database), whatever order Lua frees things in:
--   * close(node) closes the kids first, then the node;
--   * the finalizer of a handle's token marks its node orphan and frees it
--     only when it has no live kids; otherwise the last kid to go frees it.
-- So when a database, its transaction and its iterator become garbage in
-- the same cycle, the order in which their finalizers run does not matter.
--
-- Finalizers without a closure per handle: a function created per handle
-- would abort the JIT trace of any loop that opens handles (an iterator per
-- seek, a batch per chunk). Instead each handle gets a token, a small cdata
-- holding a serial number, with one shared finalizer; the Lua object of the
-- handle holds the token (and nothing else does), so the token becomes
-- garbage with the object, and its finalizer finds the node by serial in
-- `by_serial`. Serials are never reused, so a late finalizer can never hit
-- a newer handle that got the freed handle's address. The node must not
-- reference its token: parents keep their kids' nodes alive, which would
-- keep the token alive for ever. The Lua objects check node.dead before
-- each call, so a handle used after it was freed raises instead of
-- touching freed memory.
--
-- Single Lua state, no threads: finalizers run on the same state, between
-- VM instructions, never concurrently with this code.

local ffi = require "ffi"

local M = {}

local token_type = ffi.typeof("double[1]")
local by_serial = {} -- serial -> node, for the finalizers
local last_serial = 0

-- A node for the handle at addr, freed by free(addr), under parent (or nil).
-- leaf: a handle that never has kids (an iterator): no kids table (one
-- table less per iterator; close_kids never reads it, live stays 0).
function M.new(parent, addr, free, leaf)
    local n = { addr = addr, free = free, parent = parent, kids = not leaf and {} or false,
                live = 0, dead = false, orphan = false, serial = 0 } -- 0: no token yet
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
    by_serial[n.serial] = nil
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

-- Closes a node's kids (recursively), leaving the node itself open. Most
-- nodes have none (iterators never do): no loop then, so closing one in a
-- hot loop (an iterator per seek, a transaction per update) does not end
-- the caller's JIT trace at a loop of its own.
function M.close_kids(n)
    if n.live == 0 then
        return
    end
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
    local rc = release(n) -- not a tail call: see close_now
    return rc
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

-- The finalizer shared by every token.
local function finalize(token)
    local n = by_serial[token[0]]
    if n ~= nil then
        collect(n)
    end
end

-- A token for node n, with the finalizer that collects n attached. The Lua
-- object of the handle must hold it, and nothing else (see the header).
function M.attach(n)
    last_serial = last_serial + 1
    n.serial = last_serial
    by_serial[last_serial] = n
    local token = ffi.gc(token_type(last_serial), finalize) -- not a tail call: close_now
    return token
end

-- Detaches the finalizer from token (attach's) and closes n now. No tail
-- calls on this path: the JIT counts tail calls while it records, and a
-- loop that opens and ends an iterator per item (a seek per request) made
-- the trace of the iterator's last step give up ("loop unroll limit
-- reached") and run in the interpreter.
function M.close_now(token, n)
    ffi.gc(token, nil)
    local rc = M.close(n)
    return rc
end

return M
