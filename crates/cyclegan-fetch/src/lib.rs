//! cyclegan-fetch
