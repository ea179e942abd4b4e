//! Confirmation for destructive commands: on a terminal, show what will happen and ask; with
//! `--yes`, proceed; without a terminal and without `--yes` (scripts, CI), fail at once and say
//! so, never waiting for input that will not come.

use std::io::{BufRead, IsTerminal, Write};

/// The operator declined, or could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotConfirmed(pub String);

/// Shows `plan` and asks, unless `yes`.
pub fn confirm(plan: &str, yes: bool) -> anyhow::Result<()> {
    eprintln!("{plan}");
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(NotConfirmed(
            "not confirmed: no terminal to ask on; pass --yes to proceed non-interactively".into(),
        )
        .into());
    }
    eprint!("Proceed? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(NotConfirmed("cancelled; nothing changed".into()).into()),
    }
}
