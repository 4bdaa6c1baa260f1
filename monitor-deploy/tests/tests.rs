//! monitor-deploy against real OpenSSH servers (testkit::sshd), the real static agent and a
//! real monitord. One test binary; the harness is in `support`.

mod after_login;
mod connect;
mod deploy;
mod faults;
mod support;
