pub mod bench;
pub mod generate;
pub mod pull;
pub mod quickstart;
