-- stoat.backup of encrypted databases: sealed streams (core/FORMAT.md,
-- "Backup stream", format version 2). Round trips, no plaintext in the
-- stream, the key on both sides, and tampering: a frame altered (its CRC
-- made right again), swapped, dropped, taken from another stream, or a
-- header altered is refused before anything is written, never restored as
-- wrong data. The `stoat` command's side is in encryption_spec.lua.

local bit = require "bit"
local backup = require "stoat.backup"
local base = require "stoat.base"
local h = require "helpers"

local BUILT = pcall(function() return base.C.stoat_stream_seal end)
local function it_c(name, fn)
    if BUILT then
        it(name, fn)
    else
        pending(name .. ": needs sealed streams in the C core (stoat_stream_seal)")
    end
end

local KEY = ("k"):rep(16) .. "0123456789abcdef"
local KEY2 = ("K"):rep(16) .. "fedcba9876543210"
local MARK = "SeCrEtMaRk"

local function key(i)
    return ("%s:key:%05d"):format(MARK, i)
end

local function value(i)
    if i % 7 == 0 then
        return (MARK .. ":big:" .. i .. ":"):rep(40) -- in the value log
    end
    return ("%s:value:%d"):format(MARK, i)
end

local function opts(more)
    local t = { memtable_size = 1024 * 1024, cache_size = 1024 * 1024, value_threshold = 128 }
    for k, v in pairs(more or {}) do t[k] = v end
    return t
end

local function snapshot(db)
    local t = {}
    assert(db:view(function(txn)
        for k, v in txn:pairs() do t[k] = v end
        return true
    end))
    return t
end

