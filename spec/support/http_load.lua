-- spec/support/http_load.lua URL PATH TAG SECONDS: an HTTP load for the
-- nginx specs. For SECONDS, sends GET PATH?k=load:TAG:<i> one request per
-- connection (Connection: close), one at a time, and prints a line per
-- request: "ok <key>" (200), "fail <key> <status> <body>" (an HTTP error:
-- the server answered, so a failure of the handler) or "dropped <key>
-- <error>" (no answer: the connection broke, e.g. its worker was killed),
-- then "done". Needs luasocket (Debian lua-socket).
local socket = require "socket"

local url, path, tag, seconds = arg[1], arg[2], arg[3], tonumber(arg[4])
local host, port = url:match("^http://([^:/]+):(%d+)")
local deadline = socket.gettime() + seconds
io.stdout:setvbuf("line")

local i = 0
while socket.gettime() < deadline do
    i = i + 1
    local key = ("load:%s:%06d"):format(tag, i)
    local c = socket.tcp()
    c:settimeout(10)
    local ok, err = c:connect(host, tonumber(port))
    local status, body
    if ok then
        ok, err = c:send(("GET %s?k=%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n")
                         :format(path, key, host))
    end
    if ok then
        local all
        all, err = c:receive("*a")
        if all and all ~= "" then
            status = tonumber(all:match("^HTTP/%S+ (%d+)"))
            body = all:match("\r\n\r\n(.*)$") or ""
        else
            err = err or "empty reply"
        end
    end
    c:close()
    if status == 200 then
        print("ok " .. key)
    elseif status then
        print(("fail %s %d %s"):format(key, status, (body or ""):gsub("%s+", " ")))
    else
        print(("dropped %s %s"):format(key, tostring(err)))
    end
end
print("done")
