//! `gpu-check`: the measuring half of `cargo xtask gpu-check` on this build's
//! backend (see `gpu_check.rs`; options in `gpu_check_usage.txt`).

use std::process::ExitCode;

use sdft_model::backend::{backend_name, default_device, DefaultBackend};
use sdft_tests::gpu_check::{parse_args, run, USAGE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("gpu-check: {e}");
            return ExitCode::from(2);
        }
    };
    match run::<DefaultBackend>(&args, backend_name(), &default_device()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpu-check: {e}");
            ExitCode::FAILURE
        }
    }
}
