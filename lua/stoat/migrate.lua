-- stoat.migrate: resumable migrations, db:each_batch and db:migrate.
--
--   local n = assert(db:each_batch{ prefix = "pkg:", size = 500, state_key = "mig:pkg",
--       fn = function(txn, key, value)
--           txn:set("pkg:v2:" .. key:sub(5), value)
--           txn:delete(key)
--       end })
--   assert(db:migrate{
--       { id = "001_split_keys", up = function(db) ... end },
--       { id = "002_index_owner", up = function(db) ... end },
--   })
--
-- each_batch walks the keys of a snapshot of the range (prefix, after
-- `after`), `size` keys per transaction. Each batch is one db:update that
-- calls fn(txn, key, value) for each of its keys (value read in that
-- transaction, so a concurrent change is a conflict and the batch runs
-- again) and records the cursor under state_key in the same transaction.
-- So a run killed at any instruction and started again resumes after the
-- last committed batch: no key is skipped, none is processed twice. The
-- snapshot is the one of the first run (its version is in the state):
-- keys written after it, by the migration or anyone else, are not visited,
-- so a migration writing new keys inside its own range (pkg:v2: inside
-- pkg:) does not see its output. A key deleted since the snapshot is
-- skipped (fn is not called for it). When the walk ends the state becomes
-- "done" and a later call returns at once. Without state_key the walk is
-- the same but not resumable.
--
-- fn's writes are checked: the txn it gets raises on a failed set or
-- delete (the Lua API returns nil, err there, and a write that failed
-- silently would be a batch committed without it). A batch over the
-- transaction limits ("too big") is split in halves and run again. fn
-- raising, or returning nil, err, stops the walk: each_batch returns nil,
-- err, and what was committed before stays (run it again to go on).
--
-- Returns the number of keys passed to fn by this call, and the total
-- over every run of this state_key. Option on_batch(processed, total) is
-- called after each committed batch (for progress).
--
-- Limits: a resumed run (after a crash or a kill) reads the first run's
-- snapshot again with stoat_txn_begin_at, "as far as compaction kept it":
-- a key that existed in the snapshot, was not yet visited, and was
-- overwritten after the snapshot may have lost its old version to
-- compaction while no process held the snapshot; it is then not visited.
-- Within one run the snapshot is held and nothing is lost.
--
-- migrate runs each migration whose id is not yet recorded as done, in
-- list order, then records its id (key "_stoat/migration/<id>", value the
-- UTC time, or opts.key_prefix .. id). A migration killed midway runs again
-- from its start next time, so `up` must be resumable (each_batch with a
-- state_key is). Returns the list of ids run | nil, err.
--
-- Reaches into the handles of the Lua objects (db._ptr, db._node) to open
-- the snapshot at a version, which the Lua API does not offer.

local ffi = require "ffi"
local base = require "stoat.base"
local handle = require "stoat.handle"

local C = base.C
local errstr, raise = base.errstr, base.raise
local ffi_string = ffi.string
local type, tostring, tonumber, pcall, error = type, tostring, tonumber, pcall, error
local setmetatable, ipairs = setmetatable, ipairs
local floor = math.floor

local M = {}

local STATE_MAGIC = "each_batch 1"

---------------------------------------------------------------------------
-- The txn fn gets: the transaction's methods, with writes that raise.

local Guarded = {}
local guarded_mt = { __index = Guarded }

local function must(ok, err)
    if ok == nil then
        error(err, 0)
    end
    return ok
end

function Guarded:set(key, value, opts) return must(self.txn:set(key, value, opts)) end
function Guarded:delete(key) return must(self.txn:delete(key)) end
function Guarded:get(key) return self.txn:get(key) end
function Guarded:get_meta(key) return self.txn:get_meta(key) end
function Guarded:pairs(opts) return self.txn:pairs(opts) end
function Guarded:read_version() return self.txn:read_version() end
-- Methods added to transactions later (and not listed above) forward as
-- they are.
setmetatable(Guarded, { __index = function(_, name)
    return function(self, ...)
        local t = self.txn
        return t[name](t, ...)
    end
end })

---------------------------------------------------------------------------
-- State: "each_batch 1\n<version>\n<total>\n<done|more>\n<cursor bytes>"

