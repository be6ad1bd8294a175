//! `repro run`: experiment files ([`spec`]), tasks ([`tasks`]), the training loop ([`train`]), the run store
//! ([`store`]) and the study runner ([`runner`]).

pub mod runner;
pub mod spec;
pub mod store;
pub mod tasks;
pub mod train;
