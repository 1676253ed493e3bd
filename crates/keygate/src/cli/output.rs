//! Rendering operator output as a table, JSON or CSV.

use super::Format;
use serde_json::Value;

/// Print `value` as pretty JSON, or pick `columns` out of each row of
/// `rows` into a table or CSV (a header line, then one record a row).
pub fn print(format: Format, value: &Value, rows: &[Value], columns: &[&str]) {
    match format {
        Format::Csv => {
            let records = rows
                .iter()
                .map(|row| columns.iter().map(|c| csv_cell(&row[*c])).collect());
            if let Err(e) = write_csv(std::io::stdout().lock(), columns, records) {
                eprintln!("error: writing CSV: {e}");
            }
        }
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
    if format == Format::Csv {
        // The secret is one more column; what people must be told goes to
        // stderr, so the output stays one CSV document.
        let mut with_key = columns.to_vec();
        with_key.push("key");
        print(format, value, std::slice::from_ref(value), &with_key);
        if let Some(note) = note {
            eprintln!("{note}");
        }
        eprintln!("This secret is shown only now; store it safely.");
        return;
    }
    print(format, value, std::slice::from_ref(value), columns);
    println!("\nkey: {}", value["key"].as_str().unwrap_or_default());
    if let Some(note) = note {
        println!("{note}");
    }
    println!("This secret is shown only now; store it safely.");
}

/// Write a header and records as CSV (RFC 4180 quoting, by the `csv`
/// crate).
pub fn write_csv<W: std::io::Write>(
    out: W,
    header: &[&str],
    records: impl IntoIterator<Item = Vec<String>>,
) -> Result<(), csv::Error> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(header)?;
    for record in records {
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(())
}

/// One value as a CSV field: like a table cell, but nothing for `null`.
pub fn csv_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        other => cell(other),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quotes_what_needs_quoting_and_leaves_nulls_empty() {
        let rows = [
            json!({"id": "key_a", "owner": "Doe, Jane", "models": ["gpt-*", "claude-*"], "note": null}),
            json!({"id": "key_b", "owner": "say \"hi\"", "models": [], "note": 3}),
        ];
        let columns = ["id", "owner", "models", "note"];
        let mut out = Vec::new();
        write_csv(
            &mut out,
            &columns,
            rows.iter()
                .map(|row| columns.iter().map(|c| csv_cell(&row[*c])).collect()),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id,owner,models,note\nkey_a,\"Doe, Jane\",\"gpt-*,claude-*\",\nkey_b,\"say \"\"hi\"\"\",*,3\n"
        );
    }
}