local function encode_state(version, total, done, cursor)
    return ("%s\n%d\n%d\n%s\n"):format(STATE_MAGIC, version, total, done and "done" or "more")
           .. (cursor or "")
end

local function decode_state(s, state_key)
    local head, version, total, done, pos = s:match("^([^\n]*)\n(%d+)\n(%d+)\n(%a+)\n()")
    if head ~= STATE_MAGIC or (done ~= "done" and done ~= "more") then
        return nil, ("invalid: each_batch: the value under state_key %q is not an each_batch "
                     .. "state"):format(state_key)
    end
    local cursor = s:sub(pos)
    return { version = tonumber(version), total = tonumber(total), done = done == "done",
             cursor = cursor ~= "" and cursor or nil }
end

---------------------------------------------------------------------------
-- The snapshot: a read-only transaction at a version, and one iterator on
-- it over the range, kept open for the whole run.

local iter_opts = ffi.new("stoat_iter_options")

local function open_snapshot(db, version, prefix, cursor)
    local rc = C.stoat_txn_begin_at(db._ptr, version, base.txn_out)
    if rc ~= 0 then
        return nil, errstr(rc)
    end
    local tnode = handle.new(db._node, base.txn_out[0], C.stoat_txn_discard)
    local snap = { tnode = tnode, ttoken = handle.attach(tnode), prefix = prefix }
    ffi.fill(iter_opts, ffi.sizeof(iter_opts))
    if prefix and prefix ~= "" then
        iter_opts.prefix, iter_opts.prefix_len = prefix, #prefix
    end
    if cursor then
        iter_opts.lower, iter_opts.lower_len = cursor, #cursor
    end
    iter_opts.keys_only = 1
    rc = C.stoat_txn_iter_open(tnode.addr, iter_opts, base.iter_out)
    if rc ~= 0 then
        local err = errstr(rc)
        handle.close_now(snap.ttoken, tnode)
        return nil, err
    end
    local inode = handle.new(tnode, base.iter_out[0], C.stoat_iter_close)
    snap.inode, snap.itoken = inode, handle.attach(inode)
    C.stoat_iter_seek_first(inode.addr)
    -- lower is inclusive, the cursor is the last key done: step over it.
    if cursor and C.stoat_iter_valid(inode.addr) ~= 0 then
        C.stoat_iter_key(inode.addr, base.ptr_out, base.len_out)
        if ffi_string(base.ptr_out[0], base.len_out[0]) == cursor then
            C.stoat_iter_next(inode.addr)
        end
    end
    return snap
end

