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
