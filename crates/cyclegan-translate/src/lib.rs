//! cyclegan-translate
