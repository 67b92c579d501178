//! One module per page.

pub mod compare;
pub mod new_run;
pub mod query_explorer;
pub mod run;
pub mod run_results;
pub mod runners;
pub mod runs;
pub mod shared;
pub mod team;

/// Formats epoch milliseconds as `YYYY-MM-DD HH:MM` in UTC.
pub fn format_ms(ms: i64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    let iso: String = date.to_iso_string().into();
    iso.get(..16).unwrap_or(&iso).replace('T', " ")
}
