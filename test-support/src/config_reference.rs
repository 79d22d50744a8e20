//! The configuration reference in `docs/configuration.md`, generated from the binaries' clap
//! definitions so the documentation cannot drift from what `--help` says.
//!
//! Each binary's test renders its table with [`markdown_table`] and compares it with the text
//! between the file's markers ([`check_generated_section`]); run the tests with
//! `DOJO_BLESS_DOCS=1` to rewrite the section after changing a setting.

use std::path::Path;

/// One row per setting that has an environment variable: variable, flag, default, meaning.
pub fn markdown_table(command: &clap::Command) -> String {
    let mut out = String::from("| Environment | Flag | Default | Meaning |\n|---|---|---|---|\n");
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let flag = arg.get_long().map(|long| format!("`--{long}`")).unwrap_or_default();
        let defaults: Vec<String> =
            arg.get_default_values().iter().map(|value| value.to_string_lossy().into_owned()).collect();
        let default = if arg.is_required_set() {
            String::from("(required)")
        } else if defaults.is_empty() || defaults.iter().all(String::is_empty) {
            String::from("(unset)")
        } else {
            format!("`{}`", defaults.join(","))
        };
        let help = arg.get_long_help().or(arg.get_help()).map(ToString::to_string).unwrap_or_default();
        let mut meaning = help.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
        let choices: Vec<String> =
            arg.get_possible_values().iter().map(|value| format!("`{}`", value.get_name())).collect();
        if !choices.is_empty() && arg.get_action().takes_values() {
            meaning.push_str(&format!(" (one of {})", choices.join(", ")));
        }
        out.push_str(&format!("| `{}` | {flag} | {default} | {meaning} |\n", env.to_string_lossy()));
    }
    out
}

/// Checks that `file` holds `generated` between `<!-- BEGIN {marker} -->` and
/// `<!-- END {marker} -->`; with `DOJO_BLESS_DOCS=1` in the environment, writes it there
/// instead. Returns a message saying how to fix a difference.
pub fn check_generated_section(file: &Path, marker: &str, generated: &str) -> Result<(), String> {
    let bless = std::env::var("DOJO_BLESS_DOCS").is_ok_and(|value| value == "1");
    // Blessing tests run in parallel and each rewrites its own section of the same file: a
    // writer that finds its section lost to another's write writes it again.
    for _ in 0..20 {
        let text = std::fs::read_to_string(file).map_err(|error| format!("{}: {error}", file.display()))?;
        let (start, stop) = section(&text, marker)
            .map_err(|missing| format!("{} has no line {missing:?}", file.display()))?;
        if text[start..stop] == *generated {
            return Ok(());
        }
        if !bless {
            break;
        }
        let updated = format!("{}{generated}{}", &text[..start], &text[stop..]);
        std::fs::write(file, updated).map_err(|error| format!("{}: {error}", file.display()))?;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(format!(
        "{} is out of date for {marker}: run the test again with DOJO_BLESS_DOCS=1 to regenerate it \
         (`DOJO_BLESS_DOCS=1 cargo test --workspace config_reference`)",
        file.display()
    ))
}

/// The byte range between the section's markers, or the marker line that is missing.
fn section(text: &str, marker: &str) -> Result<(usize, usize), String> {
    let (begin, end) = (format!("<!-- BEGIN {marker} -->\n"), format!("<!-- END {marker} -->"));
    let start = text.find(&begin).ok_or_else(|| begin.clone())? + begin.len();
    let stop = start + text[start..].find(&end).ok_or(end)?;
    Ok((start, stop))
}
