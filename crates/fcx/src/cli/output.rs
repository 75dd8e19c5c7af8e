//! What the client commands print: ANSI colour only on a terminal, pretty JSON for
//! `--output json`, and `-` for a field an answer lacks.

use std::io::{IsTerminal, Write};

use serde_json::Value;

/// `text` in ANSI colour `sgr` when stderr is a terminal.
pub fn paint_err(text: &str, sgr: &str) -> String {
    if std::io::stderr().is_terminal() {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// `text` in ANSI colour `sgr` when stdout is a terminal.
pub fn paint_out(text: &str, sgr: &str) -> String {
    if std::io::stdout().is_terminal() {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// `v` pretty-printed on stdout.
pub fn print_json(v: &Value) {
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// The string field `k` of `v`, or `-`.
pub fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

/// A bold table header line on stdout.
pub fn print_header(line: &str) {
    println!("{}", paint_out(line, "1"));
}
