//! [`Counters`] shared by several gateway nodes through Redis: the same
//! meaning as [`LocalCounters`](super::counters::LocalCounters) (see the
//! [`counters`](super::counters) module doc), checked by the same
//! conformance suite (`tests/it/counters.rs`).
//!
//! # How
//!
//! Each admission is ONE Lua script (EVALSHA, falling back to EVAL when the
//! server has not seen the script): Redis runs a script alone, so checking
//! every concurrency, rate and budget slot and then taking them all is
//! atomic across every node, which is what makes "all or nothing" and
//! "exactly N reservations fit" hold cluster-wide. Each settlement is one
//! script too. A budget counter Redis does not hold yet makes the admission
//! script answer "missing" without taking anything; this node then reads
//! [`SpendSource::spent_since`] and creates the counter only if it is still
//! absent (two nodes racing end up with one value, the first one written),
//! and runs the admission again.
//!
//! # Keys
//!
//! Every key is `{prefix}:v1:{kind}:{counter}` (prefix `keygate` by
//! default). `v1` is the layout version of the scripts: a gateway whose
//! scripts store counters differently uses `v2`, so an old and a new gateway
//! version can run side by side during a rolling upgrade without reading
//! each other's layouts (each enforces its own counters while both run).
//!
//! - `conc:{counter}`: sorted set of leases scored by expiry (Unix ms);
//!   expired leases are removed before counting. The key expires with its
//!   newest lease.
//! - `rate:{counter}`: the GCRA theoretical arrival time in µs; it expires
//!   (plus a margin) when the slot would be full again, which reads the same
//!   as a missing key.
//! - `budget:{counter}`: hash of `spent`, `reserved` (the sum of live
//!   reservations) and `r:{lease}` (each reservation's amount). It expires a
//!   day after its window ends (`until_ms`), never for an open-ended budget.
//! - `leases:{counter}`: sorted set of the budget's reservation leases scored
//!   by expiry; expired ones are dropped, and their amounts taken out of
//!   `reserved`, before a budget is checked. It expires with its budget
//!   hash, never before: the hash's `reserved` includes those amounts, so the
//!   set must live as long as the hash to let them be swept.
//!
//! Money is exact: amounts (nanos, up to `i64`) are handled in the scripts
//! as two integer limbs (`amount = hi * 10^9 + lo`), since Lua numbers are
//! doubles and lose units above 2^53 (about 9 million dollars). Rate times
//! are µs since the epoch, exact in a double until the year 2255; the µs
//! increments (`ceil(cost * 60_000_000 / L)`) are computed here in integer
//! arithmetic ([`gcra_increment`]) and so are the returned states
//! ([`gcra_state`]), so the scripts only add and compare.
//!
//! # Deployment
//!
//! - Single Redis node, or a primary behind Sentinel / a managed failover
//!   address. Redis Cluster is NOT supported: one admission touches
//!   counters of a key, its project and its organisation, which are different
//!   subjects and cannot share one hash slot, and a script may only touch
//!   keys of one slot. A failover to a replica may lose the last writes
//!   (Redis replicates asynchronously): reservations made just before it are
//!   forgotten until the request settles.
//! - Time is each node's `now_ms` passed in, not Redis's clock: nodes need
//!   synchronised clocks (NTP). A node whose clock runs ahead expires leases
//!   and refills rates early by its skew.
//! - The URL may carry a password: it is taken as a [`SecretString`] and
//!   never logged or put into an error message.

use super::counters::{
    gcra_increment, gcra_state, Admission, AdmitError, Admitted, BudgetSlot, CounterError,
    Counters, Refusal, Settled, Settlement, SpendSource, MINUTE_US,
};
use super::limits::Nanos;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

/// The key prefix when none is configured.
pub const DEFAULT_PREFIX: &str = "keygate";

/// Version of the key layout the scripts read and write; part of every key.
pub const LAYOUT_VERSION: &str = "v1";

/// A budget counter is kept this long after its window ends, for
/// settlements of requests still in flight at the boundary.
const BUDGET_GRACE_MS: i64 = 24 * 60 * 60 * 1000;

