-- The `stoat` command (bin/stoat), run as a process on real databases, and
-- its text codecs.

local stoat = require "stoat"
local text = require "stoat.cli.text"
local backup = require "stoat.backup"
local h = require "helpers"

local q = h.shell_quote

local function slurp(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end

-- Runs `bin/stoat ARGS` (a shell fragment, so redirections work); returns
-- the exit status, stdout and stderr.
local tmp_out, tmp_err
local function stoat_cmd(args, env)
    if tmp_out == nil then
        local dir = h.tmpdir()
        tmp_out, tmp_err = dir .. "/out", dir .. "/err"
    end
    -- A group, so that redirections inside args (to a backup file, from a
    -- here-document) apply to the command and the rest lands in out/err.
    local cmd = ("{ %s bin/stoat %s\n} > %s 2> %s"):format(env or "", args, q(tmp_out),
                                                          q(tmp_err))
    local ok, how, code = os.execute(cmd)
    local status
    if type(ok) == "number" then status = ok / 256 else status = code end
    if how == "signal" then status = 128 + code end
    return status, slurp(tmp_out), slurp(tmp_err)
end

teardown(function()
    if tmp_out then h.rmrf(tmp_out:match("^(.*)/out$")) end
end)

-- A closed database at a fresh path, filled by fill(db).
local function make_db(finally, fill, opts)
    local path = h.scratch(finally) .. "/db"
    local o = { memtable_size = 1024 * 1024 }
    for k, v in pairs(opts or {}) do o[k] = v end
    local db = assert(stoat.open(path, o))
    if fill then fill(db) end
    assert(db:close())
    return path
end

-- Every live entry of the database at path: key -> { value, meta } (and
-- expiry when with_expiry).
local function contents(path, with_expiry)
    local db = assert(stoat.open(path, { create_if_missing = false }))
    local t = {}
    assert(db:view(function(txn)
        backup.walk(txn, {}, function(k, v, _, exp, meta)
            t[k] = { v, meta, with_expiry and exp or nil }
        end)
        return true
    end))
    db:close()
    return t
end

local function random_bytes(n)
    local b = {}
    for i = 1, n do b[i] = string.char(math.random(0, 255)) end
    return table.concat(b)
end

describe("stoat command", function()
    describe("help and arguments", function()
        it("lists every command with `stoat help` and exits 0", function()
            local status, out = stoat_cmd("help")
            assert.are.equal(0, status)
            for _, name in ipairs({ "info", "get", "set", "delete", "scan", "gc", "flatten",
                                    "dump", "load", "backup", "restore", "run", "verify",
                                    "keygen", "rekey" }) do
                assert.matches("\n  " .. name .. " ", out, 1, true)
            end
        end)

        it("explains each command and its flags with COMMAND --help", function()
            for name, def in pairs(require("stoat.cli").COMMANDS) do
                local status, out = stoat_cmd(name .. " --help")
                assert.are.equal(0, status, name)
                assert.matches("usage: stoat " .. name, out, 1, true)
                for flag in pairs(def.flags) do
                    assert.matches("--" .. flag:gsub("_", "-"), out, 1, true)
                end
            end
        end)

        it("prints usage and exits 2 on bad arguments", function()
            local cases = { "", "frobnicate /tmp/x", "info", "info --bogus /tmp/x",
                            "dump /tmp/x --format xml", "get /tmp/x", "get /tmp/x a b",
                            "backup /tmp/x --since abc", "restore /tmp/x", "scan /tmp/x --limit",
                            "help nosuchcommand" }
            for _, args in ipairs(cases) do
                local status, out, err = stoat_cmd(args)
                assert.are.equal(2, status, args)
                assert.are.equal("", out, args)
                assert.matches("usage: stoat", err, 1, true)
            end
        end)

        it("says clearly when the directory is missing or holds no database", function()
            local dir = h.scratch(finally)
            local status, _, err = stoat_cmd("info " .. q(dir .. "/nope"))
            assert.are.equal(1, status)
            assert.matches("no database at .*/nope: the directory does not exist", err)
            status, _, err = stoat_cmd("get " .. q(dir) .. " k")
            assert.are.equal(1, status)
            assert.matches("holds no stoat database", err, 1, true)
            -- and it created nothing
            status = stoat_cmd("info " .. q(dir .. "/nope"))
            assert.are.equal(1, status)
        end)

        it("says clearly when another process holds the database exclusively", function()
            local path = make_db(finally, function(db) assert(db:set("k", "v")) end)
            local db = assert(stoat.open(path, { multi_process = false }))
            finally(function() db:close() end)
            for _, args in ipairs({ "info %s", "get %s k", "set %s k v2", "backup %s -q" }) do
                local status, out, err = stoat_cmd(args:format(q(path)))
                assert.are.equal(1, status, args)
                assert.are.equal("", out)
                assert.matches("is locked by another process", err, 1, true)
            end
            assert.are.equal("v", db:get("k"))
        end)
    end)

    describe("inspection", function()
        it("gets, sets, deletes and scans keys, escaped where binary", function()
            local path = make_db(finally)
            local p = q(path)
            assert.are.equal(0, (stoat_cmd("set " .. p .. " user:1 alice")))
            assert.are.equal(0, (stoat_cmd("set " .. p .. " --escaped 'bin\\x00' 'v\\t\\xff'")))
            assert.are.equal(0, (stoat_cmd("set " .. p .. " --ttl 3600 --meta 9 user:2 bob")))
            local status, out = stoat_cmd("get " .. p .. " user:1")
            assert.are.equal(0, status)
            assert.are.equal("alice", out)
            status, out = stoat_cmd("get " .. p .. " --escaped 'bin\\x00'")
            assert.are.equal(0, status)
            assert.are.equal("v\t\255", out)
            status, out = stoat_cmd("scan " .. p)
            assert.are.equal(0, status)
            assert.are.equal("bin\\x00\tv\\t\\xff\nuser:1\talice\nuser:2\tbob\n", out)
            status, out = stoat_cmd("scan " .. p .. " --prefix user: --reverse --keys-only")
            assert.are.equal(0, status)
            assert.are.equal("user:2\nuser:1\n", out)
            assert.are.equal(0, (stoat_cmd("delete " .. p .. " user:1")))
            local err
            status, out, err = stoat_cmd("get " .. p .. " user:1")
            assert.are.equal(1, status)
            assert.are.equal("", out)
            assert.matches("not found", err)
            assert.are.equal("bob", contents(path)["user:2"][1])
            assert.are.equal(9, contents(path)["user:2"][2])
            status, out = stoat_cmd("set " .. p .. " fromstdin - < " .. q("bin/stoat"))
            assert.are.equal(0, status, out)
            assert.are.equal(slurp("bin/stoat"), contents(path).fromstdin[1])
        end)

        it("shows levels, value-log files and versions with info, as JSON too", function()
            local path = make_db(finally, function(db)
                for i = 1, 300 do assert(db:set(("k%04d"):format(i), ("x"):rep(2000))) end
                for i = 1, 150 do assert(db:set(("k%04d"):format(i), "small")) end
                assert(db:flatten())
            end, { value_log_compression = "none" })  -- raw sizes below
            local status, out = stoat_cmd("info --json --count " .. q(path))
            assert.are.equal(0, status, out)
            local info = assert(text.json_decode(out))
            assert.are.equal(2, info.format.manifest) -- MANIFEST format 2 (issue 16)
            assert.are.equal(450, info.version)
            assert.are.equal(300, info.keys.count)
            assert.is_true(info.keys.estimate >= 300 and info.keys.estimate <= 450)
            assert.is_true(#info.levels >= 2)
            local tables = 0
            for _, l in ipairs(info.levels) do tables = tables + l.tables end
            assert.is_true(tables >= 1)
            assert.is_true(#info.vlog_files >= 1)
            assert.is_true(info.vlog_files[1].bytes > 300 * 2000)
            assert.is_number(info.vlog_files[1].garbage_share)
            assert.is_number(info.options.memtable_size)
            status, out = stoat_cmd("info " .. q(path))
            assert.are.equal(0, status)
            assert.matches("version      450", out, 1, true)
            assert.matches("keys         about %d+", out)
            assert.matches("000001.vlog", out, 1, true)
        end)

        it("runs gc and flatten", function()
            local path = make_db(finally, function(db)
                for i = 1, 60 do assert(db:set("k" .. i, ("x"):rep(40000))) end
                for i = 1, 60 do assert(db:delete("k" .. i)) end
            end, { value_log_file_size = 1024 * 1024, auto_gc = false,
                   value_log_compression = "none" })    -- several files, as written
            local status, _, err = stoat_cmd("flatten " .. q(path))
            assert.are.equal(0, status, err)
            local out
            assert.matches("flatten: done", err)
            status, out = stoat_cmd("gc --ratio 0.3 " .. q(path))
            assert.are.equal(0, status)
            local n = tonumber(out:match("reclaimed (%d+) bytes"))
            assert.is_true(n > 0, out)
        end)

        it("runs a script with db and its arguments, its number as exit status", function()
            local path = make_db(finally)
            local script = h.scratch(finally) .. "/s.lua"
            local f = assert(io.open(script, "w"))
            f:write([[
                local a, b = ...
                assert(db:set(a, b))
                assert(arg[1] == a and stoat.version)
                io.write(db:get(a))
                return tonumber(arg[3])
            ]])
            f:close()
            local status, out = stoat_cmd(("run %s %s key value --x 3"):format(q(path), q(script)))
            assert.are.equal(0, status)
            assert.are.equal("value", out)
            status = stoat_cmd(("run %s %s k v 7"):format(q(path), q(script)))
            assert.are.equal(7, status)
        end)
    end)

    describe("dump and load", function()
        local function fill_binary(db)
            math.randomseed(14)
            assert(db:set("plain", "text with\ttab and\nnewline"))
            assert(db:set("utf8:\u{e9}\u{1F600}", "caf\u{e9}"))
            assert(db:set("\0\255\254", "\0"))
            assert(db:set("empty", ""))
            assert(db:set("ttl", "soon", { ttl = 3600, meta = 200 }))
            assert(db:set("big", random_bytes(3000)))
            for _ = 1, 200 do
                assert(db:set(random_bytes(math.random(1, 40)), random_bytes(math.random(0, 200))))
            end
        end

        for _, fmt in ipairs({ "jsonl", "tsv" }) do
            it("round-trips binary keys, values, meta and expiry as " .. fmt, function()
                local src = make_db(finally, fill_binary)
                local file = h.scratch(finally) .. "/dump." .. fmt
                local status, _, err = stoat_cmd(("dump %s --format %s > %s"):format(q(src), fmt,
                                                                                     q(file)))
                assert.are.equal(0, status, err)
                if fmt == "jsonl" then
                    assert.matches('"key_b64"', slurp(file), 1, true)
                    assert.matches('{"key":"empty","value":""}', slurp(file), 1, true)
                end
                local dst = h.scratch(finally) .. "/loaded"
                status, _, err = stoat_cmd(("load -q %s --format %s < %s"):format(q(dst), fmt,
                                                                                 q(file)))
                assert.are.equal(0, status, err)
                assert.are.equal("", err)
                local a, b = contents(src, true), contents(dst, true)
                assert.are.same(h.sorted_keys(a), h.sorted_keys(b))
                for k, v in pairs(a) do
                    assert.are.equal(v[1], b[k][1])
                    assert.are.equal(v[2], b[k][2])
                    assert.is_true(b[k][3] >= v[3] and b[k][3] - v[3] <= 1000) -- ms: never earlier
                end
            end)
        end

        it("names the line of malformed input and exits 1", function()
            local dst = h.scratch(finally) .. "/db"
            local status, _, err = stoat_cmd(("load %s <<'EOF'\n%s\n%s\nEOF")
                :format(q(dst), '{"key":"a","value":"1"}', '{"key":"b",'))
            assert.are.equal(1, status)
            assert.matches("line 2", err)
        end)

        it("prints plain progress lines when not on a terminal, none with --quiet", function()
            local src = make_db(finally, function(db)
                for i = 1, 500 do assert(db:set("k" .. i, "v")) end
            end)
            local status, _, err = stoat_cmd("dump " .. q(src), "STOAT_PROGRESS_INTERVAL=0")
            assert.are.equal(0, status)
            assert.matches("dump +100%% +500/500 keys", err)
            assert.is_nil(err:find("\r", 1, true))
            status, _, err = stoat_cmd("dump --quiet " .. q(src), "STOAT_PROGRESS_INTERVAL=0")
            assert.are.equal(0, status)
            assert.are.equal("", err)
        end)
    end)

    describe("backup and restore", function()
        it("restores a full backup and a chain of incrementals to the source's content",
           function()
            local src = make_db(finally, function(db)
                for i = 1, 400 do assert(db:set(("k%04d"):format(i), ("v%d"):rep(i % 7 + 1))) end
                assert(db:set("big", ("B"):rep(5000)))
            end)
            local dir = h.scratch(finally)
            local files = {}
            local function take(since)
                local file = ("%s/b%d.bak"):format(dir, #files)
                local args = since and ("--since %d "):format(since) or ""
                local status, _, err = stoat_cmd(("backup %s%s > %s"):format(args, q(src),
                                                                             q(file)))
                assert.are.equal(0, status, err)
                files[#files + 1] = file
                return tonumber(err:match("%-%-since (%d+)")), err
            end
            local v = take(nil)
            local steps = {
                function(db) -- overwrite, delete, add
                    for i = 1, 400, 3 do assert(db:set(("k%04d"):format(i), "new")) end
                    for i = 2, 400, 5 do assert(db:delete(("k%04d"):format(i))) end
                    assert(db:set("added", "1"))
                end,
                function(db) -- deletes whose tombstones compaction then drops
                    for i = 3, 400, 4 do assert(db:delete(("k%04d"):format(i))) end
                    assert(db:delete("big"))
                    assert(db:flatten())
                end,
                function() end, -- nothing changed
                function(db)
                    assert(db:set("big", ("C"):rep(6000)))
                    assert(db:set("ttl", "x", { ttl = 1000, meta = 3 }))
                end,
            }
            for _, step in ipairs(steps) do
                local db = assert(stoat.open(src))
                step(db)
                assert(db:close())
                v = take(v)
            end
            local dst = dir .. "/restored"
            local args = {}
            for i, f in ipairs(files) do args[i] = q(f) end
            local status, _, err = stoat_cmd(("restore %s %s"):format(q(dst),
                                                                     table.concat(args, " ")))
            assert.are.equal(0, status, err)
            assert.matches("is at version " .. v, err, 1, true)
            local a, b = contents(src), contents(dst)
            assert.are.same(a, b)
            assert.is_nil(b.k0003)
            assert.are.equal("new", b.k0004[1])
            assert.are.equal(("C"):rep(6000), b.big[1])
            assert.are.equal(3, b.ttl[2])
            -- Applied one by one, in separate runs, the chain gives the same.
            local dst2 = dir .. "/one-by-one"
            for _, f in ipairs(files) do
                status, _, err = stoat_cmd(("restore -q %s %s"):format(q(dst2), q(f)))
                assert.are.equal(0, status, err)
            end
            assert.are.same(a, contents(dst2))
        end)

        it("refuses a gap, an overlap, or an incremental first, writing nothing", function()
            local src = make_db(finally, function(db) assert(db:set("a", "1")) end)
            local dir = h.scratch(finally)
            local function take(name, since)
                local status, _, err = stoat_cmd(("backup -q %s %s > %s"):format(
                    since and "--since " .. since or "", q(src), q(dir .. "/" .. name)))
                assert.are.equal(0, status, err)
            end
            take("full")
            local function write(k)
                local db = assert(stoat.open(src)); assert(db:set(k, "x")); db:close()
            end
            write("b")
            take("inc1", 1)
            write("c")
            take("inc2", 2)
            local dst = dir .. "/dst"
            local status, _, err = stoat_cmd(("restore %s %s %s"):format(q(dst),
                                             q(dir .. "/full"), q(dir .. "/inc2")))
            assert.are.equal(1, status)
            assert.matches("gap in the chain: .*inc2 holds changes since version 2, but the "
                           .. "database is at version 1", err)
            assert.are.same({}, contents(dst))
            status, _, err = stoat_cmd(("restore %s %s"):format(q(dst), q(dir .. "/inc1")))
            assert.are.equal(1, status)
            assert.matches("restore a full backup first", err, 1, true)
            assert.are.equal(0, (stoat_cmd(("restore -q %s %s %s"):format(q(dst),
                                            q(dir .. "/full"), q(dir .. "/inc1")))))
            status, _, err = stoat_cmd(("restore %s %s"):format(q(dst), q(dir .. "/inc1")))
            assert.are.equal(1, status)
            assert.matches("overlaps", err)
            status, _, err = stoat_cmd(("restore %s %s"):format(q(dst), q(dir .. "/full")))
            assert.are.equal(1, status)
            assert.matches("is a full backup, but the database already holds a restore", err)
            assert.are.equal(0, (stoat_cmd(("restore -q %s %s"):format(q(dst),
                                            q(dir .. "/inc2")))))
            assert.are.same(contents(src), contents(dst))
        end)

        it("refuses a truncated or damaged backup before writing anything", function()
            local src = make_db(finally, function(db)
                for i = 1, 100 do assert(db:set("k" .. i, ("v"):rep(100))) end
            end)
            local dir = h.scratch(finally)
            local file = dir .. "/full"
            assert.are.equal(0, (stoat_cmd(("backup -q %s > %s"):format(q(src), q(file)))))
            local bytes = slurp(file)
            local function try(name, data, pattern)
                local f = assert(io.open(dir .. "/" .. name, "wb"))
                f:write(data)
                f:close()
                local dst = dir .. "/dst-" .. name
                local status, _, err = stoat_cmd(("restore %s %s"):format(q(dst),
                                                 q(dir .. "/" .. name)))
                assert.are.equal(1, status, name)
                assert.matches(pattern, err)
                -- refused before DIR was created (a bad header), or it is empty
                local made = io.open(dst .. "/MANIFEST", "rb")
                if made then
                    made:close()
                    assert.are.same({}, contents(dst))
                end
            end
            try("truncated", bytes:sub(1, #bytes - 40), "truncated")
            try("cut-frame", bytes:sub(1, 200), "truncated frame")
            local pos = 300
            try("flipped", bytes:sub(1, pos - 1) .. string.char((bytes:byte(pos) + 1) % 256)
                           .. bytes:sub(pos + 1), "checksum mismatch")
            try("garbage", "hello world, not a backup at all", "not a stoat backup")
            local status, out = stoat_cmd("info " .. q(file))
            assert.are.equal(0, status)
            assert.matches("kind         full, since version 0, up to version 100", out, 1, true)
        end)
    end)
end)

describe("stoat.cli.text", function()
    it("base64 round-trips every length and matches RFC 4648", function()
        assert.are.equal("Zm9vYmFy", text.base64_encode("foobar"))
        assert.are.equal("Zm9vYg==", text.base64_encode("foob"))
        assert.are.equal("Zm8=", text.base64_encode("fo"))
        for n = 0, 70 do
            local s = random_bytes(n)
            assert.are.equal(s, text.base64_decode(text.base64_encode(s)))
        end
        assert.is_nil(text.base64_decode("Zm9=Yg=="))
        assert.is_nil(text.base64_decode("Zm9"))
    end)

    it("tells valid UTF-8 from other bytes", function()
        assert.is_true(text.is_utf8("caf\u{e9} \u{1F600}"))
        assert.is_false(text.is_utf8("\255"))
        assert.is_false(text.is_utf8("\192\128")) -- overlong
        assert.is_false(text.is_utf8("\237\160\128")) -- surrogate
    end)

    it("decodes what it encodes, escapes and surrogate pairs included", function()
        local v = { a = "x\"\\\n\1", b = 12, c = { 1, 2, 3 }, d = true, e = "\u{1F600}" }
        assert.are.same(v, text.json_decode(text.json_encode(v)))
        assert.are.equal("\u{1F600}", text.json_decode('"\\ud83d\\ude00"'))
        assert.is_nil(text.json_decode('{"a":}'))
    end)

    it("escapes TSV fields so any bytes survive", function()
        for _ = 1, 50 do
            local s = random_bytes(math.random(0, 60))
            local e = text.tsv_escape(s)
            assert.is_nil(e:find("[\t\n\r]"))
            assert.are.equal(s, text.tsv_unescape(e))
        end
        assert.is_nil(text.tsv_unescape("\\q"))
    end)

    it("computes the same CRC-32 with zlib and in Lua", function()
        assert.are.equal(0xCBF43926, backup.crc32_lua("123456789"))
        assert.are.equal(0xCBF43926, backup.crc32("123456789"))
        local s = random_bytes(1000)
        assert.are.equal(backup.crc32_lua(s), backup.crc32(s))
        assert.are.equal(backup.crc32(s), backup.crc32(s:sub(501), backup.crc32(s:sub(1, 500))))
    end)
end)
