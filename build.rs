//! Gives every binary, test and bench an rpath to libtorch so nothing needs LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let libtorch =
        std::env::var("LIBTORCH").expect("LIBTORCH unset: run scripts/setup.sh (it is set in .cargo/config.toml)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib");
    if std::env::var_os("CARGO_FEATURE_CUDA_LINK").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
