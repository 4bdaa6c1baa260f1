//! The deployer's library part: the parser of what the probe prints on a host ([`probe`]) and
//! the judgement of an agent's last send ([`last_send`]) that it uses. Pure functions, apart
//! from the binary (`main.rs`) so the fuzz targets (`fuzz/`) can call them.

pub mod last_send;
pub mod probe;
