//! cyclegan-train
