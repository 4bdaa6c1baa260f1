//! Test scaffolding (dev-only): starts real processes and cleans them up on drop.
