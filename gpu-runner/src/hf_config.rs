//! Hugging Face `config.json` files in the forms transformers 4.x and 5.x write, mapped to one
//! form before typed deserialisation, so that every model family reads the same keys.
//!
//! What differs between the versions, for the keys the loaders read:
//!
//! | setting         | transformers 4.x                          | transformers 5.x                     |
//! |-----------------|-------------------------------------------|--------------------------------------|
//! | checkpoint type | `torch_dtype` (`dtype` from 4.56)          | `dtype` (`torch_dtype` still read)   |
//! | RoPE base       | top-level `rope_theta`                    | `rope_parameters.rope_theta`         |
//! | RoPE scaling    | `rope_scaling`: `null` or `{type, …}`     | `rope_parameters.rope_type`          |
//!
//! [`normalize`] rewrites either form into the one the typed configs read: `dtype` (from
//! `dtype`, else `torch_dtype`, as transformers 5 does), a top-level `rope_theta` when the file
//! names one, and no `torch_dtype`, `rope_scaling`, `rope_parameters` or `partial_rotary_factor`.
//! Only the `default` RoPE type over the whole head is supported; anything else is refused with
//! the key and the value, never run as `default`.
//!
//! Exports go the other way ([`set_export_dtype`]): transformers 4.x reads neither `dtype` nor
//! `rope_parameters` (it silently falls back to float32 and θ = 10,000), while 5.x still reads
//! `torch_dtype` and a top-level `rope_theta`; so the files this crate writes use the 4.x form.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The only RoPE type the models implement: rotation by `θ^(−2i/d)` over the whole head.
pub const DEFAULT_ROPE_TYPE: &str = "default";

/// Parses the `config.json` bytes at `path` (named in errors) into `T` after [`normalize`];
/// `what` (e.g. "a Qwen3 config") names `T` in the message of a file that does not fit it.
pub fn parse<T: DeserializeOwned>(path: &Path, bytes: &[u8], what: &str) -> Result<T> {
    let model_error = |message: String| Error::Model {
        path: path.to_path_buf(),
        message,
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| model_error(format!("not {what}: {e}")))?;
    let value = normalize(value).map_err(model_error)?;
    serde_json::from_value(value).map_err(|e| model_error(format!("not {what}: {e}")))
}

/// Rewrites a transformers 4.x or 5.x config into the one form the typed configs read (see the
/// module documentation). The error names the key and the value.
pub fn normalize(mut value: Value) -> std::result::Result<Value, String> {
    let Value::Object(map) = &mut value else {
        return Err(format!("expected a JSON object, found {value}"));
    };
    fold_dtype(map)?;
    fold_rope(map)?;
    Ok(value)
}

/// Records the dtype of exported weights as `torch_dtype`, which transformers 4.x and 5.x both
/// read, and drops a `dtype` copied from a newer source config: 5.x would prefer it.
pub fn set_export_dtype(map: &mut Map<String, Value>, dtype: &str) {
    map.remove("dtype");
    map.insert("torch_dtype".into(), dtype.into());
}

/// `dtype`, else `torch_dtype`, as `dtype`; `null` counts as absent.
fn fold_dtype(map: &mut Map<String, Value>) -> std::result::Result<(), String> {
    let legacy = map.remove("torch_dtype").filter(|v| !v.is_null());
    let current = map.remove("dtype").filter(|v| !v.is_null());
    let (key, value) = match (current, legacy) {
        (Some(v), _) => ("dtype", v),
        (None, Some(v)) => ("torch_dtype", v),
        (None, None) => return Ok(()),
    };
    if !value.is_string() {
        return Err(format!(
            "{key}: expected a dtype name such as \"bfloat16\", found {value}"
        ));
    }
    map.insert("dtype".into(), value);
    Ok(())
}

