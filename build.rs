//! Builds the Python probe's native part (`src/source/probe/fast.c`) into a shared library
//! for the stable ABI of `CPython`, which the binary embeds and writes beside the probe. Without a C
//! compiler, or on a system other than Linux, it embeds nothing, and the probe does the same
//! in Python, at more cost per task (issue 17).

use std::env;
use std::fs;
use std::path::PathBuf;

const SOURCE: &str = "src/source/probe/fast.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("_fast.abi3.so");
    let built = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux") && compile(&out);
    if !built {
        // An empty file: the binary then writes no native part.
        if let Err(e) = fs::write(&out, b"") {
            println!("cargo:warning=cannot write {}: {e}", out.display());
        }
    }
}

/// Compiles fast.c into `out`; false (with a warning) when it cannot.
fn compile(out: &PathBuf) -> bool {
    let compiler = match cc::Build::new().opt_level(2).try_get_compiler() {
        Ok(compiler) => compiler,
        Err(e) => {
            println!("cargo:warning=the Python probe is built without its native part: {e}");
            return false;
        }
    };
    let status = compiler
        .to_command()
        .args(["-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-o"])
        .arg(out)
        .arg(SOURCE)
        .status();
    match status {
        Ok(status) if status.success() => true,
        Ok(status) => {
            println!(
                "cargo:warning=the Python probe is built without its native part: cc {status}"
            );
            false
        }
        Err(e) => {
            println!("cargo:warning=the Python probe is built without its native part: {e}");
            false
        }
    }
}
