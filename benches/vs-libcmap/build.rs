//! Links corosync's libcmap (Debian: `libcmap-dev`) into the benchmark. Only this bench-only
//! crate links it; no product crate depends on the C library.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-lib=cmap");
}
