//! cyclegan-data
