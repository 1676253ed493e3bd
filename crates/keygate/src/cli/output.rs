//! Rendering operator output as a table or JSON.

use super::Format;
use serde_json::Value;

/// Print `value` as pretty JSON, or pick `columns` out of each row of
/// `rows` into a table.
pub fn print(format: Format, value: &Value, rows: &[Value], columns: &[&str]) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Format::Table => {
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::NOTHING);
            table.set_header(columns.iter().map(|c| c.to_uppercase()));
            for row in rows {
                table.add_row(columns.iter().map(|c| cell(&row[*c])));
            }
            println!("{table}");
        }
    }
}

/// Print a resource whose answer carries a new secret (`key`), shown this
/// once: the whole answer as JSON, or its row, the secret and a warning.
/// `note` adds a line before the warning.
pub fn print_with_secret(format: Format, value: &Value, columns: &[&str], note: Option<&str>) {
    if format == Format::Json {
        return print(format, value, &[], &[]);
    }
    print(format, value, std::slice::from_ref(value), columns);
    println!("\nkey: {}", value["key"].as_str().unwrap_or_default());
    if let Some(note) = note {
        println!("{note}");
    }
    println!("This secret is shown only now; store it safely.");
}

/// One value as a table cell shows it.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "*".into(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
