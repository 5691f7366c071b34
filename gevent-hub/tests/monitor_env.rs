//! `monitor::from_env` reads gevent's variables, `GEVENT_MONITOR_THREAD_ENABLE` and
//! `GEVENT_MAX_BLOCKING_TIME`. One test alone in its binary: the environment is
//! process-wide, and no other test may read it while this one changes it.

use gevent_hub::monitor::{from_env, DEFAULT_THRESHOLD, MIN_DEFAULT_PERIOD};
use std::env::{remove_var, set_var};
use std::time::Duration;

const ENABLE: &str = "GEVENT_MONITOR_THREAD_ENABLE";
const MAX: &str = "GEVENT_MAX_BLOCKING_TIME";

fn set(enable: Option<&str>, max: Option<&str>) {
    match enable {
        Some(v) => set_var(ENABLE, v),
        None => remove_var(ENABLE),
    }
    match max {
        Some(v) => set_var(MAX, v),
        None => remove_var(MAX),
    }
}

#[test]
fn from_env_starts_a_monitor_only_when_the_variables_ask_for_a_valid_one() {
    for (enable, max) in [
        (None, None),
        (None, Some("0.5")),
        (Some("0"), None),
        (Some("off"), Some("not a number")), // off: the threshold is not even read
        (Some(""), None),
    ] {
        set(enable, max);
        assert!(from_env().is_none(), "{enable:?} {max:?}");
    }

    set(Some(" Yes "), None);
    let m = from_env().expect("enabled with the default threshold");
    assert_eq!(m.threshold(), DEFAULT_THRESHOLD);
    assert_eq!(m.period(), MIN_DEFAULT_PERIOD);
    assert_eq!(m.tick(), Duration::from_millis(10));
    drop(m);

    set(Some("1"), Some("0.02"));
    let m = from_env().expect("enabled with a threshold of 20 ms");
    assert_eq!(m.threshold(), Duration::from_millis(20));
    assert_eq!(m.tick(), Duration::from_millis(2));
    drop(m);

    set(Some("TRUE"), Some("2.5"));
    let m = from_env().expect("enabled with a threshold of 2.5 s");
    assert_eq!(m.threshold(), Duration::from_millis(2500));
    assert_eq!(m.period(), Duration::from_millis(2500));
    assert_eq!(m.tick(), Duration::from_millis(50));
    drop(m);

    // Invalid values: one line on stderr each, and no monitor.
    for (enable, max) in [
        (Some("maybe"), None),
        (Some("1"), Some("abc")),
        (Some("1"), Some("0")),
        (Some("1"), Some("-0.1")),
        (Some("1"), Some("nan")),
    ] {
        set(enable, max);
        assert!(from_env().is_none(), "{enable:?} {max:?}");
    }
    set(None, None);
}