/// `rope_parameters` (5.x) or `rope_scaling` (4.x) checked and folded into `rope_theta`.
fn fold_rope(map: &mut Map<String, Value>) -> std::result::Result<(), String> {
    let parameters = take_object(map, "rope_parameters")?;
    let scaling = take_object(map, "rope_scaling")?;
    let rope = match (parameters, scaling) {
        (Some(p), Some(s)) if p.1 != s.1 => {
            return Err(format!(
                "rope_parameters {} and rope_scaling {} disagree: keep one",
                Value::Object(p.1),
                Value::Object(s.1)
            ))
        }
        (p, s) => p.or(s),
    };
    if map.get("rope_theta").is_some_and(Value::is_null) {
        map.remove("rope_theta");
    }
    if let Some(theta) = map.get("rope_theta") {
        positive("rope_theta", theta)?;
    }
    if let Some(factor) = map.remove("partial_rotary_factor") {
        whole_head("partial_rotary_factor", &factor)?;
    }
    let Some((key, params)) = rope else {
        return Ok(());
    };
    if let Some((name, _)) = params.iter().find(|(_, v)| v.is_object()) {
        return Err(format!(
            "{key}.{name}: RoPE parameters per layer type are not supported"
        ));
    }
    let rope_type = ["rope_type", "type"]
        .into_iter()
        .find_map(|k| params.get(k).map(|v| (k, v)));
    if let Some((type_key, value)) = rope_type {
        if value.as_str() != Some(DEFAULT_ROPE_TYPE) {
            return Err(format!(
                "{key}.{type_key}: {value} is not supported (only \"{DEFAULT_ROPE_TYPE}\")"
            ));
        }
    }
    if let Some(factor) = params.get("partial_rotary_factor") {
        whole_head(&format!("{key}.partial_rotary_factor"), factor)?;
    }
    if let Some(theta) = params.get("rope_theta") {
        let nested = positive(&format!("{key}.rope_theta"), theta)?;
        if let Some(top) = map.get("rope_theta").and_then(Value::as_f64) {
            if top != nested {
                return Err(format!(
                    "rope_theta {top} and {key}.rope_theta {nested} disagree: keep one"
                ));
            }
        }
        map.insert("rope_theta".into(), theta.clone());
    }
    Ok(())
}

/// A RoPE object of the file and the key it was under.
type Keyed = (&'static str, Map<String, Value>);

/// Removes `key`; `null` is absent, anything but an object is an error.
fn take_object(
    map: &mut Map<String, Value>,
    key: &'static str,
) -> std::result::Result<Option<Keyed>, String> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some((key, m))),
        Some(other) => Err(format!("{key}: expected an object or null, found {other}")),
    }
}

fn positive(key: &str, value: &Value) -> std::result::Result<f64, String> {
    match value.as_f64() {
        Some(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("{key}: expected a positive number, found {value}")),
    }
}

