-- Write a user's segment unless Redis already holds a newer one.
-- KEYS[1] user record (hash), KEYS[2] features (string)
-- ARGV: seq, model version, segment, updated_at ms, scores, members key prefix, profile key,
--       features json ('' = leave as is), health key prefix, revenue cents, converted (0/1),
--       ad cost cents
-- Order is (seq, version): seq is the profile's logical clock (it only grows), the model
-- version breaks ties when only the model changed. Returns 1 written, 0 stale.
-- The user's revenue, conversion and ad cost are kept in the hash (r, k, a) so the
-- per-segment sums (hash health:{segment}, same fields) move with the user exactly.
local cur = redis.call('HMGET', KEYS[1], 'q', 'v', 's', 'r', 'k', 'a')
local q, v = tonumber(ARGV[1]), tonumber(ARGV[2])
if cur[1] then
  local cq, cv = tonumber(cur[1]), tonumber(cur[2])
  if cq > q or (cq == q and cv > v) then return 0 end
end
redis.call('HSET', KEYS[1], 'q', ARGV[1], 'v', ARGV[2], 's', ARGV[3], 't', ARGV[4], 'c', ARGV[5],
  'r', ARGV[10], 'k', ARGV[11], 'a', ARGV[12])
-- a sum back at 0 is removed, so the hash is the same as one rebuilt from scratch
local function add(segment, r, k, a)
  local key = ARGV[9] .. segment
  for field, x in pairs({r = r, k = k, a = a}) do
    if x ~= 0 and redis.call('HINCRBY', key, field, x) == 0 then
      redis.call('HDEL', key, field)
    end
  end
end
local r, k, a = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local old_r, old_k, old_a = tonumber(cur[4]) or 0, tonumber(cur[5]) or 0, tonumber(cur[6]) or 0
if cur[3] == ARGV[3] then
  add(ARGV[3], r - old_r, k - old_k, a - old_a)
else
  if cur[3] then
    redis.call('SREM', ARGV[6] .. cur[3], ARGV[7])
    if redis.call('SCARD', ARGV[6] .. cur[3]) == 0 then
      redis.call('DEL', ARGV[9] .. cur[3])  -- the last member left: no sums to keep
    else
      add(cur[3], -old_r, -old_k, -old_a)
    end
  end
  redis.call('SADD', ARGV[6] .. ARGV[3], ARGV[7])
  add(ARGV[3], r, k, a)
end
if ARGV[8] ~= '' then redis.call('SET', KEYS[2], ARGV[8]) end
return 1
