//! The tokio runtime every broker thread runs: one current-thread runtime
//! per thread.

/// A current-thread runtime for one of the broker's threads; logs failure.
pub(crate) fn current_thread_runtime(role: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            tracing::error!(thread = role, error = %e, "cannot start runtime");
            None
        }
    }
}