/// A rate key outlives the moment its slot is full again by this much, so a
/// node whose clock lags a little still finds it.
const RATE_TTL_MARGIN_MS: i64 = 10_000;

/// The most a script adds to a rate's time at once (about 31 years):
/// keeps every time a script handles exact in a double. Only absurd
/// corrections (billions of units on a rate of a few per minute) reach it.
const MAX_INCREMENT_US: i128 = 1_000_000_000_000_000;

/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one script may take before the request fails closed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often an admission reloads missing budget counters before giving up
/// (each round creates them; only a counter deleted again at once, e.g. by
/// an operator flushing Redis, needs a second round).
const LOAD_ROUNDS: usize = 3;

/// Amounts in the scripts: two limbs so nanos stay exact (see module doc).
const LUA_MONEY: &str = r"
local B = 1000000000
local function parse(s)
  local neg = false
  if string.sub(s, 1, 1) == '-' then neg = true; s = string.sub(s, 2) end
  local hi = tonumber(string.sub(s, 1, -10)) or 0
  local lo = tonumber(string.sub(s, -9)) or 0
  if neg then
    if lo > 0 then return {-hi - 1, B - lo} end
    return {-hi, 0}
  end
  return {hi, lo}
end
local function add(x, y)
  local hi, lo = x[1] + y[1], x[2] + y[2]
  if lo >= B then return {hi + 1, lo - B} end
  return {hi, lo}
end
local function neg(x)
  if x[2] > 0 then return {-x[1] - 1, B - x[2]} end
  return {-x[1], 0}
end
local function cmp(x, y)
  if x[1] ~= y[1] then if x[1] < y[1] then return -1 end return 1 end
  if x[2] ~= y[2] then if x[2] < y[2] then return -1 end return 1 end
  return 0
end
local function str(x)
  if x[1] < 0 then
    local m = neg(x)
    if m[1] == 0 then return string.format('-%d', m[2]) end
    return string.format('-%d%09d', m[1], m[2])
  end
  if x[1] == 0 then return string.format('%d', x[2]) end
  return string.format('%d%09d', x[1], x[2])
end
local function field(hash, name)
  return parse(redis.call('HGET', hash, name) or '0')
end
";

