//! Streamed reading and Python-compatible writing of JSON Lines files.
//!
//! Reading: [`for_each_line`] streams a `.jsonl` file, or a `.jsonl.gz` file through a gzip
//! decoder, and hands each non-blank line to a callback with its 1-based line number. A corrupt
//! or truncated gzip stream becomes an [`Error::Input`] naming the line being read.
//!
//! Writing: the reference pipeline writes its files with Python's
//! `json.dumps(obj, ensure_ascii=False)`. [`write_str`] and [`write_f64`] reproduce that byte for
//! byte (raw UTF-8, `", "` and `": "` separators, `repr(float)` numbers).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::{Error, Result};

/// Whether `path` names a gzip file (its name ends in `.gz`).
pub fn is_gzip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Opens `path` for streamed reading, decompressing it when its name ends in `.gz`.
fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader: Box<dyn Read> = if is_gzip(path) {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            file,
        )))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, reader)))
}

/// Calls `on_line(line_no, bytes)` for every line of `path` that is not blank, in file order.
/// `line_no` is 1-based; `bytes` excludes the line terminator (`\n` or `\r\n`).
/// The first error, from reading or from `on_line`, stops the walk and is returned.
pub fn for_each_line(
    path: &Path,
    mut on_line: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut reader = open(path)?;
    let gzip = is_gzip(path);
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| read_error(path, line_no + 1, gzip, e))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let mut line = buf.as_slice();
        if let Some(rest) = line.strip_suffix(b"\n") {
            line = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        on_line(line_no, line)?;
    }
}

fn read_error(path: &Path, line_no: usize, gzip: bool, e: std::io::Error) -> Error {
    if gzip {
        Error::input(
            path,
            line_no,
            "gzip",
            format!("corrupt or truncated gzip stream: {e}"),
        )
    } else {
        Error::io(path, e)
    }
}

/// Writes `s` as a JSON string the way Python's `json.dumps(s, ensure_ascii=False)` does.
pub fn write_str(out: &mut impl Write, s: &str) -> std::io::Result<()> {
    // serde_json escapes exactly `"`, `\` and the C0 controls, with Python's short forms and
    // lowercase `\u00xx` otherwise, which is Python's `ensure_ascii=False` output.
    serde_json::to_writer(&mut *out, s).map_err(std::io::Error::other)
}

/// Writes a finite `x` the way Python's `repr(float)` (and so `json.dumps`) does:
/// the shortest round-trip digits, positional for exponents in `-4..16`, otherwise
/// `d.ddde±XX`, and always with a `.0` when integral in positional form.
pub fn write_f64(out: &mut impl Write, x: f64) -> std::io::Result<()> {
    out.write_all(py_float_repr(x).as_bytes())
}

/// Python's `repr(x)` of a float; NaN and infinities as Python's `json.dumps` spells them.
pub fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, like Python's repr.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        positional(sign, &digits, exp)
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

fn positional(sign: &str, digits: &str, exp: i32) -> String {
    let n_digits = digits.len() as i32;
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("{sign}0.{zeros}{digits}")
    } else if exp + 1 >= n_digits {
        let zeros = "0".repeat((exp + 1 - n_digits) as usize);
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (int, frac) = digits.split_at((exp + 1) as usize);
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        // Expected strings are Python 3 `repr(float(x))`.
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (2.5, "2.5"),
            (-3.25, "-3.25"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (123456789.0, "123456789.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e-300, "1e-300"),
            (0.30000000000000004, "0.30000000000000004"),
            (5.960464477539063e-08, "5.960464477539063e-08"),
            (12.3456, "12.3456"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float_repr(*x), *want, "repr of {x:e}");
        }
    }

    #[test]
    fn strings_like_python_ensure_ascii_false() {
        let mut out = Vec::new();
        write_str(&mut out, "é \"q\" \\ \n\t\u{1}\u{7f}").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"é \\\"q\\\" \\\\ \\n\\t\\u0001\u{7f}\""
        );
    }

    #[test]
    fn lines_are_numbered_and_blank_lines_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "one\r\n\n  \nfour").unwrap();
        let mut seen = Vec::new();
        for_each_line(&path, |n, l| {
            seen.push((n, String::from_utf8(l.to_vec()).unwrap()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(1, "one".into()), (4, "four".into())]);
    }
}
