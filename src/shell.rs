//! Shell completions and man pages, both generated from the clap definitions in
//! `main.rs`, so they always describe the binary that prints them.

use clap::ValueEnum;
use std::io::Write;
use std::path::Path;

/// The shells `boo completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }

    /// Where the script goes so the shell loads it by itself.
    fn install_hint(self) -> &'static str {
        match self {
            Shell::Bash => "boo completions bash > ~/.local/share/bash-completion/completions/boo",
            Shell::Zsh => "boo completions zsh > ~/.zfunc/_boo (with `fpath+=~/.zfunc; autoload -U compinit; compinit` in ~/.zshrc)",
            Shell::Fish => "boo completions fish > ~/.config/fish/completions/boo.fish",
        }
    }
}

/// Prints the completion script of `shell` on stdout.
pub fn completions(mut cmd: clap::Command, shell: Shell) -> i32 {
    let mut out = Vec::new();
    clap_complete::generate(shell.generator(), &mut cmd, "boo", &mut out);
    if std::io::stdout().write_all(&out).is_err() {
        eprintln!(
            "boo: cannot write the completion script to stdout; install it with: {}",
            shell.install_hint()
        );
        return 1;
    }
    0
}

/// Renders the man page of `cmd` (roff).
fn render(cmd: &clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    Ok(out)
}

/// Every visible command with its man page name: `boo`, `boo-run`, `boo-flow-check`, …
fn pages(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
    let name = if prefix.is_empty() {
        cmd.get_name().to_string()
    } else {
        format!("{prefix}-{}", cmd.get_name())
    };
    // A subcommand's page is titled with its full name (`boo-run`), as man(1) looks it up.
    out.push((name.clone(), cmd.clone().name(name.clone())));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        pages(sub, &name, out);
    }
}

/// `boo man`: the page of `boo` on stdout, or with `dir` one page per command there
/// (`boo.1`, `boo-run.1`, …), ready for `MANPATH`.
pub fn man(mut cmd: clap::Command, dir: Option<&Path>) -> i32 {
    cmd.build();
    let Some(dir) = dir else {
        return match render(&cmd).and_then(|page| std::io::stdout().write_all(&page)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("boo: cannot write the man page: {e}");
                1
            }
        };
    };
    let mut all = Vec::new();
    pages(&cmd, "", &mut all);
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!(
            "boo: cannot create {}: {e} — pass a folder you can write, e.g. --dir ~/.local/share/man/man1",
            dir.display()
        );
        return 1;
    }
    for (name, page) in &all {
        let file = dir.join(format!("{name}.1"));
        if let Err(e) = render(page).and_then(|bytes| std::fs::write(&file, bytes)) {
            eprintln!("boo: cannot write {}: {e}", file.display());
            return 1;
        }
    }
    println!(
        "wrote {} man pages to {} (read them with `man boo` once that folder's parent is on MANPATH)",
        all.len(),
        dir.display()
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("boo")
            .about("demo")
            .subcommand(clap::Command::new("run").about("run a flow"))
            .subcommand(
                clap::Command::new("flow")
                    .subcommand(clap::Command::new("check").about("check a file")),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn one_page_per_visible_command() {
        let mut cmd = demo();
        cmd.build();
        let mut all = Vec::new();
        pages(&cmd, "", &mut all);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["boo", "boo-run", "boo-flow", "boo-flow-check"]);
        let page = String::from_utf8(render(&all[3].1).unwrap()).unwrap();
        assert!(page.contains(".TH boo-flow-check 1"), "{page}");
    }
}
