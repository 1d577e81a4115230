-- stoat.codec: values as Lua data through a codec.
--
--   stoat.open(dir, { codec = "json" })                 -- lua-cjson
--   stoat.open(dir, { codec = { encode = f, decode = g } })
--
-- Without a codec, values are Lua strings, stored as they are (the
-- default). With one, every value written (set, add, replace, incr) goes
-- through encode, which must return a string, and every value read (get,
-- get_meta, pairs) through decode. Keys are always strings. A codec's
-- own errors (cjson refusing a function, or a stored value that is not
-- JSON) are raised as they are. No state: resolve() returns the codec
-- table the database object keeps.

local base = require "stoat.base"

local raise = base.raise
local type, tostring, pcall, require = type, tostring, pcall, require

local M = {}

local json

-- The codec of codec = spec (nil: raw strings, returned as nil).
function M.resolve(spec, level)
    if spec == nil then
        return nil
    end
    if spec == "json" then
        if json == nil then
            local ok, cjson = pcall(require, "cjson")
            if not ok then
                raise(level + 1, "open: codec 'json' needs lua-cjson (Debian: apt-get install "
                      .. "lua-cjson): %s", tostring(cjson))
            end
            cjson = cjson.new()
            json = { encode = cjson.encode, decode = cjson.decode, name = "json" }
        end
        return json
    end
    if type(spec) ~= "table" or type(spec.encode) ~= "function"
            or type(spec.decode) ~= "function" then
        raise(level + 1, "open: option 'codec' must be \"json\" or a table with encode and "
              .. "decode functions (got %s)", tostring(spec))
    end
    return { encode = spec.encode, decode = spec.decode }
end

-- The encoded form of value (not nil); raises when encode returns no string.
function M.encode(codec, value, what, level)
    local s = codec.encode(value)
    if type(s) ~= "string" then
        raise(level + 1, "%s: the codec's encode returned a %s, not a string", what, type(s))
    end
    return s
end

return M
