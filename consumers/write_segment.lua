-- Write a user's segment unless Redis already holds a newer one.
-- KEYS[1] user record (hash), KEYS[2] features (string)
-- ARGV: seq, model version, segment, updated_at ms, scores, members key prefix, profile key,
--       features json ('' = leave as is)
-- Order is (seq, version): seq is the profile's logical clock (it only grows), the model
-- version breaks ties when only the model changed. Returns 1 written, 0 stale.
local cur = redis.call('HMGET', KEYS[1], 'q', 'v', 's')
local q, v = tonumber(ARGV[1]), tonumber(ARGV[2])
if cur[1] then
  local cq, cv = tonumber(cur[1]), tonumber(cur[2])
  if cq > q or (cq == q and cv > v) then return 0 end
end
redis.call('HSET', KEYS[1], 'q', ARGV[1], 'v', ARGV[2], 's', ARGV[3], 't', ARGV[4], 'c', ARGV[5])
if cur[3] and cur[3] ~= ARGV[3] then redis.call('SREM', ARGV[6] .. cur[3], ARGV[7]) end
redis.call('SADD', ARGV[6] .. ARGV[3], ARGV[7])
if ARGV[8] ~= '' then redis.call('SET', KEYS[2], ARGV[8]) end
return 1
