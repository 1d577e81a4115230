-- Encryption at rest (issue 17) from Lua: the encryption_key option,
-- stoat.rekey, db:rotate_key, no plaintext in any file, and the `stoat`
-- command's keys (keygen, --key-file, STOAT_KEY_FILE, rekey, info, backup).
--
-- The specs that need the C core's encryption are pending, with the reason
-- NEEDS_C, while the loaded libstoat has no stoat_rekey (the C part of
-- issue 17 is not built into it); the option checks and the key files of
-- the command run either way.

local ffi = require "ffi"
local bit = require "bit"
local stoat = require "stoat"
local base = require "stoat.base"
local keyfile = require "stoat.cli.keyfile"
local h = require "helpers"

local q = h.shell_quote
local BUILT = pcall(function() return base.C.stoat_rekey end)
local NEEDS_C = "needs encryption at rest in the C core (issue 17): the loaded libstoat has "
                .. "no stoat_rekey"

-- it(), or a pending entry with the reason when the C core lacks encryption.
local function it_c(name, fn)
    if BUILT then
        it(name, fn)
    else
        pending(name .. ": " .. NEEDS_C)
    end
end

pcall(ffi.cdef, "int stat(const char *path, void *buf);")

-- Keys as the tests use them: fixed bytes, so failures reproduce.
local KEY = ("k"):rep(16) .. "0123456789abcdef"
local KEY2 = ("K"):rep(16) .. "fedcba9876543210"
local KEY3 = ("z"):rep(32)

