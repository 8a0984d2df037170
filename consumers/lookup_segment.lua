-- Resolve users to their live segment records in one call (read-only: EVAL_RO/EVALSHA_RO).
-- ARGV[1] user record key prefix, ARGV[2] alias pointer key prefix, ARGV[3] max reads per
-- candidate (merge hops), then one group per user: a count n and n candidate profile keys,
-- in the order they are tried ("u:<id>", then "a:<id>").
-- Returns one entry per group: {} when no candidate holds a record, else
-- {profile the record is stored under, s, c, v, t, q} (the hash fields the API answers with).
-- A candidate with no record is followed through its alias pointer (a merged profile),
-- at most ARGV[3] reads, never to a profile already visited.
-- The keys are built here from the prefixes (a standalone Redis, not a cluster); the ACL
-- of the calling user still applies to every read.
local user_prefix, alias_prefix = ARGV[1], ARGV[2]
local max_reads = tonumber(ARGV[3])

local function find(profile)
  local seen = {}
  for _ = 1, max_reads do
    seen[profile] = true
    local h = redis.call('HMGET', user_prefix .. profile, 's', 'c', 'v', 't', 'q')
    if h[1] then
      return {profile, h[1], h[2], h[3], h[4], h[5]}
    end
    local target = redis.call('GET', alias_prefix .. profile)
    if not target or seen[target] then
      return nil
    end
    profile = target
  end
  return nil
end

local out = {}
local i = 4
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local hit = {}
  for j = i + 1, i + n do
    local found = find(ARGV[j])
    if found then
      hit = found
      break
    end
  end
  out[#out + 1] = hit
  i = i + n + 1
end
return out
