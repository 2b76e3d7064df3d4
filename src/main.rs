//! The `rcelery` binary: the command line with the demo app `tasks` compiled in.
//! Your own binary looks the same with your tasks in place of [`demo`].

mod demo;

fn main() -> std::process::ExitCode {
    rcelery::cli::main(demo::app())
}
