//! The Lua scripts of the operations Redis has no single command for. Each touches one key,
//! so each runs on a cluster too.

use redis::Script;
use std::sync::LazyLock;

/// `INCRBY`, and `PEXPIRE` only when this call created the counter (a fixed window, as the
/// [`Backend::incr`] contract says), atomically.
pub(crate) static INCR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local created = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v",
    )
});

/// Delete the lock only if it still holds our token: a holder whose lock expired and was taken
/// by another never deletes the new holder's lock.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0",
    )
});

/// Renew the lock only if it still holds our token and has an expiry (every lock has one, set
/// by `acquire_lock`; a value stored without a ttl is not a lock): `PEXPIRE` in the same
/// script, so a lease that expired, or was taken by another, is never revived.
pub(crate) static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('PTTL', KEYS[1]) >= 0 then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});

/// A sliding-window log: at most `ARGV[1]` members in any `ARGV[2]` ms, on the server's clock.
/// Drops the members older than the window, admits (adds `ARGV[3]`, returns -1) while fewer
/// than the limit remain, else returns the ms until the oldest leaves the window.
pub(crate) static RATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], period)
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #oldest == 0 then return period end
return math.max(tonumber(oldest[2]) + period - now, 1)",
    )
});
