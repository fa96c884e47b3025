//! The email campaign of `examples/email_campaign.rs`, through the same code (the
//! `examples/email` module), against the example's SMTP relay: every recipient gets exactly one
//! message, also when the relay refuses some recipients on their first try, under both
//! strategies.

#[path = "../examples/email/mod.rs"]
mod email;

use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use uberpool::{PoolsConfig, Resources, SchedulerService, Strategy};

use email::campaign::{CampaignConfig, CampaignReport, SubscriberStore, run_campaign};
use email::relay::{Relay, RelayLog, RelayOptions, refused_on_first_try};

const RECIPIENTS: usize = 200;

fn service(strategy: Strategy) -> SchedulerService {
    let mut config = PoolsConfig::discover(None, &Resources::detect()).expect("default pools");
    config.strategy = strategy;
    SchedulerService::builder()
        .name("email-test")
        .config(config)
        .build()
        .expect("service starts")
}

fn relay(refuse_first_percent: u32) -> Relay {
    Relay::start(RelayOptions {
        refuse_first_percent,
        capacity: None,
    })
    .expect("relay starts")
}

/// Runs a campaign to `RECIPIENTS` subscribers; returns the report, the relay's log and the
/// addresses.
fn campaign(
    strategy: Strategy,
    refuse_first_percent: u32,
) -> (CampaignReport, RelayLog, Vec<String>) {
    let config = CampaignConfig {
        recipients: RECIPIENTS,
        batch_size: 20,
        batches_in_flight: 4,
        smtp_connections: 8,
        rate_per_second: None,
        max_attempts: 5,
        first_backoff: Duration::from_millis(20),
    };
    let relay = relay(refuse_first_percent);
    let store = Arc::new(SubscriberStore::generate(config.recipients).expect("store written"));
    let service = service(strategy);
    let report = run_campaign(
        &service,
        relay.port(),
        &store,
        &config,
        &ProgressBar::hidden(),
    )
    .expect("campaign runs");
    service.shutdown();
    let addresses = store.addresses().expect("store readable");
    (report, relay.log(), addresses)
}

fn assert_exactly_once(report: &CampaignReport, log: &RelayLog, addresses: &[String]) {
    assert_eq!(addresses.len(), RECIPIENTS);
    assert!(report.batch_errors.is_empty(), "{:?}", report.batch_errors);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.sent, RECIPIENTS);
    assert_eq!(log.messages, RECIPIENTS as u64);
    // Every message carries its own idempotency key, and none was sent twice.
    assert_eq!(log.duplicates, 0);
    // Each SMTP transaction took time on the wire, and the campaign at least one of them.
    assert!(report.mean_send > Duration::ZERO);
    assert!(report.wall >= report.mean_send);
    log.verify_exactly_once(addresses.iter().map(String::as_str))
        .expect("one message per recipient");
}

#[test]
fn every_recipient_gets_exactly_one_message() {
    let (report, log, addresses) = campaign(Strategy::Uber, 0);
    assert_exactly_once(&report, &log, &addresses);
    assert_eq!(report.retries, 0);
    assert!(log.refused_first.is_empty());
}

#[test]
fn recipients_refused_on_first_try_are_retried_and_get_exactly_one_message() {
    let (report, log, addresses) = campaign(Strategy::Uber, 5);
    let expected: Vec<&String> = addresses
        .iter()
        .filter(|a| refused_on_first_try(a, 5))
        .collect();
    assert!(
        !expected.is_empty(),
        "5 % of 200 addresses should include some"
    );
    assert_eq!(log.refused_first.len(), expected.len());
    assert!(expected.iter().all(|a| log.refused_first.contains(*a)));
    assert_eq!(report.retries, expected.len() as u64);
    assert_exactly_once(&report, &log, &addresses);
}

#[test]
fn dedicated_pools_deliver_exactly_once_with_refusals() {
    let (report, log, addresses) = campaign(Strategy::Dedicated, 5);
    assert!(!log.refused_first.is_empty());
    assert_eq!(report.retries, log.refused_first.len() as u64);
    assert_exactly_once(&report, &log, &addresses);
}

#[test]
fn a_recipient_refused_on_every_try_is_reported_as_failed() {
    // With one try allowed, the refused recipients are not retried: they must come back as
    // failures, each named, and the relay must hold no message for them.
    let config = CampaignConfig {
        recipients: RECIPIENTS,
        batch_size: 20,
        batches_in_flight: 4,
        smtp_connections: 8,
        rate_per_second: None,
        max_attempts: 1,
        first_backoff: Duration::from_millis(20),
    };
    let relay = relay(5);
    let store = Arc::new(SubscriberStore::generate(config.recipients).expect("store written"));
    let service = service(Strategy::Uber);
    let report = run_campaign(
        &service,
        relay.port(),
        &store,
        &config,
        &ProgressBar::hidden(),
    )
    .expect("campaign runs");
    service.shutdown();
    let log = relay.log();
    assert!(report.batch_errors.is_empty(), "{:?}", report.batch_errors);
    assert!(!report.failed.is_empty());
    assert_eq!(report.failed.len(), log.refused_first.len());
    assert_eq!(report.sent + report.failed.len(), RECIPIENTS);
    for failure in &report.failed {
        assert!(log.refused_first.contains(&failure.email), "{failure:?}");
        assert!(!log.accepted.contains_key(&failure.email), "{failure:?}");
        assert_eq!(failure.attempts, 1);
    }
    assert_eq!(log.messages, report.sent as u64);
}
