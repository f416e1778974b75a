//! `gateway-holder`: validates its configuration, then holds the Gateway session.

use gateway_holder::config::Config;
use std::process::ExitCode;

fn main() -> ExitCode {
    match Config::from_env() {
        Ok(_config) => {
            eprintln!("gateway-holder: configuration ok; the gateway session is not built yet");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gateway-holder: configuration error: {e}");
            ExitCode::from(2)
        }
    }
}
