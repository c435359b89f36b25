//! cyclegan-layers
