// Included by the build scripts of every package that links libtorch: bakes the run-time library
// path of the libtorch found at build time into tests, benches and binaries, so they run without
// LD_LIBRARY_PATH. An LD_LIBRARY_PATH set at run time still wins (the linker writes RUNPATH).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.into());
        let lib = dir.join("lib");
        if lib.is_dir() {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
            // The wheel's NCCL, loaded at run time by the `nccl` feature (bootstrap-libtorch.sh
            // adds the `libnccl.so` name the loader asks for).
            if let Ok(nccl) = std::fs::canonicalize(dir.join("../nvidia/nccl/lib")) {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{}", nccl.display());
            }
            // Nothing in the Rust code references a libtorch_cuda symbol, so under the default
            // `--as-needed` the linker drops it and `tch::Cuda::is_available()` reads false on a
            // GPU machine. Keep it as a dependency whenever this libtorch ships it.
            if lib.join("libtorch_cuda.so").exists() {
                println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
                println!("cargo:rustc-link-arg=-ltorch_cuda");
                println!("cargo:rustc-link-arg=-Wl,--as-needed");
            }
        }
        let version = std::fs::read_to_string(dir.join("version.py"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("__version__"))
                    .and_then(|l| l.split('\'').nth(1).map(str::to_owned))
            })
            .or_else(|| std::fs::read_to_string(dir.join("build-version")).ok())
            .unwrap_or_else(|| "unknown".into());
        println!("cargo:rustc-env=BEHAVIOR_LIBTORCH_VERSION={}", version.trim());
    } else {
        println!("cargo:rustc-env=BEHAVIOR_LIBTORCH_VERSION=unknown");
    }
}
