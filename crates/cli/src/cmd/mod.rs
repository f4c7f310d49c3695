pub mod bench;
pub mod bench_train;
pub mod chat;
pub mod eval;
pub mod generate;
pub mod pull;
pub mod quickstart;
pub mod train;
