//! The email pipeline shared by `examples/email_campaign.rs` and `tests/email_pipeline.rs`:
//! the campaign flow (`campaign`) and the SMTP relay on loopback it sends to (`relay`). A folder
//! module, so it is no example target of its own.

pub mod campaign;
pub mod relay;
