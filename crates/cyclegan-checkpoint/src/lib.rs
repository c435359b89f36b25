//! cyclegan-checkpoint
