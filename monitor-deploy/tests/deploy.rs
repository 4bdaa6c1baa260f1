//! Deploys that reach the host: (filled in below)
