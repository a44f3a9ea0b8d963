-- Wakes a pacer (`api.store.pacing`) blocked on the store's `pacing:wake` list, `p` the
-- store's prefix: one entry at most, however many steps wake it before it looks.
local function wake_pacer(p)
  redis.call('LPUSH', p .. ':pacing:wake', '1')
  redis.call('LTRIM', p .. ':pacing:wake', 0, 0)
end
