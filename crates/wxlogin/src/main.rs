use std::process::ExitCode;

fn main() -> ExitCode {
    wxlogin::cli::main()
}