-- Up to n next keys of the snapshot, appended to list (a table), or raises.
local function next_keys(snap, list, n)
    local it = snap.inode.addr
    while #list < n and C.stoat_iter_valid(it) ~= 0 do
        local rc = C.stoat_iter_key(it, base.ptr_out, base.len_out)
        if rc ~= 0 then error(errstr(rc), 0) end
        list[#list + 1] = ffi_string(base.ptr_out[0], base.len_out[0])
        C.stoat_iter_next(it)
    end
    local rc = C.stoat_iter_status(it)
    if rc ~= 0 then error(errstr(rc), 0) end
    return list
end

local function close_snapshot(snap)
    if snap then
        handle.close_now(snap.itoken, snap.inode)
        handle.close_now(snap.ttoken, snap.tnode)
    end
end

---------------------------------------------------------------------------
-- each_batch

local OPTIONS = { prefix = "string", after = "string", size = "number", state_key = "string",
                  fn = "function", on_batch = "function" }

-- Runs db:update(body) and returns true | nil, err whether the error came
-- back as nil, err or was raised.
local function update(db, body)
    local ok, res, err = pcall(db.update, db, body)
    if not ok then
        return nil, res
    end
    if res == nil and err ~= nil then
        return nil, err
    end
    return true
end

local function current_version(db)
    local ok, v, err = pcall(db.view, db, function(txn) return txn:read_version() end)
    if not ok then return nil, v end
    if v == nil then return nil, err end
    return v
end

function M.each_batch(db, opts)
    base.check_options(opts, OPTIONS, "db:each_batch", 1)
    if opts == nil or opts.fn == nil then
        raise(1, "db:each_batch: option 'fn' (a function) is required")
    end
    local size = opts.size or 500
    base.check_integer(size, "db:each_batch: option 'size'", 1, 1e9, 1)
    local fn, state_key, on_batch = opts.fn, opts.state_key, opts.on_batch
    if state_key == "" then
        raise(1, "db:each_batch: option 'state_key' must not be empty")
    end
    local state
    if state_key then
        local s, err = db:get(state_key)
        if err then return nil, err end
        if s then
            state, err = decode_state(s, state_key)
            if state == nil then return nil, err end
            if state.done then return 0, state.total end
        end
    end
    if state == nil then
        local v, err = current_version(db)
        if v == nil then return nil, err end
        state = { version = v, total = 0, cursor = opts.after, done = false }
    end
    local snap, err = open_snapshot(db, state.version, opts.prefix, state.cursor)
    if snap == nil then return nil, err end
    local processed = 0
    local guard = setmetatable({ txn = false }, guarded_mt)
    local ok, res = pcall(function()
        local pending = {}
        local n -- keys passed to fn in the current attempt of the batch
        local batch
        local function body(txn)
            guard.txn = txn
            n = 0
            for i = 1, #batch do
                local key = batch[i]
                local value, gerr = txn:get(key)
                if gerr then return nil, gerr end
                if value ~= nil then
                    local r1, r2 = fn(guard, key, value)
                    if r1 == nil and r2 ~= nil then return nil, r2 end
                    n = n + 1
                end
            end
            if state_key then
                must(txn:set(state_key, encode_state(state.version, state.total + n, false,
                                                     batch[#batch])))
            end
            return true
        end
        while true do
            next_keys(snap, pending, size)
            if #pending == 0 then break end
            batch = pending
            local limit = #pending
            while true do
                if limit < #pending then
                    batch = {}
                    for i = 1, limit do batch[i] = pending[i] end
                end
                local uok, uerr = update(db, body)
                if uok then break end
                if tostring(uerr):match("^too big") and limit > 1 then
                    limit = floor(limit / 2) -- the batch did not fit: halve it
                else
                    error(uerr, 0)
                end
            end
            state.total = state.total + n
            state.cursor = batch[#batch]
            processed = processed + n
            local rest = {}
            for i = #batch + 1, #pending do rest[#rest + 1] = pending[i] end
            pending = rest
            if on_batch then on_batch(processed, state.total) end
        end
        if state_key then
            local uok, uerr = update(db, function(txn)
                must(txn:set(state_key, encode_state(state.version, state.total, true)))
                return true
            end)
            if not uok then error(uerr, 0) end
        end
    end)
    close_snapshot(snap)
    if not ok then
        return nil, type(res) == "string" and res or tostring(res)
    end
    return processed, state.total
end

---------------------------------------------------------------------------
-- migrate

function M.migrate(db, list, opts)
    if type(list) ~= "table" then
        raise(1, "db:migrate: expected a list of migrations (got %s)", type(list))
    end
    base.check_options(opts, { key_prefix = "string" }, "db:migrate", 1)
    local prefix = opts and opts.key_prefix or "_stoat/migration/"
    local seen = {}
    for i, m in ipairs(list) do
        if type(m) ~= "table" or type(m.id) ~= "string" or m.id == ""
           or type(m.up) ~= "function" then
            raise(1, "db:migrate: migration %d must be { id = <non-empty string>, up = "
                     .. "<function(db)> }", i)
        end
        if seen[m.id] then
            raise(1, "db:migrate: duplicate migration id %q", m.id)
        end
        seen[m.id] = true
    end
    local ran = {}
    for _, m in ipairs(list) do
        local done, err = db:get(prefix .. m.id)
        if err then return nil, err end
        if done == nil then
            local ok, r1, r2 = pcall(m.up, db)
            if not ok then
                return nil, ("migration %s failed: %s"):format(m.id, tostring(r1))
            elseif r1 == nil and r2 ~= nil then
                return nil, ("migration %s failed: %s"):format(m.id, tostring(r2))
            end
            local sok, serr = db:set(prefix .. m.id, os.date("!%Y-%m-%dT%H:%M:%SZ"))
            if not sok then return nil, serr end
            ran[#ran + 1] = m.id
        end
    end
    return ran
end

-- Adds each_batch and migrate to the database class.
function M.install(DB)
    DB.each_batch = M.each_batch
    DB.migrate = M.migrate
end

return M