local function count(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n
end

-- An encrypted database (under KEY) with 600 keys, some with expiry and
-- user meta, some in the value log; returns db, path.
local function source(finally)
    local db, path = h.open_db(finally, opts({ encryption_key = KEY }))
    for i = 1, 600 do
        local o = i % 5 == 0 and { ttl = 3600, meta = i % 256 } or nil
        assert(db:set(key(i), value(i), o))
    end
    return db, path
end

-- The stream of a backup of db, as one string | nil, err.
local function stream(db, o)
    local chunks = {}
    local info, err = backup.write(db, function(s) chunks[#chunks + 1] = s end, o)
    if info == nil then
        return nil, err
    end
    return table.concat(chunks), info
end

local function save(finally, s, name)
    local file = h.scratch(finally) .. "/" .. (name or "backup")
    local f = assert(io.open(file, "wb"))
    f:write(s)
    f:close()
    return file
end

-- A fresh target database; encrypted under KEY unless plain.
local function target(finally, plain)
    local db, path = h.open_db(finally, opts({ encryption_key = not plain and KEY or nil }))
    return db, path
end

local function le32(s, pos)
    local a, b, c, d = s:byte(pos, pos + 3)
    return a + b * 256 + c * 65536 + d * 16777216
end

-- The frames of stream s: { type =, at = offset, payload = }.
local function frames(s)
    local out, pos = {}, 1
    while pos <= #s do
        local len = le32(s, pos + 1)
        out[#out + 1] = { type = s:sub(pos, pos), at = pos - 1,
                          payload = s:sub(pos + 5, pos + 4 + len) }
        pos = pos + 9 + len
    end
    assert(pos == #s + 1, "frames end at the end of the stream")
    return out
end

-- The stream of frames fs, each with its CRC computed again (as someone
-- who alters a stream on purpose would).
local function join(fs)
    local out = {}
    for _, f in ipairs(fs) do
        local head = f.type .. backup.fixed32(#f.payload)
        out[#out + 1] = head .. f.payload
                        .. backup.fixed32(backup.crc32(f.payload, backup.crc32(head)))
    end
    return table.concat(out)
end

local function flip(s, i)
    return s:sub(1, i - 1) .. string.char(bit.bxor(s:byte(i), 0x20)) .. s:sub(i + 1)
end

-- Restores stream s into a fresh encrypted target with key (KEY unless
-- given): res, err, and the target's contents after.
local function try_restore(finally, s, k)
    local db, path = target(finally)
    local res, err = backup.restore(db, { save(finally, s) },
                                    { dir = path, encryption_key = k == nil and KEY or k or nil })
    return res, err, snapshot(db), path
end

local function assert_untouched(got, path)
    assert.are.same({}, got)
    assert.is_nil(io.open(path .. "/" .. backup.STATE_FILE, "rb"))
end

describe("sealed backups", function()
    local saved_target
    before_each(function()
        saved_target = backup.FRAME_TARGET
        backup.FRAME_TARGET = 2048 -- many frames
    end)
    after_each(function()
        backup.FRAME_TARGET = saved_target
    end)

    it_c("round-trips a full and an incremental backup into an encrypted target", function()
        local db = source(finally)
        local full, info = assert(stream(db, { encryption_key = KEY }))
        assert.is_true(info.sealed)
        assert.are.equal(600, info.entries)
        local expected1 = snapshot(db)
        -- changes: overwrite, delete (some tombstones compacted away), add
        for i = 1, 600, 3 do assert(db:set(key(i), value(i + 1000))) end
        for i = 2, 600, 10 do assert(db:delete(key(i))) end
        assert(db:flatten())
        for i = 5, 600, 50 do assert(db:delete(key(i))) end
        for i = 601, 650 do assert(db:set(key(i), value(i))) end
        local incr, info2 = assert(stream(db, { encryption_key = KEY, since = info.version }))
        assert.is_true(info2.sealed)
        assert.is_true(info2.entries < 600)
        assert.are.equal(count(snapshot(db)), info2.keys)
        local expected2 = snapshot(db)
        assert.are_not.same(expected1, expected2)
        assert.is_true(#frames(full) > 10)

        local r1, p1 = target(finally)
        assert(backup.restore(r1, { save(finally, full) }, { dir = p1, encryption_key = KEY }))
        assert.are.same(expected1, snapshot(r1))
        local r2, p2 = target(finally)
        local chain = { save(finally, full, "f"), save(finally, incr, "i") }
        local res = assert(backup.restore(r2, chain, { dir = p2, encryption_key = KEY }))
        assert.are.equal(info2.version, res.version)
        assert.are.same(expected2, snapshot(r2))
        -- expiry and user meta came through the seal
        local v, meta, expires = r2:view(function(txn) return txn:get_meta(key(15)) end)
        assert.are.equal(value(15), v)
        assert.are.equal(15, meta)
        assert.is_true(math.abs(expires - (os.time() + 3600)) <= 5)
        -- and the incremental alone continues the first restore
        assert(backup.restore(r1, { save(finally, incr) }, { dir = p1, encryption_key = KEY }))
        assert.are.same(expected2, snapshot(r1))
    end)

    it_c("holds no key or value in the clear; a plaintext one does", function()
        local db = source(finally)
        local full, info = assert(stream(db, { encryption_key = KEY }))
        assert(db:delete(key(3)))
        local incr = assert(stream(db, { encryption_key = KEY, since = info.version }))
        for _, s in ipairs({ full, incr }) do
            assert.is_nil(s:find(MARK, 1, true))
            assert.is_nil(s:find(":value:", 1, true))
            assert.is_nil(s:find(KEY, 1, true))
            assert.is_nil(s:find(KEY:sub(1, 8), 1, true))
            -- the clear header: magic, format version 2, sealed flag and salt
            local fs = frames(s)
            assert.are.equal("H", fs[1].type)
            assert.are.equal("STOATBAK", fs[1].payload:sub(1, 8))
            assert.are.equal(2, le32(fs[1].payload, 9))
        end
        -- each backup has a salt of its own (the last 16 bytes of the header)
        local again = assert(stream(db, { encryption_key = KEY }))
        assert.are_not.equal(frames(full)[1].payload:sub(-16), frames(again)[1].payload:sub(-16))
        -- the same backup in the clear, on purpose, does hold them (so the
        -- search above can find them)
        local clear, cinfo = assert(stream(db, { plaintext = true }))
        assert.is_false(cinfo.sealed)
        assert.truthy(clear:find(MARK .. ":value:1", 1, true))
        assert.are.equal(1, le32(frames(clear)[1].payload, 9))
    end)

    it_c("writes a backup of an encrypted database only with its key or plaintext", function()
        local db = source(finally)
        local calls = 0
        local function sink() calls = calls + 1 end
        local ok, err = backup.write(db, sink)
        assert.is_nil(ok)
        assert.matches("^bad key: the database is encrypted", err)
        ok, err = backup.write(db, sink, { encryption_key = KEY2 })
        assert.is_nil(ok)
        assert.matches("^bad key: encryption_key is not the key the database was opened with",
                       err)
        assert.is_nil(err:find(KEY2:sub(1, 8), 1, true))
        assert.are.equal(0, calls)
        assert.has_error(function()
            backup.write(db, sink, { encryption_key = KEY, plaintext = true })
        end, "stoat: backup: plaintext and encryption_key exclude each other")
        assert.has_error(function() backup.write(db, sink, { encryption_key = "short" }) end)
        -- a database opened without a key has no key to seal under
        local plain = h.open_db(finally, opts())
        assert(plain:set("a", "1"))
        ok, err = backup.write(plain, sink, { encryption_key = KEY })
        assert.is_nil(ok)
        assert.matches("^bad key: the database is not encrypted", err)
        assert.are.equal(0, calls)
        -- the database object keeps a check of its key, not the key
        for _, v in pairs(db) do
            if type(v) == "string" then
                assert.is_nil(v:find(KEY, 1, true))
            end
        end
    end)

    it_c("restores a sealed backup only with the key it was made under", function()
        local db = source(finally)
        local s = assert(stream(db, { encryption_key = KEY }))
        local res, err, got, path = try_restore(finally, s, false)
        assert.is_nil(res)
        assert.matches("^bad key: .* is a sealed backup", err)
        assert_untouched(got, path)
        res, err, got, path = try_restore(finally, s, KEY2)
        assert.is_nil(res)
        assert.matches("^bad key: .*: wrong key or altered stream", err)
        assert.is_nil(err:find(KEY2:sub(1, 8), 1, true))
        assert_untouched(got, path)
        -- the target's own key does not matter: a target under KEY2 takes
        -- a backup made under KEY, given KEY
        local t2, p2 = h.open_db(finally, opts({ encryption_key = KEY2 }))
        assert(backup.restore(t2, { save(finally, s) }, { dir = p2, encryption_key = KEY }))
        assert.are.same(snapshot(db), snapshot(t2))
    end)

    it_c("goes into a target opened without a key only with plaintext", function()
        local db = source(finally)
        local file = save(finally, (assert(stream(db, { encryption_key = KEY }))))
        local t, p = target(finally, true)
        local res, err = backup.restore(t, { file }, { dir = p, encryption_key = KEY })
        assert.is_nil(res)
        assert.matches("^invalid: .* is a sealed backup and the database it would go into is "
                       .. "not encrypted", err)
        assert_untouched(snapshot(t), p)
        assert(backup.restore(t, { file }, { dir = p, encryption_key = KEY, plaintext = true }))
        assert.are.same(snapshot(db), snapshot(t))
    end)

    it_c("backs up an encrypted database in the clear with plaintext, which restores without "
         .. "a key", function()
        local db = source(finally)
        local s = assert(stream(db, { plaintext = true }))
        local t, p = target(finally, true)
        assert(backup.restore(t, { save(finally, s) }, { dir = p }))
        assert.are.same(snapshot(db), snapshot(t))
    end)

    describe("tampering", function()
        -- A sealed incremental (E, K and Z frames) and its frames.
        local function sealed_incremental(finally)
            local db = source(finally)
            local _, info = assert(stream(db, { encryption_key = KEY }))
            for i = 1, 600, 2 do assert(db:set(key(i), value(i + 5000))) end
            assert(db:delete(key(4)))
            local s = assert(stream(db, { encryption_key = KEY, since = info.version }))
            return s, frames(s), db
        end

        -- Restoring s (as an incremental chain after a restored full backup
        -- would be refused for the chain): into a fresh target, the check
        -- pass must refuse it before the chain is looked at, so every error
        -- here is about the stream itself.
        local function refused(finally, s, pattern)
            local res, err, got, path = try_restore(finally, s)
            assert.is_nil(res, "restored a tampered stream")
            assert.matches(pattern, err)
            assert_untouched(got, path)
            return err
        end

        it_c("refuses an altered sealed frame as corruption naming its offset", function()
            local s, fs = sealed_incremental(finally)
            local kinds = {}
            for i = 3, #fs do -- frame 2 is the first sealed one (next test)
                local f = fs[i]
                kinds[f.type] = true
                for _, at in ipairs({ 1, 25, math.floor(#f.payload / 2), #f.payload }) do
                    local copy = {}
                    for j, g in ipairs(fs) do copy[j] = g end
                    copy[i] = { type = f.type, at = f.at, payload = flip(f.payload, at) }
                    local err = refused(finally, join(copy), "^corruption: ")
                    assert.matches(("the sealed frame at offset %d does not open"):format(f.at),
                                   err, 1, true)
                end
            end
            assert.are.same({ E = true, K = true, Z = true }, kinds)
            -- and the same flips without the CRC made right are damage
            local f = fs[3]
            local pos = f.at + 5 + 10
            refused(finally, flip(s, pos),
                    ("checksum mismatch in the frame at offset %d"):format(f.at))
        end)

        it_c("refuses an altered first sealed frame or header as a wrong key or an altered "
             .. "stream", function()
            local _, fs = sealed_incremental(finally)
            local copy = {}
            for j, g in ipairs(fs) do copy[j] = g end
            copy[2] = { type = fs[2].type, payload = flip(fs[2].payload, 30) }
            refused(finally, join(copy), "^bad key: .*wrong key or altered stream")
            -- the header is in the clear, but every frame authenticates it:
            -- kind, since, version (offsets 12, 13, 21 of its payload) or salt
            local hp = fs[1].payload
            for _, at in ipairs({ 14, 15, 23, #hp - 3 }) do
                copy = {}
                for j, g in ipairs(fs) do copy[j] = g end
                copy[1] = { type = "H", payload = flip(hp, at) }
                refused(finally, join(copy), "wrong key or altered stream")
            end
            -- a kind byte out of range is malformed before any key is tried
            copy[1] = { type = "H", payload = hp:sub(1, 12) .. "\9" .. hp:sub(14) }
            refused(finally, join(copy), "^corruption: .*malformed header")
        end)

        it_c("refuses frames swapped, dropped, repeated or taken from another stream", function()
            local _, fs = sealed_incremental(finally)
            assert.is_true(#fs >= 6)
            local function with(list)
                local out = {}
                for i, j in ipairs(list) do out[i] = fs[j] end
                return join(out)
            end
            local n = #fs
            local all = {}
            for i = 1, n do all[i] = i end
            local function variant(edit)
                local l = {}
                for i, v in ipairs(all) do l[i] = v end
                edit(l)
                return with(l)
            end
            local cases = {
                -- two entry frames swapped
                variant(function(l) l[3], l[4] = l[4], l[3] end),
                -- an entry frame and the first key-list frame swapped
                variant(function(l)
                    for i = 2, n do
                        if fs[i].type == "K" then l[i], l[i - 1] = l[i - 1], l[i]; break end
                    end
                end),
                -- one dropped from the middle
                variant(function(l) table.remove(l, 4) end),
                -- one repeated
                variant(function(l) table.insert(l, 4, 3) end),
            }
            for _, s in ipairs(cases) do
                refused(finally, s, "^corruption: .*the sealed frame at offset %d+ does not open")
            end
            -- the trailer dropped: truncated
            refused(finally, variant(function(l) l[n] = nil end), "^corruption: .*truncated")
            -- a frame of another backup (same key and contents, another salt)
            local db = source(finally)
            local other = frames(assert(stream(db, { encryption_key = KEY })))
            local copy = {}
            for j, g in ipairs(fs) do copy[j] = g end
            copy[3] = { type = "E", payload = other[3].payload }
            refused(finally, join(copy),
                    "^corruption: .*the sealed frame at offset %d+ does not open")
            -- a whole other stream's frames behind this header
            copy = { fs[1] }
            for j = 2, #other do copy[j] = other[j] end
            refused(finally, join(copy), "wrong key or altered stream")
        end)
    end)
end)