local function slurp(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

local function spit(path, s)
    local f = assert(io.open(path, "wb"))
    assert(f:write(s))
    f:close()
end

local function exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
end

-- name -> bytes of every regular file in dir (not recursive).
local function dir_files(dir)
    local p = assert(io.popen("ls -1A " .. q(dir)))
    local out = {}
    for name in p:lines() do
        local f = io.open(dir .. "/" .. name, "rb")
        local s = f and f:read("*a")
        if f then f:close() end
        if s then out[name] = s end
    end
    p:close()
    return out
end

-- The number of data keys in dir's KEYREGISTRY, from its clear header
-- (core/FORMAT.md, "Key registry": fixed32 count at offset 64).
local function registry_count(dir)
    local s = assert(slurp(dir .. "/KEYREGISTRY"), "no KEYREGISTRY")
    local a, b, c, d = s:byte(65, 68)
    return a + b * 256 + c * 65536 + d * 16777216
end

local function new_dir(finally)
    return h.scratch(finally) .. "/db"
end

local SMALL = { memtable_size = 1024 * 1024, cache_size = 1024 * 1024 }
local function with(opts, more)
    local t = {}
    for k, v in pairs(SMALL) do t[k] = v end
    for k, v in pairs(opts or {}) do t[k] = v end
    for k, v in pairs(more or {}) do t[k] = v end
    return t
end

-- A closed encrypted database at a fresh path holding a = 1, b = 2 and a
-- value-log value under "big".
local function make_encrypted(finally, key, opts)
    local path = new_dir(finally)
    local db = assert(stoat.open(path, with(opts, { encryption_key = key or KEY })))
    assert(db:set("a", "1"))
    assert(db:set("b", "2"))
    assert(db:set("big", ("v"):rep(4096)))
    assert(db:close())
    return path
end

local function assert_contents(db)
    assert.are.equal("1", db:get("a"))
    assert.are.equal("2", db:get("b"))
    assert.are.equal(("v"):rep(4096), db:get("big"))
end

describe("encryption", function()
    describe("the encryption_key option", function()
        it("raises naming the option, never quoting the key, when it is not 32 bytes", function()
            local secret = "SECRETKEYBYTES"
            local cases = { 5, true, {}, "", secret, (secret):rep(3),
                            ("ab"):rep(32), ("S"):rep(33) }
            for _, v in ipairs(cases) do
                local ok, err = pcall(stoat.open, "/nonexistent/stoat-spec", {
                    encryption_key = v })
                assert.is_false(ok)
                assert.matches("option 'encryption_key' must be a string of exactly 32 bytes",
                               err, 1, true)
                assert.is_nil(err:find("SECRET", 1, true), err)
                assert.is_nil(err:find("SSS", 1, true), err)
                assert.is_nil(err:find("abab", 1, true), err)
            end
            local _, err = pcall(stoat.open, "/nonexistent", { encryption_key = ("ab"):rep(32) })
            assert.matches("64 bytes; a key written as hex must be decoded first", err, 1, true)
            _, err = pcall(stoat.open, "/nonexistent", { encryption_key = 5 })
            assert.matches("(got number)", err, 1, true)
        end)

        it("points the struct at the key string and keeps that string referenced", function()
            local options = require "stoat.options"
            local key = table.concat({ KEY:sub(1, 16), KEY:sub(17) }) -- not a constant
            local o, keep = options.build({ encryption_key = key,
                                            encryption_key_rotation_ms = 3600000 }, 1)
            assert.are.equal(KEY, ffi.string(o.encryption_key, 32))
            assert.are.equal(3600000, tonumber(o.encryption_key_rotation_ms))
            local kept = false
            for _, v in ipairs(keep) do kept = kept or v == key end
            assert.is_true(kept)
            o = options.build(nil, 1)
            assert.is_true(o.encryption_key == nil) -- the default: no encryption
        end)

        it("takes the rotation period in milliseconds, as an integer", function()
            for _, v in ipairs({ -1, 1.5, "10d", true }) do
                local ok, err = pcall(stoat.open, "/nonexistent", {
                    encryption_key_rotation_ms = v })
                assert.is_false(ok)
                assert.matches("option 'encryption_key_rotation_ms'", err, 1, true)
            end
        end)

        it("checks the keys of stoat.rekey before calling the library", function()
            local ok, err = pcall(stoat.rekey, "/nonexistent", KEY, "SECRET")
            assert.is_false(ok)
            assert.matches("rekey: new_key must be a string of exactly 32 bytes (got a string "
                           .. "of 6 bytes)", err, 1, true)
            ok, err = pcall(stoat.rekey, "/nonexistent", nil, KEY)
            assert.is_false(ok)
            assert.matches("rekey: old_key must be a string of exactly 32 bytes (got nil)", err,
                           1, true)
            ok, err = pcall(stoat.rekey, 7, KEY, KEY2)
            assert.is_false(ok)
            assert.matches("rekey: dir must be a string", err, 1, true)
        end)
    end)

    describe("opening", function()
        it_c("reads back after a reopen with the key", function()
            local path = make_encrypted(finally)
            assert.is_true(exists(path .. "/KEYREGISTRY"))
            local db = assert(stoat.open(path, { encryption_key = KEY }))
            assert_contents(db)
            assert(db:close())
        end)

        it_c("fails with bad key, changing nothing, without a key, with a wrong one, or with "
             .. "a key on a plain database", function()
            local enc = make_encrypted(finally)
            local plain = new_dir(finally)
            local db = assert(stoat.open(plain, SMALL))
            assert(db:set("a", "1"))
            assert(db:close())
            local cases = { { enc, nil }, { enc, KEY2 }, { plain, KEY } }
            for _, c in ipairs(cases) do
                local before = dir_files(c[1])
                local d, err = stoat.open(c[1], { encryption_key = c[2] })
                assert.is_nil(d)
                assert.matches("^bad key: ", err)
                for _, key in ipairs({ KEY, KEY2 }) do -- no key bytes in the message
                    assert.is_nil(err:find(key, 1, true))
                    assert.is_nil(err:find(keyfile.hex(key), 1, true))
                    assert.is_nil(err:find(key:sub(1, 8), 1, true))
                end
                assert.are.same(before, dir_files(c[1]))
            end
            -- and each still opens as it should
            db = assert(stoat.open(enc, { encryption_key = KEY }))
            assert_contents(db)
            assert(db:close())
            db = assert(stoat.open(plain))
            assert.are.equal("1", db:get("a"))
            assert(db:close())
        end)

        it_c("tells the three bad-key cases apart in the detail", function()
            local enc = make_encrypted(finally)
            local plain = new_dir(finally)
            assert(assert(stoat.open(plain)):close())
            local _, no_key = stoat.open(enc)
            local _, wrong = stoat.open(enc, { encryption_key = KEY2 })
            local _, not_enc = stoat.open(plain, { encryption_key = KEY })
            assert.are_not.equal(no_key, wrong)
            assert.are_not.equal(wrong, not_enc)
            assert.are_not.equal(no_key, not_enc)
        end)

        it_c("keeps the key readable by the library until open returns (the string may be "
             .. "collected after)", function()
            local path = new_dir(finally)
            -- A key made at run time, referenced only by the options table.
            local db = assert(stoat.open(path, with(nil, {
                encryption_key = table.concat({ ("q"):rep(16), ("r"):rep(16) }) })))
            collectgarbage()
            collectgarbage()
            assert(db:set("k", ("x"):rep(3000)))
            assert(db:flush())
            assert(db:close())
            db = assert(stoat.open(path, { encryption_key = ("q"):rep(16) .. ("r"):rep(16) }))
            assert.are.equal(("x"):rep(3000), db:get("k"))
            assert(db:close())
        end)
    end)

    describe("keys", function()
        it_c("rekey: the old key fails and the new one opens, all data kept", function()
            local path = make_encrypted(finally)
            local before = {}
            for name, bytes in pairs(dir_files(path)) do
                if name ~= "KEYREGISTRY" then before[name] = bytes end
            end
            assert.is_true(stoat.rekey(path, KEY, KEY2))
            -- no data file rewritten
            for name, bytes in pairs(before) do
                assert.are.equal(bytes, slurp(path .. "/" .. name), name)
            end
            local db, err = stoat.open(path, { encryption_key = KEY })
            assert.is_nil(db)
            assert.matches("^bad key: ", err)
            db = assert(stoat.open(path, { encryption_key = KEY2 }))
            assert_contents(db)
            assert(db:close())
        end)

        it_c("rekey fails with bad key for a wrong old key or a plain database, and busy "
             .. "while open", function()
            local path = make_encrypted(finally)
            local ok, err = stoat.rekey(path, KEY2, KEY3)
            assert.is_nil(ok)
            assert.matches("^bad key: ", err)
            assert.is_nil(err:find(KEY2, 1, true))
            local plain = new_dir(finally)
            assert(assert(stoat.open(plain)):close())
            ok, err = stoat.rekey(plain, KEY, KEY2)
            assert.is_nil(ok)
            assert.matches("^bad key: ", err)
            local db = assert(stoat.open(path, { encryption_key = KEY }))
            ok, err = stoat.rekey(path, KEY, KEY2)
            assert.is_nil(ok)
            assert.matches("^busy: ", err)
            assert(db:close())
            -- nothing changed: the old key still opens it
            db = assert(stoat.open(path, { encryption_key = KEY }))
            assert_contents(db)
            assert(db:close())
        end)

        it_c("rotate_key adds a data key; everything reads back after a reopen", function()
            local path = make_encrypted(finally)
            local db = assert(stoat.open(path, with(nil, { encryption_key = KEY })))
            local n = registry_count(path)
            assert.is_true(db:rotate_key())
            assert.are.equal(n + 1, registry_count(path))
            assert(db:set("c", "3"))
            assert(db:set("big2", ("w"):rep(4096)))
            assert(db:flush())
            assert(db:close())
            db = assert(stoat.open(path, { encryption_key = KEY }))
            assert_contents(db)
            assert.are.equal("3", db:get("c"))
            assert.are.equal(("w"):rep(4096), db:get("big2"))
            assert(db:flatten())
            assert(db:close())
            db = assert(stoat.open(path, { encryption_key = KEY }))
            assert_contents(db)
            assert.are.equal("3", db:get("c"))
            assert(db:close())
        end)

        it_c("rotate_key on a plain database is not supported", function()
            local db = h.open_db(finally)
            local ok, err = db:rotate_key()
            assert.is_nil(ok)
            assert.matches("^not supported: ", err)
        end)

        it_c("rotates by age with encryption_key_rotation_ms", function()
            local path = new_dir(finally)
            local opts = with(nil, { encryption_key = KEY, encryption_key_rotation_ms = 1 })
            local db = assert(stoat.open(path, opts))
            for i = 1, 3 do
                h.sleep(0.01)
                assert(db:set("r" .. i, ("p"):rep(2000)))
                assert(db:flush())
            end
            assert(db:close())
            assert.is_true(registry_count(path) >= 2)
            db = assert(stoat.open(path, opts))
            for i = 1, 3 do assert.are.equal(("p"):rep(2000), db:get("r" .. i)) end
            assert(db:close())
        end)
    end)

    describe("no plaintext", function()
        -- Writes marked keys and values through every path: inline values,
        -- value-log values (about 4 KiB), keys; returns the markers.
        local function fill(db, tag, n)
            local markers = {}
            for i = 1, n do
                local key = ("MKEY%s%05d"):format(tag, i)
                local small = ("MSMALL%s%05d"):format(tag, i)
                local big = {} -- no repeats (compression is off anyway)
                for j = 1, 256 do big[j] = ("MBIG%s%05d-%03d"):format(tag, i, j) end
                big = table.concat(big)
                assert(db:set(key, small))
                assert(db:set(key .. "+big", big))
                markers[#markers + 1] = key
                markers[#markers + 1] = small
                markers[#markers + 1] = big:sub(1, 20)
            end
            return markers
        end

        -- The markers found in the files of dir: { "FILE: marker", ... }.
        local function found(dir, markers)
            local hits = {}
            for name, bytes in pairs(dir_files(dir)) do
                for _, m in ipairs(markers) do
                    if bytes:find(m, 1, true) then
                        hits[#hits + 1] = name .. ": " .. m
                        break
                    end
                end
            end
            table.sort(hits)
            return hits
        end

        local function opts_of(threshold, key)
            return with(nil, { compression = "none", value_log_compression = "none",
                               value_threshold = threshold, value_log_file_size = 1024 * 1024,
                               auto_gc = false, encryption_key = key })
        end

        -- Writes markers through the WAL, a flush, a flatten, overwrites
        -- and value-log GC, a close; calls check(stage, markers) after each
        -- step. Returns the bytes GC reclaimed.
        local function scenario(path, opts, check)
            local db = assert(stoat.open(path, opts))
            local markers = fill(db, "a", 200)
            local function more(list)
                for _, m in ipairs(list) do markers[#markers + 1] = m end
            end
            assert(db:sync())
            check("WAL before a flush", markers)
            assert(db:flush())
            more(fill(db, "b", 200))
            assert(db:sync())
            check("after a flush", markers)
            assert(db:flatten())
            check("after flatten", markers)
            -- Overwrite the "a" entries: their first value-log records
            -- become garbage, GC rewrites the live ones around them.
            more(fill(db, "a", 200))
            assert(db:flatten())
            local reclaimed = assert(db:gc(0.01))
            check("after GC", markers)
            assert(db:close())
            check("closed", markers)
            db = assert(stoat.open(path, opts))
            assert.are.equal("MSMALLa00007", db:get("MKEYa00007"))
            assert.are.equal("MBIGb00011-001", db:get("MKEYb00011+big"):sub(1, 14))
            assert(db:close())
            return reclaimed
        end

        it("finds the markers in the tables, value log and WAL of a plain database (the "
           .. "search works)", function()
            local path = new_dir(finally)
            local kinds = {}
            local reclaimed = scenario(path, opts_of(32), function(stage, markers)
                local hits = found(path, markers)
                assert.are_not.same({}, hits, stage)
                for _, hit in ipairs(hits) do
                    kinds[hit:match("^%d+%.(%a+):") or hit:match("^(%a+)")] = true
                end
            end)
            assert.is_true(reclaimed > 0) -- GC ran
            assert.is_true(kinds.sst and kinds.vlog and kinds.wal)
        end)

        it_c("finds no marker in the directory or the shared memory of a multi-process "
             .. "database", function()
            local path, shm = new_dir(finally), h.scratch(finally)
            local opts = opts_of(32, KEY)
            opts.multi_process, opts.shm_dir = true, shm
            local db = assert(stoat.open(path, opts))
            local markers = fill(db, "m", 100)
            assert(db:sync())
            local names = 0
            for _ in pairs(dir_files(shm)) do names = names + 1 end
            assert.is_true(names > 0) -- the region is there to search
            assert.are.same({}, found(path, markers))
            assert.are.same({}, found(shm, markers))
            assert(db:flush())
            assert.are.same({}, found(path, markers))
            assert.are.same({}, found(shm, markers))
            assert(db:close())
            db = assert(stoat.open(path, opts))
            assert.are.equal("MSMALLm00042", db:get("MKEYm00042"))
            assert(db:close())
        end)

        for _, threshold in ipairs({ 1024, 32 }) do
            it_c(("finds no marker in any file: WAL, tables, value log, after flatten and GC "
                  .. "(value_threshold %d)"):format(threshold), function()
                local path = new_dir(finally)
                local reclaimed = scenario(path, opts_of(threshold, KEY), function(stage, markers)
                    assert.are.same({}, found(path, markers), stage)
                end)
                assert.is_true(reclaimed > 0) -- GC ran
            end)
        end
    end)
end)

---------------------------------------------------------------------------
-- The command

-- Runs `bin/stoat ARGS` (a shell fragment); returns status, stdout, stderr.
local tmp_out, tmp_err
local function stoat_cmd(args, env)
    if tmp_out == nil then
        local dir = h.tmpdir()
        tmp_out, tmp_err = dir .. "/out", dir .. "/err"
    end
    local cmd = ("{ %s bin/stoat %s\n} > %s 2> %s"):format(env or "", args, q(tmp_out),
                                                          q(tmp_err))
    local ok, how, code = os.execute(cmd)
    local status
    if type(ok) == "number" then status = ok / 256 else status = code end
    if how == "signal" then status = 128 + code end
    return status, slurp(tmp_out) or "", slurp(tmp_err) or ""
end

teardown(function()
    if tmp_out then h.rmrf(tmp_out:match("^(.*)/out$")) end
end)

-- Mode bits of path (ls -l's first column).
local function mode_of(path)
    local p = assert(io.popen("ls -l " .. q(path)))
    local line = p:read("*l")
    p:close()
    return line:match("^(%S+)")
end

-- A key file in dir holding key as hex and a newline; returns its path.
local function key_file(dir, name, key, raw)
    local path = dir .. "/" .. name
    spit(path, raw and key or keyfile.hex(key) .. "\n")
    return path
end

describe("stoat command keys", function()
    it("keygen writes 64 hex digits and a newline, a new key each time", function()
        local s1, out1 = stoat_cmd("keygen")
        local s2, out2 = stoat_cmd("keygen")
        assert.are.equal(0, s1)
        assert.are.equal(0, s2)
        assert.matches("^%x+\n$", out1)
        assert.are.equal(65, #out1)
        assert.are_not.equal(out1, out2)
        local key = assert(keyfile.parse(out1))
        assert.are.equal(32, #key)
        assert.are.equal(out1, keyfile.hex(key) .. "\n")
    end)

    it("keygen --output creates a 0600 file and refuses to overwrite one", function()
        local dir = h.scratch(finally)
        local status = stoat_cmd("keygen --output " .. q(dir .. "/k"))
        assert.are.equal(0, status)
        assert.are.equal("-rw-------", mode_of(dir .. "/k"))
        local first = slurp(dir .. "/k")
        assert.are.equal(32, #assert(keyfile.read(dir .. "/k")))
        local out, err
        status, out, err = stoat_cmd("keygen --output " .. q(dir .. "/k"))
        assert.are.equal("", out)
        assert.are.equal(1, status)
        assert.matches("exists", err, 1, true)
        assert.are.equal(first, slurp(dir .. "/k"))
    end)

    it("reads key files of raw bytes or hex, with or without a newline, and refuses the rest "
       .. "without quoting them", function()
        local dir = h.scratch(finally)
        local hex = keyfile.hex(KEY)
        for _, content in ipairs({ KEY, KEY .. "\n", hex, hex .. "\n", hex:upper() .. "\r\n" }) do
            spit(dir .. "/k", content)
            assert.are.equal(KEY, (keyfile.read(dir .. "/k")))
        end
        for _, content in ipairs({ "", "SECRETSECRET", KEY .. "\n\n", hex .. "0",
                                   ("g"):rep(64), KEY:rep(3) }) do
            spit(dir .. "/k", content)
            local key, err = keyfile.read(dir .. "/k")
            assert.is_nil(key)
            assert.matches("32 raw bytes or 64 hex digits", err, 1, true)
            assert.is_nil(err:find("SECRET", 1, true))
            assert.is_nil(err:find(KEY:sub(1, 8), 1, true))
        end
    end)

    it("fails clearly on a missing or malformed key file before opening anything", function()
        local dir = h.scratch(finally)
        local db = dir .. "/db"
        local status, _, err = stoat_cmd("load " .. q(db) .. " --key-file " .. q(dir .. "/nope")
                                         .. " < /dev/null")
        assert.are.equal(1, status)
        assert.matches("%-%-key%-file .*/nope: cannot read the key file", err)
        spit(dir .. "/bad", "SECRET")
        status, _, err = stoat_cmd("load " .. q(db) .. " < /dev/null",
                                   "STOAT_KEY_FILE=" .. q(dir .. "/bad"))
        assert.are.equal(1, status)
        assert.matches("STOAT_KEY_FILE=.*/bad: .*32 raw bytes or 64 hex digits", err)
        assert.is_nil(err:find("SECRET", 1, true))
        assert.is_false(exists(db .. "/MANIFEST"))
    end)

    it("says whether a plain database is encrypted in info, text and JSON", function()
        local path = new_dir(finally)
        assert(assert(stoat.open(path)):close())
        local status, out = stoat_cmd("info " .. q(path))
        assert.are.equal(0, status)
        assert.matches("\nencrypted    no\n", out, 1, true)
        status, out = stoat_cmd("info --json " .. q(path))
        assert.are.equal(0, status)
        assert.matches('"encrypted": false', out, 1, true)
    end)

    it("rekey needs both keys", function()
        local dir = h.scratch(finally)
        local old = key_file(dir, "old", KEY)
        local status, _, err = stoat_cmd("rekey " .. q(dir .. "/db") .. " --key-file " .. q(old))
        assert.are.equal(2, status)
        assert.matches("missing --new-key-file", err, 1, true)
        status, _, err = stoat_cmd("rekey " .. q(dir .. "/db") .. " --new-key-file " .. q(old))
        assert.are.equal(2, status)
        assert.matches("missing --key-file OLD", err, 1, true)
    end)

    it_c("opens an encrypted database with --key-file (hex or raw) and STOAT_KEY_FILE",
         function()
        local dir = h.scratch(finally)
        local db = dir .. "/db"
        local hexf, rawf = key_file(dir, "hex", KEY), key_file(dir, "raw", KEY, true)
        local status, _, err = stoat_cmd("load " .. q(db) .. " --format tsv --key-file "
                                         .. q(hexf) .. " <<'EOF'\nk1\tv1\nk2\tv2\nEOF")
        assert.are.equal(0, status, err)
        assert.is_true(exists(db .. "/KEYREGISTRY"))
        local out
        status, out = stoat_cmd("get " .. q(db) .. " k1 --key-file " .. q(rawf))
        assert.are.equal(0, status)
        assert.are.equal("v1", out)
        status = stoat_cmd("set " .. q(db) .. " k3 v3", "STOAT_KEY_FILE=" .. q(hexf))
        assert.are.equal(0, status)
        status, out = stoat_cmd("scan " .. q(db), "STOAT_KEY_FILE=" .. q(rawf))
        assert.are.equal(0, status)
        assert.are.equal("k1\tv1\nk2\tv2\nk3\tv3\n", out)
        -- --key-file wins over STOAT_KEY_FILE
        local wrong = key_file(dir, "wrong", KEY2)
        status, out = stoat_cmd("get " .. q(db) .. " k3 --key-file " .. q(hexf),
                                "STOAT_KEY_FILE=" .. q(wrong))
        assert.are.equal(0, status)
        assert.are.equal("v3", out)
        -- and Lua opens it with the same key only
        local d = assert(stoat.open(db, { encryption_key = KEY }))
        assert.are.equal("v2", d:get("k2"))
        assert(d:close())
    end)

    it_c("says which key is missing or wrong, without quoting any", function()
        local dir = h.scratch(finally)
        local enc = make_encrypted(finally)
        local plain = new_dir(finally)
        assert(assert(stoat.open(plain)):close())
        local wrong = key_file(dir, "wrong", KEY2)
        local right = key_file(dir, "right", KEY)
        local cases = {
            { "get " .. q(enc) .. " a", "give its key with --key-file" },
            { "get " .. q(enc) .. " a --key-file " .. q(wrong), "the key came from --key-file "
              .. wrong },
            { "get " .. q(plain) .. " a", "the key came from STOAT_KEY_FILE=" .. right
              .. ": drop --key-file", "STOAT_KEY_FILE=" .. q(right) },
            { "info " .. q(enc), "give its key with --key-file" },
        }
        for _, c in ipairs(cases) do
            local status, out, err = stoat_cmd(c[1], c[3])
            assert.are.equal(1, status, c[1])
            assert.are.equal("", out)
            assert.matches("bad key: ", err, 1, true)
            assert.matches(c[2], err, 1, true)
            for _, key in ipairs({ KEY, KEY2 }) do
                assert.is_nil(err:find(keyfile.hex(key), 1, true))
                assert.is_nil(err:find(key:sub(1, 8), 1, true))
            end
        end
    end)

    it_c("info says an encrypted database is encrypted", function()
        local dir = h.scratch(finally)
        local enc = make_encrypted(finally)
        local kf = key_file(dir, "k", KEY)
        local status, out = stoat_cmd("info " .. q(enc) .. " --key-file " .. q(kf))
        assert.are.equal(0, status)
        assert.matches("\nencrypted    yes", out, 1, true)
        status, out = stoat_cmd("info --json --count " .. q(enc) .. " --key-file " .. q(kf))
        assert.are.equal(0, status)
        assert.matches('"encrypted": true', out, 1, true)
        assert.matches('"count": 3', out, 1, true)
    end)

    it_c("rekey: afterwards only the new key file opens the database", function()
        local dir = h.scratch(finally)
        local enc = make_encrypted(finally)
        local old, new = key_file(dir, "old", KEY), key_file(dir, "new", KEY3, true)
        local status, out, err = stoat_cmd("rekey " .. q(enc) .. " --key-file " .. q(new)
                                           .. " --new-key-file " .. q(old))
        assert.are.equal(1, status)
        assert.are.equal("", out)
        assert.matches("bad key", err, 1, true)
        status, out, err = stoat_cmd("rekey " .. q(enc) .. " --new-key-file " .. q(new),
                                     "STOAT_KEY_FILE=" .. q(old))
        assert.are.equal(0, status, err)
        assert.are.equal("", out)
        status = stoat_cmd("get " .. q(enc) .. " a --key-file " .. q(old))
        assert.are.equal(1, status)
        status, out = stoat_cmd("get " .. q(enc) .. " a --key-file " .. q(new))
        assert.are.equal(0, status)
        assert.are.equal("1", out)
    end)

    it_c("backs up an encrypted database sealed: no key or value in the file, restore needs "
         .. "the key and makes an encrypted copy, full then incremental", function()
        local dir = h.scratch(finally)
        local enc = make_encrypted(finally)
        local kf, wrong = key_file(dir, "k", KEY), key_file(dir, "wrong", KEY2)
        local full, incr = dir .. "/full.bak", dir .. "/incr.bak"
        local status, _, err = stoat_cmd("backup " .. q(enc) .. " --key-file " .. q(kf)
                                         .. " > " .. q(full))
        assert.are.equal(0, status, err)
        assert.matches("backup: sealed full backup up to version", err, 1, true)
        local version = tonumber(err:match("%-%-since (%d+)"))
        status, _, err = stoat_cmd("set " .. q(enc) .. " marker:c SECRETVALUE3 --key-file "
                                   .. q(kf))
        assert.are.equal(0, status, err)
        status, _, err = stoat_cmd("delete " .. q(enc) .. " b --key-file " .. q(kf))
        assert.are.equal(0, status, err)
        status, _, err = stoat_cmd(("backup -q %s --since %d --output %s --key-file %s")
                                   :format(q(enc), version, q(incr), q(kf)))
        assert.are.equal(0, status, err)
        for _, file in ipairs({ full, incr }) do
            local bytes = slurp(file)
            assert.is_nil(bytes:find(("v"):rep(64), 1, true))
            assert.is_nil(bytes:find("SECRETVALUE", 1, true))
            assert.is_nil(bytes:find("marker:", 1, true))
        end
        -- no key, a wrong key: refused before the target is created
        local copy = dir .. "/copy"
        local out
        status, out, err = stoat_cmd("restore -q " .. q(copy) .. " " .. q(full) .. " " .. q(incr))
        assert.are.equal(1, status)
        assert.are.equal("", out)
        assert.matches("bad key: .*full%.bak is a sealed backup.*%-%-key%-file", err)
        assert.is_false(exists(copy))
        status, _, err = stoat_cmd("restore -q " .. q(copy) .. " " .. q(full),
                                   "STOAT_KEY_FILE=" .. q(wrong))
        assert.are.equal(1, status)
        assert.matches("bad key: .*wrong key or altered stream", err)
        assert.matches("the key came from STOAT_KEY_FILE=" .. wrong, err, 1, true)
        assert.is_nil(err:find(keyfile.hex(KEY2), 1, true))
        assert.is_false(exists(copy))
        -- the right one
        status, _, err = stoat_cmd("restore -q " .. q(copy) .. " " .. q(full) .. " " .. q(incr),
                                   "STOAT_KEY_FILE=" .. q(kf))
        assert.are.equal(0, status, err)
        assert.is_true(exists(copy .. "/KEYREGISTRY"))
        assert.is_nil(stoat.open(copy))
        local db = assert(stoat.open(copy, { encryption_key = KEY }))
        assert.are.equal("1", db:get("a"))
        assert.is_nil(db:get("b"))
        assert.are.equal(("v"):rep(4096), db:get("big"))
        assert.are.equal("SECRETVALUE3", db:get("marker:c"))
        assert(db:close())
        -- info: checked and counted with the key; the clear header without
        status, out = stoat_cmd("info " .. q(incr) .. " --key-file " .. q(kf))
        assert.are.equal(0, status)
        assert.matches("stream format 2", out, 1, true)
        assert.matches("\nsealed       yes (every frame after the header)\n", out, 1, true)
        assert.matches("\nentries      2 (and 3 live keys listed)\n", out, 1, true)
        status, out = stoat_cmd("info " .. q(incr))
        assert.are.equal(0, status)
        assert.matches("kind         incremental, since version " .. version, out, 1, true)
        assert.matches("sealed       yes: give its key", out, 1, true)
        status, out = stoat_cmd("info --json " .. q(incr))
        assert.are.equal(0, status)
        assert.matches('"sealed": true', out, 1, true)
        assert.matches('"checked": false', out, 1, true)
    end)

    it_c("backs up an encrypted database in the clear with --plaintext, on purpose", function()
        local dir = h.scratch(finally)
        local enc = make_encrypted(finally)
        local kf = key_file(dir, "k", KEY)
        local bak = dir .. "/full.bak"
        local status, _, err = stoat_cmd("backup " .. q(enc) .. " --plaintext --key-file "
                                         .. q(kf) .. " > " .. q(bak))
        assert.are.equal(0, status, err)
        assert.matches("backup: plaintext full backup", err, 1, true)
        assert.truthy(slurp(bak):find(("v"):rep(64), 1, true))
        -- restores with no key at all, into a plain database
        local plain = dir .. "/plain"
        status, _, err = stoat_cmd("restore -q " .. q(plain) .. " " .. q(bak))
        assert.are.equal(0, status, err)
        assert.is_false(exists(plain .. "/KEYREGISTRY"))
        local db = assert(stoat.open(plain))
        assert_contents(db)
        assert(db:close())
        -- and with a key, into an encrypted one
        local copy = dir .. "/copy"
        status, _, err = stoat_cmd("restore -q " .. q(copy) .. " " .. q(bak),
                                   "STOAT_KEY_FILE=" .. q(kf))
        assert.are.equal(0, status, err)
        assert.is_true(exists(copy .. "/KEYREGISTRY"))
        db = assert(stoat.open(copy, { encryption_key = KEY }))
        assert_contents(db)
        assert(db:close())
    end)

    it_c("restores a sealed backup into a plain database only with --plaintext", function()
        local dir = h.scratch(finally)
        local enc = make_encrypted(finally)
        local kf = key_file(dir, "k", KEY)
        local bak = dir .. "/full.bak"
        assert.are.equal(0, (stoat_cmd("backup -q " .. q(enc) .. " --output " .. q(bak)
                                       .. " --key-file " .. q(kf))))
        local plain = new_dir(finally)
        assert(assert(stoat.open(plain)):close())
        local status, _, err = stoat_cmd("restore -q " .. q(plain) .. " " .. q(bak)
                                         .. " --key-file " .. q(kf))
        assert.are.equal(1, status)
        assert.matches("is not encrypted and .* is a sealed backup: restoring it would write its "
                       .. "keys and values in the clear; pass %-%-plaintext", err)
        local db = assert(stoat.open(plain))
        assert.is_nil(db:get("a"))
        assert(db:close())
        status, _, err = stoat_cmd("restore -q " .. q(plain) .. " " .. q(bak)
                                   .. " --plaintext --key-file " .. q(kf))
        assert.are.equal(0, status, err)
        assert.is_false(exists(plain .. "/KEYREGISTRY"))
        db = assert(stoat.open(plain))
        assert_contents(db)
        assert(db:close())
        -- --plaintext into an encrypted database is refused
        local enc2 = make_encrypted(finally)
        status, _, err = stoat_cmd("restore -q " .. q(enc2) .. " " .. q(bak)
                                   .. " --plaintext --key-file " .. q(kf))
        assert.are.equal(1, status)
        assert.matches("is encrypted: --plaintext restores into a database that is not", err, 1,
                       true)
    end)

    it_c("verify checks an encrypted database and reports a changed table block", function()
        local dir = h.scratch(finally)
        local path = new_dir(finally)
        local db = assert(stoat.open(path, with(nil, { encryption_key = KEY,
                                                       compression = "none" })))
        for i = 1, 2000 do assert(db:set(("key%06d"):format(i), ("value%06d"):format(i))) end
        assert(db:flatten())
        assert(db:close())
        local kf = key_file(dir, "k", KEY)
        local status, _, err = stoat_cmd("verify " .. q(path) .. " --key-file " .. q(kf))
        assert.are.equal(0, status, err)
        -- flip one byte in the middle of a table
        local sst
        for name in pairs(dir_files(path)) do
            if name:match("%.sst$") then sst = path .. "/" .. name end
        end
        local bytes = assert(slurp(sst))
        local at = math.floor(#bytes / 3)
        spit(sst, bytes:sub(1, at - 1) .. string.char(bit.bxor(bytes:byte(at), 1))
                  .. bytes:sub(at + 1))
        local out
        status, out, err = stoat_cmd("verify " .. q(path) .. " --key-file " .. q(kf))
        assert.are.equal(1, status)
        assert.matches(sst:match("[^/]+$"), out, 1, true)
        assert.matches("is damaged", err, 1, true)
    end)
end)
