//! `docs/configuration.md` lists every `dojo-server` setting as `--help` defines it: the table
//! is generated from the one config definition (`dojo_server::Config`), so it cannot drift.

use clap::CommandFactory;
use dojo_test_support::config_reference::{check_generated_section, markdown_table};

#[test]
fn config_reference_lists_every_server_setting() {
    let table = markdown_table(&dojo_server::Config::command());
    assert!(table.lines().count() > 40, "the table has a row per setting:\n{table}");
    assert!(table.contains("| `DATABASE_URL` | `--database-url` |"), "{table}");
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    if let Err(message) = check_generated_section(&doc, "dojo-server settings (generated)", &table) {
        panic!("{message}");
    }
}
