//! `uniffi-bindgen`: generates the Kotlin, Swift and Python bindings of `covey-ffi` from the
//! built library (library mode). Built from the workspace so its version always matches the
//! `uniffi` that `covey-ffi` links; run it through `scripts/generate-bindings`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
