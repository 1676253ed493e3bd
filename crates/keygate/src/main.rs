//! The `keygate` binary: everything lives in the library; this only runs the CLI.
#![forbid(unsafe_code)]

// glibc's allocator showed as ~15% of the gateway's instructions per request
// (callgrind); mimalloc's thread-local free lists cost a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keygate::cli::run()
}
