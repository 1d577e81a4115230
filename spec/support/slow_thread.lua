-- slow_thread: stoat.thread with a sync that first sleeps 1.5 s, so that
-- the nginx specs can see that a durable write's sync does not hold up
-- its worker (run on an nginx pool thread through stoat.ngx's
-- thread_module option).
local ffi = require "ffi"
local thread = require "stoat.thread"

pcall(ffi.cdef, "int usleep(unsigned int usec);")

local M = {}

function M.sync(addr)
    ffi.C.usleep(1500000)
    return thread.sync(addr)
end

return M
