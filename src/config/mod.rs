//! Configuration (placeholder until the configuration module lands).
