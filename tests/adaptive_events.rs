//! An adaptive view's decisions are `tracing` events at DEBUG, with the scheduler's name, the
//! decision, the limit before and after, and the gradient. A binary of its own: it installs a
//! process-wide subscriber (the limit's steps are logged on pool threads).

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use uberpool::{AdaptiveConcurrency, SchedulerConfig, SchedulerService, TaskClass};

/// One event: its level and its fields rendered as `name=value`.
#[derive(Clone, Debug)]
struct Logged {
    level: Level,
    fields: Vec<String>,
}

/// Keeps uberpool's events.
struct Collect(Arc<Mutex<Vec<Logged>>>);

struct Fields(Vec<String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={value:?}", field.name()));
    }
}

impl Subscriber for Collect {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("uberpool")
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Logged {
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_backoff_is_logged_at_debug_with_the_limit_before_and_after() {
    let events = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::set_global_default(Collect(events.clone())).expect("the only subscriber");
    let service = SchedulerService::builder().name("mailer").build().unwrap();
    let relay = service
        .scheduler_with(
            TaskClass::Io,
            SchedulerConfig::new()
                .name("smtp")
                .adaptive_concurrency(AdaptiveConcurrency::new().initial_limit(10)),
        )
        .unwrap();
    // The step is logged by the thread that ran the task, before its handle resolves.
    assert!(
        relay
            .submit(uberpool::report_overload)
            .unwrap()
            .join()
            .unwrap()
    );
    let logged = events.lock().unwrap().clone();
    let step = logged
        .iter()
        .find(|e| e.fields.iter().any(|f| f == "decision=Backoff"))
        .unwrap_or_else(|| panic!("no step among {logged:#?}"));
    assert_eq!(step.level, Level::DEBUG);
    for field in ["scheduler=smtp", "before=10", "after=8", "gradient=1.0"] {
        assert!(
            step.fields.iter().any(|f| f == field),
            "{field} in {step:?}"
        );
    }
    assert!(
        step.fields
            .iter()
            .any(|f| f.starts_with("message=adaptive limit of scheduler 'smtp'")),
        "{step:?}"
    );
}
