//! Helpers for the end-to-end tests against the running kernel.
