-- Remove a user from the live view (merged into another profile, or erased).
-- KEYS[1] user record, KEYS[2] features, KEYS[3] alias pointer
-- ARGV[1] members key prefix, ARGV[2] profile key, ARGV[3] profile it was merged into ('' = erased:
-- no pointer either),
-- ARGV[4] health key prefix (the user's r, k, a leave their segment's sums)
local cur = redis.call('HMGET', KEYS[1], 's', 'r', 'k', 'a')
if cur[1] then
  redis.call('SREM', ARGV[1] .. cur[1], ARGV[2])
  local key = ARGV[4] .. cur[1]
  if redis.call('SCARD', ARGV[1] .. cur[1]) == 0 then
    redis.call('DEL', key)  -- the last member left: no sums to keep
  else
    for i, field in ipairs({'r', 'k', 'a'}) do
      local x = tonumber(cur[i + 1]) or 0
      if x ~= 0 and redis.call('HINCRBY', key, field, -x) == 0 then
        redis.call('HDEL', key, field)  -- as a rebuild from scratch would have it
      end
    end
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3]) else redis.call('DEL', KEYS[3]) end  -- erased: no pointer either
return 1
