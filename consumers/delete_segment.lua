-- Remove a user from the live view (merged into another profile, or erased).
-- KEYS[1] user record, KEYS[2] features, KEYS[3] alias pointer
-- ARGV[1] members key prefix, ARGV[2] profile key, ARGV[3] profile it was merged into ('' = none)
local s = redis.call('HGET', KEYS[1], 's')
if s then redis.call('SREM', ARGV[1] .. s, ARGV[2]) end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3]) end
return 1
