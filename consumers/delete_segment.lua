-- Remove a user from the live view (merged into another profile, or erased).
-- KEYS[1] user record, KEYS[2] features; ARGV[1] members key prefix, ARGV[2] profile key
local s = redis.call('HGET', KEYS[1], 's')
if s then redis.call('SREM', ARGV[1] .. s, ARGV[2]) end
return redis.call('DEL', KEYS[1], KEYS[2])
