//! Test scaffolding, a dev-dependency only: starts the real things the tests run against
//! (monitord on a port-0 listener, the static agent, sshd, an SMTP server) and hands back
//! handles that stop them and remove their files on drop. Tests never copy this code.

pub mod agent;
pub mod browser;
pub mod certs;
pub mod monitord;
pub mod process;
pub mod smtp;
pub mod sshd;
pub mod util;
