//! Quotas and budgets, enforced before work starts: per owner (a principal and the user it
//! acts for) and per team, tasks in flight, submits per minute and spend per UTC day and
//! month. A submit reserves the task's cost cap (the agent's `max_cost_usd`, else
//! `OPENCLAW_TASK_COST_RESERVE_USD`) against the budgets; the reservation is settled to the
//! task's reported cost once it has ended. Ledgers change only by compare-and-set
//! ([`openclaw_common::store::QuotaStore`]), so concurrent submits on any bridge cannot
//! overshoot a limit.

use openclaw_common::ids::TaskId;
use openclaw_common::store::{QuotaLedger, Reserved, Stores};
use openclaw_common::task::{SubmittedBy, TaskSpec};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::principals::Limits;
use crate::state::AppState;

/// How many times a submit re-reads a ledger another writer changed first.
const MAX_RACES: usize = 100;
/// A reservation whose task never appeared (a publish that failed after it) is dropped after
/// this long.
const ORPHAN_AFTER_SECS: i64 = 600;
/// What a refusal for tasks in flight suggests waiting (a task's end is not known ahead).
const IN_FLIGHT_RETRY_SECS: u64 = 30;

/// The ledgers a submitted task holds a place in, to give back if it is not stored after all.
#[derive(Debug)]
pub struct Reservation {
    task: TaskId,
    keys: Vec<String>,
}

/// A submit the quotas refuse: the answer, and whether the task may wait for room instead
/// (over the in-flight limit only: a rate or a budget is not a queue).
#[derive(Debug)]
pub struct Denied {
    pub error: ApiError,
    pub queueable: bool,
}

impl From<openclaw_common::store::StoreError> for Denied {
    fn from(e: openclaw_common::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for Denied {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            queueable: false,
        }
    }
}

/// The ledger key of an owner, and of a team (hashes: any name is a valid KV key).
fn owner_key(by: &SubmittedBy) -> String {
    let raw = format!("{}\n{}", by.principal, by.user.as_deref().unwrap_or(""));
    format!(
        "o-{}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, raw.as_bytes()).simple()
    )
}

fn team_key(team: &str) -> String {
    format!(
        "t-{}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, team.as_bytes()).simple()
    )
}

fn day(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn month(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

/// Seconds until the next UTC midnight, and until the next month begins.
fn until_next_day(t: OffsetDateTime) -> u64 {
    let secs = i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second());
    u64::try_from(86_400 - secs).unwrap_or(1).max(1)
}

fn until_next_month(t: OffsetDateTime) -> u64 {
    let (year, next) = match t.month() {
        time::Month::December => (t.year() + 1, time::Month::January),
        m => (t.year(), m.next()),
    };
    time::Date::from_calendar_date(year, next, 1)
        .map(|d| d.midnight().assume_utc())
        .map_or(86_400, |start| {
            u64::try_from((start - t).whole_seconds())
                .unwrap_or(1)
                .max(1)
        })
}

/// Moves ended tasks' reservations into the spend (their reported cost), drops reservations
/// whose task never appeared, old submits and old days.
async fn settle(
    stores: &Stores,
    ledger: &mut QuotaLedger,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let unix = now.unix_timestamp();
    let mut ended = Vec::new();
    for (id, reserved) in &ledger.in_flight {
        let status = match TaskId::parse(id) {
            Ok(task) => stores.status_of(&task).await?,
            Err(_) => None,
        };
        match status {
            Some(s) if s.status.is_terminal() => {
                let cost = s.usage.and_then(|u| u.cost_usd).unwrap_or(0.0);
                ended.push((id.clone(), cost));
            }
            None if unix - reserved.since > ORPHAN_AFTER_SECS => ended.push((id.clone(), 0.0)),
            _ => {}
        }
    }
    let (today, this_month) = (day(now), month(now));
    for (id, cost) in ended {
        ledger.in_flight.remove(&id);
        *ledger.spent.entry(today.clone()).or_default() += cost;
        *ledger.spent.entry(this_month.clone()).or_default() += cost;
    }
    ledger.spent.retain(|k, _| *k == today || *k == this_month);
    ledger.submits.retain(|t| unix - t < 60);
    Ok(())
}

fn usd(v: f64) -> String {
    format!("${v:.2}")
}

/// Whether `ledger` has room for one more task reserving `reserve` under `limits`, or the
/// refusal (`who` names the owner or team).
fn check(
    ledger: &QuotaLedger,
    limits: &Limits,
    reserve: f64,
    now: OffsetDateTime,
    who: &str,
) -> Result<(), Denied> {
    let unix = now.unix_timestamp();
    if let Some(max) = limits.max_in_flight
        && ledger.in_flight.len() >= max as usize
    {
        return Err(Denied {
            error: ApiError::TooManyRequests {
                message: format!(
                    "{who} has {} tasks in flight (queued, waiting or running); the limit is {max}: wait for one to end",
                    ledger.in_flight.len()
                ),
                retry_after: IN_FLIGHT_RETRY_SECS,
            },
            queueable: true,
        });
    }
    if let Some(max) = limits.max_submits_per_minute
        && ledger.submits.len() >= max as usize
    {
        let oldest = ledger.submits.iter().min().copied().unwrap_or(unix);
        return Err(ApiError::TooManyRequests {
            message: format!("{who} submitted {max} tasks in the last minute, the limit"),
            retry_after: u64::try_from(60 - (unix - oldest)).unwrap_or(1).max(1),
        }
        .into());
    }
    // A fold from +0: `Sum` of no floats is -0, which would print as "$-0.00".
    let reserved = ledger
        .in_flight
        .values()
        .fold(0.0, |total, r| total + r.usd);
    for (max, key, period, retry_after) in [
        (
            limits.max_cost_usd_per_day,
            day(now),
            "daily",
            until_next_day(now),
        ),
        (
            limits.max_cost_usd_per_month,
            month(now),
            "monthly",
            until_next_month(now),
        ),
    ] {
        let Some(max) = max else { continue };
        let spent = ledger.spent.get(&key).copied().unwrap_or(0.0);
        if spent + reserved + reserve > max + 1e-9 {
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "a task would pass {who}'s {period} budget of {}: {} spent, {} reserved by tasks in flight, and a task reserves {}",
                    usd(max),
                    usd(spent),
                    usd(reserved),
                    usd(reserve)
                ),
                retry_after,
            }
            .into());
        }
    }
    Ok(())
}

