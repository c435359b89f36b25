//! cyclegan-losses
