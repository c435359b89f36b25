//! cyclegan-replay
