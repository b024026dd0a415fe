//! Whether this device may volunteer now: the host's device conditions and the
//! population's contribution bounds, each failure named.

use covey_store::StoredParticipation;
use serde::{Deserialize, Serialize};

use super::api::PlanEligibility;
use crate::record::DAY_MS;

const HOUR_MS: i64 = 3_600_000;

/// Least battery charge at which a device that is not charging may take part.
pub const MIN_BATTERY_PERCENT: u8 = 20;

/// What the host app knows about the phone right now (from the OS's power and network APIs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceConditions {
    /// Plugged in.
    pub charging: bool,
    /// On an unmetered network (Wi-Fi, not cellular).
    pub unmetered: bool,
    /// The user is not using the phone.
    pub idle: bool,
    /// Battery charge, 0..=100.
    pub battery_percent: u8,
}

impl DeviceConditions {
    /// Conditions under which a round may run: charging, unmetered, idle, battery ≥ 20%.
    pub fn ideal() -> Self {
        DeviceConditions {
            charging: true,
            unmetered: true,
            idle: true,
            battery_percent: 100,
        }
    }
}

/// Why the device did not take part. Carries policy values only, never member data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Ineligible {
    /// The member has not consented to federated training (or consent lapsed).
    #[error("no valid consent for federated training")]
    Consent,
    /// Fewer local examples than the population requires.
    #[error("fewer local examples than the population's minimum ({need})")]
    TooFewExamples {
        /// The population's minimum.
        need: u32,
    },
    /// The device took part too recently.
    #[error("took part less than {hours} hours ago (minimum separation)")]
    TooSoon {
        /// The population's minimum separation.
        hours: u32,
    },
    /// The device reached the per-day participation cap.
    #[error("reached the per-day participation cap ({cap})")]
    DailyCap {
        /// The population's cap.
        cap: u32,
    },
    /// Not plugged in.
    #[error("not charging")]
    NotCharging,
    /// On a metered network.
    #[error("on a metered network")]
    Metered,
    /// The phone is in use.
    #[error("the device is not idle")]
    NotIdle,
    /// Battery too low.
    #[error("battery below {need}%")]
    BatteryLow {
        /// The threshold.
        need: u8,
    },
    /// The server has no round in check-in.
    #[error("no round is open for check-in")]
    NoRoundOpen,
    /// The server's own contribution bounds refused the check-in.
    #[error("the server refused the check-in: {reason}")]
    RefusedByServer {
        /// The server's message.
        reason: String,
    },
}

/// The first condition that rules the device out, if any.
pub(crate) fn check_conditions(c: &DeviceConditions) -> Result<(), Ineligible> {
    if !c.charging {
        return Err(Ineligible::NotCharging);
    }
    if !c.unmetered {
        return Err(Ineligible::Metered);
    }
    if !c.idle {
        return Err(Ineligible::NotIdle);
    }
    if c.battery_percent < MIN_BATTERY_PERCENT {
        return Err(Ineligible::BatteryLow {
            need: MIN_BATTERY_PERCENT,
        });
    }
    Ok(())
}

/// The population's per-day cap and minimum separation against this device's own
/// participation records (every round it checked in to counts, whatever the outcome: the
/// server counts check-ins the same way).
pub(crate) fn check_bounds(
    policy: &PlanEligibility,
    history: &[StoredParticipation],
    now_ms: i64,
) -> Result<(), Ineligible> {
    let starts = history.iter().map(|p| p.record.started_at_ms);
    let today = starts.clone().filter(|t| now_ms - t < DAY_MS).count();
    if today >= policy.max_per_day as usize {
        return Err(Ineligible::DailyCap {
            cap: policy.max_per_day,
        });
    }
    let separation = i64::from(policy.min_separation_hours) * HOUR_MS;
    if starts.max().is_some_and(|last| now_ms - last < separation) {
        return Err(Ineligible::TooSoon {
            hours: policy.min_separation_hours,
        });
    }
    Ok(())
}

/// Enough local examples for the population.
pub(crate) fn check_examples(policy: &PlanEligibility, examples: usize) -> Result<(), Ineligible> {
    if examples < policy.min_examples as usize {
        return Err(Ineligible::TooFewExamples {
            need: policy.min_examples,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use covey_store::{ParticipationOutcome, ParticipationRecord};

    use super::*;

    fn stored(started_at_ms: i64) -> StoredParticipation {
        StoredParticipation {
            id: 1,
            record: ParticipationRecord {
                population: "p".into(),
                round_id: 1,
                model_version: 0,
                started_at_ms,
                finished_at_ms: started_at_ms,
                outcome: ParticipationOutcome::Uploaded,
                bytes_uploaded: 0,
                epsilon_charged: 0.0,
            },
        }
    }

    #[test]
    fn each_condition_is_named() {
        let ok = DeviceConditions::ideal();
        assert_eq!(check_conditions(&ok), Ok(()));
        let cases = [
            (
                DeviceConditions {
                    charging: false,
                    ..ok
                },
                Ineligible::NotCharging,
            ),
            (
                DeviceConditions {
                    unmetered: false,
                    ..ok
                },
                Ineligible::Metered,
            ),
            (DeviceConditions { idle: false, ..ok }, Ineligible::NotIdle),
            (
                DeviceConditions {
                    battery_percent: 19,
                    ..ok
                },
                Ineligible::BatteryLow { need: 20 },
            ),
        ];
        for (c, why) in cases {
            assert_eq!(check_conditions(&c), Err(why));
        }
    }

    #[test]
    fn cap_and_separation_count_this_devices_rounds() {
        let policy = PlanEligibility {
            min_examples: 3,
            min_separation_hours: 2,
            max_per_day: 2,
        };
        let now = 10 * DAY_MS;
        assert_eq!(check_bounds(&policy, &[], now), Ok(()));
        let an_hour_ago = [stored(now - HOUR_MS)];
        assert_eq!(
            check_bounds(&policy, &an_hour_ago, now),
            Err(Ineligible::TooSoon { hours: 2 })
        );
        let twice_today = [stored(now - 5 * HOUR_MS), stored(now - 3 * HOUR_MS)];
        assert_eq!(
            check_bounds(&policy, &twice_today, now),
            Err(Ineligible::DailyCap { cap: 2 })
        );
        let yesterday = [stored(now - DAY_MS - 1), stored(now - 3 * HOUR_MS)];
        assert_eq!(check_bounds(&policy, &yesterday, now), Ok(()));
        assert_eq!(
            check_examples(&policy, 2),
            Err(Ineligible::TooFewExamples { need: 3 })
        );
        assert_eq!(check_examples(&policy, 3), Ok(()));
    }
}