/// Takes a place for `task` in the ledger at `key`, or says why there is none.
async fn take(
    stores: &Stores,
    key: &str,
    limits: &Limits,
    task: TaskId,
    reserve: f64,
    who: &str,
) -> Result<(), Denied> {
    for _ in 0..MAX_RACES {
        let (mut ledger, revision) = stores.quotas.read(key).await?;
        let now = openclaw_common::now();
        settle(stores, &mut ledger, now).await?;
        check(&ledger, limits, reserve, now, who)?;
        ledger.in_flight.insert(
            task.to_string(),
            Reserved {
                usd: reserve,
                since: now.unix_timestamp(),
            },
        );
        ledger.submits.push(now.unix_timestamp());
        if stores.quotas.write(key, &ledger, revision).await? {
            return Ok(());
        }
        // Another submit came first: read again, after a moment that spreads the racers.
        let jitter = u64::from(openclaw_common::now().nanosecond() % 8);
        tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
    }
    Err(ApiError::Unavailable(format!("too many concurrent submits for {who}; try again")).into())
}

/// Reserves `spec`'s place in its owner's and team's ledgers (where they have limits), or
/// refuses with 429 and when to try again. `None`: nothing to reserve (no limits, or no
/// principal).
pub async fn reserve(state: &AppState, spec: &TaskSpec) -> Result<Option<Reservation>, Denied> {
    let Some(by) = &spec.submitted_by else {
        return Ok(None);
    };
    let config = &state.config;
    let (owner_limits, team) = state.principals.limits_for(by, &config.default_limits);
    let reserve = config
        .agents
        .get(&spec.agent)
        .and_then(|p| p.limits.max_cost_usd)
        .unwrap_or(config.task_cost_reserve_usd);
    let mut ledgers = vec![(owner_key(by), owner_limits, by.who().to_owned())];
    if let Some((name, limits)) = team {
        ledgers.push((team_key(&name), limits, format!("team {name}")));
    }
    let stores = state.stores()?;
    let mut reservation = Reservation {
        task: spec.id,
        keys: Vec::new(),
    };
    for (key, limits, who) in ledgers {
        if limits.is_unlimited() {
            continue;
        }
        if let Err(e) = take(stores, &key, &limits, spec.id, reserve, &who).await {
            release(state, reservation).await;
            return Err(e);
        }
        reservation.keys.push(key);
    }
    Ok((!reservation.keys.is_empty()).then_some(reservation))
}

