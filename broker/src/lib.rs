//! tern broker
