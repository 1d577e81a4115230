#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus, core/fuzz/corpus/<target>/, from files
of a small real database (made through the Lua module, so `make` first).

Run from the repository root: python3 core/fuzz/make_corpus.py. The seeds
are small (a few KiB); each file-level seed starts with the target's mode
byte (see each fuzz_*.c): 0 for the bytes as they are, 1 where the target
then makes checksums right.
"""
import os, random, shutil, struct, subprocess, tempfile

ROOT = os.getcwd()
OUT = os.path.join(ROOT, "core/fuzz/corpus")

LUA = r'''
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local stoat = require "stoat"
local dir, keep_wal = arg[1], arg[2] == "wal"
local db = assert(stoat.open(dir, { memtable_size = 64 * 1024, compression = "none",
    value_threshold = 64, value_log_file_size = 1024 * 1024, auto_gc = false,
    block_size = 512 }))
for round = 1, 2 do
    for i = 1, 40 do
        local v = (i % 3 == 0) and string.rep(string.char(96 + round), 100) or ("v" .. round .. "_" .. i)
        assert(db:set(string.format("key%03d", i), v))
    end
    if round == 1 and not keep_wal then assert(db:flush()) end
end
assert(db:delete("key007"))
if keep_wal then os.exit(0, false) end   -- no close: the WAL stays
assert(db:flatten())
db:close()
'''

def varint(b, i):
    v = s = 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7f) << s; s += 7
        if c < 0x80:
            return v, i

def block_tail(blk):
    """(number of restarts, offset of the restart array, bucket count):
    a format 3 data block may end in a hash index (FORMAT.md)."""
    n = struct.unpack_from("<I", blk, len(blk) - 4)[0]
    if n & 0x80000000:
        n &= 0x7fffffff
        nb = struct.unpack_from("<H", blk, len(blk) - 6)[0]
        return n, len(blk) - 6 - nb - 4 * n, nb
    return n, len(blk) - 4 - 4 * n, 0

def strip_hash_index(blk):
    """The same block as formats 1 and 2 write it: no hash index."""
    n, end, nb = block_tail(blk)
    return blk[:end + 4 * n] + struct.pack("<I", n)

def block_values(blk):
    n, end, _ = block_tail(blk)
    i, vals = 0, []
    while i < end:
        _, i = varint(blk, i); nn, i = varint(blk, i); vl, i = varint(blk, i)
        i += nn
        vals.append(blk[i:i + vl]); i += vl
    return vals

def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def make_db(kind):
    d = tempfile.mkdtemp(prefix="stoat-corpus-")
    with open(d + "/make.lua", "w") as f:
        f.write(LUA)
    subprocess.run(["luajit", d + "/make.lua", d + "/db", kind], check=True)
    return d

def main():
    shutil.rmtree(OUT, ignore_errors=True)
    tmp = make_db("flat")
    db = tmp + "/db"
    files = sorted(os.listdir(db))
    sst = [f for f in files if f.endswith(".sst")][0]
    table = open(os.path.join(db, sst), "rb").read()
    footer = table[-68:]
    fh = struct.unpack_from("<QQQQQQ", footer, 0)
    flt, props, idx = (fh[0], fh[1]), (fh[2], fh[3]), (fh[4], fh[5])
    index = table[idx[0]:idx[0] + idx[1]]
    put("fuzz_sst_footer", "footer", b"\x00" + footer)
    put("fuzz_sst_footer", "footer-fix", b"\x01" + footer)
    put("fuzz_sst_index", "index", index)
    h0 = block_values(index)[0]
    off, i = varint(h0, 0); size, _ = varint(h0, i)
    put("fuzz_sst_block", "data", table[off:off + size])   # with its hash index
    put("fuzz_sst_block", "data-plain", strip_hash_index(table[off:off + size]))
    put("fuzz_sst_block", "empty", b"\x00\x00\x00\x00\x01\x00\x00\x00")
    if flt[1]:
        put("fuzz_sst_filter", "filter", table[flt[0]:flt[0] + flt[1]])
    put("fuzz_sst_filter", "keys", b"key001key002key003")
    put("fuzz_sst_props", "props", table[props[0]:props[0] + props[1]])
    put("fuzz_sst_table", "table", b"\x00" + table)
    put("fuzz_sst_table", "table-fix", b"\x01" + table)
    put("fuzz_manifest", "manifest", b"\x00" + open(db + "/MANIFEST", "rb").read())
    put("fuzz_manifest", "manifest-rw", b"\x02" + open(db + "/MANIFEST", "rb").read())
    if os.path.exists(db + "/DISCARD"):
        put("fuzz_discard", "discard", b"\x00" + open(db + "/DISCARD", "rb").read())
    put("fuzz_discard", "entries-fix", b"\x01" + bytes(16) + struct.pack("<IQIQ", 1, 5, 3, 9) + bytes(8))
    vlogs = [open(os.path.join(db, f), "rb").read() for f in files if f.endswith(".vlog")]
    v = vlogs[0][:4096]
    put("fuzz_vlog", "newest", b"\x00\x00" + v)
    put("fuzz_vlog", "sealed", b"\x02\xff" + v)
    put("fuzz_vlog", "halves-fix", b"\x03\x80" + v[:2048] + v[:2048])
    shutil.rmtree(tmp)
    tmp = make_db("wal")
    wals = [f for f in sorted(os.listdir(tmp + "/db")) if f.endswith(".wal")]
    w = open(os.path.join(tmp + "/db", wals[-1]), "rb").read()[:6000]
    put("fuzz_wal", "wal", b"\x00" + w)
    put("fuzz_wal", "records", b"\x01" + bytes([20]) + w[28:48] + bytes([8]) + w[60:68])
    shutil.rmtree(tmp)
    rnd = random.Random(16)
    for n in range(4):
        put("fuzz_db_model", "ops%d" % n, bytes(rnd.randrange(256) for _ in range(60 + 40 * n)))
    put("fuzz_db_model", "snapshot-gc", bytes([7 + 12 * 3, 0, 200, 1, 150, 10, 9, 7, 10, 6, 5 + 12, 11, 6]))

if __name__ == "__main__":
    main()