/// Admission. KEYS: `nc` concurrency sets, `nr` rate keys, `nb` budget
/// hashes, `nb` reservation sets. ARGV: now_ms, now_us, lease, lease_ttl_ms,
/// reserve, nc, nr, nb, rate TTL margin, then per concurrency slot its max,
/// per rate slot (increment_us, fits 0/1), per budget slot its limit.
/// Answers `{'ok', tat...}`, `{'concurrency', i}`,
/// `{'rate', i}` (never fits) or `{'rate', i, tat}`, `{'budget', i, spent,
/// reserved}`, or `{'missing', i...}` (0-based indices).
const LUA_ADMIT: &str = r"
local now_ms, now_us = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease, ttl, reserve = ARGV[3], tonumber(ARGV[4]), parse(ARGV[5])
local nc, nr, nb = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local margin = tonumber(ARGV[9])
local a = 10
for i = 1, nc do
  local key = KEYS[i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
  if redis.call('ZCARD', key) >= tonumber(ARGV[a + i - 1]) then
    return {'concurrency', i - 1}
  end
end
a = a + nc
local tats = {}
for i = 1, nr do
  local inc, fits = tonumber(ARGV[a]), ARGV[a + 1]
  a = a + 2
  if fits ~= '1' then return {'rate', i - 1} end
  local tat = tonumber(redis.call('GET', KEYS[nc + i]) or now_us)
  if tat < now_us then tat = now_us end
  local new = tat + inc
  if new - now_us > 60000000 then return {'rate', i - 1, new} end
  tats[i] = new
end
local hashes, sets = nc + nr, nc + nr + nb
local missing = {'missing'}
for i = 1, nb do
  if redis.call('EXISTS', KEYS[hashes + i]) == 0 then missing[#missing + 1] = i - 1 end
end
if #missing > 1 then return missing end
for i = 1, nb do
  local hash, set = KEYS[hashes + i], KEYS[sets + i]
  local gone = redis.call('ZRANGEBYSCORE', set, '-inf', now_ms)
  if #gone > 0 then
    local reserved = field(hash, 'reserved')
    for _, old in ipairs(gone) do
      local amount = redis.call('HGET', hash, 'r:' .. old)
      if amount then
        reserved = add(reserved, neg(parse(amount)))
        redis.call('HDEL', hash, 'r:' .. old)
      end
    end
    redis.call('HSET', hash, 'reserved', str(reserved))
    redis.call('ZREMRANGEBYSCORE', set, '-inf', now_ms)
  end
  local spent, reserved = field(hash, 'spent'), field(hash, 'reserved')
  local limit = parse(ARGV[a + i - 1])
  local held = add(spent, reserved)
  if cmp(held, limit) >= 0 or cmp(add(held, reserve), limit) > 0 then
    return {'budget', i - 1, str(spent), str(reserved)}
  end
end
for i = 1, nc do
  local key = KEYS[i]
  redis.call('ZADD', key, now_ms + ttl, lease)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', key, math.max(tonumber(newest[2]) - now_ms, 1))
end
local result = {'ok'}
for i = 1, nr do
  local key, new = KEYS[nc + i], tats[i]
  if new > now_us then
    redis.call('SET', key, string.format('%.0f', new), 'PX', math.ceil((new - now_us) / 1000) + margin)
  else
    redis.call('DEL', key)
  end
  result[#result + 1] = new
end
for i = 1, nb do
  local hash, set = KEYS[hashes + i], KEYS[sets + i]
  local name = 'r:' .. lease
  local mine, reserved = field(hash, name), field(hash, 'reserved')
  redis.call('HSET', hash, name, str(add(mine, reserve)), 'reserved', str(add(reserved, reserve)))
  redis.call('ZADD', set, now_ms + ttl, lease)
  local left = redis.call('PTTL', hash)
  if left > 0 then redis.call('PEXPIRE', set, left) end
end
return result
";

/// Creating budget counters. KEYS: pairs (budget hash, reservation set).
/// ARGV: per pair (spent, ms until it expires or ''). A counter that exists is left
/// alone (SET NX: the first node's value wins); a new one starts with no
/// reservations, so leftovers of an earlier, expired incarnation are
/// dropped.
const LUA_CREATE: &str = r"
for i = 1, #KEYS / 2 do
  local hash, set = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('EXISTS', hash) == 0 then
    redis.call('DEL', set)
    redis.call('HSET', hash, 'spent', ARGV[2 * i - 1], 'reserved', '0')
    if ARGV[2 * i] ~= '' then redis.call('PEXPIRE', hash, ARGV[2 * i]) end
  end
end
return 0
";

/// Settlement. KEYS: `nc` concurrency sets, `nr` rate keys, `nb` budget
/// hashes, `nb` reservation sets. ARGV: now_ms, now_us, lease, spent, nc, nr,
/// nb, rate TTL margin, then per rate slot its increment_us. Answers each
/// budget's spent, '' where the counter is gone.
const LUA_SETTLE: &str = r"
local now_ms, now_us = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease, spent_now = ARGV[3], parse(ARGV[4])
local nc, nr, nb = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local margin = tonumber(ARGV[8])
for i = 1, nc do redis.call('ZREM', KEYS[i], lease) end
for i = 1, nr do
  local key = KEYS[nc + i]
  local tat = tonumber(redis.call('GET', key) or now_us)
  if tat < now_us then tat = now_us end
  local new = tat + tonumber(ARGV[8 + i])
  -- Giving units back never moves the slot below full (a missing key).
  if new > now_us then
    redis.call('SET', key, string.format('%.0f', new), 'PX', math.ceil((new - now_us) / 1000) + margin)
  else
    redis.call('DEL', key)
  end
end
local hashes, sets = nc + nr, nc + nr + nb
local result = {}
for i = 1, nb do
  local hash, set = KEYS[hashes + i], KEYS[sets + i]
  if redis.call('EXISTS', hash) == 1 then
    local name = 'r:' .. lease
    local held = redis.call('HGET', hash, name)
    if held then
      redis.call('HSET', hash, 'reserved', str(add(field(hash, 'reserved'), neg(parse(held)))))
      redis.call('HDEL', hash, name)
    end
    local spent = add(field(hash, 'spent'), spent_now)
    redis.call('HSET', hash, 'spent', str(spent))
    result[i] = str(spent)
  else
    result[i] = ''
  end
  redis.call('ZREM', set, lease)
end
return result
";

/// Key names: `{prefix}:{LAYOUT_VERSION}:{kind}:{counter}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLayout {
    /// `{prefix}:{LAYOUT_VERSION}:`.
    head: String,
}

impl KeyLayout {
    /// Keys under `prefix` (empty: [`DEFAULT_PREFIX`]).
    pub fn new(prefix: &str) -> KeyLayout {
        let prefix = if prefix.is_empty() {
            DEFAULT_PREFIX
        } else {
            prefix
        };
        KeyLayout {
            head: format!("{prefix}:{LAYOUT_VERSION}:"),
        }
    }

    fn key(&self, kind: &str, counter: &str) -> String {
        format!("{}{kind}:{counter}", self.head)
    }

    /// The sorted set of leases holding a concurrency slot.
    pub fn concurrency(&self, counter: &str) -> String {
        self.key("conc", counter)
    }

    /// A rate slot's theoretical arrival time.
    pub fn rate(&self, counter: &str) -> String {
        self.key("rate", counter)
    }

    /// A budget's hash (`spent`, `reserved`, `r:{lease}`).
    pub fn budget(&self, counter: &str) -> String {
        self.key("budget", counter)
    }

    /// A budget's reservation leases by expiry.
    pub fn reservations(&self, counter: &str) -> String {
        self.key("leases", counter)
    }
}

/// Counters in Redis, shared by every node that uses the same Redis and
/// prefix (see the module doc for the layout and its limits).
pub struct RedisCounters {
    /// One multiplexed connection; reconnects by itself.
    connection: ConnectionManager,
    spend: Arc<dyn SpendSource>,
    keys: KeyLayout,
    admit: Script,
    create: Script,
    settle: Script,
    /// Budget counters being loaded from the ledger: one load per counter
    /// on this node (another node may load it too; the first write wins).
    loading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RedisCounters {
    // By hand: the connection's own Debug shows its connection details.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("keys", &self.keys)
            .field("spend", &self.spend)
            .finish_non_exhaustive()
    }
}

/// A Redis failure as a counter error. Redis's own messages name neither
/// the URL nor the password; `secret` (the URL) is scrubbed all the same in
/// case a future client version echoes it.
fn backend_error(error: &redis::RedisError, secret: Option<&SecretString>) -> CounterError {
    let mut message = format!("redis: {error}");
    if let Some(url) = secret {
        message = scrub(&message, url.expose_secret());
    }
    CounterError(message)
}

/// `message` without the URL or its credentials.
fn scrub(message: &str, url: &str) -> String {
    let mut out = message.to_string();
    let mut secrets = vec![url.to_string()];
    if let Some((_, rest)) = url.split_once("://") {
        if let Some((userinfo, _)) = rest.rsplit_once('@') {
            secrets.push(userinfo.to_string());
            if let Some((_, password)) = userinfo.split_once(':') {
                secrets.push(password.to_string());
            }
        }
    }
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "[redacted]");
    }
    out
}

