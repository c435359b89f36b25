//! With the `cuda` feature, compiles `src/ops/cuda/kernels.cu` to PTX with nvcc (through
//! cudaforge, as candle-kernels does) and writes `$OUT_DIR/ptx.rs` with its text as `KERNELS`.
//! CPU-only builds need no CUDA toolchain and do nothing here.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "cuda")]
    cuda::compile_kernels();
}

#[cfg(feature = "cuda")]
mod cuda {
    pub fn compile_kernels() {
        const SOURCE: &str = "src/ops/cuda/kernels.cu";
        println!("cargo::rerun-if-changed={SOURCE}");
        let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        let ptx = cudaforge::KernelBuilder::new()
            .source_files([SOURCE])
            .arg("-std=c++17")
            .arg("-O3")
            .build_ptx()
            .unwrap_or_else(|e| panic!("compiling {SOURCE} with nvcc: {e}"));
        ptx.write(out_dir.join("ptx.rs"))
            .unwrap_or_else(|e| panic!("writing ptx.rs: {e}"));
    }
}
