//! The counters' conformance suite: the same tests run against the
//! in-process counters and the Redis ones (`local::…` and `redis::…`), so
//! both keep the meaning the `counters` module doc gives. Time is the
//! `now_ms` each call passes in: no test sleeps. Redis tests each use their
//! own random key prefix and delete their keys at the end.

use async_trait::async_trait;
use keygate::policy::counters::{
    gcra_take, Admission, AdmitError, Admitted, BudgetSlot, ConcurrencySlot, CounterError,
    Counters, LocalCounters, RateSlot, RateState, Refusal, Settled, Settlement, SpendSource,
};
use keygate::policy::limits::{Nanos, Subject};
use keygate::policy::redis_counters::RedisCounters;
use rand::distr::{Alphanumeric, SampleString};
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A fixed instant (Unix ms); tests move time by passing later values.
const T0: i64 = 1_764_547_200_000;
const DAY: i64 = 86_400_000;
/// Long enough that no lease expires unless a test moves time past it.
const TTL: i64 = 600_000;

fn redis_url() -> String {
    std::env::var("KEYGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The ledger: spend per subject, counting how often it is read.
#[derive(Debug, Default)]
struct Ledger {
    spent: Mutex<HashMap<Subject, Nanos>>,
    reads: AtomicUsize,
}

impl Ledger {
    fn set(&self, subject: &Subject, spent: Nanos) {
        self.spent.lock().unwrap().insert(subject.clone(), spent);
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SpendSource for Ledger {
    async fn spent_since(&self, subject: &Subject, _since_ms: i64) -> Result<Nanos, CounterError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        // Let other admissions run while "the ledger is read", as a real
        // query would, so concurrent first requests really overlap.
        tokio::task::yield_now().await;
        Ok(self
            .spent
            .lock()
            .unwrap()
            .get(subject)
            .copied()
            .unwrap_or(0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Local,
    Redis,
}

/// Counters under test, their ledger, and (Redis) how to reach their keys.
struct Fixture {
    kind: Kind,
    counters: Arc<dyn Counters>,
    ledger: Arc<Ledger>,
    prefix: String,
}

impl Fixture {
    async fn new(kind: Kind) -> Fixture {
        let ledger = Arc::new(Ledger::default());
        let prefix = format!(
            "keygate-test-{}",
            Alphanumeric.sample_string(&mut rand::rng(), 12)
        );
        let counters: Arc<dyn Counters> = match kind {
            Kind::Local => Arc::new(LocalCounters::new(ledger.clone())),
            Kind::Redis => Arc::new(
                RedisCounters::connect(&SecretString::from(redis_url()), ledger.clone(), &prefix)
                    .await
                    .unwrap(),
            ),
        };
        Fixture {
            kind,
            counters,
            ledger,
            prefix,
        }
    }

    /// Another gateway node sharing the counters: for Redis a second
    /// connection (its own `RedisCounters`); in process, the same counters.
    async fn other_node(&self) -> Arc<dyn Counters> {
        match self.kind {
            Kind::Local => self.counters.clone(),
            Kind::Redis => Arc::new(
                RedisCounters::connect(
                    &SecretString::from(redis_url()),
                    self.ledger.clone(),
                    &self.prefix,
                )
                .await
                .unwrap(),
            ),
        }
    }

    /// Remove the test's keys.
    async fn finish(self) {
        if self.kind == Kind::Redis {
            let client = ::redis::Client::open(redis_url()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(format!("{}:*", self.prefix))
                .query_async(&mut connection)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: () = ::redis::cmd("DEL")
                    .arg(keys)
                    .query_async(&mut connection)
                    .await
                    .unwrap();
            }
        }
    }
}

/// One request's slots, for building its admission and settlement.
#[derive(Clone, Debug, Default)]
struct Request {
    lease: String,
    ttl: i64,
    concurrency: Vec<ConcurrencySlot>,
    rates: Vec<RateSlot>,
    budgets: Vec<BudgetSlot>,
    reserve: Nanos,
}

impl Request {
    fn new(lease: &str) -> Request {
        Request {
            lease: lease.into(),
            ttl: TTL,
            ..Request::default()
        }
    }

    fn concurrency(mut self, counter: &str, max: u32) -> Request {
        self.concurrency.push(ConcurrencySlot {
            counter: counter.into(),
            max,
        });
        self
    }

    fn rate(mut self, counter: &str, per_minute: u64, cost: i64) -> Request {
        self.rates.push(rate(counter, per_minute, cost));
        self
    }

    fn budget(mut self, slot: BudgetSlot, reserve: Nanos) -> Request {
        self.budgets.push(slot);
        self.reserve = reserve;
        self
    }

    fn lease(mut self, lease: &str) -> Request {
        self.lease = lease.into();
        self
    }

    fn ttl(mut self, ttl: i64) -> Request {
        self.ttl = ttl;
        self
    }

    async fn admit(&self, counters: &dyn Counters, now_ms: i64) -> Result<Admitted, AdmitError> {
        counters
            .admit(&Admission {
                lease: &self.lease,
                now_ms,
                lease_ttl_ms: self.ttl,
                concurrency: &self.concurrency,
                rates: &self.rates,
                budgets: &self.budgets,
                reserve: self.reserve,
            })
            .await
    }

    /// Settle with rate corrections `rates` and real spend `spent`.
    async fn settle(
        &self,
        counters: &dyn Counters,
        now_ms: i64,
        rates: &[RateSlot],
        spent: Nanos,
    ) -> Settled {
        counters
            .settle(&Settlement {
                lease: &self.lease,
                now_ms,
                concurrency: &self.concurrency,
                rates,
                budgets: &self.budgets,
                spent,
            })
            .await
            .unwrap()
    }
}

fn rate(counter: &str, per_minute: u64, cost: i64) -> RateSlot {
    RateSlot {
        counter: counter.into(),
        per_minute,
        cost,
    }
}

/// A budget of `subject` for a window around T0, named with `version`.
fn budget(subject: &Subject, version: u32, limit: Nanos) -> BudgetSlot {
    BudgetSlot {
        counter: format!("{}:2025-12:{version}", subject.name()),
        subject: subject.clone(),
        since_ms: T0 - DAY,
        until_ms: Some(T0 + 30 * DAY),
        limit,
    }
}

fn admitted(result: Result<Admitted, AdmitError>) -> Admitted {
    match result {
        Ok(admitted) => admitted,
        Err(AdmitError::Refused(refusal)) => panic!("refused: {refusal:?}"),
        Err(AdmitError::Backend(error)) => panic!("backend: {error}"),
    }
}

fn refusal(result: Result<Admitted, AdmitError>) -> Refusal {
    match result {
        Ok(admitted) => panic!("admitted: {admitted:?}"),
        Err(AdmitError::Refused(refusal)) => refusal,
        Err(AdmitError::Backend(error)) => panic!("backend: {error}"),
    }
}

fn key(id: &str) -> Subject {
    Subject::Key(id.into())
}

// ---------------------------------------------------------------- tests

async fn reports_its_backend(f: &Fixture) {
    let expected = match f.kind {
        Kind::Local => "in-process",
        Kind::Redis => "redis",
    };
    assert_eq!(f.counters.backend(), expected);
}

async fn admission_is_all_or_nothing(f: &Fixture) {
    let c = f.counters.as_ref();
    let org = budget(&Subject::Organisation("o1".into()), 1, 100);
    admitted(
        Request::new("first")
            .budget(org.clone(), 60)
            .admit(c, T0)
            .await,
    );
    // Concurrency and rate have room, the budget (60 of 100 held) has not.
    let refused = Request::new("second")
        .concurrency("key:k1:concurrent", 1)
        .rate("key:k1:rpm", 2, 1)
        .budget(org.clone(), 60)
        .admit(c, T0)
        .await;
    assert_eq!(
        refusal(refused),
        Refusal::Budget {
            index: 0,
            spent: 0,
            reserved: 60
        }
    );
    // The refused request took nothing: the one concurrency slot is free and
    // the rate still has both units.
    let third = Request::new("third")
        .concurrency("key:k1:concurrent", 1)
        .rate("key:k1:rpm", 2, 1);
    let rates = admitted(third.admit(c, T0).await).rates;
    assert_eq!(rates[0].remaining, 1);

    // The first refusal in the order concurrency, rate, budget is reported,
    // with the index of the refusing slot.
    let everything_full = Request::new("fourth")
        .concurrency("key:k2:concurrent", 5)
        .concurrency("key:k1:concurrent", 1)
        .rate("key:k1:rpm", 2, 5)
        .budget(org.clone(), 60);
    assert_eq!(
        refusal(everything_full.admit(c, T0).await),
        Refusal::Concurrency { index: 1 }
    );
    let rate_and_budget_full = Request::new("fifth")
        .rate("key:k2:rpm", 10, 1)
        .rate("key:k1:rpm", 2, 5)
        .budget(org, 60);
    assert_eq!(
        refusal(rate_and_budget_full.admit(c, T0).await),
        Refusal::Rate {
            index: 1,
            retry_after_ms: None
        }
    );
    // Neither refusal took from the slots that had room before the refusing
    // one: k2's rate still has all ten units.
    let k2 = Request::new("sixth").rate("key:k2:rpm", 10, 1);
    assert_eq!(admitted(k2.admit(c, T0).await).rates[0].remaining, 9);
}

async fn concurrency_caps_leases_and_settlement_releases(f: &Fixture) {
    let c = f.counters.as_ref();
    let request = |lease: &str| Request::new(lease).concurrency("key:k1:concurrent", 3);
    for lease in ["a", "b", "c"] {
        admitted(request(lease).admit(c, T0).await);
    }
    assert_eq!(
        refusal(request("d").admit(c, T0).await),
        Refusal::Concurrency { index: 0 }
    );
    request("b").settle(c, T0 + 5, &[], 0).await;
    admitted(request("d").admit(c, T0 + 6).await);
    assert_eq!(
        refusal(request("e").admit(c, T0 + 7).await),
        Refusal::Concurrency { index: 0 }
    );
    // A cap of zero admits nothing.
    let closed = Request::new("z").concurrency("key:k9:concurrent", 0);
    assert_eq!(
        refusal(closed.admit(c, T0).await),
        Refusal::Concurrency { index: 0 }
    );
}

async fn rate_bursts_its_limit_then_refuses_until_a_unit_drains(f: &Fixture) {
    let c = f.counters.as_ref();
    let request = || Request::new("r").rate("key:k1:rpm", 5, 1);
    // A full minute's worth at once: five, then 12 s per unit.
    for remaining in (0..5).rev() {
        let state = admitted(request().admit(c, T0).await).rates[0];
        assert_eq!(state.remaining, remaining);
        assert_eq!(state.limit, 5);
        // Full again once every taken unit has drained.
        assert_eq!(state.reset_ms, (5 - remaining as i64) * 12_000);
    }
    assert_eq!(
        refusal(request().admit(c, T0).await),
        Refusal::Rate {
            index: 0,
            retry_after_ms: Some(12_000)
        }
    );
    assert_eq!(
        refusal(request().admit(c, T0 + 11_999).await),
        Refusal::Rate {
            index: 0,
            retry_after_ms: Some(1)
        }
    );
    let state = admitted(request().admit(c, T0 + 12_000).await).rates[0];
    assert_eq!(
        state,
        RateState {
            limit: 5,
            remaining: 0,
            reset_ms: 60_000
        }
    );
    // A request of more units than the whole rate never fits.
    assert_eq!(
        refusal(
            Request::new("big")
                .rate("key:k2:tpm", 10, 11)
                .admit(c, T0)
                .await
        ),
        Refusal::Rate {
            index: 0,
            retry_after_ms: None
        }
    );
    // Exactly the whole rate fits once.
    let whole = Request::new("whole").rate("key:k3:tpm", 10, 10);
    assert_eq!(admitted(whole.admit(c, T0).await).rates[0].remaining, 0);
}

async fn rate_states_match_the_reference_gcra(f: &Fixture) {
    let c = f.counters.as_ref();
    // Odd rates (increments that do not divide a minute), a large token
    // rate, and irregular times and costs; every outcome must equal what
    // `gcra_take` gives for the same history.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (counter, per_minute, max_cost) in [
        ("key:k1:rpm", 7_u64, 3_i64),
        ("key:k2:rpm", 13, 1),
        ("key:k3:tpm", 1_000_003, 250_000),
    ] {
        let mut tat = i128::from(T0) * 1000;
        let mut now = T0;
        for step in 0..60 {
            now += rng.random_range(0..9_000);
            let cost = rng.random_range(1..=max_cost);
            let expected = gcra_take(tat, i128::from(now) * 1000, cost, per_minute);
            let got = Request::new(&format!("s{step}"))
                .rate(counter, per_minute, cost)
                .admit(c, now)
                .await;
            match expected {
                Ok((new, state)) => {
                    tat = new;
                    assert_eq!(admitted(got).rates, vec![state], "{counter} step {step}");
                }
                Err(retry_after_ms) => assert_eq!(
                    refusal(got),
                    Refusal::Rate {
                        index: 0,
                        retry_after_ms
                    },
                    "{counter} step {step}"
                ),
            }
        }
    }
}

async fn corrections_give_units_back_but_never_below_full(f: &Fixture) {
    let c = f.counters.as_ref();
    let request = Request::new("a").rate("key:k1:tpm", 10, 8);
    assert_eq!(admitted(request.admit(c, T0).await).rates[0].remaining, 2);
    // Used 3 of the 8 taken: 5 come back.
    request
        .settle(c, T0, &[rate("key:k1:tpm", 10, -5)], 0)
        .await;
    let one = Request::new("b").rate("key:k1:tpm", 10, 1);
    assert_eq!(admitted(one.admit(c, T0).await).rates[0].remaining, 6);
    // Giving back far more than was taken leaves the slot full, no fuller.
    one.settle(c, T0, &[rate("key:k1:tpm", 10, -1_000)], 0)
        .await;
    assert_eq!(admitted(one.admit(c, T0).await).rates[0].remaining, 9);
    // A positive correction takes more (the response used more tokens than
    // estimated).
    one.settle(c, T0, &[rate("key:k1:tpm", 10, 4)], 0).await;
    assert_eq!(admitted(one.admit(c, T0).await).rates[0].remaining, 4);
    // A zero correction changes nothing.
    one.settle(c, T0, &[rate("key:k1:tpm", 10, 0)], 0).await;
    assert_eq!(admitted(one.admit(c, T0).await).rates[0].remaining, 3);
}

async fn budget_admits_exactly_what_fits(f: &Fixture) {
    let c = f.counters.as_ref();
    let subject = key("k1");
    f.ledger.set(&subject, 100);
    let slot = budget(&subject, 1, 1_100);
    // 100 spent: four reservations of 250 fit exactly (1100 <= 1100).
    for lease in ["a", "b", "c", "d"] {
        admitted(
            Request::new(lease)
                .budget(slot.clone(), 250)
                .admit(c, T0)
                .await,
        );
    }
    for reserve in [1, 0] {
        // Nothing fits once spent + reserved reaches the limit, not even a
        // request reserving nothing.
        assert_eq!(
            refusal(
                Request::new("e")
                    .budget(slot.clone(), reserve)
                    .admit(c, T0)
                    .await
            ),
            Refusal::Budget {
                index: 0,
                spent: 100,
                reserved: 1_000
            }
        );
    }
    // The index names the refusing budget.
    let roomy = budget(&key("k2"), 1, 1_000_000);
    assert_eq!(
        refusal(
            Request::new("e")
                .budget(roomy.clone(), 1)
                .budget(slot.clone(), 1)
                .admit(c, T0)
                .await
        ),
        Refusal::Budget {
            index: 1,
            spent: 100,
            reserved: 1_000
        }
    );
}

async fn settlement_releases_the_reservation_and_adds_the_spend(f: &Fixture) {
    let c = f.counters.as_ref();
    let subject = key("k1");
    f.ledger.set(&subject, 100);
    let slot = budget(&subject, 1, 1_000);
    let a = Request::new("a").budget(slot.clone(), 400);
    let b = Request::new("b").budget(slot.clone(), 400);
    admitted(a.admit(c, T0).await);
    admitted(b.admit(c, T0).await);
    assert_eq!(
        refusal(
            Request::new("c")
                .budget(slot.clone(), 101)
                .admit(c, T0)
                .await
        ),
        Refusal::Budget {
            index: 0,
            spent: 100,
            reserved: 800
        }
    );
    assert_eq!(
        a.settle(c, T0 + 10, &[], 150).await,
        Settled {
            spent: vec![Some(250)]
        }
    );
    // 250 spent + 400 held: 350 fits, 351 does not.
    assert_eq!(
        refusal(
            Request::new("c")
                .budget(slot.clone(), 351)
                .admit(c, T0 + 11)
                .await
        ),
        Refusal::Budget {
            index: 0,
            spent: 250,
            reserved: 400
        }
    );
    admitted(
        Request::new("c")
            .budget(slot.clone(), 350)
            .admit(c, T0 + 11)
            .await,
    );
    // Settling a lease twice releases nothing more, but the spend counts.
    assert_eq!(
        a.settle(c, T0 + 12, &[], 0).await,
        Settled {
            spent: vec![Some(250)]
        }
    );
    assert_eq!(
        refusal(Request::new("d").budget(slot, 1).admit(c, T0 + 13).await),
        Refusal::Budget {
            index: 0,
            spent: 250,
            reserved: 750
        }
    );
    // A counter the counters do not hold (its window over and forgotten, or
    // never seen) settles to `None` and is not created.
    let unseen = budget(&key("k7"), 1, 1_000);
    let settled = Request::new("x")
        .budget(unseen, 0)
        .settle(c, T0, &[], 5)
        .await;
    assert_eq!(settled, Settled { spent: vec![None] });
    assert_eq!(f.ledger.reads(), 1);
}

async fn missing_counters_load_from_the_ledger_once(f: &Fixture) {
    let subject = key("k1");
    let org = Subject::Organisation("o1".into());
    f.ledger.set(&subject, 10);
    f.ledger.set(&org, 20);
    let key_budget = budget(&subject, 1, 1_000_000);
    let org_budget = budget(&org, 1, 1_000_000);
    // Many first requests at once: each counter is read from the ledger once.
    let tasks = (0..20)
        .map(|i| {
            let counters = f.counters.clone();
            let request = Request::new(&format!("l{i}"))
                .budget(key_budget.clone(), 1)
                .budget(org_budget.clone(), 1);
            tokio::spawn(async move { request.admit(counters.as_ref(), T0).await.is_ok() })
        })
        .collect::<Vec<_>>();
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(f.ledger.reads(), 2);
    // Later spend in the ledger does not reset a live counter.
    f.ledger.set(&subject, 500);
    let settled = Request::new("l0")
        .budget(key_budget.clone(), 1)
        .budget(org_budget, 1)
        .settle(f.counters.as_ref(), T0, &[], 5)
        .await;
    assert_eq!(
        settled,
        Settled {
            spent: vec![Some(15), Some(25)]
        }
    );
    assert_eq!(f.ledger.reads(), 2);
    // A changed limit (a new counter name) starts fresh from the ledger.
    let changed = budget(&subject, 2, 510);
    assert_eq!(
        refusal(
            Request::new("m")
                .budget(changed, 11)
                .admit(f.counters.as_ref(), T0)
                .await
        ),
        Refusal::Budget {
            index: 0,
            spent: 500,
            reserved: 0
        }
    );
    assert_eq!(f.ledger.reads(), 3);
}

async fn money_stays_exact_beyond_double_precision(f: &Fixture) {
    let c = f.counters.as_ref();
    // 2^62 + 1 nanos (4.6 billion dollars): far past 2^53, where a double
    // drops units.
    let spent: Nanos = (1 << 62) + 1;
    let subject = Subject::Organisation("big".into());
    f.ledger.set(&subject, spent);
    let slot = budget(&subject, 1, spent + 1_007);
    admitted(
        Request::new("a")
            .budget(slot.clone(), 1_000)
            .admit(c, T0)
            .await,
    );
    assert_eq!(
        refusal(Request::new("b").budget(slot.clone(), 8).admit(c, T0).await),
        Refusal::Budget {
            index: 0,
            spent,
            reserved: 1_000
        }
    );
    admitted(Request::new("b").budget(slot.clone(), 7).admit(c, T0).await);
    let settled = Request::new("a")
        .budget(slot, 0)
        .settle(c, T0, &[], 999_999_999_999)
        .await;
    assert_eq!(
        settled,
        Settled {
            spent: vec![Some(spent + 999_999_999_999)]
        }
    );
}

async fn concurrent_admissions_take_exactly_what_fits(f: &Fixture) {
    let subject = key("k1");
    let slot = budget(&subject, 1, 1_000);
    let nodes = [f.counters.clone(), f.other_node().await];
    // 200 requests at once, spread over two nodes: a budget that holds ten
    // reservations of 100, a concurrency cap of 7, a rate of 40 per minute
    // (1.5 s per unit; a rate whose unit does not divide a minute rounds
    // each unit up and so bursts one less).
    let run = |make: &dyn Fn(usize) -> Request| {
        let tasks = (0..200)
            .map(|i| {
                let counters = nodes[i % 2].clone();
                let request = make(i);
                tokio::spawn(async move {
                    match request.admit(counters.as_ref(), T0).await {
                        Ok(_) => true,
                        Err(AdmitError::Refused(_)) => false,
                        Err(AdmitError::Backend(error)) => panic!("backend: {error}"),
                    }
                })
            })
            .collect::<Vec<_>>();
        async move {
            let mut admitted = 0;
            for task in tasks {
                admitted += usize::from(task.await.unwrap());
            }
            admitted
        }
    };
    let budget_slot = slot.clone();
    let admitted_on_budget =
        run(&|i| Request::new(&format!("b{i}")).budget(budget_slot.clone(), 100)).await;
    assert_eq!(admitted_on_budget, 10);
    let admitted_on_cap =
        run(&|i| Request::new(&format!("c{i}")).concurrency("key:k2:concurrent", 7)).await;
    assert_eq!(admitted_on_cap, 7);
    let admitted_on_rate = run(&|i| Request::new(&format!("r{i}")).rate("key:k3:rpm", 40, 1)).await;
    assert_eq!(admitted_on_rate, 40);
    // Each node read the ledger at most once for the one budget counter.
    assert!(f.ledger.reads() <= 2, "{} reads", f.ledger.reads());
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = super::Fixture::new(super::Kind::Local).await;
                    super::$name(&fixture).await;
                    fixture.finish().await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = super::Fixture::new(super::Kind::Redis).await;
                    super::$name(&fixture).await;
                    fixture.finish().await;
                }
            )*
        }
    };
}

conformance!(
    reports_its_backend,
    admission_is_all_or_nothing,
    concurrency_caps_leases_and_settlement_releases,
    rate_bursts_its_limit_then_refuses_until_a_unit_drains,
    rate_states_match_the_reference_gcra,
    corrections_give_units_back_but_never_below_full,
    budget_admits_exactly_what_fits,
    settlement_releases_the_reservation_and_adds_the_spend,
    missing_counters_load_from_the_ledger_once,
    money_stays_exact_beyond_double_precision,
    concurrent_admissions_take_exactly_what_fits,
);

// ------------------------------------------------ Redis only: shared state

/// A lease or reservation left by a crashed node stops holding its slot
/// once its TTL has passed (the in-process counters die with the process
/// instead).
#[tokio::test]
async fn redis_leases_and_reservations_of_a_crashed_node_expire() {
    let f = Fixture::new(Kind::Redis).await;
    let c = f.counters.as_ref();
    let slot = budget(&key("k1"), 1, 100);
    let crashed = Request::new("crashed")
        .concurrency("key:k1:concurrent", 1)
        .budget(slot.clone(), 100)
        .ttl(60_000);
    admitted(crashed.admit(c, T0).await);
    let next = crashed.clone().lease("next");
    assert_eq!(
        refusal(next.admit(c, T0 + 59_999).await),
        Refusal::Concurrency { index: 0 }
    );
    let budget_only = Request::new("next").budget(slot.clone(), 100);
    assert_eq!(
        refusal(budget_only.admit(c, T0 + 59_999).await),
        Refusal::Budget {
            index: 0,
            spent: 0,
            reserved: 100
        }
    );
    admitted(next.admit(c, T0 + 60_000).await);
    // The crashed request's late settlement adds its spend but does not
    // release the live request's reservation.
    assert_eq!(
        crashed.settle(c, T0 + 60_001, &[], 0).await,
        Settled {
            spent: vec![Some(0)]
        }
    );
    assert_eq!(
        refusal(
            Request::new("third")
                .budget(slot, 1)
                .admit(c, T0 + 60_002)
                .await
        ),
        Refusal::Budget {
            index: 0,
            spent: 0,
            reserved: 100
        }
    );
    f.finish().await;
}

/// Two nodes see one another's counters: what one takes, the other cannot.
#[tokio::test]
async fn redis_nodes_share_every_counter() {
    let f = Fixture::new(Kind::Redis).await;
    let a = f.counters.clone();
    let b = f.other_node().await;
    let subject = key("k1");
    f.ledger.set(&subject, 30);
    let slot = budget(&subject, 1, 100);
    let first = Request::new("first")
        .concurrency("key:k1:concurrent", 1)
        .rate("key:k1:rpm", 1, 1)
        .budget(slot.clone(), 50);
    admitted(first.admit(a.as_ref(), T0).await);
    let second = first.clone().lease("second");
    assert_eq!(
        refusal(second.admit(b.as_ref(), T0).await),
        Refusal::Concurrency { index: 0 }
    );
    // Node A settles; node B then finds the lease released and the spend
    // added, and the rate still taken.
    first.settle(a.as_ref(), T0 + 1, &[], 40).await;
    assert_eq!(
        refusal(second.admit(b.as_ref(), T0 + 2).await),
        Refusal::Rate {
            index: 0,
            retry_after_ms: Some(59_998)
        }
    );
    let budget_only = Request::new("second").budget(slot, 31);
    assert_eq!(
        refusal(budget_only.admit(b.as_ref(), T0 + 2).await),
        Refusal::Budget {
            index: 0,
            spent: 70,
            reserved: 0
        }
    );
    assert_eq!(f.ledger.reads(), 1);
    f.finish().await;
}

/// A URL's password never shows in an error.
#[tokio::test]
async fn redis_errors_do_not_show_the_password() {
    let ledger: Arc<Ledger> = Arc::default();
    for url in [
        "redis://gateway:hunter2-pw@127.0.0.1:6379/0",
        "redis://gateway:hunter2-pw@127.0.0.1:notaport/0",
        // Nothing listens on port 1: refused at once, not retried.
        "redis://gateway:hunter2-pw@127.0.0.1:1/0",
        "rediss://gateway:hunter2-pw@127.0.0.1:1/0",
    ] {
        let error = RedisCounters::connect(&SecretString::from(url), ledger.clone(), "")
            .await
            .unwrap_err();
        assert!(!error.0.contains("hunter2-pw"), "{error}");
        assert!(error.0.starts_with("redis: "), "{error}");
    }
}

/// What a request leaves in Redis: versioned key names, and TTLs that let
/// Redis forget every counter once it no longer matters.
#[tokio::test]
async fn redis_keys_are_versioned_and_expire() {
    let f = Fixture::new(Kind::Redis).await;
    let c = f.counters.as_ref();
    let monthly = budget(&key("k1"), 1, 1_000);
    let total = BudgetSlot {
        counter: "org:o1:total:1".into(),
        subject: Subject::Organisation("o1".into()),
        since_ms: 0,
        until_ms: None,
        limit: 1_000,
    };
    let request = Request::new("a")
        .concurrency("key:k1:concurrent", 5)
        .rate("key:k1:rpm", 10, 2)
        .budget(monthly, 0)
        .budget(total, 10)
        .ttl(60_000);
    admitted(request.admit(c, T0).await);

    let client = ::redis::Client::open(redis_url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{}:*", f.prefix))
        .query_async(&mut raw)
        .await
        .unwrap();
    keys.sort();
    let p = format!("{}:v1", f.prefix);
    let name = |rest: &str| format!("{p}:{rest}");
    assert_eq!(
        keys,
        vec![
            name("budget:key:k1:2025-12:1"),
            name("budget:org:o1:total:1"),
            name("conc:key:k1:concurrent"),
            name("leases:key:k1:2025-12:1"),
            name("leases:org:o1:total:1"),
            name("rate:key:k1:rpm"),
        ]
    );
    let pttl = |key: String| {
        let mut raw = raw.clone();
        async move {
            let ms: i64 = ::redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut raw)
                .await
                .unwrap();
            ms
        }
    };
    // Some slack for the time this test itself takes.
    let about = |ms: i64, expected: i64| ms <= expected && ms > expected - 5_000;
    // The lease set lives as long as its newest lease.
    assert!(about(pttl(name("conc:key:k1:concurrent")).await, 60_000));
    // 2 of 10 per minute: full again in 12 s, plus a 10 s margin.
    assert!(about(pttl(name("rate:key:k1:rpm")).await, 22_000));
    // The month's budget and its reservations: a day past the window's end.
    let month = 31 * DAY;
    assert!(about(pttl(name("budget:key:k1:2025-12:1")).await, month));
    assert!(about(pttl(name("leases:key:k1:2025-12:1")).await, month));
    // A budget that never ends is kept.
    assert_eq!(pttl(name("budget:org:o1:total:1")).await, -1);
    let fields: HashMap<String, String> = ::redis::cmd("HGETALL")
        .arg(name("budget:org:o1:total:1"))
        .query_async(&mut raw)
        .await
        .unwrap();
    let expected = [("spent", "0"), ("reserved", "10"), ("r:a", "10")]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(fields, HashMap::from(expected));

    // Settled with both rate units given back: the lease, the reservations
    // and the rate key are gone; only the budgets' spend remains.
    request
        .settle(c, T0, &[rate("key:k1:rpm", 10, -2)], 3)
        .await;
    let mut keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{}:*", f.prefix))
        .query_async(&mut raw)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            name("budget:key:k1:2025-12:1"),
            name("budget:org:o1:total:1")
        ]
    );
    let fields: HashMap<String, String> = ::redis::cmd("HGETALL")
        .arg(name("budget:org:o1:total:1"))
        .query_async(&mut raw)
        .await
        .unwrap();
    let expected = [("spent", "3"), ("reserved", "0")].map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(fields, HashMap::from(expected));
    f.finish().await;
}

