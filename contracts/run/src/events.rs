//! NEP-297 events of the run (standard `crowdtrain`); share movements also log the
//! NEP-141 `ft_mint` / `ft_transfer` / `ft_burn` events.

use near_sdk::env;
use near_sdk::serde_json::{Value, json};

/// The NEP-297 `standard` of every run event.
pub const STANDARD: &str = "crowdtrain";
/// The version of the event format.
pub const VERSION: &str = "1.0.0";

/// Logs `EVENT_JSON:{"standard":"crowdtrain","version":..,"event":..,"data":[data]}`.
pub fn emit(event: &str, data: Value) {
    let body = json!({
        "standard": STANDARD,
        "version": VERSION,
        "event": event,
        "data": [data],
    });
    env::log_str(&format!("EVENT_JSON:{body}"));
}
