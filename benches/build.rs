include!("../scripts/libtorch_rpath.rs");
