//! One campaign job: a subscriber and the campaign's idempotency key for them, as the text
//! body of one queue job, and the message it renders to (with the `X-Idempotency-Key` header
//! the relay deduplicates on).

use crate::email::campaign::{Subscriber, TEMPLATE, content_digest, personalize};
use crate::email::relay::IDEMPOTENCY_HEADER;

/// The sender of every message.
pub const FROM_ADDRESS: &str = "news@example.com";

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

    /// The personalized message (headers, a blank line, the body), carrying the job's
    /// idempotency key.
    pub fn render(&self) -> Result<String, String> {
        let s = &self.subscriber;
        let plain = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_ascii_graphic());
        if !plain(&s.email) || !s.email.contains('@') || s.email.contains(['<', '>', '"']) {
            return Err(format!("{:?}: not an address", s.email));
        }
        let name = format!("{} {}", s.first_name, s.last_name);
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
        {
            return Err(format!("{name:?}: a name needs quoting"));
        }
        if !plain(&self.key) {
            return Err(format!("{:?}: not a header value", self.key));
        }
        let body = personalize(TEMPLATE, s)?;
        let digest = content_digest(body.as_bytes());
        Ok(format!(
            "From: uberpool news <{FROM_ADDRESS}>\r\n\
             To: {name} <{email}>\r\n\
             Subject: News for {city}\r\n\
             Message-ID: <{digest:016x}.{id}@example.com>\r\n\
             {IDEMPOTENCY_HEADER}: {key}\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             \r\n\
             {body}",
            email = s.email,
            city = s.city,
            id = s.id,
            key = self.key,
        ))
    }
}
