-- stoat.cli.progress: progress of a long command on stderr.
--
--   local p = progress.new{ label = "dump", unit = "keys", quiet = false }
--   p:total(1000)         -- optional: enables percent and ETA
--   p:add(1, bytes)       -- per item; (0, bytes) counts bytes only
--   p:finish()            -- the last line
--
-- On a terminal: one line redrawn in place at most 10 times a second
-- ("dump  45%  4500/10000 keys  12.3k keys/s  1.2 MB/s  ETA 0:05").
-- Otherwise: a plain line every `interval` seconds (default 2, or
-- $STOAT_PROGRESS_INTERVAL) and one at the end. quiet: nothing at all.
-- When the total is in bytes (restore, load from a file), pass
-- by_bytes = true: percent and ETA then follow the bytes.

local ffi = require "ffi"

local format = string.format
local floor = math.floor

local M = {}

pcall(ffi.cdef, [[
typedef struct { long sec; long nsec; } stoat_cli_timespec;
int clock_gettime(int clk, stoat_cli_timespec *ts);
int isatty(int fd);
]])

local ts = ffi.new("stoat_cli_timespec")
local have_clock = pcall(function() return ffi.C.clock_gettime end)

-- Seconds, monotonic where the system allows.
function M.now()
    if have_clock and ffi.C.clock_gettime(1, ts) == 0 then
        return tonumber(ts.sec) + tonumber(ts.nsec) * 1e-9
    end
    return os.time()
end
local now = M.now

function M.isatty(fd)
    local ok, r = pcall(function() return ffi.C.isatty(fd) end)
    return ok and r == 1
end

local function human(n)
    if n >= 1e9 then return format("%.1fG", n / 1e9) end
    if n >= 1e6 then return format("%.1fM", n / 1e6) end
    if n >= 1e4 then return format("%.1fk", n / 1e3) end
    return format("%d", n)
end
M.human = human

local function clock(s)
    s = floor(s + 0.5)
    if s >= 3600 then
        return format("%d:%02d:%02d", floor(s / 3600), floor(s / 60) % 60, s % 60)
    end
    return format("%d:%02d", floor(s / 60), s % 60)
end

local P = {}
P.__index = P

function M.new(o)
    local tty = o.tty
    if tty == nil then tty = M.isatty(2) end
    local interval = o.interval or tonumber(os.getenv("STOAT_PROGRESS_INTERVAL") or "") or 2
    local t = now()
    return setmetatable({ label = o.label, unit = o.unit or "keys", quiet = o.quiet,
                          tty = tty, interval = tty and 0.1 or interval, by_bytes = o.by_bytes,
                          out = o.out or io.stderr, n = 0, bytes = 0, of = nil,
                          start = t, last = t, drawn = false }, P)
end

function P:total(n)
    self.of = n
end

function P:line()
    local el = now() - self.start
    local done = self.by_bytes and self.bytes or self.n
    local parts = { self.label }
    if self.of and self.of > 0 then
        parts[#parts + 1] = format("%3d%%", floor(math.min(done / self.of, 1) * 100))
    end
    if self.by_bytes then
        parts[#parts + 1] = format("%s %s", human(self.n), self.unit)
        parts[#parts + 1] = self.of and format("%sB/%sB", human(self.bytes), human(self.of))
                            or format("%sB", human(self.bytes))
    else
        parts[#parts + 1] = self.of and format("%s/%s %s", human(self.n), human(self.of),
                                               self.unit)
                            or format("%s %s", human(self.n), self.unit)
    end
    if el > 0 then
        parts[#parts + 1] = format("%s %s/s", human(self.n / el), self.unit)
        if self.bytes > 0 then parts[#parts + 1] = format("%sB/s", human(self.bytes / el)) end
        if self.of and done > 0 and done < self.of then
            parts[#parts + 1] = "ETA " .. clock(el * (self.of - done) / done)
        end
    end
    parts[#parts + 1] = "elapsed " .. clock(el)
    return table.concat(parts, "  ")
end

function P:draw(final)
    if self.tty then
        self.out:write("\r\27[K", self:line(), final and "\n" or "")
    else
        self.out:write(self:line(), "\n")
    end
    self.out:flush()
    self.drawn = true
end

function P:add(n, bytes)
    self.n = self.n + n
    self.bytes = self.bytes + (bytes or 0)
    if self.quiet then return end
    local t = now()
    if t - self.last >= self.interval then
        self.last = t
        self:draw(false)
    end
end

function P:finish()
    if self.quiet then return end
    self:draw(true)
end

return M