fn unexpected(what: &str) -> CounterError {
    CounterError(format!("redis: unexpected script answer ({what})"))
}

/// The script answer's `index`-th item as text.
fn text(items: &[Value], index: usize) -> Result<String, CounterError> {
    match items.get(index) {
        Some(Value::BulkString(bytes)) => {
            String::from_utf8(bytes.clone()).map_err(|_| unexpected("text is not UTF-8"))
        }
        Some(Value::SimpleString(s)) => Ok(s.clone()),
        _ => Err(unexpected("text expected")),
    }
}

/// The script answer's `index`-th item as an integer.
fn integer(items: &[Value], index: usize) -> Result<i64, CounterError> {
    match items.get(index) {
        Some(Value::Int(n)) => Ok(*n),
        _ => Err(unexpected("integer expected")),
    }
}

fn index(items: &[Value], at: usize) -> Result<usize, CounterError> {
    usize::try_from(integer(items, at)?).map_err(|_| unexpected("negative index"))
}

fn nanos(text: &str) -> Result<Nanos, CounterError> {
    text.parse().map_err(|_| unexpected("amount"))
}

/// A GCRA increment as the scripts take it (bounded, see
/// [`MAX_INCREMENT_US`]).
fn increment(cost: i64, per_minute: u64) -> String {
    gcra_increment(cost, per_minute)
        .clamp(-MAX_INCREMENT_US, MAX_INCREMENT_US)
        .to_string()
}