/// Gives a reservation back (its task was not stored, or was a duplicate of one that is).
pub async fn release(state: &AppState, reservation: Reservation) {
    let Ok(stores) = state.stores() else {
        return;
    };
    let id = reservation.task.to_string();
    for key in reservation.keys {
        for _ in 0..MAX_RACES {
            let Ok((mut ledger, revision)) = stores.quotas.read(&key).await else {
                break;
            };
            if ledger.in_flight.remove(&id).is_none() {
                break;
            }
            match stores.quotas.write(&key, &ledger, revision).await {
                Ok(false) => continue,
                Ok(true) | Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    fn limits() -> Limits {
        Limits {
            max_in_flight: Some(2),
            max_submits_per_minute: Some(3),
            max_cost_usd_per_day: Some(5.0),
            max_cost_usd_per_month: Some(20.0),
        }
    }

    fn reserved(usd: f64) -> Reserved {
        Reserved { usd, since: 0 }
    }

    #[test]
    fn each_limit_refuses_with_its_reason_and_when_to_try_again() {
        let now = at("2026-12-05T23:59:00Z");
        let mut ledger = QuotaLedger::default();
        assert!(check(&ledger, &limits(), 1.0, now, "alice").is_ok());
        ledger.in_flight.insert("a".into(), reserved(1.0));
        ledger.in_flight.insert("b".into(), reserved(1.0));
        let Err(Denied {
            error:
                ApiError::TooManyRequests {
                    message,
                    retry_after,
                },
            queueable: true,
        }) = check(&ledger, &limits(), 1.0, now, "alice")
        else {
            panic!("in flight, which may wait")
        };
        assert!(
            message.contains("2 tasks in flight") && message.contains("limit is 2"),
            "{message}"
        );
        assert_eq!(retry_after, IN_FLIGHT_RETRY_SECS);
        ledger.in_flight.clear();
        let unix = now.unix_timestamp();
        ledger.submits = vec![unix - 50, unix - 10, unix - 5];
        let Err(Denied {
            error: ApiError::TooManyRequests { retry_after, .. },
            queueable: false,
        }) = check(&ledger, &limits(), 1.0, now, "alice")
        else {
            panic!("per minute")
        };
        assert_eq!(retry_after, 10, "when the oldest submit leaves the minute");
        ledger.submits.clear();
        // Spent 3.5 today, 1 reserved: a task reserving 1 would make 5.5 > 5.
        ledger.spent.insert(day(now), 3.5);
        ledger.in_flight.insert("c".into(), reserved(1.0));
        let Err(Denied {
            error:
                ApiError::TooManyRequests {
                    message,
                    retry_after,
                },
            queueable: false,
        }) = check(&ledger, &limits(), 1.0, now, "alice")
        else {
            panic!("daily budget")
        };
        assert!(
            message.contains("daily budget of $5.00: $3.50 spent, $1.00 reserved"),
            "{message}"
        );
        assert_eq!(retry_after, 60, "the next UTC day begins in a minute");
        assert!(
            check(&ledger, &limits(), 0.5, now, "alice").is_ok(),
            "exactly at the budget"
        );
        ledger.spent.insert(month(now), 19.5);
        let Err(Denied {
            error:
                ApiError::TooManyRequests {
                    message,
                    retry_after,
                },
            ..
        }) = check(&ledger, &limits(), 0.5, now, "alice")
        else {
            panic!("monthly budget")
        };
        assert!(message.contains("monthly budget of $20.00"), "{message}");
        assert_eq!(
            retry_after,
            26 * 86_400 + 60,
            "January begins in 26 days and a minute"
        );
    }

    #[test]
    fn unlimited_is_unlimited_and_periods_are_utc() {
        let ledger = QuotaLedger {
            in_flight: (0..50).map(|i| (i.to_string(), reserved(100.0))).collect(),
            ..QuotaLedger::default()
        };
        assert!(
            check(
                &ledger,
                &Limits::default(),
                100.0,
                at("2026-01-01T00:00:00Z"),
                "x"
            )
            .is_ok()
        );
        let t = at("2026-02-10T12:00:00Z");
        assert_eq!(
            (day(t), month(t)),
            ("2026-02-10".to_owned(), "2026-02".to_owned())
        );
        assert_eq!(until_next_day(t), 12 * 3600);
        assert_eq!(until_next_month(t), (18 * 24 + 12) * 3600);
    }
}