/// `rediss://` (TLS) URLs are understood: connecting goes as far as the
/// network (nothing listens on port 1) instead of failing on the URL.
#[tokio::test]
async fn redis_tls_urls_are_understood() {
    let ledger: Arc<Ledger> = Arc::default();
    let url = SecretString::from("rediss://127.0.0.1:1/0");
    let error = RedisCounters::connect(&url, ledger, "").await.unwrap_err();
    assert!(!error.0.contains("InvalidClientConfig"), "{error}");
    assert!(!error.0.contains("TLS"), "{error}");
}

/// Round trips per second of admit + settle over one connection, for the
/// record (`cargo test --test it -- --ignored redis_round_trips --nocapture`).
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn redis_round_trips() {
    let f = Fixture::new(Kind::Redis).await;
    let c = f.counters.clone();
    let org = budget(&Subject::Organisation("o1".into()), 1, i64::MAX / 2);
    let project = budget(&Subject::Project("p1".into()), 1, i64::MAX / 2);
    let request = move |i: usize| {
        Request::new(&format!("req-{i}"))
            .concurrency("key:k1:concurrent", 1_000)
            .rate("key:k1:rpm", u64::MAX / 2, 1)
            .rate("key:k1:tpm", u64::MAX / 2, 500)
            .budget(budget(&key("k1"), 1, i64::MAX / 2), 1_000)
            .budget(project.clone(), 1_000)
            .budget(org.clone(), 1_000)
    };
    admitted(request(0).admit(c.as_ref(), T0).await);
    let n = 3_000;
    let started = std::time::Instant::now();
    for i in 1..=n {
        let r = request(i);
        admitted(r.admit(c.as_ref(), T0).await);
        r.settle(
            c.as_ref(),
            T0,
            &[rate("key:k1:tpm", u64::MAX / 2, -100)],
            700,
        )
        .await;
    }
    let sequential = n as f64 / started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let tasks = (0..32)
        .map(|t| {
            let c = c.clone();
            let request = request.clone();
            tokio::spawn(async move {
                for i in 0..n / 32 {
                    let r = request(100_000 + t * 1_000 + i);
                    admitted(r.admit(c.as_ref(), T0).await);
                    r.settle(c.as_ref(), T0, &[], 700).await;
                }
            })
        })
        .collect::<Vec<_>>();
    for task in tasks {
        task.await.unwrap();
    }
    let parallel = (n / 32 * 32) as f64 / started.elapsed().as_secs_f64();
    println!(
        "admit+settle (1 concurrency, 2 rates, 3 budgets), one connection: \
         {sequential:.0}/s one after another, {parallel:.0}/s with 32 tasks"
    );
    f.finish().await;
}
