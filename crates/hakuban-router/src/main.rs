//! # hakuban-router
//!
//! `main()` around an exchange, a WebSocket listener, an optional connector to a parent router,
//! the periodic rebalancing timer, monitor objects, signals and operational options.
//!
//! Until the networking work lands, it refuses to start with a clear message.

fn main() -> std::process::ExitCode {
    eprintln!("hakuban-router: networking is not implemented yet; see the project's issues");
    std::process::ExitCode::FAILURE
}
