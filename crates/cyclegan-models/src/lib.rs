//! cyclegan-models
