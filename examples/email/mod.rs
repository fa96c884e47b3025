//! The email pipeline shared by `examples/email_campaign.rs` and the tests (`tests/email_pipeline.rs`,
//! `tests/relay.rs`): the campaign flow (`campaign`), the small SMTP client it sends with
//! (`client`) and the SMTP relay on loopback it sends to (`relay`). A folder module, so it is no
//! example target of its own.
// Each crate that includes this module uses a different part of it.
#![allow(dead_code)]

pub mod campaign;
pub mod client;
pub mod relay;
