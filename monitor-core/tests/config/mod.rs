//! config.xml read from real files: good ones load into the expected model, each bad one fails
//! with exactly the errors `data/bad/expected.txt` lists.

mod bad;
mod good;
mod util;
