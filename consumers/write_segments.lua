-- Write a batch of users' segments, each unless Redis already holds a newer one.
-- KEYS: per user i (from 1), KEYS[2i-1] user record (hash), KEYS[2i] features (string)
-- ARGV[1] members key prefix, ARGV[2] health key prefix, then per user ARGV[2 + i]: a
--   JSON array of 10 strings: seq, model version, segment, updated_at ms, scores,
--   profile key, features json ('' = leave as is), revenue cents, converted (0/1), ad
--   cost cents (one argument a user: the client encodes 3 values a user, not 12)
-- Order is (seq, version): seq is the profile's logical clock (it only grows), the model
-- version breaks ties when only the model changed. Returns per user 1 written, 0 stale.
-- The user's revenue, conversion and ad cost are kept in the hash (r, k, a) so the
-- per-segment sums (hash health:{segment}, same fields) move with the user exactly.
local members, health = ARGV[1], ARGV[2]

-- a sum back at 0 is removed, so the hash is the same as one rebuilt from scratch
local function add(segment, r, k, a)
  local key = health .. segment
  for field, x in pairs({r = r, k = k, a = a}) do
    if x ~= 0 and redis.call('HINCRBY', key, field, x) == 0 then
      redis.call('HDEL', key, field)
    end
  end
end

local function write(user, features, u)
  local seq, version, segment, profile = u[1], u[2], u[3], u[6]
  local cur = redis.call('HMGET', user, 'q', 'v', 's', 'r', 'k', 'a')
  local q, v = tonumber(seq), tonumber(version)
  if cur[1] then
    local cq, cv = tonumber(cur[1]), tonumber(cur[2])
    if cq > q or (cq == q and cv > v) then return 0 end
  end
  redis.call('HSET', user, 'q', seq, 'v', version, 's', segment, 't', u[4],
    'c', u[5], 'r', u[8], 'k', u[9], 'a', u[10])
  local r, k, a = tonumber(u[8]), tonumber(u[9]), tonumber(u[10])
  local old_r, old_k, old_a = tonumber(cur[4]) or 0, tonumber(cur[5]) or 0, tonumber(cur[6]) or 0
  if cur[3] == segment then
    add(segment, r - old_r, k - old_k, a - old_a)
  else
    if cur[3] then
      redis.call('SREM', members .. cur[3], profile)
      if redis.call('SCARD', members .. cur[3]) == 0 then
        redis.call('DEL', health .. cur[3])  -- the last member left: no sums to keep
      else
        add(cur[3], -old_r, -old_k, -old_a)
      end
    end
    redis.call('SADD', members .. segment, profile)
    add(segment, r, k, a)
  end
  if u[7] ~= '' then redis.call('SET', features, u[7]) end
  return 1
end

local out = {}
for i = 1, #KEYS / 2 do
  out[i] = write(KEYS[2 * i - 1], KEYS[2 * i], cjson.decode(ARGV[2 + i]))
end
return out
