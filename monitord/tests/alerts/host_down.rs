//! The built-in host-down rule: three minutes of silence fire it, the next sample resolves it,
//! and monitord's own downtime is not counted as the host's silence.

use std::time::Duration;

use super::{Feeder, MAIL_WAIT, QUIET, subjects, web1_mailing_ops};

#[test]
fn host_down_fires_after_three_minutes_of_silence_and_the_next_sample_resolves_it() {
    // The 3-minute floor is the product's; a 10 s interval does not shorten it. The test
    // moves monitord's clock instead of waiting.
    let (smtp, m) = web1_mailing_ops("");
    let mut f = Feeder::new("web1");
    f.cpu(&m, 5.0);
    m.advance_clock(Duration::from_secs(160));
    // Past two host-down ticks (5 s), real time passing too: 171 s of silence is not down.
    assert!(
        smtp.settle(Duration::from_secs(11)).is_empty(),
        "down before 3 minutes of silence"
    );
    m.advance_clock(Duration::from_secs(15));
    let mail = smtp.wait_for(1, MAIL_WAIT);
    assert_eq!(
        mail[0].subject,
        "[monitord] FIRING web1: down, no sample for 3m"
    );
    f.cpu(&m, 5.0);
    let mail = smtp.wait_for(2, MAIL_WAIT);
    assert_eq!(
        mail[1].subject,
        "[monitord] RESOLVED web1: up again after 3m"
    );
    assert_eq!(smtp.settle(QUIET).len(), 2);
}

#[test]
fn monitord_s_own_downtime_does_not_count_as_host_silence() {
    // Silence counts from the later of the last sample and monitord's start: a client silent
    // while monitord was down gets its full 3 minutes after monitord is back. The test moves
    // monitord's clock instead of waiting.
    let (smtp, mut m) = web1_mailing_ops("");
    Feeder::new("web1").cpu(&m, 5.0);
    m.kill9();
    m.advance_clock(Duration::from_secs(60));
    m.spawn();
    m.advance_clock(Duration::from_secs(160));
    assert!(
        smtp.settle(Duration::from_secs(11)).is_empty(),
        "host down counted monitord's own downtime: {:?}; monitord's log:\n{}",
        subjects(&smtp.messages()),
        m.stderr()
    );
    m.advance_clock(Duration::from_secs(15));
    let mail = smtp.wait_for(1, MAIL_WAIT);
    assert_eq!(
        mail[0].subject,
        "[monitord] FIRING web1: down, no sample for 3m"
    );
}