/// In how many ms a budget counter may be forgotten: a day after its window
/// ends (or a day from now, for a window already over, so a late admission
/// still finds the counter it just created); `''`: never. Relative, so
/// Redis counts it on its own clock and a node's clock skew cannot make a
/// counter vanish at once.
fn expire_in(slot: &BudgetSlot, now_ms: i64) -> String {
    slot.until_ms.map_or_else(String::new, |until| {
        until
            .max(now_ms)
            .saturating_add(BUDGET_GRACE_MS)
            .saturating_sub(now_ms)
            .to_string()
    })
}

/// What the admission script said.
enum AdmitAnswer {
    Admitted(Admitted),
    Refused(Refusal),
    /// Budget slots whose counters Redis does not hold.
    Missing(Vec<usize>),
}

impl RedisCounters {
    /// Connect to Redis at `url` (`redis://`, `rediss://` for TLS; it may
    /// hold a password). Keys go under `prefix` (empty: [`DEFAULT_PREFIX`]);
    /// budgets start from `spend`.
    pub async fn connect(
        url: &SecretString,
        spend: Arc<dyn SpendSource>,
        prefix: &str,
    ) -> Result<RedisCounters, CounterError> {
        let failed = |e: redis::RedisError| backend_error(&e, Some(url));
        let client = redis::Client::open(url.expose_secret()).map_err(failed)?;
        // One plain connection first: a wrong password, an unreachable
        // server or one that refuses scripting fails startup at once (the
        // manager would retry for seconds), and the scripts get loaded.
        let mut check = client
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT)),
            )
            .await
            .map_err(failed)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let counters = RedisCounters {
            connection: ConnectionManager::new_lazy_with_config(client, config).map_err(failed)?,
            spend,
            keys: KeyLayout::new(prefix),
            admit: Script::new(&format!("{LUA_MONEY}{LUA_ADMIT}")),
            create: Script::new(LUA_CREATE),
            settle: Script::new(&format!("{LUA_MONEY}{LUA_SETTLE}")),
            loading: tokio::sync::Mutex::new(()),
        };
        for script in [&counters.admit, &counters.create, &counters.settle] {
            script
                .prepare_invoke()
                .load_async(&mut check)
                .await
                .map_err(failed)?;
        }
        Ok(counters)
    }

    /// The key names this instance uses.
    pub fn keys(&self) -> &KeyLayout {
        &self.keys
    }

    async fn run_admit(&self, a: &Admission<'_>) -> Result<AdmitAnswer, CounterError> {
        let now_us = i128::from(a.now_ms) * 1000;
        let mut call = self.admit.prepare_invoke();
        for slot in a.concurrency {
            call.key(self.keys.concurrency(&slot.counter));
        }
        for slot in a.rates {
            call.key(self.keys.rate(&slot.counter));
        }
        for slot in a.budgets {
            call.key(self.keys.budget(&slot.counter));
        }
        for slot in a.budgets {
            call.key(self.keys.reservations(&slot.counter));
        }
        call.arg(a.now_ms)
            .arg(now_us.to_string())
            .arg(a.lease)
            .arg(a.lease_ttl_ms)
            .arg(a.reserve)
            .arg(a.concurrency.len())
            .arg(a.rates.len())
            .arg(a.budgets.len())
            .arg(RATE_TTL_MARGIN_MS);
        for slot in a.concurrency {
            call.arg(slot.max);
        }
        for slot in a.rates {
            // As `gcra_take`: a request larger than the whole rate never fits.
            let fits = !(slot.cost > 0 && slot.cost.unsigned_abs() > slot.per_minute);
            call.arg(increment(slot.cost, slot.per_minute))
                .arg(if fits { "1" } else { "0" });
        }
        for slot in a.budgets {
            call.arg(slot.limit);
        }
        let mut connection = self.connection.clone();
        let answer: Vec<Value> = call
            .invoke_async(&mut connection)
            .await
            .map_err(|e| backend_error(&e, None))?;
        let slot_index = |at: usize, len: usize| {
            index(&answer, at).and_then(|i| {
                if i < len {
                    Ok(i)
                } else {
                    Err(unexpected("slot index out of range"))
                }
            })
        };
        match text(&answer, 0)?.as_str() {
            "ok" => {
                let rates = a
                    .rates
                    .iter()
                    .enumerate()
                    .map(|(i, slot)| {
                        let tat = integer(&answer, i + 1)?;
                        Ok(gcra_state(i128::from(tat), now_us, slot.per_minute))
                    })
                    .collect::<Result<Vec<_>, CounterError>>()?;
                Ok(AdmitAnswer::Admitted(Admitted { rates }))
            }
            "concurrency" => Ok(AdmitAnswer::Refused(Refusal::Concurrency {
                index: slot_index(1, a.concurrency.len())?,
            })),
            "rate" => {
                let index = slot_index(1, a.rates.len())?;
                let retry_after_ms = match answer.get(2) {
                    None => None,
                    Some(_) => {
                        // As `gcra_take`: until the excess over a minute drains.
                        let used = i128::from(integer(&answer, 2)?) - now_us;
                        let wait = (used - MINUTE_US + 999) / 1000;
                        Some(i64::try_from(wait).unwrap_or(i64::MAX))
                    }
                };
                Ok(AdmitAnswer::Refused(Refusal::Rate {
                    index,
                    retry_after_ms,
                }))
            }
            "budget" => Ok(AdmitAnswer::Refused(Refusal::Budget {
                index: slot_index(1, a.budgets.len())?,
                spent: nanos(&text(&answer, 2)?)?,
                reserved: nanos(&text(&answer, 3)?)?,
            })),
            "missing" => (1..answer.len())
                .map(|at| slot_index(at, a.budgets.len()))
                .collect::<Result<Vec<_>, _>>()
                .map(AdmitAnswer::Missing),
            _ => Err(unexpected("unknown outcome")),
        }
    }

    /// Which of `slots` Redis does not hold.
    async fn absent<'s>(
        &self,
        slots: &[&'s BudgetSlot],
    ) -> Result<Vec<&'s BudgetSlot>, CounterError> {
        let mut pipe = redis::pipe();
        for slot in slots {
            pipe.exists(self.keys.budget(&slot.counter));
        }
        let mut connection = self.connection.clone();
        let exists: Vec<bool> = pipe
            .query_async(&mut connection)
            .await
            .map_err(|e| backend_error(&e, None))?;
        Ok(slots
            .iter()
            .zip(exists)
            .filter(|(_, exists)| !exists)
            .map(|(slot, _)| *slot)
            .collect())
    }

    /// Create the budget counters of `slots` that Redis does not hold, from
    /// the ledger.
    async fn load(&self, slots: &[&BudgetSlot], now_ms: i64) -> Result<(), CounterError> {
        // One loader at a time on this node, and only for what is still
        // missing once it runs: concurrent first requests load once.
        let _loading = self.loading.lock().await;
        let todo = self.absent(slots).await?;
        if todo.is_empty() {
            return Ok(());
        }
        let mut call = self.create.prepare_invoke();
        for slot in &todo {
            let spent = self.spend.spent_since(&slot.subject, slot.since_ms).await?;
            call.key(self.keys.budget(&slot.counter))
                .key(self.keys.reservations(&slot.counter))
                .arg(spent)
                .arg(expire_in(slot, now_ms));
        }
        let mut connection = self.connection.clone();
        call.invoke_async::<()>(&mut connection)
            .await
            .map_err(|e| backend_error(&e, None))
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn admit(&self, a: &Admission<'_>) -> Result<Admitted, AdmitError> {
        for _ in 0..LOAD_ROUNDS {
            match self.run_admit(a).await? {
                AdmitAnswer::Admitted(admitted) => return Ok(admitted),
                AdmitAnswer::Refused(refusal) => return Err(AdmitError::Refused(refusal)),
                AdmitAnswer::Missing(missing) => {
                    let slots = missing
                        .into_iter()
                        .filter_map(|i| a.budgets.get(i))
                        .collect::<Vec<_>>();
                    self.load(&slots, a.now_ms).await?;
                }
            }
        }
        Err(AdmitError::Backend(CounterError(
            "budget counter vanished while admitting".into(),
        )))
    }

    async fn settle(&self, s: &Settlement<'_>) -> Result<Settled, CounterError> {
        // A zero correction changes nothing: not sent.
        let rates = s.rates.iter().filter(|r| r.cost != 0).collect::<Vec<_>>();
        let mut call = self.settle.prepare_invoke();
        for slot in s.concurrency {
            call.key(self.keys.concurrency(&slot.counter));
        }
        for slot in &rates {
            call.key(self.keys.rate(&slot.counter));
        }
        for slot in s.budgets {
            call.key(self.keys.budget(&slot.counter));
        }
        for slot in s.budgets {
            call.key(self.keys.reservations(&slot.counter));
        }
        call.arg(s.now_ms)
            .arg((i128::from(s.now_ms) * 1000).to_string())
            .arg(s.lease)
            .arg(s.spent)
            .arg(s.concurrency.len())
            .arg(rates.len())
            .arg(s.budgets.len())
            .arg(RATE_TTL_MARGIN_MS);
        for slot in &rates {
            call.arg(increment(slot.cost, slot.per_minute));
        }
        let mut connection = self.connection.clone();
        let answer: Vec<String> = call
            .invoke_async(&mut connection)
            .await
            .map_err(|e| backend_error(&e, None))?;
        if answer.len() != s.budgets.len() {
            return Err(unexpected("one amount per budget expected"));
        }
        let spent = answer
            .iter()
            .map(|a| {
                if a.is_empty() {
                    Ok(None)
                } else {
                    nanos(a).map(Some)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Settled { spent })
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_prefix_layout_version_and_kind() {
        let keys = KeyLayout::new("");
        assert_eq!(
            keys.concurrency("key:k1:concurrent"),
            "keygate:v1:conc:key:k1:concurrent"
        );
        assert_eq!(keys.rate("key:k1:rpm"), "keygate:v1:rate:key:k1:rpm");
        let keys = KeyLayout::new("blue");
        assert_eq!(
            keys.budget("org:o1:2026-11:1"),
            format!("blue:{LAYOUT_VERSION}:budget:org:o1:2026-11:1")
        );
        assert_eq!(
            keys.reservations("org:o1:2026-11:1"),
            "blue:v1:leases:org:o1:2026-11:1"
        );
    }

    #[test]
    fn error_messages_never_carry_the_url_or_its_password() {
        let url = "rediss://gateway:s3cr3t-pw@redis.internal:6380/2";
        let message = scrub(
            &format!("failed to connect to {url}: auth gateway:s3cr3t-pw, pw s3cr3t-pw"),
            url,
        );
        assert!(!message.contains("s3cr3t-pw"), "{message}");
        assert!(!message.contains(url), "{message}");
        assert!(message.starts_with("failed to connect to [redacted]"));
    }

    #[test]
    fn budget_counters_expire_a_day_after_their_window() {
        let slot = |until_ms| BudgetSlot {
            counter: "c".into(),
            subject: crate::policy::limits::Subject::Key("k".into()),
            since_ms: 0,
            until_ms,
            limit: 1,
        };
        assert_eq!(expire_in(&slot(None), 5), "");
        assert_eq!(
            expire_in(&slot(Some(1_000)), 400),
            (600 + BUDGET_GRACE_MS).to_string()
        );
        // A window already over lives a day from now, not zero.
        assert_eq!(
            expire_in(&slot(Some(1_000)), 9_000),
            BUDGET_GRACE_MS.to_string()
        );
    }
}
