//! Supervisors (issue 16): processes that start, bind, restart and stop the workers the store
//! asks for. [`profile`] holds the runner profiles, the one place that decides what may run.

pub mod profile;
