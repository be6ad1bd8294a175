use clap::Parser;

fn main() {
    let cli = repro::cli::Cli::parse();
    match repro::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // one line, no backtrace: every error says what was wrong
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            std::process::exit(1);
        }
    }
}
