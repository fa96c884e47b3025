//! One campaign job: a subscriber and the campaign's idempotency key for them, as the text
//! body of one queue job, and the message it renders to (with the `X-Idempotency-Key` header
//! the relay deduplicates on).

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};

use crate::email::campaign::{Subscriber, TEMPLATE, content_digest, personalize};

/// The header that carries a message's idempotency key to the relay.
pub const IDEMPOTENCY_HEADER: &str = "X-Idempotency-Key";

/// The `X-Idempotency-Key` header.
#[derive(Clone, Debug)]
pub struct IdempotencyKey(pub String);

impl Header for IdempotencyKey {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str(IDEMPOTENCY_HEADER)
    }

    fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(IdempotencyKey(text.trim().to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// One message to send: whom to, and the key that makes sending it idempotent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignJob {
    /// `{campaign}:{subscriber id}`: the same on every delivery of the job.
    pub key: String,
    pub subscriber: Subscriber,
}

impl CampaignJob {
    pub fn new(campaign: &str, subscriber: Subscriber) -> CampaignJob {
        CampaignJob {
            key: format!("{campaign}:{}", subscriber.id),
            subscriber,
        }
    }

    /// The job body: tab-separated key, id, first name, last name, email, city.
    pub fn encode(&self) -> Vec<u8> {
        let s = &self.subscriber;
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            self.key, s.id, s.first_name, s.last_name, s.email, s.city
        )
        .into_bytes()
    }

    pub fn decode(body: &[u8]) -> Result<CampaignJob, String> {
        let text = std::str::from_utf8(body).map_err(|_| "job body is not UTF-8".to_owned())?;
        let fields: Vec<&str> = text.split('\t').collect();
        let [key, id, first, last, email, city] = fields[..] else {
            return Err(format!("job body has {} fields, not 6", fields.len()));
        };
        Ok(CampaignJob {
            key: key.to_owned(),
            subscriber: Subscriber {
                id: id
                    .parse()
                    .map_err(|e| format!("subscriber id {id:?}: {e}"))?,
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                email: email.to_owned(),
                city: city.to_owned(),
            },
        })
    }

    /// The personalized message, carrying the job's idempotency key.
    pub fn render(&self) -> Result<Message, String> {
        let s = &self.subscriber;
        let body = personalize(TEMPLATE, s)?;
        let digest = content_digest(body.as_bytes());
        let from: Mailbox = "uberpool news <news@example.com>"
            .parse()
            .map_err(|e| format!("sender: {e}"))?;
        let to = Mailbox::new(
            Some(format!("{} {}", s.first_name, s.last_name)),
            s.email.parse().map_err(|e| format!("{}: {e}", s.email))?,
        );
        Message::builder()
            .from(from)
            .to(to)
            .subject(format!("News for {}", s.city))
            .message_id(Some(format!("<{digest:016x}.{}@example.com>", s.id)))
            .header(ContentType::TEXT_PLAIN)
            .header(IdempotencyKey(self.key.clone()))
            .body(body)
            .map_err(|e| format!("{}: {e}", s.email))
    }
}
