//! `bench-report FILE...`: Markdown tables from the JSON lines `dojo-loadtest` printed during a
//! benchmark run (`scripts/bench.sh` labels each with `--server-name`). Reads standard input
//! when no file is given. See `dojo_loadtest::summary`.

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut text = String::new();
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty()
        && let Err(error) = std::io::stdin().read_to_string(&mut text)
    {
        eprintln!("bench-report: reading standard input: {error}");
        return ExitCode::from(2);
    }
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(content) => {
                text.push_str(&content);
                text.push('\n');
            }
            Err(error) => {
                eprintln!("bench-report: {file}: {error}");
                return ExitCode::from(2);
            }
        }
    }
    let rows = dojo_loadtest::summary::parse_lines(&text);
    if rows.is_empty() {
        eprintln!("bench-report: no results in the input");
        return ExitCode::FAILURE;
    }
    print!("{}", dojo_loadtest::summary::render(&rows));
    ExitCode::SUCCESS
}