fn whole_head(key: &str, value: &Value) -> std::result::Result<(), String> {
    if value.as_f64() == Some(1.0) {
        return Ok(());
    }
    Err(format!("{key}: {value} is not supported (only 1.0)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(input: Value, expect: Value) {
        assert_eq!(normalize(input), Ok(expect));
    }

    fn check_err(input: Value, expect: &str) {
        let err = normalize(input).unwrap_err();
        assert_eq!(err, expect);
    }

    #[test]
    fn both_forms_fold_to_rope_theta_and_dtype() {
        let canonical = json!({"rope_theta": 1e6, "dtype": "bfloat16", "hidden_size": 8});
        // transformers 4.51 (the hub's Qwen3-Reranker): integer theta, null scaling.
        check(
            json!({"rope_theta": 1000000, "rope_scaling": null, "torch_dtype": "bfloat16", "hidden_size": 8}),
            json!({"rope_theta": 1000000, "dtype": "bfloat16", "hidden_size": 8}),
        );
        // transformers 5.
        check(
            json!({"rope_parameters": {"rope_type": "default", "rope_theta": 1e6}, "dtype": "bfloat16", "hidden_size": 8}),
            canonical.clone(),
        );
        // 4.x with an explicit default scaling, in the legacy `type` spelling.
        check(
            json!({"rope_theta": 1e6, "rope_scaling": {"type": "default"}, "dtype": "bfloat16", "torch_dtype": "float32", "hidden_size": 8}),
            canonical,
        );
        // Both keys agreeing; a RoPE-free config is left alone; partial factor 1 is the default.
        check(
            json!({"rope_parameters": {"rope_theta": 5e5}, "rope_scaling": {"rope_theta": 5e5}, "partial_rotary_factor": 1.0}),
            json!({"rope_theta": 5e5}),
        );
        check(
            json!({"hidden_size": 8, "torch_dtype": null}),
            json!({"hidden_size": 8}),
        );
    }

    #[test]
    fn other_rope_types_and_conflicts_are_refused_by_key() {
        check_err(
            json!({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6}}),
            "rope_parameters.rope_type: \"yarn\" is not supported (only \"default\")",
        );
        check_err(
            json!({"rope_theta": 1e6, "rope_scaling": {"type": "linear", "factor": 2.0}}),
            "rope_scaling.type: \"linear\" is not supported (only \"default\")",
        );
        check_err(
            json!({"rope_scaling": {"rope_type": "dynamic", "type": "default"}}),
            "rope_scaling.rope_type: \"dynamic\" is not supported (only \"default\")",
        );
        check_err(
            json!({"rope_theta": 1e4, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}}),
            "rope_theta 10000 and rope_parameters.rope_theta 1000000 disagree: keep one",
        );
        check_err(
            json!({"rope_parameters": {"rope_type": "default"}, "rope_scaling": {"rope_type": "yarn"}}),
            "rope_parameters {\"rope_type\":\"default\"} and rope_scaling {\"rope_type\":\"yarn\"} disagree: keep one",
        );
        check_err(
            json!({"rope_parameters": {"full_attention": {"rope_type": "default"}}}),
            "rope_parameters.full_attention: RoPE parameters per layer type are not supported",
        );
        check_err(
            json!({"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.5}}),
            "rope_parameters.partial_rotary_factor: 0.5 is not supported (only 1.0)",
        );
        check_err(
            json!({"rope_parameters": {"rope_theta": "big"}}),
            "rope_parameters.rope_theta: expected a positive number, found \"big\"",
        );
        check_err(
            json!({"rope_scaling": 2}),
            "rope_scaling: expected an object or null, found 2",
        );
        check_err(
            json!({"torch_dtype": 16}),
            "torch_dtype: expected a dtype name such as \"bfloat16\", found 16",
        );
        check_err(json!([1]), "expected a JSON object, found [1]");
    }

    #[test]
    fn parse_names_the_file_and_exports_keep_torch_dtype() {
        #[derive(serde::Deserialize, Debug)]
        struct Rope {
            rope_theta: f64,
        }
        let path = Path::new("/m/config.json");
        let ok: Rope = parse(
            path,
            br#"{"rope_parameters": {"rope_theta": 2.5}}"#,
            "Qwen3",
        )
        .unwrap();
        assert_eq!(ok.rope_theta, 2.5);
        let err = parse::<Rope>(
            path,
            br#"{"rope_scaling": {"type": "yarn"}}"#,
            "a Qwen3 config",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "/m/config.json: rope_scaling.type: \"yarn\" is not supported (only \"default\")"
        );
        let err = parse::<Rope>(path, b"{}", "a Qwen3 config")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/m/config.json: not a Qwen3 config: missing field"),
            "{err}"
        );

        let mut map = json!({"dtype": "bfloat16", "hidden_size": 8});
        set_export_dtype(map.as_object_mut().unwrap(), "float32");
        assert_eq!(map, json!({"torch_dtype": "float32", "hidden_size": 8}));
    }
}
